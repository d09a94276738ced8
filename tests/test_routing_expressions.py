"""Skills expressions: parsing, the attribute model, evaluation, explanations and bounds.

The properties at the end compare the compiled expression with a reference evaluator written
here over the syntax tree, and check that no text, however hostile, gets anything but an
ExpressionError out of the compiler.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import InvalidInput
from routing.expressions import (
    COMPARISONS,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_TOKENS,
    And,
    Compare,
    Condition,
    Expression,
    ExpressionError,
    In,
    Literal,
    Name,
    Not,
    Or,
    Truth,
    Value,
    compile_expression,
    operator_attributes,
)


def matches(text: str, attributes: Mapping[str, object]) -> bool:
    return compile_expression(text).matches(attributes)


def operator(
    skills: Mapping[str, object] | None = None,
    languages: Mapping[str, object] | None = None,
    **facts: object,
) -> dict[str, object]:
    return operator_attributes(skills or {}, languages or {}, facts)


# --- the examples of the issue -------------------------------------------------------------


def test_german_billing_needs_the_language_and_level_two() -> None:
    expression = compile_expression('language == "de" and billing >= 2')

    assert expression.matches(operator({"billing": 2}, language="de"))
    assert expression.matches(operator({"billing": 90}, language="de"))
    assert not expression.matches(operator({"billing": 1}, language="de"))
    assert not expression.matches(operator({"billing": 2}, language="fr"))
    assert not expression.matches(operator({"billing": 2}))  # the work's language is unknown


def test_sales_or_vip_outside_french_and_italian() -> None:
    expression = compile_expression('(sales >= 1 or vip) and not language in ["fr", "it"]')

    assert expression.matches(operator({"sales": 1}, language="de"))
    assert expression.matches(operator({"vip": 5}, language="de"))
    assert expression.matches(operator({"vip": 5}))
    assert not expression.matches(operator({"sales": 0, "vip": 0}, language="de"))
    assert not expression.matches(operator({"sales": 3}, language="it"))
    assert not expression.matches(operator({"sales": 3, "vip": 1}, language="fr"))


def test_languages_has_a_code_the_operator_speaks() -> None:
    expression = compile_expression('languages has "de"')

    assert expression.matches(operator(languages={"de": 60, "en": 100}))
    assert not expression.matches(operator(languages={"de": 0, "en": 100}))
    assert not expression.matches(operator(languages={"DE": 100}))  # codes are case-sensitive
    assert not expression.matches(operator())


# --- the attribute model -------------------------------------------------------------------


def test_operator_attributes_holds_levels_sets_and_facts() -> None:
    attributes = operator_attributes(
        {"billing": 2, "sales": 0}, {"de": 100, "fr": 0}, {"language": "de", "channel": "email"}
    )

    assert attributes == {
        "billing": 2,
        "sales": 0,
        "skills.billing": 2,
        "skills.sales": 0,
        "languages.de": 100,
        "languages.fr": 0,
        "skills": frozenset({"billing"}),
        "languages": frozenset({"de"}),
        "language": "de",
        "channel": "email",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("languages has language", True),
        ('languages.de >= 50 and languages.en == 0 and not languages has "en"', True),
        ("skills.returns >= 70 and returns >= 70", True),
        ('skills has "first-line"', True),  # a name that is no identifier, still reachable
        ('skills has "sales"', False),  # level 0 is not having the skill
        ("sales", False),
        ('channel == "email"', True),
        ('language == "de" and skills.language == 5', True),  # the fact hides the skill
    ],
)
def test_attribute_names(text: str, expected: bool) -> None:
    attributes = operator(
        {"returns": 70, "first-line": 10, "sales": 0, "language": 5},
        {"de": 80},
        language="de",
        channel="email",
    )

    assert matches(text, attributes) is expected


def test_levels_that_are_not_numbers_are_ignored() -> None:
    attributes = operator({"billing": "high", "vip": True, "sales": 2.5}, {"de": None, "en": 1})

    assert not matches("billing", attributes)
    assert not matches("billing >= 0 and skills.billing", attributes)
    assert not matches("vip", attributes)
    assert not matches('skills has "vip" or languages has "de"', attributes)
    assert matches("sales > 2 and sales < 3", attributes)
    assert matches('languages has "en"', attributes)


# --- evaluation rules ----------------------------------------------------------------------


class Unsupported:
    """A value of a kind expressions know nothing about."""


@pytest.mark.parametrize(
    ("text", "attributes", "expected"),
    [
        # a missing attribute reads as level 0
        ("billing >= 0", {}, True),
        ("billing < 2", {}, True),
        ("billing == 0", {}, True),
        ("billing != 0", {}, False),
        ("billing", {}, False),
        ("billing in [0, 1]", {}, True),
        ('language == "de"', {}, False),
        ('language != "de"', {}, False),
        # a level alone is true above 0
        ("billing", {"billing": 1}, True),
        ("billing", {"billing": 0}, False),
        ("billing", {"billing": -1}, False),
        ("billing", {"billing": 0.5}, True),
        # other values alone
        ("language", {"language": "de"}, True),
        ("language", {"language": ""}, False),
        ("tags", {"tags": frozenset({"x"})}, True),
        ("tags", {"tags": []}, False),
        ("flag", {"flag": True}, True),
        ("flag", {"flag": False}, False),
        ("odd", {"odd": Unsupported()}, False),
        ("odd", {"odd": {"a": 1}}, False),
        ("true", {}, True),
        ("false", {}, False),
        ("not false", {}, True),
        # mismatched kinds are false, for != too
        ('billing == "2"', {"billing": 2}, False),
        ('billing != "2"', {"billing": 2}, False),
        ("language == 1", {"language": "de"}, False),
        ("language != 1", {"language": "de"}, False),
        ("language < 5", {"language": "de"}, False),
        ("language >= 0", {"language": "de"}, False),
        ("tags == tags", {"tags": frozenset({"x"})}, False),
        ("odd == odd", {"odd": Unsupported()}, False),
        ("odd != 1", {"odd": Unsupported()}, False),
        ("odd == false", {"odd": Unsupported()}, False),
        # the same kinds compare
        ("billing == 2", {"billing": 2.0}, True),
        ("billing != 2", {"billing": 3}, True),
        ("billing > 1", {"billing": 2}, True),
        ("billing <= 1", {"billing": 2}, False),
        ("billing >= -1", {"billing": 0}, True),
        ('tier >= "b"', {"tier": "c"}, True),
        ('tier < "b"', {"tier": "c"}, False),
        ('language != "de"', {"language": "fr"}, True),
        ("a == b", {"a": 3, "b": 3}, True),
        ("a < b", {"a": 3, "b": 4}, True),
        # true and false compare the other side's truth
        ("vip == true", {"vip": 3}, True),
        ("vip == false", {"vip": 0}, True),
        ("vip == false", {}, True),
        ("vip != true", {"vip": 0}, True),
        ("vip != true", {"vip": 1}, False),
        ('true == "x"', {}, True),
        ("flag < true", {"flag": False}, False),
        # membership
        ('language in ["de", "en"]', {"language": "en"}, True),
        ('language in ["de", "en"]', {"language": "fr"}, False),
        ('language in ["de", "en"]', {"language": 1}, False),
        ("billing in [1, 2]", {"billing": 2}, True),
        ('billing in ["2"]', {"billing": 2}, False),
        ("language in []", {"language": "de"}, False),
        ('tags in ["x"]', {"tags": frozenset({"x"})}, False),
        # has looks in sets, lists and tuples only
        ('tags has "x"', {"tags": frozenset({"x", "y"})}, True),
        ('tags has "x"', {"tags": ["x"]}, True),
        ('tags has "x"', {"tags": ("y",)}, False),
        ("tags has 1", {"tags": {1, 2}}, True),
        ('tags has "1"', {"tags": {1, 2}}, False),
        ('tags has "x"', {"tags": "xyz"}, False),
        ('tags has "x"', {"tags": {"x": 1}}, False),
        ('tags has "x"', {}, False),
        ("tags has code", {"tags": ["de"], "code": "de"}, True),
        ("tags has code", {"tags": ["de"]}, False),
    ],
)
def test_evaluation_rules(text: str, attributes: dict[str, object], expected: bool) -> None:
    assert matches(text, attributes) is expected


# --- precedence and the canonical form -----------------------------------------------------


def truth(name: str) -> Truth:
    return Truth(Name(name))


@pytest.mark.parametrize(
    ("text", "tree", "canonical"),
    [
        ("a or b and c", Or((truth("a"), And((truth("b"), truth("c"))))), "a or b and c"),
        ("a and b or c", Or((And((truth("a"), truth("b"))), truth("c"))), "a and b or c"),
        ("(a or b) and c", And((Or((truth("a"), truth("b"))), truth("c"))), "(a or b) and c"),
        ("not a and b", And((Not(truth("a")), truth("b"))), "not a and b"),
        ("not (a and b)", Not(And((truth("a"), truth("b")))), "not (a and b)"),
        ("not a or b", Or((Not(truth("a")), truth("b"))), "not a or b"),
        ("not a == 1", Not(Compare("==", Name("a"), Literal(1))), "not a == 1"),
        (
            'not language in ["fr","it"]',
            Not(In(Name("language"), (Literal("fr"), Literal("it")))),
            'not language in ["fr", "it"]',
        ),
        ("not not a", Not(Not(truth("a"))), "not not a"),
        ("((a))", truth("a"), "a"),
        (
            "a and (b and c) and d",
            And((truth("a"), truth("b"), truth("c"), truth("d"))),
            "a and b and c and d",
        ),
        ("(a or b) or (c)", Or((truth("a"), truth("b"), truth("c"))), "a or b or c"),
        (
            "x>=-0 and 1==1",
            And((Compare(">=", Name("x"), Literal(0)), Compare("==", Literal(1), Literal(1)))),
            "x >= 0 and 1 == 1",
        ),
        (
            '\tlanguages  has\n"d\\"e\\\\"',
            Compare("has", Name("languages"), Literal('d"e\\')),
            'languages has "d\\"e\\\\"',
        ),
        ("flag == true", Compare("==", Name("flag"), Literal(True)), "flag == true"),
        ("in.x != false", Compare("!=", Name("in.x"), Literal(False)), "in.x != false"),
    ],
)
def test_precedence_and_canonical_form(text: str, tree: Condition, canonical: str) -> None:
    expression = compile_expression(text)

    assert expression.root == tree
    assert str(expression) == canonical
    assert compile_expression(canonical) == expression


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # `and` binds tighter than `or`: (true or true) and false would be false
        ("true or true and false", True),
        # `not` binds tighter than `and`: not (true and false) would be true
        ("not true and false", False),
        # `not` binds tighter than `or`: not (false or true) would be false
        ("not false or true", True),
        ("not (false or true)", False),
    ],
)
def test_precedence_decides_the_result(text: str, expected: bool) -> None:
    assert matches(text, {}) is expected


def test_true_and_one_are_different_literals() -> None:
    assert compile_expression("a == true") != compile_expression("a == 1")
    assert compile_expression('a in [1, "1", true]').root == In(
        Name("a"), (Literal(1), Literal("1"), Literal(True))
    )


# --- errors --------------------------------------------------------------------------------


def nested(levels: int) -> str:
    return "(" * levels + "a" + ")" * levels


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("", "unexpected end of expression at 0: expected a value, 'not' or '('", 0),
        ("   ", "unexpected end of expression at 3: expected a value, 'not' or '('", 3),
        (
            'language == "de" and or billing',
            "unexpected token 'or' at 21: expected a value, 'not' or '('",
            21,
        ),
        ("language ==", "unexpected end of expression at 11: expected a value", 11),
        ("billing >= and", "unexpected token 'and' at 11: expected a value", 11),
        ("== 2", "unexpected token '==' at 0: expected a value, 'not' or '('", 0),
        ('has "de"', "unexpected token 'has' at 0: expected a value, 'not' or '('", 0),
        ("a or", "unexpected end of expression at 4: expected a value, 'not' or '('", 4),
        ("not", "unexpected end of expression at 3: expected a value, 'not' or '('", 3),
        (
            "billing >= 2 billing",
            "unexpected token 'billing' at 13: expected 'and', 'or' or the end",
            13,
        ),
        ("a < b < c", "unexpected token '<' at 6: expected 'and', 'or' or the end", 6),
        ("a)", "unexpected token ')' at 1: expected 'and', 'or' or the end", 1),
        ("()", "unexpected token ')' at 1: expected a value, 'not' or '('", 1),
        ("(a or b", "unexpected end of expression at 7: expected ')' to close the '(' at 0", 7),
        ("((a) b)", "unexpected token 'b' at 5: expected ')' to close the '(' at 0", 5),
        ("a and 2", "unexpected end of expression at 7: expected a comparison after 2", 7),
        ('"de" or a', "unexpected token 'or' at 5: expected a comparison after \"de\"", 5),
        ("-3", "unexpected end of expression at 2: expected a comparison after -3", 2),
        (
            "language in languages",
            "unexpected token 'languages' at 12: expected '[' after 'in'"
            " (to look in a set, write 'languages has language')",
            12,
        ),
        ('x in "de"', "unexpected token '\"de\"' at 5: expected '[' after 'in'", 5),
        ("x in [y]", "unexpected token 'y' at 6: expected a string, integer, true or false", 6),
        (
            'x in ["a",]',
            "unexpected token ']' at 10: expected a string, integer, true or false",
            10,
        ),
        ('x in ["a" "b"]', "unexpected token '\"b\"' at 10: expected ',' or ']'", 10),
        ('x in ["a"', "unexpected end of expression at 9: expected ',' or ']'", 9),
        ('language = "de"', "unexpected character '=' at 9: write '==' to compare", 9),
        ("!vip", "unexpected character '!' at 0: write 'not'", 0),
        ("a && b", "unexpected character '&' at 2: write 'and'", 2),
        ("a || b", "unexpected character '|' at 2: write 'or'", 2),
        ("x == 'de'", 'unexpected character "\'" at 5: strings are in double quotes', 5),
        ("Billing >= 2", "unexpected character 'B' at 0: names and keywords are lower case", 0),
        ("a AND b", "unexpected character 'A' at 2: names and keywords are lower case", 2),
        ('sprache == "é" and é', "unexpected character 'é' at 19", 19),
        ("a-b", "unexpected character '-' at 1", 1),
        ("x == - 1", "unexpected character '-' at 5", 5),
        ("a # b", "unexpected character '#' at 2", 2),
        ("skill == 2fa", "unexpected character 'f' at 10: a number ends here", 10),
        ("billing >= 1.5", "unexpected character '.' at 12: levels are whole numbers", 12),
        ("1and a", "unexpected character 'a' at 1: a number ends here", 1),
        ('x == "de', "unterminated string at 5", 5),
        ('x == "de\\"', "unterminated string at 5", 5),
        ('x == "d\\e"', 'invalid escape at 7: only \\" and \\\\ are allowed in a string', 7),
        ('x == "a\tb"', "control character in a string at 7", 7),
        ('x == "a\x00b"', "control character in a string at 7", 7),
        ('x == "a\ud800b"', "control character in a string at 7", 7),
        (
            "a" * (MAX_LENGTH + 1),
            f"expression is too long at {MAX_LENGTH}: at most 1000 characters",
            1000,
        ),
        (
            " and ".join(["a"] * 101),
            f"too many tokens at 600: an expression has at most {MAX_TOKENS}",
            600,
        ),
        (
            nested(MAX_DEPTH + 1),
            f"too deeply nested at {MAX_DEPTH}: at most 32 levels of parentheses and 'not'",
            MAX_DEPTH,
        ),
        (
            "not " * (MAX_DEPTH + 1) + "a",
            f"too deeply nested at {4 * MAX_DEPTH}: at most 32 levels of parentheses and 'not'",
            4 * MAX_DEPTH,
        ),
        (
            "not (" * (MAX_DEPTH // 2) + "not a" + ")" * (MAX_DEPTH // 2),
            f"too deeply nested at {5 * MAX_DEPTH // 2}: at most 32 levels of parentheses"
            " and 'not'",
            5 * MAX_DEPTH // 2,
        ),
        (
            " and ".join([f"skill{n:010d}<1" for n in range(45)]),
            "expression is too long at 0: written out canonically it has 1075 characters,"
            " at most 1000",
            0,
        ),
    ],
)
def test_errors_say_what_and_where(text: str, message: str, position: int) -> None:
    with pytest.raises(ExpressionError) as raised:
        compile_expression(text)

    assert raised.value.message == message
    assert raised.value.position == position
    assert f" at {position}" in raised.value.message


def test_an_expression_error_is_a_400_with_its_message() -> None:
    with pytest.raises(InvalidInput) as raised:
        compile_expression("billing >=")

    assert raised.value.code == "invalid_input"
    assert str(raised.value) == "unexpected end of expression at 10: expected a value"


def test_the_bounds_themselves_are_allowed() -> None:
    assert compile_expression(nested(MAX_DEPTH)) == compile_expression("a")
    assert compile_expression("not " * MAX_DEPTH + "a").matches({"a": 1}) is True
    assert compile_expression(" and ".join(["a"] * 100)).root == And((truth("a"),) * 100)
    longest = "a" * MAX_LENGTH
    assert str(compile_expression(longest)) == longest


def test_hostile_inputs_are_refused_cheaply() -> None:
    hostile = [
        "(" * 10_000_000,
        "not " * 3_000_000,
        '"' + "x" * 10_000_000,
        "a" * 10_000_000,
        "(" * (MAX_LENGTH - 1) + "a",
        "not " * (MAX_LENGTH // 4),
    ]
    started = time.perf_counter()
    for text in hostile:
        with pytest.raises(ExpressionError):
            compile_expression(text)

    # Scanning any of the first four would take seconds; the length is checked first.
    assert time.perf_counter() - started < 0.5


# --- explanations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "attributes", "explained"),
    [
        (
            'language == "de" and billing >= 2',
            operator({"billing": 1}, language="de"),
            "billing >= 2 (billing is 1)",
        ),
        (
            'language == "de" and billing >= 2',
            operator(language="de"),
            "billing >= 2 (billing is missing)",
        ),
        (
            'language == "de" and billing >= 2',
            operator({"billing": 1}, language="fr"),
            'language == "de" (language is "fr"); billing >= 2 (billing is 1)',
        ),
        (
            '(sales >= 1 or vip) and not language in ["fr", "it"]',
            operator({"sales": 0}, language="de"),
            "sales >= 1 or vip (sales is 0, vip is missing)",
        ),
        (
            '(sales >= 1 or vip) and not language in ["fr", "it"]',
            operator({"vip": 1}, language="it"),
            'not language in ["fr", "it"] (language is "it")',
        ),
        (
            'languages has "de"',
            operator(languages={"fr": 50, "en": 90}),
            'languages has "de" (languages is ["en", "fr"])',
        ),
        (
            "languages has language",
            operator(),
            "languages has language (languages is [], language is missing)",
        ),
        ("a == a", {"a": 1.5, "b": True}, "matched"),
        ("b == false", {"b": True}, "b == false (b is true)"),
        ("false and a", {"a": 1}, "false"),
        ("odd", {"odd": Unsupported()}, "odd (odd is not a level (Unsupported))"),
        (
            'tags has "z"',
            {"tags": frozenset(f"t{n:02d}" for n in range(12))},
            'tags has "z" (tags is ["t00", "t01", "t02", "t03", "t04", "t05", "t06", "t07",'
            ' "t08", "t09", … 2 more])',
        ),
        ('note == "x"', {"note": "y" * 100}, f'note == "x" (note is "{"y" * 60}"…)'),
    ],
)
def test_explain_names_the_failed_clauses(
    text: str, attributes: dict[str, object], explained: str
) -> None:
    explanation = compile_expression(text).explain(attributes)

    assert str(explanation) == explained
    assert explanation.matched is (explained == "matched")


def test_an_explanation_can_be_stored_as_json() -> None:
    explanation = compile_expression('language == "de" and billing >= 2').explain(
        operator({"billing": 1}, {"de": 80}, language="de")
    )

    assert json.loads(json.dumps(explanation.model_dump(mode="json"))) == {
        "matched": False,
        "failures": [{"clause": "billing >= 2", "found": {"billing": "1"}}],
    }


# --- as a pydantic field -------------------------------------------------------------------


class SkillsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    required: Expression


def test_a_config_field_compiles_the_text_and_stores_the_canonical_form() -> None:
    config = SkillsConfig.model_validate_json('{"required": "language==\\"de\\" and(billing>=2)"}')

    assert config.required == compile_expression('language == "de" and billing >= 2')
    assert config.model_dump() == {"required": 'language == "de" and billing >= 2'}
    assert SkillsConfig.model_validate(config.model_dump()) == config
    assert SkillsConfig(required=config.required) == config
    assert SkillsConfig.model_json_schema()["properties"]["required"] == {
        "maxLength": MAX_LENGTH,
        "title": "Required",
        "type": "string",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("billing >= or", "unexpected token 'or' at 11: expected a value"),
        (2, "expected the expression as a string"),
        (None, "expected the expression as a string"),
    ],
)
def test_a_bad_config_field_is_a_field_error(value: object, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        SkillsConfig.model_validate({"required": value})

    assert [(error["loc"], error["msg"]) for error in raised.value.errors()] == [
        (("required",), message)
    ]


# --- properties ----------------------------------------------------------------------------

NAMES = ["billing", "sales", "vip", "language", "languages", "skills.billing", "tier", "_x", "in.x"]
TEXTS = ["de", "en", "fr", "", "x"]

names = st.sampled_from(NAMES)
literal_values: st.SearchStrategy[str | int | bool] = st.one_of(
    st.sampled_from(TEXTS),
    st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=6),
    st.integers(-3, 5),
    st.booleans(),
)
literals = literal_values.map(Literal)
values: st.SearchStrategy[Value] = st.one_of(names.map(Name), literals)
leaves: st.SearchStrategy[Condition] = st.one_of(
    st.one_of(names.map(Name), st.booleans().map(Literal)).map(Truth),
    st.builds(Compare, st.sampled_from(COMPARISONS), values, values),
    st.builds(In, values, st.lists(literals, max_size=4).map(tuple)),
)


def compound(children: st.SearchStrategy[Condition]) -> st.SearchStrategy[Condition]:
    several = st.lists(children, min_size=2, max_size=4).map(tuple)
    return st.one_of(children.map(Not), several.map(And), several.map(Or))


conditions = st.recursive(leaves, compound, max_leaves=12)

attribute_values = st.one_of(
    st.none(),
    st.integers(-3, 5),
    st.floats(-3, 5),
    st.booleans(),
    st.sampled_from(TEXTS),
    st.text(max_size=4),
    st.frozensets(st.one_of(st.sampled_from(TEXTS), st.integers(0, 3)), max_size=3),
    st.lists(st.sampled_from(TEXTS), max_size=3),
    st.builds(Unsupported),
    st.builds(dict),
)
attribute_maps = st.dictionaries(names, attribute_values, max_size=len(NAMES))


def reference_kind(value: object) -> tuple[str, Any]:
    """What the rules call the value: missing is level 0; bool is not a level."""
    if value is None:
        return "level", 0
    if value is True or value is False:
        return "bool", value
    if type(value) in (int, float):
        return "level", value
    if type(value) is str:
        return "text", value
    if type(value) in (set, frozenset, list, tuple):
        return "set", value
    return "other", value


def reference_truth(value: object) -> bool:
    kind, raw = reference_kind(value)
    if kind == "bool":
        return bool(raw)
    if kind == "level":
        return bool(raw > 0)
    if kind in ("text", "set"):
        return len(raw) > 0
    return False


def reference_equal(left: object, right: object) -> bool | None:
    left_kind, left_raw = reference_kind(left)
    right_kind, right_raw = reference_kind(right)
    if "other" in (left_kind, right_kind):
        return None
    if "bool" in (left_kind, right_kind):
        return reference_truth(left) == reference_truth(right)
    if left_kind == right_kind and left_kind in ("level", "text"):
        return bool(left_raw == right_raw)
    return None


def reference_value(value: Value, attributes: Mapping[str, object]) -> object:
    return attributes.get(value.name) if isinstance(value, Name) else value.value


def reference(node: Condition, attributes: Mapping[str, object]) -> bool:
    """The rules of routing/expressions.py's docstring, applied to the tree directly."""
    match node:
        case Truth(operand):
            return reference_truth(reference_value(operand, attributes))
        case In(operand, options):
            value = reference_value(operand, attributes)
            return any(reference_equal(value, option.value) for option in options)
        case Compare(operator, left_value, right_value):
            left = reference_value(left_value, attributes)
            right = reference_value(right_value, attributes)
            if operator == "==":
                return reference_equal(left, right) is True
            if operator == "!=":
                return reference_equal(left, right) is False
            if operator == "has":
                kind, raw = reference_kind(left)
                return kind == "set" and any(reference_equal(item, right) for item in raw)
            (left_kind, left_raw), (right_kind, right_raw) = (
                reference_kind(left),
                reference_kind(right),
            )
            if left_kind != right_kind or left_kind not in ("level", "text"):
                return False
            return bool(
                {
                    "<": left_raw < right_raw,
                    "<=": left_raw <= right_raw,
                    ">": left_raw > right_raw,
                    ">=": left_raw >= right_raw,
                }[operator]
            )
        case Not(operand):
            return not reference(operand, attributes)
        case And(operands):
            return all(reference(operand, attributes) for operand in operands)
        case Or(operands):
            return any(reference(operand, attributes) for operand in operands)
    raise AssertionError(f"not a condition: {node!r}")


