"""Step 6 of the routing pass: waiting work routed in order (priority, then longest wait).

Each piece of waiting work is offered to, or assigned to, the operator
`routing.strategies.decide` picks, or keeps waiting with the reason logged (once per distinct
reason: `Conversation.routing_note`). Runs inside the pass (`routing.service.run_pass`), under
its lock and in its transaction.

What keeps it cheap with a large backlog:

- given the engine's marks (`routing/scope.py`), work already explained is read only in the
  queues, and of the kinds, that may now give it: an arrival that frees one operator reads
  that operator's queues' work of the freed kind, not the whole backlog;
- work already explained is read again only in queues where some member has room for some
  kind of work (`QueueRooms`) and, when the queue's required skills read nothing of the work,
  one of them meets them (`_anyone_could`); it is decided again only when someone who could
  take it has room (`_worth_deciding`); who refused it is read only for work someone refused
  (a flag in the same statement);
- within a pass, work that differs only in what no decision reads (its id, its wait) gets the
  same answer: whether anyone could take it, and why nobody can, are kept per queue, channel
  kind and the facts its queue's required skills name, until work is given to a member of
  that queue (`_Memo`); and `decide()` keeps what it found of each member for such work
  (`routing.strategies.Seen`), so after a decision it weighs again only the winner;
- work that can be given goes first: new work nobody could take now is explained after the
  rest of the step, as far as the pass's bound allows, so a backlog's first explanations
  never hold up what the operators with room could be given;
- the writes are made together at the end of the step (`routing/waiting_writes.py`): a few
  statements for all of them, not a few per piece of work;
- a pass makes at most `RoutingOptions.max_decisions_per_pass` decisions, notes included,
  so it holds the routing lock briefly; the report's `more` asks for the next pass at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from core.channels import MESSAGING
from core.models import Contact, Conversation, QueueMember, RoutingDecision
from core.sql import constants_written_in
from routing.capacity import (
    CHANNEL_KINDS,
    QueueRooms,
    channel_kind,
    channels_by_kind,
    has_room,
)
from routing.config import QueueConfig
from routing.due import waiting_work
from routing.expressions import operator_attributes
from routing.scope import QueueMarks
from routing.setup import QueueSetup
from routing.strategies import (
    Decision,
    OfferRefusal,
    OperatorSnapshot,
    Seen,
    WorkItem,
    decide,
)
from routing.waiting_writes import Writes, give, note

if TYPE_CHECKING:
    from routing.service import PassReport, RoutingOptions

_REFUSALS: tuple[OfferRefusal, ...] = ("rejected", "timed_out")
_MEMBERS = select(QueueMember.queue_id, QueueMember.operator_id).order_by(QueueMember.operator_id)


async def members(session: AsyncSession) -> dict[int, list[int]]:
    found: dict[int, list[int]] = defaultdict(list)
    for queue_id, operator_id in await session.execute(_MEMBERS):
        found[queue_id].append(operator_id)
    return found


async def route_waiting(
    session: AsyncSession,
    now: datetime,
    setups: Mapping[int, QueueSetup],
    snapshots: dict[int, OperatorSnapshot],
    options: RoutingOptions,
    report: PassReport,
    marks: QueueMarks | None = None,
) -> None:
    """Step 6 (see the module docstring). `marks`: what earlier steps saw of each queue; a
    queue's explained work is read only of the kinds it may now be given (`routing/scope.py`)."""
    queue_members = await members(session)
    scope = marks.begin(now, setups, queue_members, snapshots) if marks is not None else None
    rooms = QueueRooms(snapshots, queue_members)
    channels = channels_by_kind()
    names = _Names()
    # The queues with room, grouped by the kinds they have room for: one clause per group
    # (usually one or two), not one per queue to build, compile and plan every pass.
    queues_by_kinds: dict[tuple[str, ...], list[int]] = defaultdict(list)
    # What earlier steps saw of the queue leaves out kinds of its explained work, or all.
    freer = scope.kinds if scope is not None else {}
    for queue_id in sorted(rooms.members):
        changed = freer.get(queue_id)
        if changed is not None and not changed:
            continue
        kinds = _anyone_could(queue_id, setups.get(queue_id), rooms, names)
        if changed is not None:
            kinds = tuple(kind for kind in kinds if kind in changed)
        if kinds:
            queues_by_kinds[kinds].append(queue_id)
    with_room = [
        and_(Conversation.queue_id.in_(queue_ids), _of_kinds(kinds, channels))
        for kinds, queue_ids in sorted(queues_by_kinds.items())
    ]
    waiting = (
        await session.execute(
            select(
                Conversation.id,
                Conversation.contact_id,
                Conversation.channel,
                Conversation.priority,
                Conversation.queue_id,
                Conversation.queue_entered_at,
                Conversation.routing_note,
                Contact.owner_id,
                Contact.language,
                Contact.priority_tier,
                _refused_since_entering().label("refused"),
            )
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(
                *waiting_work(),
                # Work nobody has room for (by queue and kind) only needs explaining once.
                or_(Conversation.routing_note.is_(None), *with_room),
            )
            .order_by(Conversation.priority.desc(), Conversation.queue_entered_at, Conversation.id)
        )
    ).all()
    report.undecided = False
    outcome = _Outcome()
    await _route(session, now, setups, rooms, names, waiting, options, report, outcome)
    if marks is not None and scope is not None:
        marks.end(
            scope,
            rooms.snapshots,
            cut=bool(report.undecided),
            decided=outcome.decided,
            unsettled=outcome.timed,
        )


