"""Queue matching: ordered rules on what is known about a piece of work, first match wins.

Pure logic, no database and no I/O of its own. The routing service is meant to use it so:

1. Build a `WorkFacts` from the conversation, its contact and its first interaction (channel,
   contact language or the detected one, contact priority tier, subject and text, web-form slug
   and fields, IVR choice).
2. `await gather_facts(facts, enrichers, timeout)` asks each `Enricher` (the ERP bridge will
   implement one) for more facts, such as ``{"erp.open_orders": 2}``. A failing or slow
   enricher only costs its own facts; its failure is listed in the result for the decision log.
3. `rule_set.route(gathered.facts)` gives a `RuleMatch`: the queue, which rule matched (or
   ``"default"``), why it matched and why each earlier rule did not. Store
   ``match.model_dump(mode="json")`` (and the enricher failures) in the decision log, so a
   supervisor can ask "why did this go to Billing?".

A `RuleSet` is a pydantic model stored as JSON; `parse_rule_set` checks stored or submitted JSON
and raises `RuleValidationError` (a 400 with one message per field) when it is not valid.
Channels are the registry's, not this module's: a rule names channels by name, and the caller
that saves rules passes the names of the channels the application runs (`channels=`), so a
rule for an unknown channel is refused naming the known ones. Stored rules are read without
that list: a rule naming a channel that was removed since still loads and matches nothing.

Patterns run on Google's RE2 (the `google-re2` package), which searches in time linear in
the text: the standard `re` backtracks, so `(a+)+b` would take hours on 40 characters. RE2
refuses backreferences and lookarounds, its \\w, \\d and \\b are ASCII, and patterns are
limited in length and compiled memory.
"""

from __future__ import annotations

import asyncio
import operator
import re
import unicodedata
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal

import re2
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from core.enrichment import Enricher, WorkFacts
from core.errors import InvalidInput, validation_fields
from core.forms import SLUG

# Rules look at the subject and this much of the text: enough for what decides a queue, and a
# bound on the work a rule set does for one very long message.
TEXT_WINDOW = 10_000
PATTERN_MAX_CHARS = 200
# RE2's memory for one compiled pattern: a counted repeat past it is refused when compiled.
_PATTERN_MAX_MEMORY = 1 << 20
MAX_RULES = 200


# --- What is known about the work ---------------------------------------------------------


@dataclass(frozen=True)
class EnricherFailure:
    enricher: str
    reason: str


@dataclass(frozen=True)
class GatheredFacts:
    facts: WorkFacts
    failures: tuple[EnricherFailure, ...] = ()


async def gather_facts(
    facts: WorkFacts,
    enrichers: Sequence[Enricher],
    timeout: float,  # noqa: ASYNC109 - bounds each enricher; the call itself never fails
) -> GatheredFacts:
    """Run the enrichers side by side, each for at most `timeout` seconds, and merge their facts.

    Facts go into `facts.erp` under the keys the enrichers return (a later enricher's key wins
    over an earlier one's). An enricher that raises, answers nonsense or is still running at the
    deadline contributes nothing and is listed in `failures`; it never holds up routing, since
    the deadline does not wait for it to obey its cancellation.
    """
    if not timeout > 0:
        raise ValueError("timeout must be positive")
    tasks = [asyncio.create_task(_enrich_safely(enricher, facts)) for enricher in enrichers]
    try:
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
    finally:
        for task in tasks:
            task.cancel()  # a no-op for the finished ones
    erp = dict(facts.erp)
    failures = []
    for enricher, task in zip(enrichers, tasks, strict=True):
        outcome = task.result() if task.done() and not task.cancelled() else None
        if outcome is None:
            failures.append(EnricherFailure(enricher.name, f"timed out after {timeout:g} s"))
        elif isinstance(outcome, str):
            failures.append(EnricherFailure(enricher.name, outcome))
        else:
            erp.update(outcome)
    return GatheredFacts(replace(facts, erp=erp), tuple(failures))


