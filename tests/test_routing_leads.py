"""Lead assignment rules: region, conditions, first match, round robin, quotas, explanations."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from routing.leads import (
    LeadDecision,
    LeadFacts,
    LeadRuleSet,
    assign_lead,
    find_region,
    operator_ids,
    region_code,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
BERLIN_PHONE = "+4930123456"
VIENNA_PHONE = "+43123456789"
WASHINGTON_PHONE = "+12025550123"


def rule_set(*rules: Mapping[str, Any], **extra: Any) -> LeadRuleSet:
    return LeadRuleSet.model_validate({"rules": list(rules), **extra})


def lead(
    *,
    source: str = "form:quote",
    phone: str | None = None,
    lead_id: int = 1,
    marketing: Mapping[str, str] | None = None,
    **form_fields: Any,
) -> LeadFacts:
    return LeadFacts(
        lead_id=lead_id,
        source=source,
        phone=phone,
        form_fields=form_fields,
        marketing=marketing or {},
    )


def assign(
    facts: LeadFacts,
    rules: LeadRuleSet,
    *,
    counts: Mapping[int, int] | None = None,
    last: Mapping[int, datetime] | None = None,
    available: set[int] | None = None,
    now: datetime = NOW,
) -> LeadDecision:
    everyone = set(operator_ids(rules))
    return assign_lead(
        facts, rules, counts or {}, last or {}, everyone if available is None else available, now
    )


def rule_name(facts: LeadFacts, rules: LeadRuleSet) -> str | None:
    return assign(facts, rules).rule


# --- Region -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "code"),
    [(BERLIN_PHONE, "DE"), (WASHINGTON_PHONE, "US"), (VIENNA_PHONE, "AT"), ("+15145550123", "CA")],
)
def test_region_from_the_phone_country(phone: str, code: str) -> None:
    region = find_region(phone, {})
    assert (region.code, region.found_in) == (code, "phone")
    assert phone in region.detail


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("DE", "DE"),
        (" at ", "AT"),
        ("UK", "GB"),
        ("USA", "US"),
        ("Germany", "DE"),
        ("deutschland", "DE"),
        ("Österreich", "AT"),
        ("Suisse", "CH"),
    ],
)
def test_region_from_a_country_field_as_code_or_name(value: str, code: str) -> None:
    region = find_region(None, {"country": value})
    assert (region.code, region.found_in) == (code, "form:country")


def test_region_field_counts_when_there_is_no_country_field() -> None:
    region = find_region(None, {"region": "ch"})
    assert (region.code, region.found_in) == ("CH", "form:region")


def test_the_form_field_wins_over_the_phone_and_the_detail_says_the_phone_differs() -> None:
    region = find_region(VIENNA_PHONE, {"country": "Germany"})
    assert (region.code, region.found_in) == ("DE", "form:country")
    assert region.detail == "form field country 'Germany' (the phone is from AT)"


def test_country_field_wins_over_region_field() -> None:
    assert find_region(None, {"region": "AT", "country": "DE"}).code == "DE"


def test_an_unknown_country_value_is_ignored_and_the_phone_decides() -> None:
    region = find_region(BERLIN_PHONE, {"country": "Atlantis"})
    assert (region.code, region.found_in) == ("DE", "phone")
    assert "'Atlantis' is not a known country" in region.detail


@pytest.mark.parametrize(
    ("phone", "fields", "detail"),
    [
        (None, {}, "no phone; no country or region field"),
        ("+80012345678", {}, "phone +80012345678 has no country; no country or region field"),
        ("not a number", {}, "phone not a number has no country; no country or region field"),
        (
            None,
            {"country": "Narnia"},
            "form field country 'Narnia' is not a known country; no phone",
        ),
        (None, {"country": ["DE", "AT"], "region": ""}, "no phone"),
    ],
)
def test_unknown_region(phone: str | None, fields: dict[str, Any], detail: str) -> None:
    region = find_region(phone, fields)
    assert (region.code, region.found_in, region.detail) == (None, None, detail)


def test_region_code_rejects_what_is_not_a_country() -> None:
    assert region_code("Atlantis") is None
    assert region_code("XX") is None
    assert region_code("") is None


# --- Conditions ---------------------------------------------------------------------------


def test_regions_match_codes_and_named_groups() -> None:
    rules = rule_set(
        {"name": "Germany", "regions": ["de"], "operators": [1]},
        {"name": "DACH", "regions": ["DACH"], "operators": [2]},
        {"name": "Benelux or US", "regions": ["BENELUX", "US"], "operators": [3]},
    )
    assert rule_name(lead(phone=BERLIN_PHONE), rules) == "Germany"
    assert rule_name(lead(phone=VIENNA_PHONE), rules) == "DACH"
    assert rule_name(lead(country="Switzerland"), rules) == "DACH"
    assert rule_name(lead(country="NL"), rules) == "Benelux or US"
    assert rule_name(lead(phone=WASHINGTON_PHONE), rules) == "Benelux or US"
    assert rule_name(lead(country="FR"), rules) is None
    decision = assign(lead(phone=VIENNA_PHONE), rules)
    assert decision.reasons == ("region AT in DACH",)
    assert decision.passed_over == ("rule 'Germany': region AT is not in DE",)


def test_a_lead_of_unknown_region_matches_no_rule_with_regions() -> None:
    rules = rule_set(
        {"name": "EU", "regions": ["EU"], "operators": [1]},
        {"name": "anything", "operators": [2]},
    )
    decision = assign(lead(), rules)
    assert decision.rule == "anything"
    assert decision.reasons == ("no conditions: takes every lead",)
    assert decision.passed_over == ("rule 'EU': region unknown, the rule wants EU",)


def test_interest_is_any_value_in_any_named_field_case_insensitive() -> None:
    rules = rule_set(
        {"name": "solar", "interest": {"values": ["Solar", "heat pump"]}, "operators": [1]},
        {
            "name": "storage",
            "interest": {"fields": ["topic"], "values": ["battery"]},
            "operators": [2],
        },
    )
    assert rule_name(lead(product=" SOLAR "), rules) == "solar"
    assert rule_name(lead(interest="Heat Pump"), rules) == "solar"
    # Checkboxes send a field several times.
    assert rule_name(lead(product=["windows", "heat pump"]), rules) == "solar"
    assert rule_name(lead(topic="Battery"), rules) == "storage"
    assert rule_name(lead(topic="solar"), rules) is None
    assert rule_name(lead(product=7), rules) is None
    decision = assign(lead(interest="solar"), rules)
    assert decision.reasons == ("interest 'solar'",)
    decision = assign(lead(topic="battery"), rules)
    assert decision.passed_over == (
        "rule 'solar': product/interest is not any of Solar, heat pump",
    )


def test_sources_match_exactly_or_by_prefix_ending_in_a_colon() -> None:
    rules = rule_set(
        {"name": "quotes", "sources": ["form:quote"], "operators": [1]},
        {"name": "forms", "sources": ["form:"], "operators": [2]},
        {"name": "api", "sources": ["api"], "operators": [3]},
    )
    assert rule_name(lead(source="form:quote"), rules) == "quotes"
    assert rule_name(lead(source="form:quote-de"), rules) == "forms"
    assert rule_name(lead(source="form:contact"), rules) == "forms"
    assert rule_name(lead(source="api"), rules) == "api"
    assert rule_name(lead(source="api:field-sales"), rules) is None
    decision = assign(lead(source="api"), rules)
    assert decision.passed_over == (
        "rule 'quotes': source api is not form:quote",
        "rule 'forms': source api is not form:",
    )


def test_marketing_values_match_case_insensitive() -> None:
    rules = rule_set(
        {"name": "partners", "marketing": {"utm_source": ["partner", "reseller"]}, "operators": [1]}
    )
    assert rule_name(lead(marketing={"utm_source": "Partner"}), rules) == "partners"
    assert rule_name(lead(marketing={"utm_source": "google"}), rules) is None
    decision = assign(lead(), rules)
    assert decision.passed_over == (
        "rule 'partners': utm_source is missing, not partner or reseller",
    )


def test_all_conditions_of_a_rule_must_hold() -> None:
    rules = rule_set(
        {
            "name": "DACH solar forms",
            "regions": ["DACH"],
            "interest": {"values": ["solar"]},
            "sources": ["form:"],
            "operators": [1],
        }
    )
    assert rule_name(lead(phone=VIENNA_PHONE, product="solar"), rules) == "DACH solar forms"
    assert rule_name(lead(phone=WASHINGTON_PHONE, product="solar"), rules) is None
    assert rule_name(lead(phone=VIENNA_PHONE, product="wind"), rules) is None
    assert rule_name(lead(phone=VIENNA_PHONE, product="solar", source="api"), rules) is None
    decision = assign(lead(phone=VIENNA_PHONE, product="solar"), rules)
    assert decision.reasons == ("region AT in DACH", "product 'solar'", "source form:quote")


# --- Rule order and fallback --------------------------------------------------------------


def test_the_first_matching_rule_wins() -> None:
    rules = rule_set(
        {"name": "Austria", "regions": ["AT"], "operators": [1]},
        {"name": "DACH", "regions": ["DACH"], "operators": [2]},
    )
    decision = assign(lead(phone=VIENNA_PHONE), rules)
    assert (decision.rule, decision.owner_id, decision.passed_over) == ("Austria", 1, ())


def test_the_fallback_takes_leads_no_rule_matches() -> None:
    rules = rule_set(
        {"name": "DACH", "regions": ["DACH"], "operators": [1]},
        fallback={"operators": [5, 6]},
    )
    decision = assign(lead(phone=WASHINGTON_PHONE), rules)
    assert (decision.rule, decision.owner_id) == ("fallback", 5)
    assert decision.reasons == ("no rule matched",)
    assert decision.passed_over == ("rule 'DACH': region US is not in DACH",)
    assert decision.summary.startswith("fallback (no rule matched): operator 5")


def test_without_a_fallback_an_unmatched_lead_stays_unassigned() -> None:
    rules = rule_set({"name": "DACH", "regions": ["DACH"], "operators": [1]})
    decision = assign(lead(phone=WASHINGTON_PHONE), rules)
    assert (decision.owner_id, decision.rule, decision.unassigned_reason) == (
        None,
        None,
        "no_rule_matched",
    )
    assert decision.operators == ()
    assert "left for a supervisor" in decision.summary


def test_a_matched_rule_with_nobody_free_does_not_fall_through_to_the_fallback() -> None:
    rules = rule_set(
        {"name": "DACH", "regions": ["DACH"], "operators": [1]},
        fallback={"operators": [5]},
    )
    decision = assign(lead(phone=BERLIN_PHONE), rules, available={5})
    assert (decision.owner_id, decision.rule, decision.unassigned_reason) == (
        None,
        "DACH",
        "no_operator_free",
    )


# --- Round robin and quotas ---------------------------------------------------------------


class Ledger:
    """The state the routing service would read from the database: counts and last times."""

    def __init__(self, rules: LeadRuleSet, available: set[int] | None = None) -> None:
        self.rules = rules
        self.available = set(operator_ids(rules)) if available is None else available
        self.counts: dict[int, int] = {}
        self.last: dict[int, datetime] = {}
        self.now = NOW

    def assign(self, facts: LeadFacts | None = None) -> LeadDecision:
        self.now += timedelta(minutes=1)
        decision = assign_lead(
            facts or lead(), self.rules, self.counts, self.last, self.available, self.now
        )
        if decision.owner_id is not None:
            self.counts[decision.owner_id] = self.counts.get(decision.owner_id, 0) + 1
            self.last[decision.owner_id] = self.now
        return decision


def test_round_robin_goes_round_the_operators_in_turn() -> None:
    ledger = Ledger(rule_set({"name": "all", "operators": [3, 1, 2]}))
    owners = [ledger.assign().owner_id for _ in range(7)]
    # Nobody assigned yet: by id; then least recently assigned first.
    assert owners == [1, 2, 3, 1, 2, 3, 1]


def test_round_robin_starts_with_whoever_waited_longest() -> None:
    rules = rule_set({"name": "all", "operators": [1, 2, 3]})
    last = {1: NOW - timedelta(minutes=5), 2: NOW - timedelta(hours=2), 3: NOW - timedelta(hours=1)}
    decision = assign(lead(), rules, last=last)
    assert decision.owner_id == 2
    assert [(c.operator_id, c.outcome) for c in decision.operators] == [
        (2, "chosen"),
        (3, "later_in_turn"),
        (1, "later_in_turn"),
    ]
    assert decision.operators[0].reason == (
        "least recently assigned (last assigned 2025-03-03T07:00:00+00:00)"
    )
    assert (
        decision.operators[1].reason == "last assigned 2025-03-03T08:00:00+00:00, after operator 2"
    )


def test_never_assigned_operators_come_first_and_ties_go_by_id() -> None:
    rules = rule_set({"name": "all", "operators": [4, 3, 2, 1]})
    same = NOW - timedelta(hours=1)
    decision = assign(lead(), rules, last={1: same, 2: same, 4: same})
    assert [c.operator_id for c in decision.operators] == [3, 1, 2, 4]
    assert decision.operators[0].reason == "least recently assigned (never assigned a lead)"


def test_unavailable_operators_are_skipped_with_the_reason() -> None:
    ledger = Ledger(rule_set({"name": "all", "operators": [1, 2, 3]}), available={1, 3})
    assert [ledger.assign().owner_id for _ in range(4)] == [1, 3, 1, 3]
    decision = ledger.assign()
    assert decision.operators[-1].model_dump() == {
        "operator_id": 2,
        "outcome": "not_available",
        "reason": "not available",
    }


def test_an_operator_at_quota_is_skipped_for_the_next() -> None:
    ledger = Ledger(rule_set({"name": "all", "operators": [1, 2], "daily_quota": 2}))
    ledger.counts = {1: 1}
    owners = [ledger.assign().owner_id for _ in range(3)]
    # 1 gets one more (2/2), then 2 takes the rest of the day's quota.
    assert owners == [1, 2, 2]
    assert ledger.counts == {1: 2, 2: 2}


def test_everyone_at_quota_or_away_leaves_the_lead_unassigned_with_the_reasons() -> None:
    rules = rule_set(
        {"name": "DACH", "regions": ["DACH"], "operators": [1, 2, 3], "daily_quota": 10}
    )
    decision = assign(lead(phone=BERLIN_PHONE), rules, counts={1: 10, 3: 12}, available={1, 3})
    assert decision.owner_id is None
    assert decision.unassigned_reason == "no_operator_free"
    assert [(c.operator_id, c.outcome, c.reason) for c in decision.operators] == [
        (1, "at_quota", "quota 10/10 today"),
        (2, "not_available", "not available"),
        (3, "at_quota", "quota 12/10 today"),
    ]
    assert decision.summary == (
        "rule 'DACH' (region DE in DACH): no operator is free (operator 1 quota 10/10 today; "
        "operator 2 not available; operator 3 quota 12/10 today): left for a supervisor"
    )


def test_without_a_quota_there_is_no_daily_limit() -> None:
    rules = rule_set({"name": "all", "operators": [1]})
    assert assign(lead(), rules, counts={1: 10_000}).owner_id == 1


@settings(max_examples=60, deadline=None)
@given(
    operators=st.lists(st.integers(1, 30), min_size=1, max_size=8, unique=True),
    quota=st.none() | st.integers(1, 5),
    leads=st.integers(1, 40),
    away=st.sets(st.integers(1, 30), max_size=4),
)
def test_assignments_stay_balanced_within_quota_and_among_free_operators(
    operators: list[int], quota: int | None, leads: int, away: set[int]
) -> None:
    rules = rule_set({"name": "all", "operators": operators, "daily_quota": quota})
    available = set(operators) - away
    ledger = Ledger(rules, available=available)
    for _ in range(leads):
        decision = ledger.assign()
        free = {o for o in available if quota is None or ledger.counts.get(o, 0) < quota} | (
            {decision.owner_id} if decision.owner_id is not None else set()
        )
        assert (decision.owner_id is None) == (not free)
        assert decision.owner_id is None or decision.owner_id in available
        assert len(decision.operators) == len(operators)
    counts = [ledger.counts.get(o, 0) for o in available]
    if counts:
        assert max(counts) - min(counts) <= 1
        assert sum(counts) == min(leads, len(available) * quota if quota else leads)
    assert all(quota is None or count <= quota for count in ledger.counts.values())
    assert not ledger.counts.keys() - available


# --- Calendar day -------------------------------------------------------------------------


def test_the_quota_day_is_the_calendar_day_in_the_rule_sets_timezone() -> None:
    rules = rule_set(timezone="Europe/Berlin")
    late_evening_utc = datetime(2025, 3, 3, 23, 30, tzinfo=UTC)
    assert rules.day(late_evening_utc).isoformat() == "2025-03-04"
    assert rules.day_start(late_evening_utc) == datetime(2025, 3, 3, 23, 0, tzinfo=UTC)
    summer = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
    assert rules.day_start(summer) == datetime(2025, 6, 30, 22, 0, tzinfo=UTC)
    assert rule_set().day_start(late_evening_utc) == datetime(2025, 3, 3, tzinfo=UTC)
    decision = assign(lead(), rule_set({"name": "all", "operators": [1]}, timezone="Asia/Tokyo"))
    assert decision.day.isoformat() == "2025-03-03"


def test_naive_datetimes_are_refused() -> None:
    rules = rule_set({"name": "all", "operators": [1]})
    with pytest.raises(ValueError, match="now must be an aware datetime"):
        assign(lead(), rules, now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="last_assigned must be an aware datetime"):
        assign(lead(), rules, last={1: NOW.replace(tzinfo=None)})


# --- Config and JSON ----------------------------------------------------------------------

CONFIG = {
    "timezone": "Europe/Berlin",
    "rules": [
        {
            "name": "DACH solar",
            "regions": ["DACH", "it"],
            "interest": {"values": ["solar", "heat pump"]},
            "sources": ["form:"],
            "operators": [7, 8, 9],
            "daily_quota": 10,
        },
        {"name": "Partners", "marketing": {"utm_source": ["partner"]}, "operators": [12]},
    ],
    "fallback": {"operators": [3, 4]},
}


def test_a_rule_set_round_trips_through_json() -> None:
    rules = LeadRuleSet.model_validate(CONFIG)
    assert rules.rules[0].regions == ("DACH", "IT")
    stored = json.dumps(rules.model_dump(mode="json"))
    assert LeadRuleSet.model_validate_json(stored) == rules
    assert operator_ids(rules) == [3, 4, 7, 8, 9, 12]


def test_a_decision_round_trips_through_json() -> None:
    rules = LeadRuleSet.model_validate(CONFIG)
    facts = lead(lead_id=42, phone=VIENNA_PHONE, country="Österreich", product="Solar")
    decision = assign(facts, rules, counts={7: 10}, available={7, 9})
    stored = json.loads(json.dumps(decision.model_dump(mode="json")))
    assert stored["lead_id"] == 42
    assert stored["owner_id"] == 9
    assert stored["rule"] == "DACH solar"
    assert stored["region"] == {
        "code": "AT",
        "found_in": "form:country",
        "detail": "form field country 'Österreich'",
    }
    assert stored["day"] == "2025-03-03"
    assert [o["outcome"] for o in stored["operators"]] == ["chosen", "at_quota", "not_available"]
    assert LeadDecision.model_validate(stored) == decision


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"timezone": "Mars/Olympus"}, ("timezone",), "not a known IANA time zone"),
        ({"rules": [{"name": "x", "operators": []}]}, ("rules", 0, "operators"), "at least 1"),
        ({"rules": [{"name": "x", "operators": [1, 1]}]}, ("rules", 0, "operators"), "twice"),
        ({"rules": [{"name": "x", "operators": [0]}]}, ("rules", 0, "operators", 0), "greater"),
        (
            {"rules": [{"name": "x", "operators": [1], "regions": ["XX"]}]},
            ("rules", 0, "regions", 0),
            "not an ISO 3166 country code",
        ),
        (
            {"rules": [{"name": "x", "operators": [1], "daily_quota": 0}]},
            ("rules", 0, "daily_quota"),
            "greater than or equal to 1",
        ),
        (
            {"rules": [{"name": "x", "operators": [1], "sources": ["form: quote"]}]},
            ("rules", 0, "sources", 0),
            "no spaces",
        ),
        (
            {"rules": [{"name": "x", "operators": [1], "interest": {"values": []}}]},
            ("rules", 0, "interest", "values"),
            "at least 1",
        ),
        (
            {"rules": [{"name": " ", "operators": [1]}]},
            ("rules", 0, "name"),
            "at least 1 character",
        ),
        (
            {"rules": [{"name": "x", "operators": [1], "queue": 3}]},
            ("rules", 0, "queue"),
            "Extra inputs",
        ),
        (
            {"rules": [{"name": "A", "operators": [1]}, {"name": "a", "operators": [2]}]},
            (),
            "listed twice",
        ),
        ({"rules": [{"name": "Fallback", "operators": [1]}]}, (), "reserved"),
    ],
)
def test_invalid_config_is_refused_with_the_field_and_why(
    config: dict[str, Any], field: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        LeadRuleSet.model_validate(config)
    problem = raised.value.errors()[0]
    assert problem["loc"] == field
    assert message in problem["msg"]
