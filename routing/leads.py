"""Lead assignment: which sales operator gets a new lead, and why.

Pure logic, no database and no I/O. The routing service is meant to use it so:

1. Keep a `LeadRuleSet` as JSON in the configuration (``LeadRuleSet.model_validate(config)``;
   invalid config raises pydantic's ValidationError, one message per field)::

       {
         "timezone": "Europe/Berlin",
         "rules": [
           {"name": "DACH solar", "regions": ["DACH"], "sources": ["form:"],
            "interest": {"fields": ["product", "interest"], "values": ["solar", "heat pump"]},
            "operators": [7, 8, 9], "daily_quota": 10},
           {"name": "Partners", "sources": ["api"], "marketing": {"utm_source": ["partner"]},
            "operators": [12]}
         ],
         "fallback": {"operators": [3, 4]}
       }

2. For a new lead build `LeadFacts` (its id and source, the contact's E.164 phone, the web-form
   fields of the submission that created it, its ``marketing``).
3. Read, for the operators the rules name: how many leads each was assigned since
   ``rule_set.day_start(now)`` (``counts_today``), when each was last assigned a lead
   (``last_assigned``; never assigned: leave it out) and which of them are available now.
4. ``decision = assign_lead(facts, rule_set, counts_today, last_assigned, available, now)``;
   set the lead's owner to ``decision.owner_id`` (None leaves the lead unassigned for a
   supervisor) and store ``decision.model_dump(mode="json")`` in the decision log.

Region: a form field ``country`` (then ``region``) wins over the phone's country, because it is
what the person chose to tell us and sales territories follow where the customer is, while a
mobile number keeps the country it was issued in wherever its owner lives. A field value that is
not a recognisable country (an ISO 3166 alpha-2 code, ``UK``/``USA``, or a country name in any
language libphonenumber knows, e.g. "Germany", "Deutschland") is ignored and the phone decides.

Rule conditions (all given ones must hold; a rule without conditions takes every lead):

- ``regions``: ISO codes or the groups in `REGION_GROUPS` (``DACH`` = DE, AT, CH; ``BENELUX``;
  ``NORDICS``; ``EU``). A lead whose region is unknown matches no rule with regions.
- ``interest``: any of ``values`` (case-insensitive) in any of the form ``fields`` (default
  ``product`` and ``interest``; a field sent several times, e.g. checkboxes, counts each value).
- ``sources``: exact sources (``api``, ``form:quote``), or prefixes ending in ``:`` (``form:``).
- ``marketing``: for each key (e.g. ``utm_source``), any of its values, case-insensitive.

The first matching rule decides; its operators are tried in round robin order: least recently
assigned first (never assigned before anyone), ties by id. Operators not available or at the
rule's ``daily_quota`` (leads per operator per calendar day in the rule set's ``timezone``,
counting every lead they got that day) are skipped. When none is left the lead stays unassigned:
it does not fall through to later rules or the fallback, which take only leads no rule matches.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from functools import cache
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from routing.calendar import TimeZoneName

MAX_LEAD_RULES = 200
MAX_OPERATORS = 500
MAX_VALUES = 100

# Named groups a rule may list instead of (or with) single countries.
REGION_GROUPS: Mapping[str, frozenset[str]] = {
    "DACH": frozenset({"DE", "AT", "CH"}),
    "BENELUX": frozenset({"BE", "NL", "LU"}),
    "NORDICS": frozenset({"DK", "FI", "IS", "NO", "SE"}),
    "EU": frozenset(
        {
            "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
            "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
        }
    ),
}  # fmt: skip
# Common names for countries that are not their ISO code.
_REGION_ALIASES = {"UK": "GB", "USA": "US"}

# Form fields that may name the lead's country, in order of precedence.
REGION_FIELDS = ("country", "region")

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_NEVER = datetime.min.replace(tzinfo=UTC)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


# --- Region -------------------------------------------------------------------------------


@cache
def _country_names() -> Mapping[str, str]:
    """Country names in every language libphonenumber has, casefolded, to their ISO code."""
    # Imported when first needed: the names of every language take a quarter of a second to
    # load, which every process start (the CLI, each server process) would pay otherwise.
    from phonenumbers.geodata.locale import LOCALE_DATA

    codes_by_name: dict[str, set[str]] = {}
    for code, names in LOCALE_DATA.items():
        if code not in phonenumbers.SUPPORTED_REGIONS:
            continue
        for name in names.values():
            # "*xx" stands for the name in language xx.
            resolved = names[name[1:]] if name.startswith("*") else name
            codes_by_name.setdefault(resolved.casefold(), set()).add(code)
    # A name two countries share in different languages says nothing.
    return {name: codes.pop() for name, codes in codes_by_name.items() if len(codes) == 1}


def region_code(value: str) -> str | None:
    """The ISO 3166 alpha-2 code `value` names ("de", "UK", "Deutschland"), or None."""
    cleaned = value.strip()
    code = _REGION_ALIASES.get(cleaned.upper(), cleaned.upper())
    if code in phonenumbers.SUPPORTED_REGIONS:
        return code
    return _country_names().get(cleaned.casefold())


def _phone_region(phone: str) -> str | None:
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    code = phonenumbers.region_code_for_number(number)
    # "001" marks numbers of no country (+800 freephone, satellite).
    return code if code in phonenumbers.SUPPORTED_REGIONS else None


class RegionFinding(BaseModel):
    """The lead's country and where it came from."""

    model_config = _FROZEN

    code: str | None
    # "form:country", "form:region", "phone", or None when unknown.
    found_in: str | None
    detail: str


