"""Queue matching rules: each condition, first match wins, enrichers, safe patterns, JSON."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.enrichment import WorkFacts
from core.errors import InvalidInput
from routing.rules import (
    TEXT_WINDOW,
    PatternError,
    RuleSet,
    RuleValidationError,
    SafePattern,
    gather_facts,
    parse_rule_set,
)

DEFAULT = 1
MATCHED = 2


def route(rule: dict[str, Any], facts: WorkFacts) -> tuple[bool, str]:
    """Route `facts` through a rule set of this one rule: did it match, and why (not)."""
    rule_set = parse_rule_set(
        {"default_queue_id": DEFAULT, "rules": [{"queue_id": MATCHED, **rule}]}
    )
    match = rule_set.route(facts)
    if match.rule == "default":
        assert match.queue_id == DEFAULT
        (why_not,) = match.passed_over
        return False, why_not
    assert match.queue_id == MATCHED
    return True, match.explanation


def email(text: str = "", subject: str = "", **facts: Any) -> WorkFacts:
    return WorkFacts(channel="email", subject=subject, text=text, **facts)


# --- One test per condition kind ---------------------------------------------------------------


def test_channel() -> None:
    rule = {"channels": ["email", "webform"]}
    assert route(rule, WorkFacts(channel="webform")) == (True, "rule 1: channel webform")
    assert route(rule, WorkFacts(channel="sms")) == (
        False,
        "rule 1: channel sms not in email, webform",
    )


@pytest.mark.parametrize(
    ("language", "matches"),
    [("de", True), ("de-AT", True), ("DE_ch", True), ("fr", True), ("en", False), ("d", False)],
)
def test_language_takes_its_regional_variants(language: str, matches: bool) -> None:
    assert route({"languages": ["de", "FR"]}, email(language=language))[0] is matches


def test_a_regional_language_rule_takes_only_that_region() -> None:
    rule = {"languages": ["pt-BR"]}
    assert route(rule, email(language="pt-br")) == (True, "rule 1: language pt-br")
    assert route(rule, email(language="pt-PT")) == (False, "rule 1: language pt-pt not in pt-br")
    assert route(rule, email(language="pt")) == (False, "rule 1: language pt not in pt-br")


def test_unknown_language_matches_no_language_rule() -> None:
    assert route({"languages": ["en"]}, email(language=None)) == (
        False,
        "rule 1: language unknown",
    )


def test_priority_tier() -> None:
    rule = {"priority_tiers": ["VIP", "gold"]}
    assert route(rule, email(priority_tier="vip")) == (True, "rule 1: priority tier vip")
    assert route(rule, email(priority_tier="standard")) == (
        False,
        "rule 1: priority tier standard not in vip, gold",
    )


def test_keyword_in_subject_or_text() -> None:
    rule = {"keywords": ["refund", "invoice"]}
    assert route(rule, email(subject="Invoice 4471")) == (True, "rule 1: keyword 'invoice'")
    assert route(rule, email(text="Where is my REFUND?")) == (True, "rule 1: keyword 'refund'")
    assert route(rule, email(subject="Hello", text="Delivery date?")) == (
        False,
        "rule 1: none of the keywords 'refund', 'invoice'",
    )


@pytest.mark.parametrize(
    ("keyword", "text", "matches"),
    [
        ("Rechnung", "Ihre RECHNUNG Nr. 5 ist falsch", True),
        ("Rechnung", "Rechnung: 5", True),
        ("Rechnung", "Bitte die Rechnungen prüfen", False),
        ("Rechnung", "Rechnungsadresse geändert", False),
        ("rechnung", "Die Teilrechnung fehlt", False),
        ("facture", "Votre FACTURE n°12", True),
        ("facture", "Vos factures", False),
        ("facturé", "Montant facturé: 12 €", True),
        # The text's é arrives decomposed (e + combining accent), as some mail clients send it.
        ("réclamation", "Une re\u0301clamation urgente", True),
        ("Straße", "Neue STRASSE ab Mai", True),
        ("über", "ÜBER uns", True),
        ("credit note", "please send a Credit\n  Note", True),
        ("credit note", "credit notes", False),
        ("C++", "a c++ question", True),
        ("_id", "customer_id", False),
    ],
)
def test_keywords_are_whole_words_ignoring_case(keyword: str, text: str, matches: bool) -> None:
    assert route({"keywords": [keyword]}, email(text))[0] is matches


def test_pattern() -> None:
    rule = {"pattern": r"\binv-\d{4,}"}
    assert route(rule, email("see INV-20931 attached")) == (
        True,
        r"rule 1: pattern '\\binv-\\d{4,}'",
    )
    assert route(rule, email("see INV-209 attached"))[0] is False
    assert route(rule, email("see xinv-20931"))[0] is False


def test_pattern_lines_start_at_the_subject_and_at_every_line_of_the_text() -> None:
    rule = {"pattern": r"^(re|aw):"}
    assert route(rule, email(subject="Re: order"))[0] is True
    assert route(rule, email(subject="Order", text="hello\nAW: earlier mail"))[0] is True
    assert route(rule, email(subject="Order re: x"))[0] is False


def test_form_slug() -> None:
    rule = {"form_slug": "contact-sales"}
    assert route(rule, WorkFacts(channel="webform", form_slug="contact-sales")) == (
        True,
        "rule 1: form 'contact-sales'",
    )
    assert route(rule, WorkFacts(channel="webform", form_slug="support")) == (
        False,
        "rule 1: form 'support' is not 'contact-sales'",
    )
    assert route(rule, email()) == (False, "rule 1: no form")


@pytest.mark.parametrize(
    ("condition", "fields", "matches"),
    [
        ({"name": "topic", "equals": "Billing"}, {"topic": " billing "}, True),
        ({"name": "topic", "equals": "Billing"}, {"topic": "billing questions"}, False),
        ({"name": "topic", "contains": "BILL"}, {"topic": "Re-billing"}, True),
        ({"name": "topic", "contains": "bill"}, {"topic": "shipping"}, False),
        ({"name": "topic", "equals": "billing"}, {"subject": "billing"}, False),
        ({"name": "products", "equals": "pumps"}, {"products": ["valves", "Pumps"]}, True),
        ({"name": "products", "equals": "pumps"}, {"products": ["valves"]}, False),
        ({"name": "employees", "equals": "50"}, {"employees": 50}, True),
        ({"name": "newsletter", "equals": "true"}, {"newsletter": True}, True),
        ({"name": "company", "equals": ""}, {"company": "  "}, True),
    ],
)
def test_form_field_equals_or_contains(
    condition: dict[str, str], fields: dict[str, object], matches: bool
) -> None:
    facts = WorkFacts(channel="webform", form_slug="contact", form_fields=fields)
    assert route({"form_fields": [condition]}, facts)[0] is matches


def test_form_field_reasons() -> None:
    facts = WorkFacts(channel="webform", form_fields={"topic": "Billing"})
    assert route({"form_fields": [{"name": "topic", "equals": "billing"}]}, facts) == (
        True,
        "rule 1: form field 'topic' is 'billing'",
    )
    assert route({"form_fields": [{"name": "topic", "contains": "ship"}]}, facts) == (
        False,
        "rule 1: form field 'topic' does not contain 'ship'",
    )
    assert route({"form_fields": [{"name": "size", "contains": "x"}]}, facts) == (
        False,
        "rule 1: form field 'size' missing",
    )


def test_ivr_choice() -> None:
    rule = {"ivr_choice": "2"}
    assert route(rule, WorkFacts(channel="voice", ivr_choice="2")) == (
        True,
        "rule 1: IVR choice '2'",
    )
    assert route(rule, WorkFacts(channel="voice", ivr_choice=" 2 "))[0] is True
    assert route(rule, WorkFacts(channel="voice", ivr_choice="1")) == (
        False,
        "rule 1: IVR choice '1' is not '2'",
    )
    assert route(rule, WorkFacts(channel="voice")) == (False, "rule 1: no IVR choice")


@pytest.mark.parametrize(
    ("op", "value", "fact", "matches"),
    [
        ("==", "B2B", "B2B", True),
        ("==", "B2B", "B2C", False),
        ("!=", "B2B", "B2C", True),
        ("!=", "B2B", "B2B", False),
        ("<", 3, 2, True),
        ("<", 3, 3, False),
        ("<=", 3, 3, True),
        ("<=", 3, 4, False),
        (">", 1000, 1500.5, True),
        (">", 1000, 1000, False),
        (">=", 2, 2, True),
        (">=", 2, 1, False),
        (">=", "2024-01-01", "2024-06-30", True),
        ("in", ["B2B", "wholesale"], "wholesale", True),
        ("in", ["B2B", "wholesale"], "retail", False),
        ("==", True, True, True),
        # Different types never compare: not 1 == True, not "2" < 3, not "B2B" != 5.
        ("==", 1, True, False),
        ("<", 3, "2", False),
        ("!=", "B2B", 5, False),
    ],
)
def test_erp_fact_comparison(op: str, value: object, fact: object, matches: bool) -> None:
    rule = {"erp": [{"key": "erp.fact", "op": op, "value": value}]}
    assert route(rule, email(erp={"erp.fact": fact}))[0] is matches


def test_erp_reasons() -> None:
    rule = {"erp": [{"key": "erp.open_orders", "op": ">=", "value": 1}]}
    assert route(rule, email(erp={"erp.open_orders": 2})) == (
        True,
        "rule 1: erp.open_orders 2 >= 1",
    )
    assert route(rule, email(erp={"erp.open_orders": 0})) == (
        False,
        "rule 1: erp.open_orders 0 not >= 1",
    )
    assert route(rule, email()) == (False, "rule 1: erp.open_orders unknown")
    assert route(rule, email(erp={"erp.open_orders": "many"})) == (
        False,
        "rule 1: erp.open_orders is 'many', not comparable with 1",
    )


def test_a_rule_without_conditions_takes_everything() -> None:
    assert route({}, WorkFacts(channel="telegram")) == (
        True,
        "rule 1: no conditions: takes all work",
    )


def test_every_condition_of_a_rule_must_hold() -> None:
    rule = {"channels": ["email"], "priority_tiers": ["vip"], "keywords": ["invoice"]}
    assert route(rule, email("invoice", priority_tier="vip")) == (
        True,
        "rule 1: channel email, priority tier vip, keyword 'invoice'",
    )
    assert route(rule, email("invoice", priority_tier="standard")) == (
        False,
        "rule 1: priority tier standard not in vip",
    )
    assert route(rule, WorkFacts(channel="sms", text="invoice", priority_tier="vip"))[0] is False


def test_rules_read_only_the_start_of_a_long_text() -> None:
    rule = {"keywords": ["invoice"]}
    assert route(rule, email("x" * (TEXT_WINDOW - 20) + " invoice"))[0] is True
    assert route(rule, email("x" * TEXT_WINDOW + " invoice"))[0] is False


# --- The rule set --------------------------------------------------------------------------------

BILLING, VIP, GERMAN, SUPPORT = 10, 11, 12, 13


@pytest.fixture
def rule_set() -> RuleSet:
    return parse_rule_set(
        {
            "default_queue_id": SUPPORT,
            "rules": [
                {"queue_id": VIP, "name": "VIP", "priority_tiers": ["vip"]},
                {"queue_id": BILLING, "channels": ["email"], "keywords": ["invoice", "Rechnung"]},
                {"queue_id": GERMAN, "languages": ["de"]},
            ],
        }
    )


def test_the_first_matching_rule_wins(rule_set: RuleSet) -> None:
    # Matches all three rules: the first takes it.
    match = rule_set.route(email("Rechnung", language="de", priority_tier="vip"))
    assert (match.queue_id, match.rule, match.passed_over) == (VIP, 0, ())
    assert match.explanation == "rule 1: priority tier vip"

    # Matches the second and the third: the second takes it, and the log says why not the first.
    match = rule_set.route(email("Ihre Rechnung", language="de"))
    assert (match.queue_id, match.rule) == (BILLING, 1)
    assert match.reasons == ("channel email", "keyword 'Rechnung'")
    assert match.explanation == "rule 2: channel email, keyword 'Rechnung'"
    assert match.passed_over == ("rule 1 (VIP): priority tier standard not in vip",)

    match = rule_set.route(WorkFacts(channel="sms", text="Rechnung", language="de-AT"))
    assert (match.queue_id, match.rule) == (GERMAN, 2)
    assert match.passed_over == (
        "rule 1 (VIP): priority tier standard not in vip",
        "rule 2: channel sms not in email",
    )


def test_what_no_rule_matches_goes_to_the_default_queue(rule_set: RuleSet) -> None:
    match = rule_set.route(WorkFacts(channel="sms", text="Hello", language="en"))
    assert (match.queue_id, match.rule, match.reasons) == (SUPPORT, "default", ())
    assert match.explanation == "default queue: no rule matched"
    assert match.passed_over == (
        "rule 1 (VIP): priority tier standard not in vip",
        "rule 2: channel sms not in email",
        "rule 3: language en not in de",
    )


def test_a_rule_set_without_rules_sends_everything_to_the_default() -> None:
    match = RuleSet(default_queue_id=7).route(email("invoice"))
    assert (match.queue_id, match.rule) == (7, "default")


def test_the_decision_is_json_for_the_log(rule_set: RuleSet) -> None:
    match = rule_set.route(email("invoice"))
    assert json.loads(match.model_dump_json()) == {
        "queue_id": BILLING,
        "rule": 1,
        "reasons": ["channel email", "keyword 'invoice'"],
        "passed_over": ["rule 1 (VIP): priority tier standard not in vip"],
    }


def test_a_rule_set_survives_a_json_round_trip() -> None:
    rule_set = parse_rule_set(
        {
            "default_queue_id": 1,
            "rules": [
                {
                    "queue_id": 2,
                    "name": "Everything at once",
                    "channels": ["webform"],
                    "languages": ["de-AT"],
                    "priority_tiers": ["vip"],
                    "keywords": ["Rechnung", "credit note"],
                    "pattern": r"(?:inv|re)-\d{3,8}\b",
                    "form_slug": "contact",
                    "form_fields": [
                        {"name": "topic", "equals": "billing"},
                        {"name": "message", "contains": "urgent"},
                    ],
                    "ivr_choice": "3",
                    "erp": [
                        {"key": "erp.open_orders", "op": ">=", "value": 2},
                        {"key": "erp.customer_segment", "op": "in", "value": ["B2B", "gov"]},
                        {"key": "erp.balance", "op": "<", "value": -10.5},
                        {"key": "erp.blocked", "value": False},
                    ],
                },
                {"queue_id": 3, "channels": ["voice"], "ivr_choice": "1"},
                {"queue_id": 4},
            ],
        }
    )
    text = rule_set.model_dump_json()
    assert parse_rule_set(text) == rule_set
    assert parse_rule_set(json.loads(text)) == rule_set
    facts = WorkFacts(
        channel="webform",
        language="de-AT",
        priority_tier="VIP",
        subject="Ihre Rechnung",
        text="RE-4471, urgent",
        form_slug="contact",
        form_fields={"topic": "Billing", "message": "urgent please"},
        ivr_choice="3",
        erp={
            "erp.open_orders": 2,
            "erp.customer_segment": "gov",
            "erp.balance": -20,
            "erp.blocked": False,
        },
    )
    assert parse_rule_set(text).route(facts) == rule_set.route(facts)
    assert rule_set.route(facts).rule == 0


# --- Validation --------------------------------------------------------------------------------


def test_invalid_rules_name_each_bad_field() -> None:
    with pytest.raises(RuleValidationError) as caught:
        parse_rule_set(
            {
                "default_queue_id": 0,
                "rules": [
                    {"queue_id": 2, "pattern": r"(a)\1"},
                    {"queue_id": 3, "channels": ["fax"], "languages": ["german!"]},
                    {"queue_id": 4, "erp": [{"key": "erp.segment", "op": "in", "value": "B2B"}]},
                    {"queue_id": 5, "form_fields": [{"name": "topic"}], "colour": "red"},
                    {"queue_id": 6, "form_slug": "Contact Us", "keywords": [" "]},
                    {"queue_id": 7, "erp": [{"key": "erp.vip", "op": ">", "value": True}]},
                ],
            },
            channels=["email", "webform", "api"],
        )
    error = caught.value
    assert isinstance(error, InvalidInput)  # the web layer answers 400 with these fields
    assert error.message == "the routing rules are not valid"
    assert set(error.fields) == {
        "default_queue_id",
        "rules.0.pattern",
        "rules.1.channels.0",
        "rules.1.languages.0",
        "rules.2.erp.0.value",
        "rules.3.form_fields.0",
        "rules.3.colour",
        "rules.4.form_slug",
        "rules.4.keywords.0",
        "rules.5.erp.0.value",
    }
    assert error.fields["rules.0.pattern"] == (
        "not a valid regular expression: invalid escape sequence: \\1"
    )
    assert error.fields["rules.1.languages.0"] == (
        "'german!' is not a language tag like 'de' or 'pt-BR'"
    )
    assert error.fields["rules.2.erp.0.value"] == "'in' compares with a list of values"
    assert error.fields["rules.3.form_fields.0"] == "give either 'equals' or 'contains'"
    assert error.fields["rules.5.erp.0.value"] == "'>' compares numbers or texts, not true/false"
    assert error.fields["rules.1.channels.0"] == "no channel 'fax'; channels: api, email, webform"


def test_rules_name_the_channels_the_caller_runs_and_stored_ones_still_load() -> None:
    """The channels are the application's (the registry's), passed in: a channel added to the
    application is one rules may name, and rules naming a channel removed since still load."""
    raw = {"default_queue_id": 1, "rules": [{"queue_id": 2, "channels": ["fakesms"]}]}
    with pytest.raises(RuleValidationError) as caught:
        parse_rule_set(raw, channels=["email", "webform"])
    assert caught.value.fields == {
        "rules.0.channels.0": "no channel 'fakesms'; channels: email, webform"
    }
    rule_set = parse_rule_set(raw, channels=["email", "fakesms"])
    assert rule_set.route(WorkFacts(channel="fakesms")).queue_id == 2
    stored = parse_rule_set(raw)  # read back after fakesms is gone: loads, matches nothing else
    assert stored.route(WorkFacts(channel="email")).queue_id == 1
    with pytest.raises(RuleValidationError) as caught:
        parse_rule_set({"default_queue_id": 1, "rules": [{"queue_id": 2, "channels": ["E mail"]}]})
    assert "rules.0.channels.0" in caught.value.fields


def test_invalid_json_text_is_a_validation_error() -> None:
    with pytest.raises(RuleValidationError) as caught:
        parse_rule_set('{"default_queue_id": 1, "rules": [')
    assert list(caught.value.fields) == ["rule_set"]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "the pattern is empty"),
        ("a" * 201, "the pattern is longer than 200 characters"),
        (r"(a)\1", "not a valid regular expression: invalid escape sequence"),
        (r"(?=a)b", "not a valid regular expression: invalid perl operator"),
        (r"(?<=a)b", "not a valid regular expression: invalid perl operator"),
        (r"(ab", "not a valid regular expression: missing )"),
        (r"[ab", "not a valid regular expression: missing ]"),
        (r"a**", "not a valid regular expression: bad repetition operator"),
        (r"\d{1001}", "not a valid regular expression: invalid repetition size"),
        (r"((((a{100}){100}){100}){100})", "not a valid regular expression"),
    ],
)
def test_patterns_re2_cannot_run_safely_are_refused(pattern: str, message: str) -> None:
    with pytest.raises(PatternError) as caught:
        SafePattern(pattern)
    assert str(caught.value).startswith(message)


# --- Catastrophic backtracking -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "matching"),
    [
        (r"(a+)+b", "aaab"),  # exponential for re
        (r"(?:a|a)*b", "aaab"),  # exponential for re
        (r"(\w+\s?)+$", "foo bar"),  # exponential for re on a line that ends in a "!"
        (r".*.*.*x", "aaax"),  # polynomial (n⁴) for re
        (r"\w+\w+\w+x", "aaax"),  # polynomial (n⁴) for re
    ],
)
def test_patterns_that_backtrack_catastrophically_run_in_linear_time(
    pattern: str, matching: str
) -> None:
    rule_set = parse_rule_set(
        {"default_queue_id": 1, "rules": [{"queue_id": 2, "pattern": pattern}]}
    )
    started = time.perf_counter()
    match = rule_set.route(email("a" * (TEXT_WINDOW - 10) + "!"))
    # `re` needs hours for this; a linear search takes milliseconds (seconds on a slow CI box).
    assert time.perf_counter() - started < 5
    assert match.rule == "default"
    # And it still finds what is there.
    assert rule_set.route(email(f"--\n{matching}")).rule == 0


def test_the_slowest_pattern_the_limits_allow_is_bounded() -> None:
    # Defeats the step cache: every character leads to a new set of some hundred live states.
    pattern = SafePattern(r"[ab]*a[ab]{190}c")
    choose = random.Random(4).choice
    text = "".join(choose("ab") for _ in range(TEXT_WINDOW))
    started = time.perf_counter()
    assert pattern.search(text) is False
    assert time.perf_counter() - started < 5  # about 0.1 s on a laptop


# A small grammar of patterns on which RE2 and `re` agree by definition (ASCII texts, no
# \\Z, \\B or {,n}, where the two engines spell or define things differently).
_characters = [*"abB _1", r"\.", ".", r"\w", r"\W", r"\d", r"\s", r"\S", r"\n"]
_sets = ["[ab]", "[^a]", "[a-c1]", "[-.]", r"[^\W\d]", r"\|"]
_atoms = st.sampled_from([*_characters, *_sets])
_anchors = st.sampled_from(["^", "$", r"\b", r"\A"])
_quantifiers = st.sampled_from(["*", "+", "?", "{2}", "{1,2}", "{2,}", "*?", "+?", "??"])


def _patterns(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, children).map("".join),
        st.tuples(children, children).map(lambda pair: f"(?:{pair[0]}|{pair[1]})"),
        st.tuples(children, _quantifiers).map(lambda pair: f"(?:{pair[0]}){pair[1]}"),
        st.tuples(children, _quantifiers).map(lambda pair: f"({pair[0]}){pair[1]}"),
    )


patterns = st.recursive(st.one_of(_atoms, _anchors), _patterns, max_leaves=8)
texts = st.text(st.sampled_from(list("aAbB 1_.\n-|")), max_size=14)


@settings(max_examples=300)
@given(pattern=patterns, text=texts)
def test_rule_patterns_find_what_re_finds(pattern: str, text: str) -> None:
    expected = re.search(pattern, text, re.IGNORECASE | re.MULTILINE) is not None
    assert SafePattern(pattern).search(text) is expected


@settings(max_examples=300)
@given(
    pattern=st.text(st.sampled_from(list("ab()[]{}|*+?.^$\\-,:=!<P01dwsbBAZx é")), max_size=14),
    text=st.text(st.sampled_from(list("aAbBé É.1_\n-{}[]()")), max_size=10),
)
def test_any_pattern_text_is_refused_clearly_or_searches(pattern: str, text: str) -> None:
    # A supervisor's typo must be a PatternError (a 400), never another exception (a 500).
    try:
        safe = SafePattern(pattern)
    except PatternError:
        return
    assert safe.search(text) in (True, False)


# --- Enrichers ---------------------------------------------------------------------------------


class StaticEnricher:
    def __init__(self, name: str, facts: Mapping[str, object]) -> None:
        self.name = name
        self.facts = facts

    async def enrich(self, facts: WorkFacts) -> Mapping[str, object]:
        await asyncio.sleep(0)
        return self.facts


class FailingEnricher:
    name = "erp"

    async def enrich(self, facts: WorkFacts) -> Mapping[str, object]:
        raise ConnectionError("ERP unreachable")


class SlowEnricher:
    name = "slow-erp"

    async def enrich(self, facts: WorkFacts) -> Mapping[str, object]:
        await asyncio.sleep(30)
        return {"erp.open_orders": 5}


class StubbornEnricher:
    """Ignores its cancellation and finishes its work anyway."""

    name = "stubborn"

    def __init__(self) -> None:
        self.finished = asyncio.Event()

    async def enrich(self, facts: WorkFacts) -> Mapping[str, object]:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)
        self.finished.set()
        return {"erp.open_orders": 5}


class ConfusedEnricher:
    name = "confused"

    async def enrich(self, facts: WorkFacts) -> Mapping[str, object]:
        return ["erp.open_orders", 5]  # type: ignore[return-value]


ERP_RULES = parse_rule_set(
    {
        "default_queue_id": SUPPORT,
        "rules": [
            {"queue_id": VIP, "erp": [{"key": "erp.customer_segment", "value": "key-account"}]},
            {"queue_id": BILLING, "erp": [{"key": "erp.open_orders", "op": ">", "value": 0}]},
        ],
    }
)


async def test_enricher_facts_feed_erp_conditions() -> None:
    facts = email("Where is my parcel?", erp={"erp.source": "contact"})
    gathered = await gather_facts(
        facts,
        [
            StaticEnricher("orders", {"erp.open_orders": 2}),
            StaticEnricher("segment", {"erp.customer_segment": "SME"}),
        ],
        timeout=1,
    )
    assert gathered.failures == ()
    assert gathered.facts.erp == {
        "erp.source": "contact",
        "erp.open_orders": 2,
        "erp.customer_segment": "SME",
    }
    assert gathered.facts.text == facts.text
    match = ERP_RULES.route(gathered.facts)
    assert (match.queue_id, match.explanation) == (BILLING, "rule 2: erp.open_orders 2 > 0")
    assert match.passed_over == ("rule 1: erp.customer_segment 'SME' not == 'key-account'",)


async def test_a_later_enricher_overrides_an_earlier_one_for_the_same_key() -> None:
    gathered = await gather_facts(
        email(),
        [
            StaticEnricher("cache", {"erp.open_orders": 1}),
            StaticEnricher("live", {"erp.open_orders": 0}),
        ],
        timeout=1,
    )
    assert gathered.facts.erp == {"erp.open_orders": 0}


async def test_a_failing_enricher_contributes_nothing_and_is_reported() -> None:
    gathered = await gather_facts(
        email(),
        [FailingEnricher(), StaticEnricher("segment", {"erp.customer_segment": "key-account"})],
        timeout=1,
    )
    assert gathered.facts.erp == {"erp.customer_segment": "key-account"}
    [failure] = gathered.failures
    assert (failure.enricher, failure.reason) == ("erp", "failed: ConnectionError: ERP unreachable")
    assert ERP_RULES.route(gathered.facts).queue_id == VIP


async def test_an_enricher_answering_nonsense_contributes_nothing() -> None:
    gathered = await gather_facts(email(), [ConfusedEnricher()], timeout=1)
    assert gathered.facts.erp == {}
    [failure] = gathered.failures
    assert failure.enricher == "confused"
    assert failure.reason == "answered list, not a mapping of fact names to values"


async def test_a_slow_enricher_times_out_without_holding_up_routing() -> None:
    started = time.perf_counter()
    gathered = await gather_facts(
        email(),
        [SlowEnricher(), StaticEnricher("segment", {"erp.customer_segment": "SME"})],
        timeout=0.05,
    )
    assert time.perf_counter() - started < 5
    assert gathered.facts.erp == {"erp.customer_segment": "SME"}
    assert [(f.enricher, f.reason) for f in gathered.failures] == [
        ("slow-erp", "timed out after 0.05 s")
    ]
    match = ERP_RULES.route(gathered.facts)
    assert match.queue_id == SUPPORT
    assert match.passed_over[1] == "rule 2: erp.open_orders unknown"


async def test_an_enricher_that_ignores_its_cancellation_does_not_hold_up_routing() -> None:
    stubborn = StubbornEnricher()
    gathered = await gather_facts(email(), [stubborn], timeout=0.05)
    assert not stubborn.finished.is_set()  # it works on for 0.3 s after its cancellation
    assert gathered.facts.erp == {}
    assert [f.enricher for f in gathered.failures] == ["stubborn"]
    await stubborn.finished.wait()  # let it end inside this test


async def test_no_enrichers_leave_the_facts_as_they_are() -> None:
    facts = email("hello", erp={"erp.open_orders": 1})
    gathered = await gather_facts(facts, [], timeout=1)
    assert gathered.facts == facts
    assert gathered.failures == ()


async def test_the_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        await gather_facts(email(), [], timeout=0)
