"""Strategies: which eligible operator gets a piece of work, and why, as a stored decision.

Pure logic over in-memory snapshots: no database, no I/O, no clock (the caller passes `now`).
The routing service is meant to use it so:

1. Parse the queue's policy once per queue and keep it: ``QueuePolicy.model_validate({...})``
   from ``Queue.config``'s keys ``strategies``, ``sticky_max_wait_seconds`` and
   ``business_hours`` (the service picks these keys out; the model forbids others).
2. For the waiting work of a queue, ``order_waiting(items)`` says which to route first:
   highest ``priority`` first, then longest wait.
3. For one `WorkItem`, build an `OperatorSnapshot` of every member of the queue (presence,
   skills, languages, capacity and current load per channel kind, last assignment) and call
   ``decide(work, operators, policy, now, excluded_ids)``, where ``excluded_ids`` maps the
   operators who rejected or let time out an offer of this work to ``"rejected"`` /
   ``"timed_out"`` (the offer logic keeps it).
4. The `Decision` says:
   - ``outcome == "assign"``: offer to (or assign) ``winner_id``; the ranks of the other
     eligible candidates are the order in which to offer next;
   - ``outcome == "wait"``: sticky routing waits for the contact's operator; decide again at
     ``retry_at`` or when that operator becomes free;
   - ``outcome == "none"``: nobody is eligible; decide again when presence or load changes (or
     at ``retry_at``, when the queue opens).
   Store ``decision.model_dump(mode="json")`` as the decision log: every candidate with why it
   was excluded or where it ranked, and why the winner won.

Eligibility: an operator is eligible when the queue is open (its business hours, if any), the
operator has not rejected or timed out on this work, is available, has every required skill,
is under the total cap (if any) and under capacity for the work's channel kind. A channel kind
missing from the capacity is a capacity of 0. Every reason that applies is listed, not only
the first, so the log says "offline; missing skill: billing >= 2 (billing is 1)".

Strategies form an ordered chain: the eligible operators are sorted by the first strategy,
ties broken by the next, and so on, finally by operator id, so a decision is deterministic.

- ``sticky``: the contact's owner, then the contact's last operator, before anyone else. When
  neither is eligible only for a passing reason (presence or capacity), the work has waited
  less than ``sticky_max_wait_seconds`` and the queue is open, the decision is to wait for
  them; from that many seconds on it falls through to the rest of the chain. A sticky operator
  excluded for good (missing skill, rejected, timed out, not a member) is not waited for.
  ``sticky`` must come first in the chain.
- ``skills_match``: the highest sum of the operator's levels in the skills and languages the
  queue's required-skills expression names (``billing >= 2`` names billing).
- ``least_busy``: the lowest load relative to capacity for the work's channel kind.
- ``round_robin``: the longest since the last assignment; never assigned comes first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from core.models import Presence
from routing.calendar import BusinessHours
from routing.expressions import Expression, operator_attributes

StrategyName = Literal["sticky", "skills_match", "least_busy", "round_robin"]
ExclusionCode = Literal[
    "outside_business_hours",
    "rejected",
    "timed_out",
    "offline",
    "away",
    "busy",
    "missing_skill",
    "at_total_capacity",
    "at_capacity",
]
OfferRefusal = Literal["rejected", "timed_out"]
Outcome = Literal["assign", "wait", "none"]

# Reasons that pass by themselves: sticky routing may wait for an operator excluded only so.
PASSING_REASONS: frozenset[ExclusionCode] = frozenset(
    {"offline", "away", "busy", "at_total_capacity", "at_capacity"}
)
MAX_STICKY_WAIT_SECONDS = 24 * 3600
_PRESENCE_EXCLUSIONS: dict[Presence, ExclusionCode] = {
    Presence.OFFLINE: "offline",
    Presence.AWAY: "away",
    Presence.BUSY: "busy",
}

_ChannelKind = Annotated[str, Field(min_length=1, max_length=40)]
_Count = Annotated[int, Field(ge=0)]
_Level = Annotated[int, Field(ge=0)]
_Key = tuple[int | float | Fraction, ...]


class OperatorSnapshot(BaseModel):
    """One operator as routing sees them at the moment of a decision."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int
    presence: Presence
    presence_since: AwareDatetime
    skills: Mapping[str, _Level] = Field(default_factory=dict)
    languages: Mapping[str, _Level] = Field(default_factory=dict)
    # Concurrent work per channel kind, e.g. {"voice": 1, "messaging": 5, "email": 20}.
    capacity: Mapping[_ChannelKind, _Count] = Field(default_factory=dict)
    # At most this much work across all channel kinds; None for no cap beyond the per-kind ones.
    total_capacity: _Count | None = None
    # Work the operator holds now, per channel kind.
    load: Mapping[_ChannelKind, _Count] = Field(default_factory=dict)
    last_assigned_at: AwareDatetime | None = None

    def load_of(self, kind: str) -> int:
        return self.load.get(kind, 0)

    def capacity_of(self, kind: str) -> int:
        return self.capacity.get(kind, 0)

    @property
    def total_load(self) -> int:
        return sum(self.load.values())