async def _enrich_safely(enricher: Enricher, facts: WorkFacts) -> dict[str, object] | str:
    """The enricher's facts, or why it has none."""
    try:
        result = await enricher.enrich(facts)
    except Exception as exc:  # whatever an enricher does wrong must not stop routing
        return f"failed: {type(exc).__name__}: {exc}"[:300]
    if not isinstance(result, Mapping) or not all(isinstance(key, str) for key in result):
        return f"answered {type(result).__name__}, not a mapping of fact names to values"
    return dict(result)


# --- Patterns that cannot backtrack ---------------------------------------------------------


class PatternError(ValueError):
    """A rule pattern is not valid or not supported; the message says why."""


class SafePattern:
    """A rule pattern on Google's RE2, which searches in time linear in the text: no
    backtracking, so no pattern can stall routing. Case-insensitive; ^ and $ match at lines.
    RE2 refuses what needs backtracking (backreferences, lookarounds); its \\w, \\d and \\b
    are ASCII, and it is limited in memory, so a huge counted repeat is refused, not slow."""

    def __init__(self, pattern: str) -> None:
        if not pattern:
            raise PatternError("the pattern is empty")
        if len(pattern) > PATTERN_MAX_CHARS:
            raise PatternError(f"the pattern is longer than {PATTERN_MAX_CHARS} characters")
        options = re2.Options()
        options.case_sensitive = False
        options.log_errors = False
        options.max_mem = _PATTERN_MAX_MEMORY
        try:
            self._compiled = re2.compile(f"(?m:{pattern})", options)
        except re2.error as exc:
            raise PatternError(f"not a valid regular expression: {_re2_reason(exc)}") from None
        self.pattern = pattern

    def search(self, text: str) -> bool:
        return self._compiled.search(text) is not None


def _re2_reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else str(exc)
    return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> SafePattern:
    """The `SafePattern` for `pattern`, compiled once."""
    return SafePattern(pattern)


# --- Words -------------------------------------------------------------------------------------


