"""Automatic answers about orders: a customer who names an order of theirs is told its status
at once (issue 14, item 8), per queue and off by default.

A queue turns it on with `auto_order_status: true` in its routing configuration. For each new
inbound message (or web form) of an open conversation in such a queue, `OrderStatusResponder`

1. finds order numbers in its subject and text by the ERP's own pattern (the adapter's
   `settings.order_number_pattern`, else `DEFAULT_PATTERN`), on RE2 (linear time whatever an
   admin wrote), over at most `MAX_SCAN` characters, at most `MAX_NUMBERS` numbers, leaving
   out those already answered automatically in the conversation within `REPEAT_WINDOW`
   (a customer's email quoting the earlier thread is not answered again);
2. asks the ERP for the sender's customer (`query_for_contact` → `find_customer`) and for each
   order (`get_order`). An order is answered only if it is the sender's: its `customer_ref` is
   the customer the ERP found for them, or a reference the CRM holds for them (their own
   `erp_ref`, those of their company account's legal entities and, for the embedded ERP, the
   `contact:<id>` forms of them and of contacts merged into them). Someone else's order and an
   unknown number look the same to the customer: no answer. An ERP that is down, slow or
   only has stale answers gives no answer either (logged): the operator handles the message;
3. answers with `core.conversations.reply(..., automatic=True)` on the conversation's reply
   channel, in the contact's language (en, ru, de; else English): one line per order
   ("Order 10330: shipped on March 3." and its tracking), then a line saying the answer is
   automatic. The reply is in the timeline (its meta says `automatic`, so it is no first
   response), its outbox item is queued in the same transaction, the conversation stays open
   and with whoever had it. A reply the channel would refuse (no address, an opted-out
   address, WhatsApp's closed window, a channel that cannot send text) is not sent. The
   conversation's `last_outbound_at` is left as it was: the customer still waits for a person
   (routing requeues unanswered work of an operator gone offline by it).

**Exactly once.** The durable marker is the inbound interaction's `meta["auto_order_status"]`
(no new table or column: the message is the unit of work, and the marker says what was decided
about it, for the operator and for whoever reads the data later). Every message looked at gets
it, whatever the outcome (answered, no number, not theirs, ERP down, ...), so nothing is ever
looked at twice. The ERP is asked with no transaction open (SQLite has one connection per
process, and the embedded ERP reads through it); then one transaction claims the message with
a conditional update (`UPDATE interaction SET meta = meta WHERE id = :id AND meta has no
marker`): on PostgreSQL a second worker's update waits for the first's row lock and re-checks
its condition after the commit, on SQLite the write lock (BEGIN IMMEDIATE) serializes them, so
exactly one sees one updated row. That transaction then writes the reply, its outbox item and
the marker, which commit together or not at all: a crash before the commit leaves the message
unmarked and it is looked at again (still within `max_age`), a crash after it leaves it marked.
Two workers, two processes or a restart therefore answer a message at most once, and every
message of a flagged queue younger than `max_age` is looked at.

Only messages stored within `max_age` (10 minutes) are looked at, so a queue whose flag is
turned on does not answer its backlog, and a message whose conversation reaches its queue late
(routing was slow) is still answered on the next poll or routing decision. A message an
operator has already answered is left to them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from babel.dates import format_skeleton
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import channels, conversations
from core.audit import Actor
from core.cache import EventCache
from core.channels import Capability
from core.db import SessionFactory, transaction
from core.errors import InvalidInput
from core.event_types import INTERACTION_CREATED, QUEUE_CREATED, QUEUE_UPDATED, ROUTING_DECISION
from core.events import Event, EventBus
from core.i18n import N_, translator
from core.logfields import log_fields
from core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Interaction,
    InteractionKind,
    Queue,
    Role,
    utcnow,
)
from core.preferences import DEFAULT_LOCALE, LOCALES
from core.workers import wait_for_any
from erp_bridge import patterns
from erp_bridge.base import ErpAdapter, ErpError
from erp_bridge.enricher import query_for_contact
from erp_bridge.models import CustomerQuery, Order, OrderStatus
from erp_bridge.patterns import compile_pattern

log = logging.getLogger(__name__)

# The queue's flag, validated by routing/config.py (QueueConfig.auto_order_status); read here
# from the stored JSON because erp_bridge does not import routing.
FLAG: Final = "auto_order_status"
# Where the decision about an inbound message is kept: its meta[MARKER].
MARKER: Final = "auto_order_status"
# Who answers, in the audit log (the timeline shows an answer without an operator as omnicrm's).
AUTO_ANSWER: Final = Actor("automatic:order-status", Role.ADMIN)
# How order numbers look when the ERP does not say (the console's default, too).
DEFAULT_PATTERN: Final = r"\b\d{5,}\b"
MAX_SCAN: Final = 4000  # characters of a message searched for order numbers
MAX_NUMBERS: Final = 3  # order numbers asked about per message
REPEAT_WINDOW: Final = timedelta(hours=24)
# Routing decisions that put a conversation into a queue (it may be one that answers now).
_QUEUEING: Final = frozenset({"queue", "transfer", "overflow"})
_KINDS: Final = (InteractionKind.MESSAGE, InteractionKind.FORM)

# What the marker says was decided.
ANSWERED: Final = "answered"
NO_NUMBER: Final = "no_order_number"
ANSWERED_BEFORE: Final = "answered_before"
NO_ERP: Final = "no_erp"
ERP_UNAVAILABLE: Final = "erp_unavailable"
NOT_A_CUSTOMER: Final = "not_a_customer"
NOT_THEIRS: Final = "no_order_of_theirs"  # unknown numbers, someone else's, unclear statuses
REFUSED: Final = "reply_refused"
OPERATOR_ANSWERED: Final = "operator_answered"
# The flag was turned off, the conversation closed or left the queue, the person was erased.
NOT_WANTED: Final = "not_wanted"

SHIPPED_ON = N_("Order {number}: shipped on {date}.")
SHIPPED = N_("Order {number}: shipped.")
DELIVERED_ON = N_("Order {number}: delivered on {date}.")
DELIVERED = N_("Order {number}: delivered.")
PREPARING = N_("Order {number}: being prepared.")
NOT_CONFIRMED = N_("Order {number}: received, not confirmed yet.")
CANCELLED = N_("Order {number}: cancelled.")
TRACKING = N_("Tracking: {tracking}")
AUTOMATIC_NOTE = N_(
    "This is an automatic answer; an operator will get back to you if you need anything else."
)

_ANSWERABLE: Final = frozenset(
    {
        OrderStatus.DRAFT,
        OrderStatus.CONFIRMED,
        OrderStatus.PROCESSING,
        OrderStatus.SHIPPED,
        OrderStatus.DELIVERED,
        OrderStatus.CANCELLED,
    }
)


# --- pure parts: finding numbers, writing the answer --------------------------------------------


@functools.lru_cache(maxsize=32)
def _compiled(pattern: str) -> Any | None:
    """The pattern on RE2, or None (logged once per pattern) if RE2 cannot run it."""
    try:
        return compile_pattern(pattern)
    except ValueError:
        log.warning(
            "the ERP's order number pattern is not an RE2 pattern: no automatic answers",
            extra=log_fields(pattern=pattern),
        )
        return None


def pattern_of(adapter: ErpAdapter | None) -> str:
    """How the ERP's order numbers look: its settings' `order_number_pattern`, if it has one."""
    return patterns.pattern_of(adapter, DEFAULT_PATTERN)


def order_numbers(text: str, pattern: str, limit: int = MAX_NUMBERS) -> list[str]:
    """The first `limit` distinct order numbers in (the first MAX_SCAN characters of) `text`.
    A pattern RE2 cannot run (an ERP that validates with Python's `re`, e.g. a lookahead)
    finds nothing: it is logged, and no message is answered."""
    compiled = _compiled(pattern)
    if compiled is None:
        return []
    found: list[str] = []
    for match in compiled.finditer(text[:MAX_SCAN]):
        number = match.group(0).strip()
        if number and number not in found:
            found.append(number)
            if len(found) >= limit:
                break
    return found


def _day(moment: datetime | None, today: date, locale: str) -> str | None:
    if moment is None:
        return None
    day = moment.date()
    skeleton = "MMMMd" if day.year == today.year else "yMMMMd"
    return str(format_skeleton(skeleton, day, locale=locale))


def _latest(moments: Iterable[datetime | None]) -> datetime | None:
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def _tracking(order: Order) -> str | None:
    if order.tracking_url:
        return order.tracking_url
    shipment = next((s for s in reversed(order.shipments) if s.tracking_url), None)
    if shipment is not None:
        return shipment.tracking_url
    number = order.tracking_number or next(
        (s.tracking_number for s in reversed(order.shipments) if s.tracking_number), None
    )
    if number is None:
        return None
    carrier = next((s.carrier for s in reversed(order.shipments) if s.carrier), None)
    return f"{carrier} {number}" if carrier else number


def describe(order: Order, locale: str, today: date) -> list[str]:
    """The lines that tell the customer where `order` is, in `locale`."""
    t = translator(locale)
    number = order.number
    lines: list[str] = []
    if order.status is OrderStatus.SHIPPED:
        day = _day(_latest(s.shipped_at for s in order.shipments), today, locale)
        lines.append(
            t.gettext(SHIPPED_ON, number=number, date=day)
            if day
            else t.gettext(SHIPPED, number=number)
        )
    elif order.status is OrderStatus.DELIVERED:
        day = _day(_latest(s.delivered_at for s in order.shipments), today, locale)
        lines.append(
            t.gettext(DELIVERED_ON, number=number, date=day)
            if day
            else t.gettext(DELIVERED, number=number)
        )
    elif order.status in (OrderStatus.CONFIRMED, OrderStatus.PROCESSING):
        lines.append(t.gettext(PREPARING, number=number))
    elif order.status is OrderStatus.DRAFT:
        lines.append(t.gettext(NOT_CONFIRMED, number=number))
    elif order.status is OrderStatus.CANCELLED:
        lines.append(t.gettext(CANCELLED, number=number))
    if order.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.PROCESSING):
        tracking = _tracking(order)
        if tracking:
            lines.append(t.gettext(TRACKING, tracking=tracking))
    return lines


def compose(orders: Sequence[Order], locale: str, today: date) -> str:
    """The whole answer: each order's lines, then the note that it is automatic."""
    lines = [line for order in orders for line in describe(order, locale, today)]
    return "\n".join([*lines, "", translator(locale).gettext(AUTOMATIC_NOTE)])


def locale_of(language: str | None) -> str:
    """The contact's language as one omnicrm speaks (`de-AT` → `de`), else English."""
    base = (language or "").replace("_", "-").split("-")[0].strip().lower()
    return base if base in LOCALES else DEFAULT_LOCALE


# --- the worker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """An inbound message to look at, with what the ERP questions need (read before them)."""

    interaction_id: int
    conversation_id: int
    contact_id: int
    text: str
    locale: str
    query: CustomerQuery
    # References of the sender the CRM knows (module docstring, step 2): their ERP
    # references (any ERP), and the `contact:<id>` forms (the embedded ERP's only).
    own_refs: frozenset[str]
    contact_refs: frozenset[str]
    # Order numbers answered automatically in the conversation within REPEAT_WINDOW.
    answered: frozenset[str]


@dataclass(frozen=True)
class Decision:
    outcome: str
    text: str | None = None
    orders: tuple[str, ...] = ()


def _unmarked() -> ColumnElement[bool]:
    """No marker yet (JSON_EXTRACT on SQLite, ->> on PostgreSQL: NULL when the key is absent)."""
    condition: ColumnElement[bool] = Interaction.meta[MARKER].as_string().is_(None)
    return condition


def queue_answers(config: object) -> bool:
    """Whether a queue's stored configuration turns automatic order answers on."""
    # Validated as a boolean by routing/config.py (QueueConfig.auto_order_status).
    return isinstance(config, dict) and config.get(FLAG) is True


class OrderStatusResponder:
    """Answers order numbers in new messages of the queues that ask for it (module docstring);
    one per server process, started with the background workers. `adapter` gives the ERP in
    use now (`ErpService.adapter`)."""

    def __init__(
        self,
        sessions: SessionFactory,
        bus: EventBus | None,
        adapter: Callable[[], Awaitable[ErpAdapter | None]],
        *,
        poll_seconds: float = 30.0,
        max_age_seconds: float = 600.0,
        batch_size: int = 20,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.adapter = adapter
        self.poll_seconds = poll_seconds
        self.max_age = timedelta(seconds=max_age_seconds)
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        # Which queues ask for answers: read once, not at every new message, until a queue
        # is made or changed (without a bus, as in some tests, read each time).
        self._answering: EventCache[None, tuple[int, ...]] | None = (
            EventCache(bus, {QUEUE_CREATED, QUEUE_UPDATED}) if bus is not None else None
        )

    def _on_event(self, event: Event) -> None:
        if (event.type == INTERACTION_CREATED and event.labels.get("direction") == "in") or (
            event.type == ROUTING_DECISION and event.labels.get("kind") in _QUEUEING
        ):
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Answer until `stop` is set (between batches; see core.workers)."""
        if self.bus is not None:
            self.bus.add_listener(self._on_event)
        while not stop.is_set():
            self._wake.clear()
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("automatic order answers failed")
                handled = 0
            if handled < self.batch_size:
                await wait_for_any(self._wake, stop, seconds=self.poll_seconds)

    async def run_once(self) -> int:
        """Look at one batch of new messages; how many were looked at."""
        async with self.sessions() as session:
            candidates = await self._candidates(session)
        if not candidates:
            return 0
        adapter = await self.adapter()
        for candidate in candidates:
            try:
                decision = await self._decide(candidate, adapter)
                await self._record(candidate, decision)
            except Exception:
                # Unmarked, so looked at again on the next pass (while younger than max_age).
                log.exception(
                    "automatic order answer failed",
                    extra=log_fields(interaction=candidate.interaction_id),
                )
        return len(candidates)

    # --- reading what to look at ---------------------------------------------------------------

    async def _answering_queues(self, session: AsyncSession) -> tuple[int, ...]:
        async def load() -> tuple[int, ...]:
            rows = (await session.execute(select(Queue.id, Queue.config))).all()
            return tuple(queue_id for queue_id, config in rows if queue_answers(config))

        if self._answering is None:
            return await load()
        return await self._answering.get(None, load) or ()

    async def _candidates(self, session: AsyncSession) -> list[Candidate]:
        queues = await self._answering_queues(session)
        if not queues:
            return []
        since = utcnow() - self.max_age
        rows = (
            await session.execute(
                select(
                    Interaction.id,
                    Interaction.conversation_id,
                    Interaction.contact_id,
                    Interaction.subject,
                    Interaction.text,
                    Contact.language,
                )
                .join(Conversation, Conversation.id == Interaction.conversation_id)
                .join(Contact, Contact.id == Interaction.contact_id)
                .where(
                    Conversation.queue_id.in_(queues),
                    Conversation.status == ConversationStatus.OPEN,
                    Conversation.updated_at >= since,
                    Interaction.created_at >= since,
                    Interaction.direction == Direction.IN,
                    Interaction.kind.in_(_KINDS),
                    Contact.erased_at.is_(None),
                    _unmarked(),
                )
                .order_by(Interaction.id)
                .limit(self.batch_size)
            )
        ).all()
        found = []
        for interaction_id, in_conversation, contact_id, subject, text, language in rows:
            assert in_conversation is not None  # joined on it
            conversation_id = in_conversation
            query = await query_for_contact(session, contact_id)
            own_refs, contact_refs = await _own_refs(session, contact_id)
            found.append(
                Candidate(
                    interaction_id=interaction_id,
                    conversation_id=conversation_id,
                    contact_id=contact_id,
                    text="\n".join(part for part in (subject, text) if part)[:MAX_SCAN],
                    locale=locale_of(language),
                    query=query,
                    own_refs=own_refs | frozenset(query.erp_refs),
                    contact_refs=contact_refs,
                    answered=await _answered_before(session, conversation_id),
                )
            )
        return found

    # --- asking the ERP (no transaction open) ---------------------------------------------------

    async def _decide(self, candidate: Candidate, adapter: ErpAdapter | None) -> Decision:
        found = order_numbers(candidate.text, pattern_of(adapter))
        numbers = tuple(number for number in found if number not in candidate.answered)
        if not found:
            return Decision(NO_NUMBER)
        if not numbers:
            return Decision(ANSWERED_BEFORE)
        if adapter is None:
            return Decision(NO_ERP, orders=numbers)
        try:
            customer = await adapter.find_customer(candidate.query)
            if customer.stale:
                raise ErpError(f"the ERP answers from its cache of {customer.as_of:%H:%M} UTC")
            if customer.value is None:
                return Decision(NOT_A_CUSTOMER, orders=numbers)
            refs = candidate.own_refs | {customer.value.ref}
            if adapter.kind == "embedded":
                refs |= candidate.contact_refs
            theirs: list[Order] = []
            for number in numbers:
                answer = await adapter.get_order(number)
                if answer.stale:
                    raise ErpError(f"the ERP answers from its cache of {answer.as_of:%H:%M} UTC")
                order = answer.value
                if order is not None and order.customer_ref in refs and order.status in _ANSWERABLE:
                    theirs.append(order)
        except ErpError as exc:
            log.warning(
                "no automatic order answer: the ERP did not answer",
                extra=log_fields(
                    interaction=candidate.interaction_id, erp=adapter.kind, error=str(exc)
                ),
            )
            return Decision(ERP_UNAVAILABLE, orders=numbers)
        if not theirs:
            return Decision(NOT_THEIRS, orders=numbers)
        text = compose(theirs, candidate.locale, utcnow().date())
        return Decision(ANSWERED, text, tuple(order.number for order in theirs))

    # --- answering and marking (one transaction) ------------------------------------------------

    async def _record(self, candidate: Candidate, decision: Decision) -> bool:
        """Claim the message, answer it if there is an answer, mark it; False if another
        worker had it already."""
        async with transaction(self.sessions) as session:
            claimed = await session.execute(
                update(Interaction)
                .where(Interaction.id == candidate.interaction_id, _unmarked())
                .values(meta=Interaction.meta)
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                return False
            contact = await session.get(Contact, candidate.contact_id)
            if contact is None or contact.erased_at is not None:
                decision = Decision(NOT_WANTED)  # erased meanwhile: keep nothing of theirs
            outcome, reply_id, why = decision.outcome, None, None
            if decision.text is not None:
                outcome = await self._still_wanted(session, candidate) or ANSWERED
                if outcome == ANSWERED:
                    try:
                        async with session.begin_nested():
                            reply_id = await self._reply(session, candidate, decision.text)
                    except InvalidInput as exc:
                        outcome, why = REFUSED, str(exc)
            message = await session.get(Interaction, candidate.interaction_id)
            assert message is not None
            marker: dict[str, Any] = {"outcome": outcome, "at": utcnow().isoformat()}
            if decision.orders:
                marker["orders"] = list(decision.orders)
            if reply_id is not None:
                marker["reply"] = reply_id
            if why is not None:
                marker["why"] = why[:500]
            message.meta = {**(message.meta or {}), MARKER: marker}
            await session.flush()
        log.info(
            "automatic order answer" if reply_id is not None else "no automatic order answer",
            extra=log_fields(
                interaction=candidate.interaction_id,
                conversation=candidate.conversation_id,
                outcome=outcome,
                orders=list(decision.orders),
                **({"why": why} if why else {}),
            ),
        )
        return True

    async def _still_wanted(self, session: AsyncSession, candidate: Candidate) -> str | None:
        """Why the answer should not go out after all (read now, in the claiming transaction):
        the queue no longer answers, the conversation was closed, or an operator answered."""
        conversation = await session.get(Conversation, candidate.conversation_id)
        if conversation is None or conversation.status != ConversationStatus.OPEN:
            return NOT_WANTED
        queue = await session.get(Queue, conversation.queue_id) if conversation.queue_id else None
        if queue is None or not queue_answers(queue.config):
            return NOT_WANTED
        later = await session.scalars(
            select(Interaction.meta).where(
                Interaction.conversation_id == candidate.conversation_id,
                Interaction.direction == Direction.OUT,
                Interaction.id > candidate.interaction_id,
            )
        )
        if any(not (meta or {}).get("automatic") for meta in later):
            return OPERATOR_ANSWERED
        return None

    async def _reply(self, session: AsyncSession, candidate: Candidate, text: str) -> int:
        conversation = await session.get(Conversation, candidate.conversation_id)
        assert conversation is not None
        catalog = channels.catalog()
        reply_channel = catalog.reply_channel(conversation.channel)
        facts = catalog.get(reply_channel)
        if facts is None or Capability.TEXT not in facts.sends:
            raise InvalidInput(f"{reply_channel} cannot send text", field="channel")
        waiting_since = conversation.last_outbound_at
        message, _item = await conversations.reply(
            session, AUTO_ANSWER, candidate.conversation_id, text=text, automatic=True
        )
        # The customer still waits for a person: routing's "awaiting a reply" stays true.
        conversation.last_outbound_at = waiting_since
        return message.id


async def _own_refs(
    session: AsyncSession, contact_id: int
) -> tuple[frozenset[str], frozenset[str]]:
    """The contact's and those merged into them: their erp_refs, and their `contact:<id>`
    forms (how the embedded ERP stores the orders of a contact without an erp_ref)."""
    rows = (
        await session.execute(
            select(Contact.id, Contact.erp_ref).where(
                or_(Contact.id == contact_id, Contact.merged_into_id == contact_id)
            )
        )
    ).all()
    return (
        frozenset(ref for _, ref in rows if ref),
        frozenset(f"contact:{person}" for person, _ in rows),
    )


async def _answered_before(session: AsyncSession, conversation_id: int) -> frozenset[str]:
    """Order numbers answered automatically in the conversation within REPEAT_WINDOW."""
    metas = await session.scalars(
        select(Interaction.meta).where(
            Interaction.conversation_id == conversation_id,
            Interaction.direction == Direction.IN,
            Interaction.created_at >= utcnow() - REPEAT_WINDOW,
            Interaction.meta[MARKER].as_string().is_not(None),
        )
    )
    answered: set[str] = set()
    for meta in metas:
        marker = (meta or {}).get(MARKER) or {}
        if isinstance(marker, dict) and marker.get("outcome") == ANSWERED:
            answered |= {str(number) for number in marker.get("orders") or ()}
    return frozenset(answered)
