"""Steps 1 and 2 of the routing pass: presence housekeeping and offers past their timeout.

1. Presence: auto-away when an operator's console has been gone for a grace, auto-offline
   later, offers of operators no longer available (or of work no longer waiting) withdrawn,
   and the unanswered work of operators offline past the requeue grace put back in its queue.
2. Offers past their timeout marked timed out (the work goes to the next candidate).

Each part runs only when the pass's one look at what is due (`routing.due.Due`) says it has
something to do. Runs inside the pass (`routing.service.run_pass`), under its lock and in its
transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import routing_log
from core.models import (
    Conversation,
    ConversationStatus,
    Offer,
    OfferStatus,
    Operator,
    Presence,
)
from core.operators import set_presence
from core.visibility import Placement
from routing.due import (
    AUTO_AWAY_BUSY_REASON,
    AUTO_AWAY_REASON,
    AUTO_REASONS,
    AWAITING_REPLY,
    WATCHED,
    Due,
)
from routing.setup import enter_queue

if TYPE_CHECKING:
    from routing.service import PassReport, RoutingOptions


def label(seconds: float) -> str:
    """A duration as the decision log says it: "30 s", "2 min", "1 h"."""
    seconds = int(seconds)
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


async def presence_housekeeping(
    session: AsyncSession, due: Due, options: RoutingOptions, report: PassReport
) -> None:
    now = due.now
    gone, long_gone = due.gone(options), due.long_gone(options)
    if gone or long_gone:
        await _consoles_gone(session, now, options, report, gone=gone, long_gone=long_gone)
    # Offers of operators this pass set away are stale now too.
    changed = report.presence_changed > 0
    if due.stale_offer or (changed and due.offer_expires is not None):
        await _withdraw_stale_offers(session, now)
    if due.stranded(options):
        await _requeue_stranded(session, now, options, report)


async def _consoles_gone(
    session: AsyncSession,
    now: datetime,
    options: RoutingOptions,
    report: PassReport,
    *,
    gone: bool,
    long_gone: bool,
) -> None:
    """Away after the first grace, offline after the second: both read in one statement."""
    away_now = and_(
        Operator.active.is_(True),
        Operator.presence.in_(WATCHED),
        Operator.console_seen_at.is_not(None),
        Operator.console_seen_at <= now - options.away_after_disconnect,
    )
    offline_now = and_(
        Operator.presence == Presence.AWAY,
        Operator.presence_reason.in_(AUTO_REASONS),
        Operator.console_seen_at <= now - options.offline_after_disconnect,
    )
    wanted = [condition for condition, due in ((away_now, gone), (offline_now, long_gone)) if due]
    operators = list(
        await session.scalars(select(Operator).where(or_(*wanted)).order_by(Operator.id))
    )
    # Away first, as two statements did: one gone long enough goes away now, offline later.
    for operator in operators:
        if operator.presence in WATCHED:
            was_busy = operator.presence == Presence.BUSY
            reason = AUTO_AWAY_BUSY_REASON if was_busy else AUTO_AWAY_REASON
            if await set_presence(session, operator, Presence.AWAY, reason, at=now):
                report.presence_changed += 1
    for operator in operators:
        seen = operator.console_seen_at
        if (
            operator.presence == Presence.AWAY
            and operator.presence_reason in AUTO_REASONS
            and seen is not None
            and seen <= now - options.offline_after_disconnect
        ):
            # The reason carries on: it says what to restore when the console comes back.
            kept = operator.presence_reason
            if await set_presence(session, operator, Presence.OFFLINE, kept, at=now):
                report.presence_changed += 1


async def _withdraw_stale_offers(session: AsyncSession, now: datetime) -> None:
    """An offer to someone who is no longer available would only time out: withdraw it now."""
    stale_offers = await session.execute(
        select(Offer, Operator.presence, Conversation.status, Conversation.assignee_id)
        .join(Operator, Operator.id == Offer.operator_id)
        .join(Conversation, Conversation.id == Offer.conversation_id)
        .where(
            Offer.status == OfferStatus.PENDING,
            or_(
                Operator.presence != Presence.AVAILABLE,
                Conversation.status != ConversationStatus.OPEN,
                Conversation.assignee_id.is_not(None),
            ),
        )
    )
    for offer, presence, status, assignee_id in stale_offers:
        if status != ConversationStatus.OPEN or assignee_id is not None:
            why = "the conversation is no longer waiting"
        else:
            why = f"they are {presence} now"
        await routing_log.end_offer(session, offer, OfferStatus.CANCELLED, now)
        await routing_log.record(
            session,
            kind="withdrawn",
            conversation_id=offer.conversation_id,
            queue_id=offer.queue_id,
            operator_id=offer.operator_id,
            reason=f"offer to operator {offer.operator_id} withdrawn: {why}",
            at=now,
        )


async def _requeue_stranded(
    session: AsyncSession, now: datetime, options: RoutingOptions, report: PassReport
) -> None:
    """Work the customer waits on, held by an operator offline past the grace: requeued."""
    stranded = await session.execute(
        select(Conversation, Operator)
        .join(Operator, Operator.id == Conversation.assignee_id)
        .where(
            Operator.presence == Presence.OFFLINE,
            Operator.presence_since <= now - options.requeue_after_offline,
            Conversation.status == ConversationStatus.OPEN,
            AWAITING_REPLY,
        )
    )
    for conversation, operator in stranded:
        conversation.assignee_id = None
        enter_queue(conversation, now)
        await routing_log.record(
            session,
            kind="requeue",
            conversation_id=conversation.id,
            queue_id=conversation.queue_id,
            operator_id=operator.id,
            reason=(
                f"operator {operator.id} has been offline since"
                f" {operator.presence_since:%Y-%m-%d %H:%M} UTC with the customer waiting for an"
                " answer: back to the queue"
            ),
            at=now,
        )
        await routing_log.emit_assignment(
            session, conversation, Placement(conversation.queue_id, operator.id)
        )
        report.requeued += 1


async def expire_offers(session: AsyncSession, due: Due, report: PassReport) -> None:
    if not due.offers_expired:
        return
    now = due.now
    expired = await session.scalars(
        select(Offer).where(Offer.status == OfferStatus.PENDING, Offer.expires_at <= now)
    )
    for offer in expired:
        await routing_log.end_offer(session, offer, OfferStatus.TIMED_OUT, now)
        waited = (offer.expires_at - offer.created_at).total_seconds()
        await routing_log.record(
            session,
            kind="timed_out",
            conversation_id=offer.conversation_id,
            queue_id=offer.queue_id,
            operator_id=offer.operator_id,
            reason=f"operator {offer.operator_id} did not answer the offer within {label(waited)}",
            at=now,
        )
        report.timed_out += 1