def fold(text: str) -> str:
    """Text for caseless comparison: compatibility-normalized (é composed, ﬁ → fi), case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


@lru_cache(maxsize=4096)
def _keyword_regex(keyword: str) -> re.Pattern[str]:
    """Finds `keyword` (already folded) as whole words, any whitespace between its words."""
    words = r"\s+".join(re.escape(word) for word in keyword.split())
    return re.compile(rf"(?<!\w){words}(?!\w)")


# --- Rules -------------------------------------------------------------------------------------


def _custom_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_rule", message)


_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[a-z0-9]{1,8})*")


def _language_tag(tag: str) -> str:
    tag = tag.strip().lower().replace("_", "-")
    if not _LANGUAGE_TAG.fullmatch(tag):
        raise _custom_error(f"{tag!r} is not a language tag like 'de' or 'pt-BR'")
    return tag


_CHANNEL_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
# The validation context key under which `parse_rule_set` passes the known channel names.
_KNOWN_CHANNELS = "channels"


def _channel_name(name: str, info: ValidationInfo) -> str:
    """A channel a rule may name: one the caller says the application runs, when it says."""
    known = (info.context or {}).get(_KNOWN_CHANNELS)
    if known is not None and name not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise _custom_error(f"no channel {name!r}; channels: {listed}")
    if not _CHANNEL_NAME.fullmatch(name):
        raise _custom_error("a channel name is lower-case letters, digits, - and _")
    return name


def _form_slug(slug: str) -> str:
    if not SLUG.fullmatch(slug):
        raise _custom_error("a form slug is lower-case letters, digits and dashes")
    return slug


def _language_matches(wanted: str, actual: str) -> bool:
    """A rule for "de" takes "de-AT" too; a rule for "de-AT" takes only that."""
    return actual == wanted or actual.startswith(wanted + "-")


Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ChannelName = Annotated[str, StringConstraints(max_length=40), AfterValidator(_channel_name)]
Language = Annotated[str, StringConstraints(max_length=35), AfterValidator(_language_tag)]
Tier = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=20)
]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
ErpScalar = bool | int | FiniteFloat | Annotated[str, StringConstraints(max_length=200)]
ErpOperator = Literal["==", "!=", "<", "<=", ">", ">=", "in"]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


def _not_empty(values: tuple[object, ...]) -> tuple[object, ...]:
    # A check after the items' own, so a bad item is not also reported as a missing one.
    if not values:
        raise _custom_error("give at least one value, or leave the condition out")
    return values


_NOT_EMPTY = AfterValidator(_not_empty)


@dataclass(frozen=True)
class _Outcome:
    holds: bool
    reason: str


class FormFieldCondition(BaseModel):
    """A web-form field equals, or contains, a text, ignoring case; for a list field, any item."""

    model_config = _FROZEN

    name: Label
    equals: Annotated[str, StringConstraints(max_length=500)] | None = None
    contains: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None

    @model_validator(mode="after")
    def _one_test(self) -> FormFieldCondition:
        if (self.equals is None) == (self.contains is None):
            raise _custom_error("give either 'equals' or 'contains'")
        return self

    def check(self, fields: Mapping[str, object]) -> _Outcome:
        if self.name not in fields:
            return _Outcome(False, f"form field {self.name!r} missing")
        texts = [fold(text) for text in _field_texts(fields[self.name])]
        if self.equals is not None:
            wanted = fold(self.equals.strip())
            holds = any(text.strip() == wanted for text in texts)
            test = ("is " if holds else "is not ") + repr(self.equals)
        else:
            wanted = fold(self.contains or "")
            holds = any(wanted in text for text in texts)
            test = ("contains " if holds else "does not contain ") + repr(self.contains)
        return _Outcome(holds, f"form field {self.name!r} {test}")


def _field_texts(value: object) -> list[str]:
    """A form field's value as texts: a list field gives one per item."""
    items = value if isinstance(value, list | tuple) else [value]
    texts = []
    for item in items:
        if isinstance(item, bool):
            texts.append("true" if item else "false")
        elif isinstance(item, str | int | float | Decimal):
            texts.append(str(item))
    return texts


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class ErpCondition(BaseModel):
    """A comparison on an enricher's fact. An unknown fact, or one of another type, fails it."""

    model_config = _FROZEN

    key: Label
    op: ErpOperator = "=="
    value: ErpScalar | Annotated[tuple[ErpScalar, ...], Field(max_length=100)]

    @field_validator("value")
    @classmethod
    def _value_fits_op(
        cls, value: ErpScalar | tuple[ErpScalar, ...], info: ValidationInfo
    ) -> ErpScalar | tuple[ErpScalar, ...]:
        op = info.data.get("op")
        if op is None:  # the operator itself is invalid, and that is the message to show
            return value
        if op == "in":
            if not isinstance(value, tuple) or not value:
                raise _custom_error("'in' compares with a list of values")
        elif isinstance(value, tuple):
            raise _custom_error(f"{op!r} compares with one value; use 'in' for a list")
        elif op not in ("==", "!=") and isinstance(value, bool):
            raise _custom_error(f"{op!r} compares numbers or texts, not true/false")
        return value

    def check(self, erp: Mapping[str, object]) -> _Outcome:
        wanted = list(self.value) if isinstance(self.value, tuple) else self.value
        if self.key not in erp:
            return _Outcome(False, f"{self.key} unknown")
        fact = erp[self.key]
        options = self.value if isinstance(self.value, tuple) else (self.value,)
        comparable = [option for option in options if _type_of(option) == _type_of(fact)]
        if not comparable:
            return _Outcome(False, f"{self.key} is {fact!r}, not comparable with {wanted!r}")
        if self.op == "in":
            holds = fact in comparable
        else:
            holds = _COMPARISONS[self.op](fact, comparable[0])
        return _Outcome(holds, f"{self.key} {fact!r} {'' if holds else 'not '}{self.op} {wanted!r}")