def compiled_or_rejected(tree: Condition) -> Expression:
    """The tree compiled from its text; trees past the bounds are not what is tested here."""
    try:
        return compile_expression(str(tree))
    except ExpressionError as error:
        assume(not error.message.startswith(("too many tokens", "too deeply", "expression is too")))
        raise


@given(conditions, attribute_maps)
@settings(max_examples=400)
def test_compiled_expressions_agree_with_the_reference(
    tree: Condition, attributes: dict[str, object]
) -> None:
    expression = compiled_or_rejected(tree)

    assert expression.matches(attributes) is reference(tree, attributes)


def flattened(node: Condition) -> Condition:
    """The tree as the parser builds it: `and` in `and` (and `or` in `or`) is one flat list."""
    if isinstance(node, Not):
        return Not(flattened(node.operand))
    if isinstance(node, And | Or):
        operands: list[Condition] = []
        for operand in map(flattened, node.operands):
            operands.extend(operand.operands if type(operand) is type(node) else (operand,))
        return type(node)(tuple(operands))
    return node


@given(conditions)
@settings(max_examples=300)
def test_the_canonical_form_round_trips(tree: Condition) -> None:
    expression = compiled_or_rejected(tree)

    assert expression.root == flattened(tree)
    assert str(expression) == str(tree)
    assert compile_expression(str(expression)) == expression


