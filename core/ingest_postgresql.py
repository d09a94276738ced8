"""Ingest's store in one statement on PostgreSQL: `SELECT * FROM omnicrm_ingest(:p)`.

The function (migration 0020) finds or creates the contact, threads or reopens or creates the
conversation and inserts the interaction, all in the database: one round trip instead of six
and a savepoint, and no ORM objects to build. `core.ingest` prepares its argument (addresses
normalized, HTML sanitized, language detected, the time from omnicrm's clock) and turns what
it returns into events; on SQLite the same steps run through the ORM (`core.ingest._store`),
and the ingest tests run on both databases to hold the two to the same rules.

A repeat (the interaction is stored already, or is being committed by another transaction)
is undone inside the function by a block that catches it, so the caller's transaction stays as
it was, as the ORM path's savepoint does; so is a value the database refuses (too long, out of
range), which is raised here as SQLAlchemy's `DataError` with the transaction still usable
(the email poller quarantines such a message in it). Any other error aborts the caller's
transaction, whose owner rolls it back (the email poller then imports its batch again with a
savepoint per message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncSession

from core.visibility import Placement

_NOWHERE = Placement(None, None)


@dataclass(frozen=True, kw_only=True)
class Stored:
    """What ingest stored (either way): the ids, and what changed for the events."""

    interaction_id: int
    conversation_id: int
    contact_id: int
    # False for a repeat: the ids are the stored interaction's and nothing changed.
    created: bool
    contact_created: bool = False
    # "created", "reopened" or None (the conversation went on).
    conversation_state: str | None = None
    placement: Placement = _NOWHERE

    @classmethod
    def repeat(cls, interaction_id: int, conversation_id: int | None, contact_id: int) -> Stored:
        return cls(
            interaction_id=interaction_id,
            conversation_id=conversation_id or 0,
            contact_id=contact_id,
            created=False,
        )


class RefusedValue(Exception):
    """The database refused a value of the message (its SQLSTATE and message)."""


_CALL = text("SELECT * FROM omnicrm_ingest(:p)").bindparams(bindparam("p", type_=JSONB))


async def in_one_statement(session: AsyncSession, arguments: dict[str, Any]) -> Stored:
    """Ingest through omnicrm_ingest; `arguments` as `core.ingest._arguments` makes them."""
    row = (await session.execute(_CALL, {"p": arguments})).one()
    if row.refused is not None:
        raise DataError("SELECT * FROM omnicrm_ingest(:p)", None, RefusedValue(row.refused))
    if not row.created:
        return Stored.repeat(row.interaction_id, row.conversation_id, row.contact_id)
    return Stored(
        interaction_id=row.interaction_id,
        conversation_id=row.conversation_id,
        contact_id=row.contact_id,
        created=True,
        contact_created=row.contact_created,
        conversation_state=row.conversation_state,
        placement=Placement(row.queue_id, row.assignee_id),
    )