@dataclass
class _Outcome:
    """What the step did, by queue, for the marks (`routing/scope.py`)."""

    # Queues where work was given or explained.
    decided: set[int] = field(default_factory=set)
    # Queues where an answer changes by time alone (`Decision.retry_at`).
    timed: set[int] = field(default_factory=set)


async def _route(
    session: AsyncSession,
    now: datetime,
    setups: Mapping[int, QueueSetup],
    rooms: QueueRooms,
    names: _Names,
    waiting: Sequence[Any],
    options: RoutingOptions,
    report: PassReport,
    outcome: _Outcome,
) -> None:
    """The waiting work read by `route_waiting`, in order: given, or explained. Work that
    waits unexplained and that nobody could take now is explained after the rest has been
    given (within the same pass, as far as its bound allows): a backlog's explanations
    never hold up work that can be given."""
    if not waiting:
        return
    refusals = await _refusals(session, [row.id for row in waiting if row.refused])
    sticky_queues = {
        queue_id
        for queue_id, setup in setups.items()
        if setup.config is not None and "sticky" in setup.config.strategies
    }
    last_operators = await _last_operators(
        session, [row.contact_id for row in waiting if row.queue_id in sticky_queues]
    )
    step = _Step(
        session,
        now,
        rooms,
        names,
        options,
        report,
        outcome,
        refusals,
        last_operators,
        plain_queues=set(setups) - sticky_queues,
    )
    deferred: list[tuple[Any, QueueSetup, QueueConfig, str, Hashable | None]] = []
    for row in waiting:
        if step.bounded():
            break
        setup = setups.get(row.queue_id)
        if setup is None:
            continue
        if setup.config is None:
            reason = f"the queue's routing configuration is not valid: {setup.problem}"
            step.decisions += await note(session, row, reason, None, now, step.writes)
            outcome.decided.add(row.queue_id)
            continue
        kind = channel_kind(row.channel)
        if row.routing_note is not None and not rooms.count(row.queue_id, kind):
            continue  # explained already, and still nobody has room
        key = step.key(row, setup.config, kind)
        worth = step.memo.known(row.queue_id, ("worth", key))
        work = None
        if worth is None:
            work = step.work(row, setup.config, kind)
            worth = _worth_deciding(
                work,
                step.candidates(row.queue_id),
                setup.config,
                refusals.get(row.id, {}),
                explained=row.routing_note is not None,
            )
            # Kept only for plain queues' work (`key`), where `explained` does not count.
            step.memo.keep(row.queue_id, ("worth", key), worth)
        if not worth:
            if row.routing_note is None:
                deferred.append((row, setup, setup.config, kind, key))
            continue  # explained already, and nobody who could take it has room
        await step.decide(row, setup, work or step.work(row, setup.config, kind), key)
    for row, setup, config, kind, key in deferred:
        if step.bounded():
            break
        await step.decide(row, setup, step.work(row, config, kind), key)
    await step.writes.made(session, now)


