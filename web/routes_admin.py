"""Administration: API tokens for other systems, and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import auth
from core.errors import NotFound
from core.models import ApiToken, AuditEntry, Role
from core.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from web.api import ADMINS, ApiRoutes, Call, NoBody
from web.schemas import AuditOut, NewTokenOut, Page, TokenOut

routes = ApiRoutes(tag="admin")


class NewTokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Literal["integration", "operator", "supervisor", "admin"] = "integration"


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: str | None = Field(None, max_length=60, description="e.g. operator.update")
    entity_type: str | None = Field(None, max_length=40, description="e.g. operator, queue")
    entity_id: str | None = Field(None, max_length=60)
    actor_id: int | None = Field(None, ge=1, description="the operator who acted")
    cursor: str | None = Field(None, max_length=500, description="next_cursor of a page")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


@routes.get("/api/v1/tokens", summary="API tokens", roles=ADMINS, response=list[TokenOut])
async def list_tokens(call: Call[NoBody, NoBody]) -> list[TokenOut]:
    async with call.sessions() as session:
        tokens = await session.scalars(select(ApiToken).order_by(ApiToken.id.desc()))
        return [TokenOut.model_validate(token) for token in tokens]


@routes.post(
    "/api/v1/tokens",
    summary="Create an API token; the response holds the token, shown this once",
    roles=ADMINS,
    body=NewTokenBody,
    response=NewTokenOut,
    status=201,
)
async def create_token(call: Call[NewTokenBody, NoBody]) -> NewTokenOut:
    async with call.sessions() as session, session.begin():
        token, plain = await auth.create_token(
            session, call.actor, call.body.name, Role(call.body.role)
        )
    return NewTokenOut(
        id=token.id,
        name=token.name,
        role=token.role,
        created_at=token.created_at,
        revoked_at=token.revoked_at,
        token=plain,
    )


@routes.delete("/api/v1/tokens/{id}", summary="Revoke an API token", roles=ADMINS, status=204)
async def revoke_token(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    token_id = call.path_int("id")
    async with call.sessions() as session, session.begin():
        if await session.get(ApiToken, token_id) is None:
            raise NotFound(f"no token {token_id}")
        # Revoking a revoked token is a no-op: the caller's intent holds either way.
        await auth.revoke_token(session, call.actor, token_id)
    return web.Response(status=204)


@routes.get(
    "/api/v1/audit",
    summary="The audit log, newest first: who did what to which record",
    roles=ADMINS,
    query=AuditQuery,
    response=Page,
)
async def list_audit(call: Call[NoBody, AuditQuery]) -> Page:
    async with call.sessions() as session:
        entries = await audit_page(session, call.query)
    more = len(entries) > call.query.limit
    entries = entries[: call.query.limit]
    last = entries[-1] if entries else None
    return Page(
        items=[AuditOut.model_validate(entry) for entry in entries],
        next_cursor=encode_cursor(last.created_at, last.id) if more and last else None,
    )


async def audit_page(session: AsyncSession, query: AuditQuery) -> list[AuditEntry]:
    """Up to limit + 1 entries matching the filters, after the cursor (one extra tells more)."""
    statement = select(AuditEntry)
    for column, value in (
        (AuditEntry.action, query.action),
        (AuditEntry.entity_type, query.entity_type),
        (AuditEntry.entity_id, query.entity_id),
        (AuditEntry.actor_id, query.actor_id),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if query.cursor:
        created_at, entry_id = decode_cursor(query.cursor, datetime, int)
        statement = statement.where(
            or_(
                AuditEntry.created_at < created_at,
                and_(AuditEntry.created_at == created_at, AuditEntry.id < entry_id),
            )
        )
    statement = statement.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
    return list(await session.scalars(statement.limit(query.limit + 1)))
