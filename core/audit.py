"""Who did what to which record, when."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.models import AuditEntry, Role


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
