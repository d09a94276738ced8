"""The waiting step's writes (`routing/waiting.py`), made together at the step's end.

What the step decides is collected in `Writes` as it goes: `note` logs why work still waits
(once per distinct reason), `give` offers or assigns it, with its log row and events. `made`
then writes them at once: one statement for every note and cleared note, one for every
assignment, one for the operators' last assignment, and the new offers and log rows in one
flush, not a few statements per piece of work. Under the routing lock nobody else assigns
meanwhile; an assignment that finds its work taken stops the pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import routing_log
from core.event_types import CONVERSATION_ASSIGNED, OFFER_CREATED
from core.events import Event, emit
from core.models import Conversation, Offer, Operator
from core.visibility import Placement, audience_labels
from routing.housekeeping import label
from routing.setup import QueueSetup
from routing.strategies import Decision

if TYPE_CHECKING:
    from routing.service import PassReport

_CONVERSATION = cast(Table, Conversation.__table__)
_OPERATOR = cast(Table, Operator.__table__)


@dataclass
class Offered:
    offer: Offer
    queue_id: int


@dataclass
class Writes:
    """The step's writes, made together by `made` (see the module docstring)."""

    # routing_note per conversation (None: cleared, the work was offered).
    notes: list[dict[str, Any]] = field(default_factory=list)
    assigned: list[dict[str, Any]] = field(default_factory=list)
    given_to: set[int] = field(default_factory=set)
    offers: list[Offered] = field(default_factory=list)

    async def made(self, session: AsyncSession, now: datetime) -> None:
        if self.notes:
            # A note is not activity: updated_at (the inbox's order) stays as it was.
            await session.execute(
                update(_CONVERSATION)
                .where(_CONVERSATION.c.id == bindparam("b_id"))
                .values(routing_note=bindparam("b_note"), updated_at=_CONVERSATION.c.updated_at),
                self.notes,
            )
        if self.assigned:
            result = await session.execute(
                update(_CONVERSATION)
                .where(
                    _CONVERSATION.c.id == bindparam("b_id"),
                    _CONVERSATION.c.assignee_id.is_(None),
                )
                .values(assignee_id=bindparam("b_operator"), routing_note=None, updated_at=now),
                self.assigned,
            )
            # Under the routing lock nobody else assigns meanwhile; never assign twice.
            rowcount = cast(CursorResult[Any], result).rowcount
            if session.get_bind().dialect.supports_sane_multi_rowcount and rowcount != len(
                self.assigned
            ):
                raise RuntimeError("waiting work was assigned by someone else under the lock")
        if self.given_to:
            await session.execute(
                update(_OPERATOR)
                .where(_OPERATOR.c.id == bindparam("b_id"))
                .values(last_assigned_at=now),
                [{"b_id": operator_id} for operator_id in sorted(self.given_to)],
            )
        await session.flush()  # the offers and the log rows, in batches
        for offered in self.offers:
            offer = offered.offer
            await emit(
                session,
                Event(
                    OFFER_CREATED,
                    {
                        "offer": offer.id,
                        "conversation": offer.conversation_id,
                        "operator": offer.operator_id,
                    },
                    {
                        "expires_at": offer.expires_at.isoformat(),
                        **audience_labels([Placement(offered.queue_id, offer.operator_id)]),
                    },
                ),
            )


async def note(
    session: AsyncSession,
    row: Any,
    reason: str,
    decision: Decision | None,
    now: datetime,
    writes: Writes,
    details: dict[str, Any] | None = None,
) -> int:
    """Log why work still waits, once per distinct reason (a pass runs often); 1 when it
    was logged now. `details`: the decision as JSON, when known already."""
    reason = reason[:500]
    if reason == row.routing_note:
        return 0
    writes.notes.append({"b_id": row.id, "b_note": reason})
    if details is None:
        details = decision.model_dump(mode="json") if decision is not None else {}
    await routing_log.record(
        session,
        kind=decision.outcome if decision is not None else "none",
        conversation_id=row.id,
        queue_id=row.queue_id,
        reason=reason,
        details=details,
        at=now,
    )
    return 1


async def give(
    session: AsyncSession,
    row: Any,
    setup: QueueSetup,
    decision: Decision,
    now: datetime,
    report: PassReport,
    writes: Writes,
    details: dict[str, Any] | None = None,
) -> None:
    """Offer or assign the work as decided; `details`: the decision as JSON, when known."""
    assert setup.config is not None
    assert decision.winner_id is not None
    winner = decision.winner_id
    if details is None:
        details = decision.model_dump(mode="json")
    timeout = setup.config.offer_timeout
    if timeout is not None:
        offer = Offer(
            conversation_id=row.id,
            operator_id=winner,
            queue_id=setup.id,
            created_at=now,
            expires_at=now + timeout,
        )
        session.add(offer)
        writes.offers.append(Offered(offer, setup.id))
        await routing_log.record(
            session,
            kind="offer",
            conversation_id=row.id,
            queue_id=setup.id,
            operator_id=winner,
            reason=(
                f"offered to operator {winner} for {label(timeout.total_seconds())}:"
                f" {decision.reason}"
            ),
            details=details,
            at=now,
        )
        if row.routing_note is not None:
            writes.notes.append({"b_id": row.id, "b_note": None})
        report.offered += 1
        return
    writes.assigned.append({"b_id": row.id, "b_operator": winner})
    writes.given_to.add(winner)
    await routing_log.record(
        session,
        kind="assign",
        conversation_id=row.id,
        queue_id=setup.id,
        operator_id=winner,
        reason=f"assigned to operator {winner}: {decision.reason}",
        details=details,
        at=now,
    )
    await emit(
        session,
        Event(
            CONVERSATION_ASSIGNED,
            {"conversation": row.id, "contact": row.contact_id, "operator": winner},
            {"channel": row.channel, **audience_labels([Placement(setup.id, winner)])},
        ),
    )
    report.assigned += 1