def find_region(phone: str | None, form_fields: Mapping[str, Any]) -> RegionFinding:
    """The lead's country: a recognisable form field first, else the phone's country."""
    ignored = []
    for name in REGION_FIELDS:
        value = form_fields.get(name)
        if not isinstance(value, str) or not value.strip():
            continue
        code = region_code(value)
        if code is None:
            ignored.append(f"form field {name} {value.strip()[:100]!r} is not a known country")
            continue
        detail = f"form field {name} {value.strip()[:100]!r}"
        phone_code = _phone_region(phone) if phone else None
        if phone_code is not None and phone_code != code:
            detail += f" (the phone is from {phone_code})"
        return RegionFinding(code=code, found_in=f"form:{name}", detail=detail)
    if phone:
        code = _phone_region(phone)
        if code is not None:
            return RegionFinding(
                code=code, found_in="phone", detail="; ".join([*ignored, f"phone {phone}"])
            )
        ignored.append(f"phone {phone} has no country")
    else:
        ignored.append("no phone")
    if not any(name in form_fields for name in REGION_FIELDS):
        ignored.append("no country or region field")
    return RegionFinding(code=None, found_in=None, detail="; ".join(ignored))


# --- What is known about the lead ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LeadFacts:
    """What is known about a new lead when it needs an owner."""

    lead_id: int
    # "form:<slug>", "api", "api:field-sales", ...
    source: str
    # E.164, e.g. "+4930123456".
    phone: str | None = None
    # The web-form submission: name to a value, or to a list of values for repeated fields.
    form_fields: Mapping[str, Any] = field(default_factory=dict)
    # utm_source, utm_medium, utm_campaign, referrer.
    marketing: Mapping[str, str] = field(default_factory=dict)