def _type_of(value: object) -> str:
    """What an ERP fact compares as: true/false, a number, a text or nothing comparable."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal):
        return "number"
    return "text" if isinstance(value, str) else "other"


class _Scan:
    """One piece of work as the rules read it; the texts are prepared once, when first needed."""

    def __init__(self, facts: WorkFacts) -> None:
        self.facts = facts

    @cached_property
    def window(self) -> str:
        return f"{self.facts.subject}\n{self.facts.text}"[:TEXT_WINDOW]

    @cached_property
    def folded(self) -> str:
        return fold(self.window)

    @cached_property
    def composed(self) -> str:
        # Decomposed accents (as some mail clients send them) would not meet a pattern's é.
        return unicodedata.normalize("NFC", self.window)


class QueueRule(BaseModel):
    """Send work to `queue_id` when every condition given holds; a rule with none takes all.

    Lists mean "any of these". Keywords are whole words (or phrases), ignoring case, in the
    subject or the text; the pattern is a `SafePattern` over the subject, a newline and the text.
    """

    model_config = _FROZEN

    queue_id: int = Field(gt=0)
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    channels: Annotated[tuple[ChannelName, ...], Field(max_length=50), _NOT_EMPTY] | None = None
    languages: Annotated[tuple[Language, ...], Field(max_length=50), _NOT_EMPTY] | None = None
    priority_tiers: Annotated[tuple[Tier, ...], Field(max_length=20), _NOT_EMPTY] | None = None
    keywords: Annotated[tuple[Label, ...], Field(max_length=100), _NOT_EMPTY] | None = None
    pattern: str | None = None
    form_slug: Annotated[str, AfterValidator(_form_slug)] | None = None
    form_fields: Annotated[tuple[FormFieldCondition, ...], Field(max_length=20)] = ()
    ivr_choice: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)] | None
    ) = None
    erp: Annotated[tuple[ErpCondition, ...], Field(max_length=20)] = ()

    @field_validator("pattern")
    @classmethod
    def _safe_pattern(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                compile_pattern(pattern)
            except PatternError as exc:
                raise _custom_error(str(exc)) from None
        return pattern

    def _outcomes(self, scan: _Scan) -> Iterator[_Outcome]:
        """Each condition's outcome, cheapest first, computed only when asked for."""
        facts = scan.facts
        if self.channels is not None:
            holds = facts.channel in self.channels
            yield _Outcome(
                holds,
                f"channel {facts.channel}" + ("" if holds else f" not in {_listed(self.channels)}"),
            )
        if self.languages is not None:
            language = _language_of(facts.language)
            if language is None:
                yield _Outcome(False, "language unknown")
            else:
                holds = any(_language_matches(wanted, language) for wanted in self.languages)
                yield _Outcome(
                    holds,
                    f"language {language}"
                    + ("" if holds else f" not in {_listed(self.languages)}"),
                )
        if self.priority_tiers is not None:
            tier = facts.priority_tier.strip().lower()
            holds = tier in self.priority_tiers
            yield _Outcome(
                holds,
                f"priority tier {tier}"
                + ("" if holds else f" not in {_listed(self.priority_tiers)}"),
            )
        if self.form_slug is not None:
            yield _Outcome(
                facts.form_slug == self.form_slug,
                _is_or_is_not("form", facts.form_slug, self.form_slug),
            )
        for field_condition in self.form_fields:
            yield field_condition.check(facts.form_fields)
        if self.ivr_choice is not None:
            choice = facts.ivr_choice.strip() if facts.ivr_choice else None
            yield _Outcome(
                choice == self.ivr_choice, _is_or_is_not("IVR choice", choice, self.ivr_choice)
            )
        for erp_condition in self.erp:
            yield erp_condition.check(facts.erp)
        if self.keywords is not None:
            found = next(
                (word for word in self.keywords if _keyword_regex(fold(word)).search(scan.folded)),
                None,
            )
            if found is None:
                yield _Outcome(False, f"none of the keywords {_listed(self.keywords, quote=True)}")
            else:
                yield _Outcome(True, f"keyword {found!r}")
        if self.pattern is not None:
            holds = compile_pattern(self.pattern).search(scan.composed)
            yield _Outcome(holds, f"pattern {self.pattern!r}" + ("" if holds else " not found"))


