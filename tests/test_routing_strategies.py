"""Strategies: eligibility with reasons, each strategy, chains, sticky waits, and properties."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.models import Presence
from routing.calendar import BusinessHours
from routing.expressions import compile_expression
from routing.strategies import (
    Decision,
    OperatorSnapshot,
    QueuePolicy,
    Seen,
    WorkItem,
    decide,
    order_waiting,
)

NOW = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)  # a Monday
MINUTE = timedelta(minutes=1)


def operator(operator_id: int, **changes: Any) -> OperatorSnapshot:
    fields: dict[str, Any] = {
        "id": operator_id,
        "presence": Presence.AVAILABLE,
        "presence_since": NOW - 60 * MINUTE,
        "capacity": {"voice": 1, "messaging": 5, "email": 20},
    }
    fields.update(changes)
    return OperatorSnapshot.model_validate(fields)


def work(**changes: Any) -> WorkItem:
    fields: dict[str, Any] = {
        "conversation_id": 100,
        "channel_kind": "messaging",
        "waiting_since": NOW - 10 * timedelta(seconds=1),
    }
    fields.update(changes)
    return WorkItem.model_validate(fields)


def policy(*strategies: str, **changes: Any) -> QueuePolicy:
    return QueuePolicy.model_validate({"strategies": strategies or ["round_robin"], **changes})


def candidate(decision: Decision, operator_id: int) -> Any:
    return next(c for c in decision.candidates if c.operator_id == operator_id)


def codes(decision: Decision, operator_id: int) -> list[str]:
    return [exclusion.code for exclusion in candidate(decision, operator_id).exclusions]


# --- eligibility ---------------------------------------------------------------------------


@pytest.mark.parametrize("presence", [Presence.OFFLINE, Presence.AWAY, Presence.BUSY])
def test_only_available_operators_are_eligible(presence: Presence) -> None:
    decision = decide(
        work(),
        [operator(1, presence=presence, presence_since=NOW - 45 * MINUTE), operator(2)],
        policy(),
        NOW,
    )

    assert decision.winner_id == 2
    (exclusion,) = candidate(decision, 1).exclusions
    assert exclusion.code == presence.value
    assert exclusion.text == f"{presence.value} for 45 min"


def test_at_capacity_for_the_channel_kind() -> None:
    full = operator(1, load={"messaging": 5})
    decision = decide(work(), [full, operator(2, load={"messaging": 4})], policy(), NOW)

    assert decision.winner_id == 2
    (exclusion,) = candidate(decision, 1).exclusions
    assert (exclusion.code, exclusion.text) == ("at_capacity", "at capacity: messaging 5/5")
    # Full for messaging, free for email.
    assert decide(work(channel_kind="email"), [full], policy(), NOW).winner_id == 1


def test_a_channel_kind_without_capacity_is_not_taken() -> None:
    decision = decide(work(channel_kind="video"), [operator(1)], policy(), NOW)

    assert decision.outcome == "none"
    assert candidate(decision, 1).exclusions[0].text == "no capacity for video"


def test_at_total_cap_across_channel_kinds() -> None:
    capped = operator(1, total_capacity=6, load={"messaging": 2, "email": 4})
    decision = decide(work(), [capped], policy(), NOW)

    assert decision.outcome == "none"
    assert decision.winner_id is None
    (exclusion,) = candidate(decision, 1).exclusions
    assert (exclusion.code, exclusion.text) == ("at_total_capacity", "at total cap: 6/6")
    assert decision.reason == "no eligible operator: 1 at total capacity"


def test_missing_skill_says_which_clause_fails() -> None:
    required = compile_expression('language == "de" and billing >= 2')
    operators = [
        operator(1, skills={"billing": 1}),
        operator(2, skills={"billing": 2}),
    ]

    decision = decide(work(language="de", required_skills=required), operators, policy(), NOW)

    assert decision.winner_id == 2
    (exclusion,) = candidate(decision, 1).exclusions
    assert exclusion.code == "missing_skill"
    assert exclusion.text == "missing skill: billing >= 2 (billing is 1)"
    # The work's language is a fact the expression reads.
    french = decide(work(language="fr", required_skills=required), operators, policy(), NOW)
    assert french.outcome == "none"


def test_extra_facts_reach_the_expression() -> None:
    required = compile_expression('priority_tier != "vip" or vip_care >= 1')
    operators = [operator(1), operator(2, skills={"vip_care": 1})]

    vip = work(required_skills=required, facts={"priority_tier": "vip"})
    standard = work(required_skills=required, facts={"priority_tier": "standard"})

    assert codes(decide(vip, operators, policy(), NOW), 1) == ["missing_skill"]
    assert decide(standard, operators, policy(), NOW).winner_id == 1


@pytest.mark.parametrize(
    ("refusal", "text"),
    [
        ("rejected", "rejected an offer of this work"),
        ("timed_out", "let an offer of this work time out"),
    ],
)
def test_operators_who_refused_the_offer_are_excluded(refusal: Any, text: str) -> None:
    decision = decide(work(), [operator(1), operator(2)], policy(), NOW, {1: refusal})

    assert decision.winner_id == 2
    (exclusion,) = candidate(decision, 1).exclusions
    assert (exclusion.code, exclusion.text) == (refusal, text)


def test_outside_business_hours_nobody_is_eligible_until_the_queue_opens() -> None:
    hours = BusinessHours.model_validate(
        {"timezone": "UTC", "weekly": {"mon": ["12:00-17:00"], "tue": ["09:00-17:00"]}}
    )
    queue = policy(business_hours=hours)

    closed = decide(work(), [operator(1)], queue, NOW)
    opened = decide(work(), [operator(1)], queue, NOW.replace(hour=12))

    assert closed.outcome == "none"
    assert closed.retry_at == NOW.replace(hour=12)
    assert codes(closed, 1) == ["outside_business_hours"]
    assert closed.reason == "queue closed, opens 2025-03-03 12:00 UTC"
    assert opened.winner_id == 1


def test_every_reason_that_applies_is_listed() -> None:
    hopeless = operator(1, presence=Presence.OFFLINE, load={"messaging": 5})
    required = compile_expression("billing >= 1")

    decision = decide(work(required_skills=required), [hopeless], policy(), NOW, {1: "rejected"})

    assert codes(decision, 1) == ["rejected", "offline", "missing_skill", "at_capacity"]


def test_nobody_to_consider() -> None:
    decision = decide(work(), [], policy(), NOW)

    assert (decision.outcome, decision.winner_id, decision.candidates) == ("none", None, ())
    assert decision.reason == "no operator to consider"


def test_nobody_eligible_counts_the_first_reason_of_each() -> None:
    operators = [
        operator(1, presence=Presence.OFFLINE),
        operator(2, presence=Presence.OFFLINE),
        operator(3, load={"messaging": 5}),
    ]

    decision = decide(work(), operators, policy(), NOW)

    assert decision.reason == "no eligible operator: 1 at capacity, 2 offline"
    assert [c.operator_id for c in decision.candidates] == [1, 2, 3]


# --- the strategies ------------------------------------------------------------------------


def test_round_robin_least_recently_assigned_first_never_assigned_before_all() -> None:
    operators = [
        operator(1, last_assigned_at=NOW - 3 * MINUTE),
        operator(2, last_assigned_at=NOW - 12 * MINUTE),
        operator(3, last_assigned_at=NOW - 5 * MINUTE),
    ]

    decision = decide(work(), operators, policy("round_robin"), NOW)

    assert decision.winner_id == 2
    assert [c.operator_id for c in decision.candidates] == [2, 3, 1]
    assert [c.rank for c in decision.candidates] == [1, 2, 3]
    assert decision.reason == (
        "round robin: longest since last assignment (last assigned 12 min ago;"
        " next: operator 3, last assigned 5 min ago)"
    )
    newcomer = decide(work(), [*operators, operator(9)], policy("round_robin"), NOW)
    assert newcomer.winner_id == 9


def test_round_robin_ties_go_to_the_lowest_id() -> None:
    operators = [operator(3), operator(2)]

    decision = decide(work(), operators, policy("round_robin"), NOW)

    assert decision.winner_id == 2
    assert decision.reason == "tie on every strategy: lowest operator id (2, next 3)"


def test_least_busy_compares_load_relative_to_capacity() -> None:
    operators = [
        # 2 of 4 is half full; 2 of 10 is a fifth.
        operator(1, capacity={"messaging": 4}, load={"messaging": 2}),
        operator(2, capacity={"messaging": 10}, load={"messaging": 2}),
        operator(3, capacity={"messaging": 5}, load={"messaging": 3, "email": 0}),
    ]

    decision = decide(work(), operators, policy("least_busy"), NOW)

    assert [c.operator_id for c in decision.candidates] == [2, 1, 3]
    assert decision.reason == (
        "least busy: lowest load for its capacity (messaging 2/10 (20%);"
        " next: operator 1, messaging 2/4 (50%))"
    )


def test_skills_match_prefers_the_highest_levels_in_the_named_skills() -> None:
    required = compile_expression("billing >= 1 and languages.de >= 1")
    operators = [
        operator(1, skills={"billing": 2, "sales": 9}, languages={"de": 1}),
        operator(2, skills={"billing": 3}, languages={"de": 2}),
        operator(3, skills={"billing": 1}, languages={"de": 1}),
    ]

    decision = decide(work(required_skills=required), operators, policy("skills_match"), NOW)

    assert [c.operator_id for c in decision.candidates] == [2, 1, 3]
    assert candidate(decision, 2).standing == {
        "skills_match": "total 5 (billing 3, languages.de 2)"
    }
    assert decision.reason.startswith("skills match: best skill levels (total 5")


def test_skills_match_without_required_skills_is_a_tie() -> None:
    decision = decide(work(), [operator(2), operator(1)], policy("skills_match"), NOW)

    assert decision.winner_id == 1
    assert candidate(decision, 1).standing == {"skills_match": "no required skills"}


def test_sticky_prefers_the_contact_owner_then_the_last_operator() -> None:
    operators = [operator(1), operator(2), operator(3)]
    queue = policy("sticky", "round_robin")

    owner = decide(work(contact_owner_id=3, last_operator_id=2), operators, queue, NOW)
    last = decide(work(last_operator_id=2), operators, queue, NOW)
    owner_busy = decide(
        work(contact_owner_id=3, last_operator_id=2),
        [operator(1), operator(2), operator(3, presence=Presence.BUSY)],
        queue,
        NOW,
    )

    assert (owner.winner_id, owner.reason) == (3, "sticky: contact owner")
    assert [c.operator_id for c in owner.candidates] == [3, 2, 1]
    assert (last.winner_id, last.reason) == (2, "sticky: last operator")
    assert (owner_busy.winner_id, owner_busy.reason) == (2, "sticky: last operator")


def test_sticky_waits_for_a_busy_owner_until_the_maximum_wait() -> None:
    since = NOW - 30 * timedelta(seconds=1)
    item = work(contact_owner_id=1, waiting_since=since)
    operators = [operator(1, presence=Presence.BUSY, presence_since=NOW - 2 * MINUTE), operator(2)]
    queue = policy("sticky", "least_busy", sticky_max_wait_seconds=60)

    waiting = decide(item, operators, queue, since + timedelta(seconds=59, microseconds=999_999))
    at_limit = decide(item, operators, queue, since + timedelta(seconds=60))

    assert (waiting.outcome, waiting.winner_id) == ("wait", None)
    assert waiting.retry_at == since + timedelta(seconds=60)
    assert waiting.reason.startswith("sticky: waiting for contact owner 1 (busy for 2 min")
    assert candidate(waiting, 2).rank == 1  # who would get it, for the log
    assert (at_limit.outcome, at_limit.winner_id) == ("assign", 2)
    assert at_limit.reason.startswith("sticky: contact owner 1 busy for 2 min, waited 1 min of 1")
    assert at_limit.reason.endswith("only eligible operator: 2")


def test_sticky_waits_for_an_owner_at_capacity() -> None:
    full = operator(1, load={"messaging": 5})
    queue = policy("sticky", sticky_max_wait_seconds=60)

    decision = decide(work(contact_owner_id=1), [full, operator(2)], queue, NOW)

    assert decision.outcome == "wait"


@pytest.mark.parametrize(
    ("owner", "excluded"),
    [
        (operator(1, skills={}), {}),  # missing skill: never eligible for this work
        (operator(1, skills={"billing": 2}), {1: "rejected"}),
        (operator(1, skills={"billing": 2}), {1: "timed_out"}),
    ],
)
def test_sticky_does_not_wait_for_an_owner_excluded_for_good(
    owner: OperatorSnapshot, excluded: Any
) -> None:
    item = work(contact_owner_id=1, required_skills=compile_expression("billing >= 1"))
    other = operator(2, skills={"billing": 1})
    queue = policy("sticky", sticky_max_wait_seconds=600)

    decision = decide(item, [owner, other], queue, NOW, excluded)

    assert (decision.outcome, decision.winner_id) == ("assign", 2)


def test_sticky_does_not_wait_for_an_owner_outside_the_queue() -> None:
    queue = policy("sticky", sticky_max_wait_seconds=600)

    decision = decide(work(contact_owner_id=7), [operator(2)], queue, NOW)

    assert decision.winner_id == 2
    assert decision.reason == "sticky: contact owner 7 not a member; only eligible operator: 2"


def test_sticky_without_a_wait_falls_through_at_once() -> None:
    owner = operator(1, presence=Presence.AWAY)

    decision = decide(work(contact_owner_id=1), [owner, operator(2)], policy("sticky"), NOW)

    assert decision.winner_id == 2


def test_sticky_wait_when_nobody_else_is_eligible_either() -> None:
    queue = policy("sticky", sticky_max_wait_seconds=60)
    owner = operator(1, presence=Presence.OFFLINE)

    assert decide(work(contact_owner_id=1), [owner], queue, NOW).outcome == "wait"
    late = decide(work(contact_owner_id=1), [owner], queue, NOW + 2 * MINUTE)
    assert late.outcome == "none"
    assert late.reason.endswith("no eligible operator: 1 offline")


def test_a_closed_queue_does_not_wait_for_the_sticky_operator() -> None:
    hours = BusinessHours.model_validate({"timezone": "UTC", "weekly": {"tue": ["09:00-17:00"]}})
    queue = policy("sticky", sticky_max_wait_seconds=60, business_hours=hours)

    decision = decide(work(contact_owner_id=1), [operator(1)], queue, NOW)

    assert decision.outcome == "none"


# --- chains --------------------------------------------------------------------------------


def test_chain_breaks_ties_with_the_next_strategy() -> None:
    operators = [
        operator(1, load={"messaging": 1}, last_assigned_at=NOW - 1 * MINUTE),
        operator(2, load={"messaging": 1}, last_assigned_at=NOW - 9 * MINUTE),
        operator(3, load={"messaging": 3}, last_assigned_at=NOW - 60 * MINUTE),
    ]

    least_busy_first = decide(work(), operators, policy("least_busy", "round_robin"), NOW)
    round_robin_first = decide(work(), operators, policy("round_robin", "least_busy"), NOW)

    assert [c.operator_id for c in least_busy_first.candidates] == [2, 1, 3]
    assert least_busy_first.reason.startswith("round robin: longest since last assignment")
    assert round_robin_first.winner_id == 3
    assert candidate(least_busy_first, 2).standing == {
        "least_busy": "messaging 1/5 (20%)",
        "round_robin": "last assigned 9 min ago",
    }


def test_sticky_then_least_busy_when_the_owner_is_free() -> None:
    operators = [operator(1, load={"messaging": 4}), operator(2)]
    queue = policy("sticky", "least_busy")

    assert decide(work(contact_owner_id=1), operators, queue, NOW).winner_id == 1
    assert decide(work(), operators, queue, NOW).winner_id == 2


def test_skills_then_least_busy_then_round_robin() -> None:
    required = compile_expression("billing >= 1")
    operators = [
        operator(1, skills={"billing": 3}, load={"messaging": 4}),
        operator(2, skills={"billing": 3}, load={"messaging": 1}, last_assigned_at=NOW),
        operator(3, skills={"billing": 3}, load={"messaging": 1}),
        operator(4, skills={"billing": 1}),
    ]
    queue = policy("skills_match", "least_busy", "round_robin")

    decision = decide(work(required_skills=required), operators, queue, NOW)

    assert [c.operator_id for c in decision.candidates] == [3, 2, 1, 4]


# --- the policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"strategies": []},
        {"strategies": ["fastest"]},
        {"strategies": ["round_robin", "round_robin"]},
        {"strategies": ["least_busy", "sticky"]},
        {"sticky_max_wait_seconds": -1},
        {"strategy": ["round_robin"]},
    ],
)
def test_invalid_policies_are_refused(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        QueuePolicy.model_validate(config)


def test_policy_round_trips_through_json() -> None:
    config = {
        "strategies": ["sticky", "skills_match", "least_busy"],
        "sticky_max_wait_seconds": 45,
        "business_hours": {"timezone": "Europe/Berlin", "weekly": "24/7"},
    }
    queue = QueuePolicy.model_validate(config)

    assert QueuePolicy.model_validate_json(queue.model_dump_json()) == queue


def test_snapshots_refuse_bad_data() -> None:
    with pytest.raises(ValidationError):
        operator(1, load={"messaging": -1})
    with pytest.raises(ValidationError):
        operator(1, presence="lunch")
    with pytest.raises(ValidationError):
        work(waiting_since=datetime(2025, 3, 3))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValidationError):
        work(required_skills="billing >=")
    with pytest.raises(ValueError, match="once"):
        decide(work(), [operator(1), operator(1)], policy(), NOW)
    with pytest.raises(ValueError, match="aware"):
        decide(work(), [operator(1)], policy(), NOW.replace(tzinfo=None))


def test_decision_round_trips_through_json() -> None:
    required = compile_expression('language == "de" and billing >= 2')
    operators = [
        operator(1, skills={"billing": 2}, load={"messaging": 2}),
        operator(2, presence=Presence.OFFLINE),
        operator(3, skills={"billing": 4}, last_assigned_at=NOW - 5 * MINUTE),
    ]
    item = work(language="de", required_skills=required, contact_owner_id=2)
    decision = decide(item, operators, policy("sticky", "skills_match", "least_busy"), NOW)

    stored = json.loads(json.dumps(decision.model_dump(mode="json")))

    assert Decision.model_validate(stored) == decision
    assert stored["winner_id"] == 3
    assert stored["candidates"][-1]["exclusions"][0] == {
        "code": "offline",
        "text": "offline for 1 h",
    }


def test_work_item_round_trips_through_json() -> None:
    item = work(required_skills="billing >= 2", facts={"priority_tier": "vip"}, priority=2)

    assert WorkItem.model_validate_json(item.model_dump_json()).required_skills == (
        item.required_skills
    )


# --- waiting work --------------------------------------------------------------------------


def test_waiting_work_by_priority_then_longest_wait() -> None:
    items = [
        work(conversation_id=1, priority=0, waiting_since=NOW - 50 * MINUTE),
        work(conversation_id=2, priority=5, waiting_since=NOW - 1 * MINUTE),
        work(conversation_id=3, priority=0, waiting_since=NOW - 90 * MINUTE),
        work(conversation_id=4, priority=5, waiting_since=NOW - 2 * MINUTE),
        work(conversation_id=5, priority=0, waiting_since=NOW - 90 * MINUTE),
    ]

    assert [item.conversation_id for item in order_waiting(items)] == [4, 2, 3, 5, 1]


# --- properties ----------------------------------------------------------------------------

KINDS = ("voice", "messaging", "email")
STRATEGIES = ("skills_match", "least_busy", "round_robin")


@st.composite
def snapshots(draw: st.DrawFn, operator_id: int) -> OperatorSnapshot:
    capacity = draw(st.dictionaries(st.sampled_from(KINDS), st.integers(0, 5)))
    load = draw(st.dictionaries(st.sampled_from(KINDS), st.integers(0, 7)))
    assigned = draw(st.none() | st.integers(0, 3600).map(lambda s: NOW - timedelta(seconds=s)))
    return OperatorSnapshot(
        id=operator_id,
        presence=draw(st.sampled_from(list(Presence))),
        presence_since=NOW - timedelta(minutes=5),
        skills=draw(st.dictionaries(st.sampled_from(["billing", "sales"]), st.integers(0, 3))),
        capacity=capacity,
        total_capacity=draw(st.none() | st.integers(0, 12)),
        load=load,
        last_assigned_at=assigned,
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[WorkItem, list[OperatorSnapshot], QueuePolicy, Any]:
    ids = draw(st.lists(st.integers(1, 50), unique=True, max_size=12))
    operators = [draw(snapshots(operator_id)) for operator_id in ids]
    chain = draw(st.permutations(STRATEGIES))
    length = draw(st.integers(1, len(chain)))
    sticky = draw(st.booleans())
    queue = QueuePolicy(
        strategies=(("sticky",) if sticky else ()) + tuple(chain[:length]),
        sticky_max_wait_seconds=draw(st.integers(0, 120)),
    )
    item = WorkItem(
        conversation_id=1,
        channel_kind=draw(st.sampled_from(KINDS)),
        waiting_since=NOW - timedelta(seconds=draw(st.integers(0, 200))),
        contact_owner_id=draw(st.none() | st.integers(1, 50)),
        last_operator_id=draw(st.none() | st.integers(1, 50)),
        required_skills=draw(st.none() | st.sampled_from(["billing >= 1", "sales > 1"])),
    )
    excluded = draw(
        st.dictionaries(st.sampled_from(ids or [0]), st.sampled_from(["rejected", "timed_out"]))
    )
    return item, operators, queue, excluded


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_the_winner_is_always_eligible_and_under_capacity(scenario: Any) -> None:
    item, operators, queue, excluded = scenario

    decision = decide(item, operators, queue, NOW, excluded)

    by_id = {o.id: o for o in operators}
    assert sorted(c.operator_id for c in decision.candidates) == sorted(by_id)
    eligible = [c for c in decision.candidates if not c.exclusions]
    assert [c.rank for c in eligible] == list(range(1, len(eligible) + 1))
    if decision.outcome != "assign":
        assert decision.winner_id is None
        assert decision.outcome == "wait" or not eligible
        return
    assert decision.winner_id == eligible[0].operator_id
    winner = by_id[decision.winner_id]
    kind = item.channel_kind
    assert winner.presence == Presence.AVAILABLE
    assert winner.id not in excluded
    assert winner.load.get(kind, 0) < winner.capacity.get(kind, 0)
    if winner.total_capacity is not None:
        assert sum(winner.load.values()) < winner.total_capacity
    if item.required_skills is not None:
        assert item.required_skills.matches({**winner.skills})


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_same_input_same_decision_whatever_the_order(
    scenario: Any, shuffler: random.Random
) -> None:
    item, operators, queue, excluded = scenario
    shuffled = list(operators)
    shuffler.shuffle(shuffled)

    first = decide(item, operators, queue, NOW, excluded)

    assert decide(item, operators, queue, NOW, excluded) == first
    assert decide(item, shuffled, queue, NOW, excluded) == first
    assert Decision.model_validate_json(first.model_dump_json()) == first


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.integers(1, 8))
def test_decisions_that_share_what_they_saw_are_the_decisions_made_afresh(
    scenario: Any, rounds: int
) -> None:
    """As the waiting step decides a queue's work alike: one `Seen` for the run, each
    winner's snapshot replaced by one holding the work given. Every decision, and its JSON,
    is what `decide` says without it."""
    item, operators, queue, excluded = scenario
    seen = Seen()
    for number in range(rounds):
        current = item.model_copy(update={"conversation_id": number})
        kept = decide(current, operators, queue, NOW, excluded, seen)
        fresh = decide(current, operators, queue, NOW, excluded)
        assert kept == fresh
        assert seen.as_json(kept) == fresh.model_dump(mode="json")
        if kept.winner_id is None:
            break
        kind = item.channel_kind
        operators = [
            o.model_copy(update={"load": {**o.load, kind: o.load.get(kind, 0) + 1}})
            if o.id == kept.winner_id
            else o
            for o in operators
        ]