def _field_values(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        yield from (item for item in value if isinstance(item, str))


# --- Rules --------------------------------------------------------------------------------


def _known_region(value: str) -> str:
    name = value.strip().upper()
    if name in REGION_GROUPS:
        return name
    code = _REGION_ALIASES.get(name, name)
    if code not in phonenumbers.SUPPORTED_REGIONS:
        groups = ", ".join(REGION_GROUPS)
        raise ValueError(f"{value!r} is not an ISO 3166 country code (such as DE) or {groups}")
    return code


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    seen = set()
    for value in values:
        key = value.casefold() if isinstance(value, str) else value
        if key in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(key)
    return values


def _source_spec(value: str) -> str:
    if any(char.isspace() for char in value):
        raise ValueError("a source has no spaces, e.g. api, form:quote or form:")
    return value


Region = Annotated[str, AfterValidator(_known_region)]
Source = Annotated[Text, AfterValidator(_source_spec)]
OperatorId = Annotated[int, Field(gt=0)]


class InterestCondition(BaseModel):
    """Any of `values`, case-insensitive, in any of the form `fields`."""

    model_config = _FROZEN

    fields: Annotated[
        tuple[Text, ...], Field(min_length=1, max_length=20), AfterValidator(_unique)
    ] = ("product", "interest")
    values: Annotated[
        tuple[Text, ...], Field(min_length=1, max_length=MAX_VALUES), AfterValidator(_unique)
    ]


class LeadTarget(BaseModel):
    """Who may get the lead, in round robin, and how many leads a day each may get."""

    model_config = _FROZEN

    operators: Annotated[
        tuple[OperatorId, ...],
        Field(min_length=1, max_length=MAX_OPERATORS),
        AfterValidator(_unique),
    ]
    # None: no limit.
    daily_quota: int | None = Field(default=None, ge=1, le=100_000)


@dataclass(frozen=True)
class _Outcome:
    holds: bool
    reason: str


class LeadRule(LeadTarget):
    """Conditions on a lead, all of which must hold, and who gets the leads that match."""

    name: Text
    regions: Annotated[
        tuple[Region, ...], Field(max_length=MAX_VALUES), AfterValidator(_unique)
    ] = ()
    interest: InterestCondition | None = None
    sources: Annotated[
        tuple[Source, ...], Field(max_length=MAX_VALUES), AfterValidator(_unique)
    ] = ()
    marketing: Annotated[
        dict[
            Text,
            Annotated[
                tuple[Text, ...],
                Field(min_length=1, max_length=MAX_VALUES),
                AfterValidator(_unique),
            ],
        ],
        Field(max_length=10),
    ] = Field(default_factory=dict)

    def outcomes(self, facts: LeadFacts, region: str | None) -> Iterator[_Outcome]:
        """Each given condition's outcome, in a fixed order."""
        if self.regions:
            yield self._region_outcome(region)
        if self.interest is not None:
            yield self._interest_outcome(self.interest, facts.form_fields)
        if self.sources:
            yield self._source_outcome(facts.source)
        for key, wanted in self.marketing.items():
            yield self._marketing_outcome(key, wanted, facts.marketing.get(key))

    def _region_outcome(self, region: str | None) -> _Outcome:
        listed = ", ".join(self.regions)
        if region is None:
            return _Outcome(False, f"region unknown, the rule wants {listed}")
        for name in self.regions:
            if region == name:
                return _Outcome(True, f"region {region}")
            if region in REGION_GROUPS.get(name, ()):
                return _Outcome(True, f"region {region} in {name}")
        return _Outcome(False, f"region {region} is not in {listed}")

    @staticmethod
    def _interest_outcome(condition: InterestCondition, form: Mapping[str, Any]) -> _Outcome:
        wanted = {value.casefold() for value in condition.values}
        for name in condition.fields:
            for value in _field_values(form.get(name)):
                if value.strip().casefold() in wanted:
                    return _Outcome(True, f"{name} {value.strip()[:100]!r}")
        fields = "/".join(condition.fields)
        values = ", ".join(condition.values)
        return _Outcome(False, f"{fields} is not any of {values}")

    def _source_outcome(self, source: str) -> _Outcome:
        for spec in self.sources:
            if source == spec or (spec.endswith(":") and source.startswith(spec)):
                return _Outcome(True, f"source {source}")
        return _Outcome(False, f"source {source} is not {' or '.join(self.sources)}")

    @staticmethod
    def _marketing_outcome(key: str, wanted: tuple[str, ...], value: str | None) -> _Outcome:
        if value is not None and value.strip().casefold() in {w.casefold() for w in wanted}:
            return _Outcome(True, f"{key} {value.strip()[:100]!r}")
        shown = "missing" if value is None else repr(value[:100])
        return _Outcome(False, f"{key} is {shown}, not {' or '.join(wanted)}")


class LeadRuleSet(BaseModel):
    """Ordered rules, the first that matches wins; `fallback` takes leads no rule matches."""

    model_config = _FROZEN

    # The calendar day that daily quotas count in (an IANA name).
    timezone: TimeZoneName = "UTC"
    rules: Annotated[tuple[LeadRule, ...], Field(max_length=MAX_LEAD_RULES)] = ()
    # None: leads no rule matches stay unassigned.
    fallback: LeadTarget | None = None

    @model_validator(mode="after")
    def _unique_rule_names(self) -> Self:
        names = tuple(rule.name for rule in self.rules)
        _unique(names)
        # A decision names the fallback "fallback": a rule of that name would read the same.
        if any(name.casefold() == "fallback" for name in names):
            raise ValueError("'fallback' is reserved; give the rule another name")
        return self

    def day(self, now: datetime) -> date:
        """The calendar day, in `timezone`, that quotas count at `now`."""
        return _aware(now, "now").astimezone(ZoneInfo(self.timezone)).date()

    def day_start(self, now: datetime) -> datetime:
        """When today began in `timezone`, in UTC: count each operator's leads since then."""
        midnight = datetime.combine(self.day(now), time(), tzinfo=ZoneInfo(self.timezone))
        return midnight.astimezone(UTC)


# --- The decision -------------------------------------------------------------------------


class OperatorConsidered(BaseModel):
    model_config = _FROZEN

    operator_id: int
    outcome: Literal["chosen", "later_in_turn", "not_available", "at_quota"]
    # E.g. "never assigned a lead", "quota 10/10 today", "not available".
    reason: str


class LeadDecision(BaseModel):
    """Who gets the lead and why, for the decision log."""

    model_config = _FROZEN

    lead_id: int
    owner_id: int | None
    # The matching rule's name, "fallback", or None when no rule matched and there is none.
    rule: str | None
    # Why the rule matched: one entry per condition, e.g. "region AT in DACH".
    reasons: tuple[str, ...]
    # Why each earlier rule did not match: its first condition that failed.
    passed_over: tuple[str, ...]
    region: RegionFinding
    # The calendar day the quotas counted.
    day: date
    decided_at: datetime
    # The winner, the others in round robin order, then those skipped, in the rule's order.
    operators: tuple[OperatorConsidered, ...]
    unassigned_reason: Literal["no_rule_matched", "no_operator_free"] | None
    # One line for people, e.g. "rule 'DACH solar' (region AT in DACH): operator 7, ...".
    summary: str


def assign_lead(
    facts: LeadFacts,
    rules: LeadRuleSet,
    counts_today: Mapping[int, int],
    last_assigned: Mapping[int, datetime],
    available: set[int],
    now: datetime,
) -> LeadDecision:
    """The owner for a new lead, by the first matching rule, in round robin; explained."""
    _aware(now, "now")
    region = find_region(facts.phone, facts.form_fields)
    passed_over = []
    target: LeadTarget | None = None
    label: str | None = None
    reasons: list[str] = []
    for rule in rules.rules:
        for outcome in rule.outcomes(facts, region.code):
            if not outcome.holds:
                passed_over.append(f"rule {rule.name!r}: {outcome.reason}")
                break
            reasons.append(outcome.reason)
        else:
            target, label = rule, rule.name
            reasons = reasons or ["no conditions: takes every lead"]
            break
        reasons = []
    if target is None and rules.fallback is not None:
        target, label, reasons = rules.fallback, "fallback", ["no rule matched"]

    considered: list[OperatorConsidered] = []
    owner: int | None = None
    if target is None:
        unassigned: Literal["no_rule_matched", "no_operator_free"] | None = "no_rule_matched"
        summary = "no rule matched and there is no fallback: left for a supervisor"
    else:
        considered = list(_round_robin(target, counts_today, last_assigned, available))
        heading = ("fallback" if label == "fallback" else f"rule {label!r}") + (
            f" ({', '.join(reasons)})"
        )
        if considered and considered[0].outcome == "chosen":
            owner, unassigned = considered[0].operator_id, None
            summary = f"{heading}: operator {owner}, {considered[0].reason}"
        else:
            unassigned = "no_operator_free"
            skipped = "; ".join(f"operator {c.operator_id} {c.reason}" for c in considered)
            summary = f"{heading}: no operator is free ({skipped}): left for a supervisor"
    return LeadDecision(
        lead_id=facts.lead_id,
        owner_id=owner,
        rule=label,
        reasons=tuple(reasons),
        passed_over=tuple(passed_over),
        region=region,
        day=rules.day(now),
        decided_at=now,
        operators=tuple(considered),
        unassigned_reason=unassigned,
        summary=summary,
    )


def _round_robin(
    target: LeadTarget,
    counts_today: Mapping[int, int],
    last_assigned: Mapping[int, datetime],
    available: set[int],
) -> Iterator[OperatorConsidered]:
    """Every operator of `target`: the chosen one first, then the others in turn, then skipped."""
    eligible = []
    skipped = []
    for operator_id in target.operators:
        count = counts_today.get(operator_id, 0)
        if operator_id not in available:
            skipped.append(
                OperatorConsidered(
                    operator_id=operator_id, outcome="not_available", reason="not available"
                )
            )
        elif target.daily_quota is not None and count >= target.daily_quota:
            skipped.append(
                OperatorConsidered(
                    operator_id=operator_id,
                    outcome="at_quota",
                    reason=f"quota {count}/{target.daily_quota} today",
                )
            )
        else:
            last = last_assigned.get(operator_id)
            eligible.append((_aware(last, "last_assigned") if last else _NEVER, operator_id))
    eligible.sort()
    for position, (last, operator_id) in enumerate(eligible):
        when = "never assigned a lead" if last == _NEVER else f"last assigned {last.isoformat()}"
        yield OperatorConsidered(
            operator_id=operator_id,
            outcome="chosen" if position == 0 else "later_in_turn",
            reason=(
                f"least recently assigned ({when})"
                if position == 0
                else f"{when}, after operator {eligible[0][1]}"
            ),
        )
    yield from skipped


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {moment.isoformat()}")
    return moment


def operator_ids(rules: LeadRuleSet) -> list[int]:
    """Every operator the rules name: those whose counts and presence `assign_lead` needs."""
    targets: list[LeadTarget] = [*rules.rules, *([rules.fallback] if rules.fallback else [])]
    return sorted({operator_id for target in targets for operator_id in target.operators})