def _language_of(language: str | None) -> str | None:
    """A language tag as rules compare it ("pt_BR" is "pt-br"), or None if there is none."""
    tag = (language or "").strip().lower().replace("_", "-")
    return tag or None


def _is_or_is_not(what: str, actual: str | None, wanted: str) -> str:
    if actual is None:
        return f"no {what}"
    return f"{what} {actual!r}" if actual == wanted else f"{what} {actual!r} is not {wanted!r}"


def _listed(values: Sequence[str], *, quote: bool = False) -> str:
    return ", ".join(repr(value) if quote else value for value in values)


class RuleMatch(BaseModel):
    """Where the work goes and why, for the decision log.

    `rule` is the matching rule's index in `RuleSet.rules` (from 0), or "default"; the texts
    number rules from 1, as a supervisor sees them listed.
    """

    model_config = ConfigDict(frozen=True)

    queue_id: int
    rule: int | Literal["default"]
    # Why the rule matched: one entry per condition, e.g. "channel email", "keyword 'invoice'".
    reasons: tuple[str, ...]
    # Why each earlier rule did not match: its first condition that failed.
    passed_over: tuple[str, ...] = ()

    @property
    def explanation(self) -> str:
        """E.g. "rule 2: channel email, keyword 'invoice'"."""
        if self.rule == "default":
            return "default queue: no rule matched"
        return f"rule {self.rule + 1}: {', '.join(self.reasons)}"


class RuleSet(BaseModel):
    """Ordered rules, the first that matches wins; the default queue takes what none match."""

    model_config = _FROZEN

    default_queue_id: int = Field(gt=0)
    rules: Annotated[tuple[QueueRule, ...], Field(max_length=MAX_RULES)] = ()

    @property
    def asks_enrichers(self) -> bool:
        """Whether a rule compares an enricher's fact (`erp` conditions): only then is new
        work worth the enrichers' time (an ERP's round trips for every new conversation)."""
        return any(rule.erp for rule in self.rules)

    def route(self, facts: WorkFacts) -> RuleMatch:
        scan = _Scan(facts)
        passed_over = []
        for index, rule in enumerate(self.rules):
            label = f"rule {index + 1}" + (f" ({rule.name})" if rule.name else "")
            reasons = []
            for outcome in rule._outcomes(scan):
                if not outcome.holds:
                    passed_over.append(f"{label}: {outcome.reason}")
                    break
                reasons.append(outcome.reason)
            else:
                return RuleMatch(
                    queue_id=rule.queue_id,
                    rule=index,
                    reasons=tuple(reasons) or ("no conditions: takes all work",),
                    passed_over=tuple(passed_over),
                )
        return RuleMatch(
            queue_id=self.default_queue_id,
            rule="default",
            reasons=(),
            passed_over=tuple(passed_over),
        )


class RuleValidationError(InvalidInput):
    """Rules that are not valid: `fields` maps each bad field (e.g. "rules.1.pattern") to why."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__("the routing rules are not valid")
        self.fields = dict(fields)


def parse_rule_set(
    raw: Mapping[str, object] | str | bytes, *, channels: Collection[str] | None = None
) -> RuleSet:
    """A `RuleSet` from its JSON text or decoded JSON; `RuleValidationError` if it is not one.

    `channels` are the names of the channels the application runs: given, a rule naming any
    other is refused with the known ones listed. Stored rules are read without them."""
    context = None if channels is None else {_KNOWN_CHANNELS: frozenset(channels)}
    try:
        if isinstance(raw, str | bytes):
            return RuleSet.model_validate_json(raw, context=context)
        return RuleSet.model_validate(raw, context=context)
    except ValidationError as exc:
        raise RuleValidationError(validation_fields(exc, "rule_set")) from None