@dataclass
class _Step:
    """What `_route` keeps while it walks the waiting work (see `route_waiting`)."""

    session: AsyncSession
    now: datetime
    rooms: QueueRooms
    names: _Names
    options: RoutingOptions
    report: PassReport
    outcome: _Outcome
    refusals: Mapping[int, dict[int, OfferRefusal]]
    last_operators: Mapping[int, int]
    plain_queues: set[int] = field(default_factory=set)
    memo: _Memo = field(default_factory=lambda: _Memo())
    writes: Writes = field(default_factory=Writes)
    decisions: int = 0
    # Work alike in all a decision reads, by what tells it apart in the row: its key.
    keys: dict[tuple[Any, ...], Hashable] = field(default_factory=dict)
    # Each queue's members as snapshots, kept until one of them is given work.
    candidates_of: dict[int, list[OperatorSnapshot]] = field(default_factory=dict)
    # What decide() found of each member, by queue and key: kept through the pass.
    seen: dict[tuple[int, Hashable], Seen] = field(default_factory=dict)

    def bounded(self) -> bool:
        """Whether the pass made all the decisions it may (the rest: the next pass)."""
        if self.decisions < self.options.max_decisions_per_pass:
            return False
        self.report.more = self.report.undecided = True
        return True

    def key(self, row: Any, config: QueueConfig, kind: str) -> Hashable | None:
        """What tells this work apart for a decision (`_key`); None when more than that
        does: someone refused it, or its queue is sticky (the contact's operators)."""
        if self.refusals.get(row.id) or row.queue_id not in self.plain_queues:
            return None
        alike = (row.queue_id, row.channel, row.priority, row.language, row.priority_tier)
        key = self.keys.get(alike)
        if key is None:
            read = self.names.of(row.queue_id, config)
            key = self.keys[alike] = _key(kind, _expression_facts(row, kind), read)
        return key

    def work(self, row: Any, config: QueueConfig, kind: str) -> WorkItem:
        return WorkItem(
            conversation_id=row.id,
            channel_kind=kind,
            language=row.language,
            priority=row.priority,
            waiting_since=row.queue_entered_at,
            contact_owner_id=row.owner_id,
            last_operator_id=self.last_operators.get(row.contact_id),
            required_skills=config.required_skills,
            facts={"priority_tier": row.priority_tier, "channel": row.channel},
        )

    def candidates(self, queue_id: int) -> list[OperatorSnapshot]:
        found = self.candidates_of.get(queue_id)
        if found is None:
            rooms = self.rooms
            found = self.candidates_of[queue_id] = [
                rooms.snapshots[i] for i in rooms.members.get(queue_id, ()) if i in rooms.snapshots
            ]
        return found

    async def decide(
        self, row: Any, setup: QueueSetup, work: WorkItem, key: Hashable | None
    ) -> None:
        """Decide the work and write what was decided: given, or why it waits."""
        assert setup.config is not None
        now, rooms, outcome = self.now, self.rooms, self.outcome
        known: tuple[Decision, dict[str, Any]] | None = self.memo.known(row.queue_id, ("none", key))
        if known is None:
            seen = None if key is None else self.seen.setdefault((row.queue_id, key), Seen())
            decision = decide(
                work,
                self.candidates(row.queue_id),
                setup.config.policy,
                now,
                self.refusals.get(row.id),
                seen,
            )
            details = decision.model_dump(mode="json") if seen is None else seen.as_json(decision)
            if decision.outcome == "none" and key is not None:
                self.memo.keep(row.queue_id, ("none", key), (decision, details))
        else:
            # The same answer for this work: only the conversation differs.
            decision = known[0].model_copy(update={"conversation_id": row.id})
            details = {**known[1], "conversation_id": row.id}
        outcome.decided.add(row.queue_id)
        if decision.outcome != "assign" or decision.winner_id is None:
            self.decisions += await note(
                self.session, row, decision.reason, decision, now, self.writes, details
            )
            self.report.due_waiting(decision.retry_at)
            if decision.retry_at is not None:
                outcome.timed.add(row.queue_id)
            return
        await give(self.session, row, setup, decision, now, self.report, self.writes, details)
        rooms.give(decision.winner_id, work.channel_kind, now)
        given_queues = rooms.queues_of.get(decision.winner_id, ())
        self.memo.forget(given_queues)
        for queue_id in given_queues:
            self.candidates_of.pop(queue_id, None)  # the winner's snapshot changed
        self.decisions += 1


