"""Who did what to which record, when."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import AuditEntry, Role
from core.pagination import keyset_page


@dataclass(frozen=True)
class Actor:
    """The operator, token or process a change is made by."""

    label: str
    role: Role
    operator_id: int | None = None

    @property
    def is_supervisor(self) -> bool:
        return self.role in (Role.SUPERVISOR, Role.ADMIN)


SYSTEM = Actor("system", Role.ADMIN)
CLI = Actor("cli", Role.ADMIN)
# Channel accounts the config file declares are created and changed by it.
CONFIG_FILE = Actor("config-file", Role.ADMIN)


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: int | str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            actor_id=actor.operator_id,
            actor_label=actor.label,
            action=action,
            entity_type=entity_type,
            entity_id=None if entity_id is None else str(entity_id),
            details=details or {},
        )
    )


async def list_entries(
    session: AsyncSession,
    *,
    action: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor_id: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[AuditEntry], str | None]:
    """Audit entries matching every filter given, newest first, one keyset page."""
    query = select(AuditEntry)
    for column, value in (
        (AuditEntry.action, action),
        (AuditEntry.entity_type, entity_type),
        (AuditEntry.entity_id, entity_id),
        (AuditEntry.actor_id, actor_id),
    ):
        if value is not None:
            query = query.where(column == value)
    return await keyset_page(
        session, query, AuditEntry.created_at, AuditEntry.id, cursor=cursor, limit=limit
    )
