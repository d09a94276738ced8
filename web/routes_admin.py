"""Administration: API tokens for other systems, and the audit log."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from core import audit, auth
from core.errors import NotFound
from core.models import ApiToken, Role
from web.api import ADMINS, ApiRoutes, Call, NoBody, PageQuery, RecordId
from web.schemas import AuditOut, NewTokenOut, Page, TokenOut, page_of

routes = ApiRoutes(tag="admin")


class NewTokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    role: Literal["integration", "operator", "supervisor", "admin"] = "integration"


class AuditQuery(PageQuery):
    action: str | None = Field(None, max_length=60, description="e.g. operator.update")
    entity_type: str | None = Field(None, max_length=40, description="e.g. operator, queue")
    entity_id: str | None = Field(None, max_length=60)
    actor_id: RecordId | None = Field(None, description="the operator who acted")
    since: AwareDatetime | None = Field(None, description="from this moment on (inclusive)")
    until: AwareDatetime | None = Field(None, description="before this moment")


@routes.get("/api/v1/tokens", summary="API tokens", roles=ADMINS, response=list[TokenOut])
async def list_tokens(call: Call[NoBody, NoBody]) -> list[TokenOut]:
    async with call.sessions() as session:
        return [TokenOut.model_validate(token) for token in await auth.list_tokens(session)]


@routes.post(
    "/api/v1/tokens",
    summary="Create an API token; the response holds the token, shown this once",
    roles=ADMINS,
    body=NewTokenBody,
    response=NewTokenOut,
    status=201,
    errors=(409,),
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
    response=Page[AuditOut],
)
async def list_audit(call: Call[NoBody, AuditQuery]) -> Page[AuditOut]:
    query = call.query
    async with call.sessions() as session:
        entries, next_cursor = await audit.list_entries(
            session,
            action=query.action,
            entity_type=query.entity_type,
            entity_id=query.entity_id,
            actor_id=query.actor_id,
            since=query.since,
            until=query.until,
            cursor=query.cursor,
            limit=query.limit,
        )
    return page_of(AuditOut, entries, next_cursor)