def _of_kinds(kinds: Sequence[str], by_kind: Mapping[str, list[str]]) -> ColumnElement[bool]:
    """Work of a channel whose capacity kind is one of `kinds` (a channel this process does
    not run counts as messaging, as `channel_kind` says); `by_kind`: `channels_by_kind()`."""
    if MESSAGING in kinds:
        others = [name for kind, names in by_kind.items() if kind not in kinds for name in names]
        return Conversation.channel.not_in(others) if others else true()
    return Conversation.channel.in_([name for kind in kinds for name in by_kind[kind]])


def _expression_facts(row: Any, kind: str) -> dict[str, object]:
    """What `WorkItem.expression_facts` gives for the work `route_waiting` builds of `row`,
    without building it."""
    facts: dict[str, object] = {
        "priority_tier": row.priority_tier,
        "channel": row.channel,
        "channel_kind": kind,
        "priority": row.priority,
    }
    if row.language is not None:
        facts["language"] = row.language
    return facts


def _key(kind: str, facts: Mapping[str, object], names: tuple[str, ...] | None) -> Hashable:
    """What a decision about work reads besides the candidates: its channel kind and the
    facts its queue's required skills name (`names`, None without required skills)."""
    if names is None:
        return kind
    return (kind, *((name, repr(facts[name])) for name in names if name in facts))


@dataclass
class _Names:
    """The names each queue's required skills read, sorted, worked out once per pass."""

    by_queue: dict[int, tuple[str, ...] | None] = field(default_factory=dict)

    def of(self, queue_id: int, config: QueueConfig) -> tuple[str, ...] | None:
        if queue_id not in self.by_queue:
            expression = config.required_skills
            self.by_queue[queue_id] = (
                None if expression is None else tuple(sorted(set(expression.names())))
            )
        return self.by_queue[queue_id]


@dataclass
class _Memo:
    """Answers kept per queue within a pass, forgotten when a member of the queue is given
    work (which changes their load, so what they could take and why)."""

    by_queue: dict[int, dict[Hashable, Any]] = field(default_factory=lambda: defaultdict(dict))

    def known(self, queue_id: int, key: tuple[str, Hashable | None]) -> Any:
        if key[1] is None:
            return None
        return self.by_queue[queue_id].get(key)

    def keep(self, queue_id: int, key: tuple[str, Hashable | None], value: Any) -> None:
        if key[1] is not None:
            self.by_queue[queue_id][key] = value

    def forget(self, queue_ids: Iterable[int]) -> None:
        for queue_id in queue_ids:
            self.by_queue.pop(queue_id, None)


# The facts of work an expression may read (`WorkItem.expression_facts`).
_WORK_FACTS = frozenset({"priority_tier", "channel", "channel_kind", "priority", "language"})