@given(conditions, attribute_maps)
@settings(max_examples=300)
def test_explain_agrees_with_matches(tree: Condition, attributes: dict[str, object]) -> None:
    expression = compiled_or_rejected(tree)
    explanation = expression.explain(attributes)

    assert explanation.matched is expression.matches(attributes)
    assert bool(explanation.failures) is not explanation.matched
    for failure in explanation.failures:
        assert not compile_expression(failure.clause).matches(attributes)
        assert set(failure.found) <= set(NAMES)


SOUP = [
    *sorted(("and", "or", "not", "in", "has", "true", "false")),
    *("==", "!=", "<", "<=", ">", ">=", "(", ")", "[", "]", ","),
    *("billing", "languages", "skills.x", "a.", "_", "0", "42", "-1", "-", "1.5", "9x"),
    *('"de"', '"', '"\\', '"\\n"', '"a\\"b"', "'de'", "=", "!", "&", "|", "A", "é", "\x00"),
]
separators = st.sampled_from(["", " ", " ", "\n", "\t", "  "])
soups = st.lists(st.tuples(st.sampled_from(SOUP), separators), max_size=300).map(
    lambda parts: "".join(token + separator for token, separator in parts)
)


@st.composite
def mutants(draw: st.DrawFn) -> str:
    """The text of a well-formed expression with a few pieces dropped, repeated or replaced."""
    pieces = str(draw(conditions)).split(" ")
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(pieces) - 1))
        change = draw(st.sampled_from(["drop", "repeat", "replace", "join"]))
        if change == "drop":
            del pieces[index]
        elif change == "repeat":
            pieces.insert(index, pieces[index])
        elif change == "replace":
            pieces[index] = draw(st.sampled_from(SOUP))
        else:
            pieces[index : index + 2] = ["".join(pieces[index : index + 2])]
        if not pieces:
            break
    return " ".join(pieces)


@given(st.one_of(soups, mutants(), st.text(max_size=MAX_LENGTH + 50)), attribute_maps)
@settings(max_examples=1000)  # hypothesis' deadline (200 ms an example) bounds the time
@example("(" * MAX_LENGTH, {})
@example("not " * 250, {})
@example("x in [" + '"a",' * 199 + "]", {})
def test_any_text_compiles_or_is_refused_with_a_position(
    text: str, attributes: dict[str, object]
) -> None:
    refusal: ExpressionError | None = None
    try:
        expression = compile_expression(text)
    except ExpressionError as error:
        refusal = error
        event("refused: " + " ".join(error.message.split()[:2]))
    else:
        event("compiled")
        assert compile_expression(str(expression)) == expression
        assert expression.matches(attributes) in (True, False)
        assert expression.explain(attributes).matched is expression.matches(attributes)
    if refusal is not None:
        assert 0 <= refusal.position <= len(text)
        assert f" at {refusal.position}" in refusal.message