class WorkItem(BaseModel):
    """A conversation waiting for an operator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    conversation_id: int
    channel_kind: _ChannelKind
    language: str | None = None
    # Higher is more urgent (Conversation.priority).
    priority: int = 0
    waiting_since: AwareDatetime
    contact_owner_id: int | None = None
    last_operator_id: int | None = None
    required_skills: Expression | None = None
    # More facts the required-skills expression may read, e.g. {"priority_tier": "vip"}.
    facts: Mapping[str, str | int | bool] = Field(default_factory=dict)

    def expression_facts(self) -> dict[str, object]:
        facts: dict[str, object] = dict(self.facts)
        facts["channel_kind"] = self.channel_kind
        facts["priority"] = self.priority
        if self.language is not None:
            facts["language"] = self.language
        return facts


class QueuePolicy(BaseModel):
    """How a queue chooses among its operators (from Queue.config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategies: tuple[StrategyName, ...] = Field(default=("round_robin",), min_length=1)
    sticky_max_wait_seconds: int = Field(default=0, ge=0, le=MAX_STICKY_WAIT_SECONDS)
    business_hours: BusinessHours | None = None

    @field_validator("strategies")
    @classmethod
    def _each_once_sticky_first(
        cls, strategies: tuple[StrategyName, ...]
    ) -> tuple[StrategyName, ...]:
        repeated = [name for name, count in Counter(strategies).items() if count > 1]
        if repeated:
            raise ValueError(f"{repeated[0]} is listed more than once")
        if "sticky" in strategies[1:]:
            raise ValueError("sticky must come first: it decides before any other strategy")
        return strategies


class Exclusion(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: ExclusionCode
    text: str


class Candidate(BaseModel):
    """An operator considered: excluded with reasons, or eligible with a rank (1 is the best)."""

    model_config = ConfigDict(frozen=True)

    operator_id: int
    rank: int | None = None
    exclusions: tuple[Exclusion, ...] = ()
    # How the operator stood by each strategy of the chain, e.g. {"least_busy": "messaging 1/5"}.
    standing: dict[str, str] = Field(default_factory=dict)


class Decision(BaseModel):
    """A routing decision as stored in the decision log."""

    model_config = ConfigDict(frozen=True)

    conversation_id: int
    decided_at: datetime
    outcome: Outcome
    winner_id: int | None = None
    reason: str
    # When deciding again may give another outcome (sticky wait over, queue opens).
    retry_at: datetime | None = None
    strategies: tuple[StrategyName, ...]
    # Eligible by rank, then the excluded by operator id.
    candidates: tuple[Candidate, ...]


@dataclass(slots=True)
class _Considered:
    snapshot: OperatorSnapshot
    exclusions: tuple[Exclusion, ...]
    # The operator as an excluded candidate; None when eligible.
    candidate: Candidate | None
    # When eligible: where the chain puts them and how they stand, once asked.
    chain_key: tuple[_Key, ...] | None = None
    standing: dict[str, str] | None = None
    # `candidate` as JSON, once asked.
    candidate_json: dict[str, Any] | None = None


@dataclass
class Seen:
    """What `decide` found of each operator, kept while the operator's snapshot is the same
    object (a changed load is a new snapshot: `model_copy`): their exclusions and, when
    eligible, their place in the chain and their standing.

    For one queue's work alike in all that a decision reads of it (its channel kind, the
    required skills and the facts they name) at one `now`: with a backlog, most of a queue's
    work is, and after each decision only the winner's snapshot changes. Places and
    standings are not kept for sticky queues (they depend on the contact's operators)."""

    by_operator: dict[int, _Considered] = field(default_factory=dict)

    def of(self, operator: OperatorSnapshot) -> _Considered | None:
        known = self.by_operator.get(operator.id)
        return known if known is not None and known.snapshot is operator else None

    def keep(self, operator: OperatorSnapshot, exclusions: tuple[Exclusion, ...]) -> _Considered:
        candidate = (
            Candidate(operator_id=operator.id, exclusions=exclusions) if exclusions else None
        )
        known = self.by_operator[operator.id] = _Considered(operator, exclusions, candidate)
        return known

    def as_json(self, decision: Decision) -> dict[str, Any]:
        """`decision.model_dump(mode="json")`, with the excluded candidates this keeps dumped
        once rather than for every decision they appear in."""
        found = decision.model_dump(mode="json", exclude={"candidates"})
        candidates: list[dict[str, Any]] = []
        for candidate in decision.candidates:
            if candidate.rank is not None:
                # Ranked (eligible, no exclusions): written out as model_dump writes it.
                candidates.append(
                    {
                        "operator_id": candidate.operator_id,
                        "rank": candidate.rank,
                        "exclusions": [],
                        "standing": dict(candidate.standing),
                    }
                )
                continue
            known = self.by_operator.get(candidate.operator_id)
            if known is None or known.candidate is not candidate:
                candidates.append(candidate.model_dump(mode="json"))
                continue
            if known.candidate_json is None:
                known.candidate_json = candidate.model_dump(mode="json")
            candidates.append(known.candidate_json)
        found["candidates"] = candidates
        return found


def order_waiting(items: Iterable[WorkItem]) -> list[WorkItem]:
    """Highest priority first, then longest waiting, then oldest conversation id."""
    return sorted(
        items, key=lambda item: (-item.priority, item.waiting_since, item.conversation_id)
    )


def decide(
    work: WorkItem,
    operators: Sequence[OperatorSnapshot],
    queue_policy: QueuePolicy,
    now: datetime,
    excluded_ids: Mapping[int, OfferRefusal] | None = None,
    seen: Seen | None = None,
) -> Decision:
    """Choose the operator for `work` among `operators`, or wait, or nobody; with reasons.

    `seen`: for deciding much work alike, what earlier calls found of each operator (see
    `Seen`); read and kept up to date here. Only for calls alike in all else that decide()
    reads: not used when the work has refusals.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC), not a naive one")
    ids = [operator.id for operator in operators]
    if len(set(ids)) != len(ids):
        raise ValueError("each operator may appear only once")
    refusals = excluded_ids or {}
    closed = _closed_exclusion(queue_policy.business_hours, now)
    facts = work.expression_facts()

    kept = seen if seen is not None and not refusals else Seen()
    exclusions: dict[int, tuple[Exclusion, ...]] = {}
    excluded: list[Candidate] = []
    for operator in operators:
        known = kept.of(operator)
        if known is None:
            found = _exclusions(work, operator, facts, refusals, closed, now)
            known = kept.keep(operator, found)
        exclusions[operator.id] = known.exclusions
        if known.candidate is not None:
            excluded.append(known.candidate)
    eligible = [operator for operator in operators if not exclusions[operator.id]]
    excluded_candidates = tuple(sorted(excluded, key=lambda candidate: candidate.operator_id))

    def decision(outcome: Outcome, reason: str, **extra: object) -> Decision:
        return Decision.model_validate(
            {
                "conversation_id": work.conversation_id,
                "decided_at": now.astimezone(UTC),
                "outcome": outcome,
                "reason": reason,
                "strategies": queue_policy.strategies,
                **extra,
            }
        )

    if closed is not None:
        reopens = (
            queue_policy.business_hours.next_open(now) if queue_policy.business_hours else None
        )
        return decision("none", closed.text, retry_at=reopens, candidates=excluded_candidates)

    sticky_note = ""
    if "sticky" in queue_policy.strategies:
        wait = _sticky_wait(work, operators, exclusions, queue_policy, now)
        if wait is not None and wait.retry_at is not None:
            return decision(
                "wait",
                wait.note,
                retry_at=wait.retry_at,
                candidates=_ranked(
                    work, _sorted(work, eligible, queue_policy, now), queue_policy, now
                )
                + excluded_candidates,
            )
        sticky_note = wait.note if wait is not None else ""

    if not eligible:
        reason = _joined(sticky_note, _nobody_reason(excluded_candidates))
        return decision("none", reason, candidates=excluded_candidates)

    # Places and standings are kept only where they read nothing but the operator.
    ranks = kept if "sticky" not in queue_policy.strategies else None
    ordered = _sorted(work, eligible, queue_policy, now, ranks)
    return decision(
        "assign",
        _joined(sticky_note, _why_winner(work, ordered, queue_policy, now)),
        winner_id=ordered[0].id,
        candidates=_ranked(work, ordered, queue_policy, now, ranks) + excluded_candidates,
    )


def _joined(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


# --- eligibility ---------------------------------------------------------------------------


def _closed_exclusion(hours: BusinessHours | None, now: datetime) -> Exclusion | None:
    if hours is None or hours.is_open(now):
        return None
    reopens = hours.next_open(now)
    when = (
        f"opens {reopens:%Y-%m-%d %H:%M} UTC" if reopens is not None else "no opening hours ahead"
    )
    return Exclusion(code="outside_business_hours", text=f"queue closed, {when}")


def _exclusions(
    work: WorkItem,
    operator: OperatorSnapshot,
    facts: Mapping[str, object],
    refusals: Mapping[int, OfferRefusal],
    closed: Exclusion | None,
    now: datetime,
) -> tuple[Exclusion, ...]:
    found: list[Exclusion] = [] if closed is None else [closed]
    refusal = refusals.get(operator.id)
    if refusal == "rejected":
        found.append(Exclusion(code="rejected", text="rejected an offer of this work"))
    elif refusal == "timed_out":
        found.append(Exclusion(code="timed_out", text="let an offer of this work time out"))
    if operator.presence != Presence.AVAILABLE:
        since = _duration(now - operator.presence_since)
        code = _PRESENCE_EXCLUSIONS[operator.presence]
        found.append(Exclusion(code=code, text=f"{operator.presence} for {since}"))
    if work.required_skills is not None:
        missing = _missing_skill(
            work.required_skills,
            tuple(operator.skills.items()),
            tuple(operator.languages.items()),
            _named_facts(work.required_skills, facts),
        )
        if missing is not None:
            found.append(missing)
    total = operator.total_load
    if operator.total_capacity is not None and total >= operator.total_capacity:
        found.append(
            Exclusion(
                code="at_total_capacity",
                text=f"at total cap: {total}/{operator.total_capacity}",
            )
        )
    kind = work.channel_kind
    load, capacity = operator.load_of(kind), operator.capacity_of(kind)
    if load >= capacity:
        text = f"at capacity: {kind} {load}/{capacity}" if capacity else f"no capacity for {kind}"
        found.append(Exclusion(code="at_capacity", text=text))
    return tuple(found)


@lru_cache(maxsize=256)
def _names_read(expression: Expression) -> frozenset[str]:
    return frozenset(expression.names())


def _named_facts(
    expression: Expression, facts: Mapping[str, object]
) -> tuple[tuple[str, str, object], ...]:
    """The facts of the work `expression` reads, with their types (`true` is not `1`)."""
    read = _names_read(expression)
    return tuple(
        (name, type(value).__name__, value) for name, value in facts.items() if name in read
    )


@lru_cache(maxsize=16384)
def _missing_skill(
    expression: Expression,
    skills: tuple[tuple[str, int], ...],
    languages: tuple[tuple[str, int], ...],
    facts: tuple[tuple[str, str, object], ...],
) -> Exclusion | None:
    """Why the operator does not meet the required skills, or None when they do: worked out
    once per operator's skills and languages and the facts read (the same every pass)."""
    named = {name: value for name, _, value in facts}
    attributes = operator_attributes(dict(skills), dict(languages), named)
    if expression.matches(attributes):
        return None
    return Exclusion(code="missing_skill", text=f"missing skill: {expression.explain(attributes)}")


def _nobody_reason(excluded: Sequence[Candidate]) -> str:
    if not excluded:
        return "no operator to consider"
    counts = Counter(candidate.exclusions[0].code for candidate in excluded)
    listed = ", ".join(
        f"{count} {code.replace('_', ' ')}" for code, count in sorted(counts.items())
    )
    return f"no eligible operator: {listed}"


# --- sticky --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StickyWait:
    note: str
    # Set when the decision is to wait until then.
    retry_at: datetime | None


def _sticky_targets(work: WorkItem) -> list[tuple[int, str]]:
    targets: list[tuple[int, str]] = []
    if work.contact_owner_id is not None:
        targets.append((work.contact_owner_id, "contact owner"))
    if work.last_operator_id is not None and work.last_operator_id != work.contact_owner_id:
        targets.append((work.last_operator_id, "last operator"))
    return targets


def _sticky_wait(
    work: WorkItem,
    operators: Sequence[OperatorSnapshot],
    exclusions: Mapping[int, tuple[Exclusion, ...]],
    policy: QueuePolicy,
    now: datetime,
) -> _StickyWait | None:
    """None when a sticky operator is eligible or there is none; else wait or fall through."""
    targets = _sticky_targets(work)
    if not targets:
        return None
    known = {operator.id for operator in operators}
    if any(target in known and not exclusions[target] for target, _ in targets):
        return None
    awaitable = [
        (target, role)
        for target, role in targets
        if target in known and all(e.code in PASSING_REASONS for e in exclusions[target])
    ]
    if not awaitable:
        gone = "; ".join(
            f"{role} {target} "
            + (", ".join(e.text for e in exclusions[target]) if target in known else "not a member")
            for target, role in targets
        )
        return _StickyWait(f"sticky: {gone}", None)
    target, role = awaitable[0]
    why = ", ".join(e.text for e in exclusions[target])
    limit = timedelta(seconds=policy.sticky_max_wait_seconds)
    waited = now - work.waiting_since
    if waited < limit:
        return _StickyWait(
            f"sticky: waiting for {role} {target} ({why}), "
            f"waited {_duration(waited)} of {_duration(limit)}",
            work.waiting_since + limit,
        )
    return _StickyWait(
        f"sticky: {role} {target} {why}, waited {_duration(waited)} of {_duration(limit)}",
        None,
    )


# --- the chain -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Strategy:
    label: str
    key: Callable[[WorkItem, OperatorSnapshot, datetime], _Key]
    standing: Callable[[WorkItem, OperatorSnapshot, datetime], str]


def _sticky_key(work: WorkItem, operator: OperatorSnapshot, now: datetime) -> _Key:
    roles = [target for target, _ in _sticky_targets(work)]
    return (roles.index(operator.id) if operator.id in roles else len(roles),)


def _sticky_standing(work: WorkItem, operator: OperatorSnapshot, now: datetime) -> str:
    return dict(_sticky_targets(work)).get(operator.id, "not the contact's operator")


def _skill_levels(work: WorkItem, operator: OperatorSnapshot) -> dict[str, int]:
    """The operator's level in each skill or language the required skills name."""
    if work.required_skills is None:
        return {}
    facts = work.expression_facts()
    levels: dict[str, int] = {}
    for name in work.required_skills.names():
        if name.startswith("skills."):
            levels[name] = operator.skills.get(name.removeprefix("skills."), 0)
        elif name.startswith("languages."):
            levels[name] = operator.languages.get(name.removeprefix("languages."), 0)
        elif name not in facts and name in operator.skills:
            levels[name] = operator.skills[name]
    return levels


def _skills_key(work: WorkItem, operator: OperatorSnapshot, now: datetime) -> _Key:
    return (-sum(_skill_levels(work, operator).values()),)


def _skills_standing(work: WorkItem, operator: OperatorSnapshot, now: datetime) -> str:
    levels = _skill_levels(work, operator)
    if work.required_skills is None:
        return "no required skills"
    named = ", ".join(f"{name} {level}" for name, level in levels.items())
    return f"total {sum(levels.values())}" + (f" ({named})" if named else "")


def _least_busy_key(work: WorkItem, operator: OperatorSnapshot, now: datetime) -> _Key:
    # Eligible operators have a capacity of at least 1 for the kind.
    kind = work.channel_kind
    return (Fraction(operator.load_of(kind), operator.capacity_of(kind)),)


def _least_busy_standing(work: WorkItem, operator: OperatorSnapshot, now: datetime) -> str:
    kind = work.channel_kind
    load, capacity = operator.load_of(kind), operator.capacity_of(kind)
    return f"{kind} {load}/{capacity} ({round(100 * load / capacity)}%)"


def _round_robin_key(work: WorkItem, operator: OperatorSnapshot, now: datetime) -> _Key:
    last = operator.last_assigned_at
    return (0, 0.0) if last is None else (1, last.timestamp())


def _round_robin_standing(work: WorkItem, operator: OperatorSnapshot, now: datetime) -> str:
    last = operator.last_assigned_at
    return "never assigned" if last is None else f"last assigned {_duration(now - last)} ago"


_STRATEGIES: dict[StrategyName, _Strategy] = {
    "sticky": _Strategy("sticky", _sticky_key, _sticky_standing),
    "skills_match": _Strategy("skills match: best skill levels", _skills_key, _skills_standing),
    "least_busy": _Strategy(
        "least busy: lowest load for its capacity", _least_busy_key, _least_busy_standing
    ),
    "round_robin": _Strategy(
        "round robin: longest since last assignment", _round_robin_key, _round_robin_standing
    ),
}


def _chain_key(
    work: WorkItem, operator: OperatorSnapshot, policy: QueuePolicy, now: datetime
) -> tuple[_Key, ...]:
    keys = tuple(_STRATEGIES[name].key(work, operator, now) for name in policy.strategies)
    return (*keys, (operator.id,))


def _sorted(
    work: WorkItem,
    eligible: Sequence[OperatorSnapshot],
    policy: QueuePolicy,
    now: datetime,
    kept: Seen | None = None,
) -> list[OperatorSnapshot]:
    """`eligible` in the chain's order; `kept`: the places worked out before (see `Seen`)."""
    if kept is None:
        return sorted(eligible, key=lambda operator: _chain_key(work, operator, policy, now))

    def key(operator: OperatorSnapshot) -> tuple[_Key, ...]:
        known = kept.by_operator[operator.id]
        if known.chain_key is None:
            known.chain_key = _chain_key(work, operator, policy, now)
        return known.chain_key

    return sorted(eligible, key=key)


def _ranked(
    work: WorkItem,
    ordered: Sequence[OperatorSnapshot],
    policy: QueuePolicy,
    now: datetime,
    kept: Seen | None = None,
) -> tuple[Candidate, ...]:
    def standing(operator: OperatorSnapshot) -> dict[str, str]:
        known = kept.by_operator[operator.id] if kept is not None else None
        if known is not None and known.standing is not None:
            return known.standing
        found: dict[str, str] = {
            name: _STRATEGIES[name].standing(work, operator, now) for name in policy.strategies
        }
        if known is not None:
            known.standing = found
        return found

    return tuple(
        Candidate(operator_id=operator.id, rank=rank, standing=standing(operator))
        for rank, operator in enumerate(ordered, start=1)
    )


def _why_winner(
    work: WorkItem, ordered: Sequence[OperatorSnapshot], policy: QueuePolicy, now: datetime
) -> str:
    """The first strategy of the chain that put the winner ahead of the runner-up."""
    winner = ordered[0]
    if len(ordered) == 1:
        return f"only eligible operator: {winner.id}"
    runner_up = ordered[1]
    winner_keys = _chain_key(work, winner, policy, now)
    runner_up_keys = _chain_key(work, runner_up, policy, now)
    for name, winner_key, runner_up_key in zip(
        policy.strategies, winner_keys, runner_up_keys, strict=False
    ):
        if winner_key != runner_up_key:
            strategy = _STRATEGIES[name]
            if name == "sticky":
                return f"sticky: {strategy.standing(work, winner, now)}"
            return (
                f"{strategy.label} ({strategy.standing(work, winner, now)};"
                f" next: operator {runner_up.id}, {strategy.standing(work, runner_up, now)})"
            )
    return f"tie on every strategy: lowest operator id ({winner.id}, next {runner_up.id})"


def _duration(delta: timedelta) -> str:
    """A short human duration: "45 s", "12 min", "3 h 5 min", "2 d 4 h"."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