def _anyone_could(
    queue_id: int, setup: QueueSetup | None, rooms: QueueRooms, names: _Names
) -> tuple[str, ...]:
    """The kinds of work explained already in this queue that may be worth deciding again:
    those some member has room for, less those for which the answer is the same for all
    such work and is no (`_worth_deciding` for every piece: nobody with room meets required
    skills that read no fact of the work; a refusal only takes candidates away). Work of
    the other kinds is then not even read."""
    with_room = frozenset(kind for kind in CHANNEL_KINDS if rooms.count(queue_id, kind))
    could: frozenset[str] = with_room
    if setup is not None and setup.config is not None and "sticky" not in setup.config.strategies:
        expression = setup.config.required_skills
        read = names.of(setup.id, setup.config)
        if expression is not None and read is not None and not _WORK_FACTS.intersection(read):
            could = frozenset()
            for operator_id in rooms.members.get(queue_id, ()):
                room = rooms.room_of(operator_id) & with_room
                if room <= could:
                    continue  # no room, or for kinds someone could take already
                operator = rooms.snapshots[operator_id]
                if expression.matches(operator_attributes(operator.skills, operator.languages, {})):
                    could |= room
                    if could == with_room:
                        break
    return tuple(kind for kind in CHANNEL_KINDS if kind in could)


def _worth_deciding(
    work: WorkItem,
    candidates: Sequence[OperatorSnapshot],
    config: QueueConfig,
    refused: Mapping[int, OfferRefusal],
    *,
    explained: bool,
) -> bool:
    """Could anyone take this work now? A cheap check before `decide`, which also explains.

    Only when some member has room for the work, meets the required skills and has not
    refused it can `decide` give it; with a backlog, most waiting work fails this at once and
    costs a pass almost nothing (new work failing it is explained at the end of the step).
    Sticky queues always decide work they have `explained` already: their wait ends by time,
    not by room.
    """
    if explained and "sticky" in config.strategies:
        return True
    facts = work.expression_facts()
    for operator in candidates:
        if operator.id in refused or not has_room(operator, work.channel_kind):
            continue
        if config.required_skills is None:
            return True
        attributes = operator_attributes(operator.skills, operator.languages, facts)
        if config.required_skills.matches(attributes):
            return True
    return False


def _refusal_since_entering() -> list[ColumnElement[bool]]:
    return [
        RoutingDecision.kind.in_(_REFUSALS),
        RoutingDecision.operator_id.is_not(None),
        RoutingDecision.created_at >= Conversation.queue_entered_at,
    ]


@lru_cache(maxsize=1)
def _refused_since_entering() -> ColumnElement[bool]:
    """Whether anyone rejected or let time out the conversation since it entered its queue
    (one look per row into the partial index of refusals, `ix_routing_decision_refusal`,
    whose predicate the kinds written into the text match: the few that have are read by
    `_refusals`)."""
    return constants_written_in(
        select(RoutingDecision.id).where(
            RoutingDecision.conversation_id == Conversation.id, *_refusal_since_entering()
        )
    ).exists()


async def _refusals(
    session: AsyncSession, conversation_ids: Sequence[int]
) -> dict[int, dict[int, OfferRefusal]]:
    """Who rejected or let time out each conversation since it entered its current queue."""
    found: dict[int, dict[int, OfferRefusal]] = defaultdict(dict)
    for chunk in _chunks(conversation_ids, 1000):
        rows = await session.execute(
            select(
                RoutingDecision.conversation_id, RoutingDecision.operator_id, RoutingDecision.kind
            )
            .join(Conversation, Conversation.id == RoutingDecision.conversation_id)
            .where(RoutingDecision.conversation_id.in_(chunk), *_refusal_since_entering())
        )
        for conversation_id, operator_id, kind in rows:
            if conversation_id is not None and operator_id is not None:
                found[conversation_id][operator_id] = cast(OfferRefusal, kind)
    return found


async def _last_operators(session: AsyncSession, contact_ids: Sequence[int]) -> dict[int, int]:
    """Each contact's operator of their most recently active assigned conversation."""
    found: dict[int, int] = {}
    for chunk in _chunks(sorted(set(contact_ids)), 1000):
        rows = await session.execute(
            select(Conversation.contact_id, Conversation.assignee_id)
            .where(Conversation.contact_id.in_(chunk), Conversation.assignee_id.is_not(None))
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
        )
        for contact_id, assignee_id in rows:
            if assignee_id is not None:
                found.setdefault(contact_id, assignee_id)
    return found


def _chunks(values: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
