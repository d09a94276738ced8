"""Skills expressions: the small, safe language in which a queue says who may take its work.

A queue's skills strategy holds a required-skills expression such as

    language == "de" and billing >= 2
    (sales >= 1 or vip) and not language in ["fr", "it"]
    languages has language and skills.returns >= 50

How routing uses it:

    expression = compile_expression(text)   # once, when the queue config is saved or loaded
    attributes = operator_attributes(operator.skills, operator.languages, {"language": "de"})
    expression.matches(attributes)          # per candidate operator: True or False
    expression.explain(attributes)          # why not, for the decision log:
                                            #   "billing >= 2 (billing is 1)"

Store `str(expression)` (the canonical form; it compiles back to an equal expression) in
`Queue.config`. `Expression` is also a pydantic type: a config model may declare a field
`required: Expression`, which accepts the text, reports a bad expression as a field error and
serializes back to the canonical text. `ExpressionError` is an `InvalidInput` (400) carrying the
character position of the problem.

The text is only ever tokenized and parsed here, by hand; it is never given to eval, exec or
ast. Input is bounded (`MAX_LENGTH` characters, `MAX_TOKENS` tokens, `MAX_DEPTH` levels of
parentheses and `not`), so parsing and evaluating are linear in a small input and a hostile
expression can exhaust neither the stack nor the CPU.

Grammar (keywords and names are lower case; whitespace separates tokens and is otherwise
ignored):

    expression := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | condition
    condition  := "(" expression ")"
                | value ("==" | "!=" | "<" | "<=" | ">" | ">=" | "has") value
                | value "in" "[" [literal ("," literal)*] "]"
                | name | "true" | "false"                      (a truth test)
    value      := name | literal
    literal    := string | integer | "true" | "false"
    name       := [a-z_][a-z0-9_.]*   (not a keyword: and or not in has true false)
    string     := '"' characters, with \\" and \\\\ as the only escapes '"'
    integer    := -?[0-9]+

So `not` binds tighter than `and`, which binds tighter than `or`, and a comparison binds
tighter than all three: `not language in ["fr"]` is `not (language in ["fr"])`.

The attribute model (what `operator_attributes` builds from the operator and the work):

- every skill by its name, with its level: `billing` is the operator's billing level;
- `skills.<name>` and `languages.<code>`: a skill's or a language's level, unambiguous;
- `skills` and `languages`: the set of names the operator has at a level above 0, for `has`
  (`languages has "de"`, `skills has "first-line"` for a name that is not a valid identifier);
- facts about the work, by name (e.g. `language`, `channel`, `priority_tier`); a fact hides
  a skill of the same name, which stays reachable as `skills.<name>`.

Evaluation rules (`matches` never raises, whatever the attributes hold):

- A missing attribute reads as level 0: `billing >= 2` is false, `billing < 2` is true.
- A name alone is true when its value is a level above 0, a non-empty string or set, or true.
- Levels compare with integers, strings with strings (case-sensitive); anything else (a
  string against a level, a set against anything) is false, for `!=` as much as for `==`.
- Comparing with `true` or `false` compares the other side's truth: `vip == false` is
  `not vip`.
- `a in [x, y]` is `a == x or a == y`; `s has x` is true when the set `s` holds an element
  equal to `x` (`x` may be a name: `languages has language`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Collection, Iterator, Mapping, Set
from dataclasses import dataclass
from operator import ge, gt, le, lt
from typing import Any, TypeGuard
from typing import Literal as TypingLiteral

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from core.errors import InvalidInput

MAX_LENGTH = 1000
MAX_TOKENS = 200
MAX_DEPTH = 32

KEYWORDS = frozenset({"and", "or", "not", "in", "has", "true", "false"})
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=", "has")

_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyz_")
_NAME_CHARS = _NAME_START | frozenset("0123456789.")
_DIGITS = frozenset("0123456789")
_WHITESPACE = frozenset(" \t\r\n")
_SYMBOLS = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",")
# What people coming from other languages type, and what to write instead.
_HINTS = {
    "=": "write '==' to compare",
    "!": "write 'not'",
    "&": "write 'and'",
    "|": "write 'or'",
    "'": "strings are in double quotes",
}
_SHOWN_TOKEN_CHARS = 30
_SHOWN_TEXT_CHARS = 60
_SHOWN_SET_ITEMS = 10


class ExpressionError(InvalidInput):
    """An expression that does not compile; `position` is the 0-based character offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


# --- the syntax tree -----------------------------------------------------------------------

LiteralValue = str | int | bool


@dataclass(frozen=True, slots=True, eq=False)
class Literal:
    """A string, integer or boolean written in the expression."""

    value: LiteralValue

    def __eq__(self, other: object) -> bool:
        # True == 1 in Python; in an expression `true` and `1` are different literals.
        return (
            isinstance(other, Literal)
            and type(other.value) is type(self.value)
            and other.value == self.value
        )

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))

    def __str__(self) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, int):
            return str(self.value)
        return '"' + self.value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Name:
    """An attribute of the operator or of the work, looked up at evaluation."""

    name: str

    def __str__(self) -> str:
        return self.name


Value = Name | Literal


@dataclass(frozen=True, slots=True)
class Truth:
    """A value standing alone: true when the value is truthy (a level above 0, ...)."""

    operand: Value

    def __str__(self) -> str:
        return str(self.operand)


@dataclass(frozen=True, slots=True)
class Compare:
    operator: str  # one of COMPARISONS
    left: Value
    right: Value

    def __str__(self) -> str:
        return f"{self.left} {self.operator} {self.right}"


@dataclass(frozen=True, slots=True)
class In:
    operand: Value
    options: tuple[Literal, ...]

    def __str__(self) -> str:
        return f"{self.operand} in [{', '.join(str(option) for option in self.options)}]"


@dataclass(frozen=True, slots=True)
class Not:
    operand: Condition

    def __str__(self) -> str:
        return "not " + _wrapped(self.operand, _NOT)


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Condition, ...]

    def __str__(self) -> str:
        return " and ".join(_wrapped(operand, _AND) for operand in self.operands)


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Condition, ...]

    def __str__(self) -> str:
        return " or ".join(_wrapped(operand, _OR) for operand in self.operands)


Condition = Truth | Compare | In | Not | And | Or

_OR, _AND, _NOT, _ATOM = range(4)


def _binding(node: Condition) -> int:
    if isinstance(node, Or):
        return _OR
    if isinstance(node, And):
        return _AND
    if isinstance(node, Not):
        return _NOT
    return _ATOM


def _wrapped(node: Condition, context: int) -> str:
    """`node` as text inside an operator binding as tightly as `context`."""
    return f"({node})" if _binding(node) < context else str(node)


def _names(node: Condition | Value) -> Iterator[str]:
    """The attribute names `node` reads, in order, with repeats."""
    if isinstance(node, Name):
        yield node.name
    elif isinstance(node, Truth | Not):
        yield from _names(node.operand)
    elif isinstance(node, Compare):
        yield from _names(node.left)
        yield from _names(node.right)
    elif isinstance(node, In):
        yield from _names(node.operand)
    elif isinstance(node, And | Or):
        for operand in node.operands:
            yield from _names(operand)


# --- tokenizer -----------------------------------------------------------------------------

TokenKind = TypingLiteral["name", "keyword", "string", "integer", "symbol", "end"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: TokenKind
    text: str  # as written (a string's decoded value is in `value`)
    position: int
    value: LiteralValue = ""

    def shown(self) -> str:
        if self.kind == "end":
            return "end of expression"
        text = self.text
        if len(text) > _SHOWN_TOKEN_CHARS:
            text = text[:_SHOWN_TOKEN_CHARS] + "…"
        return f"token '{text}'"

    def is_keyword(self, word: str) -> bool:
        return self.kind == "keyword" and self.text == word

    def is_symbol(self, symbol: str) -> bool:
        return self.kind == "symbol" and self.text == symbol


def _tokenize(text: str) -> list[_Token]:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long at {MAX_LENGTH}: at most {MAX_LENGTH} characters", MAX_LENGTH
        )
    tokens: list[_Token] = []
    position = 0
    while True:
        while position < len(text) and text[position] in _WHITESPACE:
            position += 1
        if position == len(text):
            tokens.append(_Token("end", "", position))
            return tokens
        if len(tokens) == MAX_TOKENS:
            raise ExpressionError(
                f"too many tokens at {position}: an expression has at most {MAX_TOKENS}", position
            )
        token = _next_token(text, position)
        tokens.append(token)
        position += len(token.text)


def _next_token(text: str, start: int) -> _Token:
    char = text[start]
    if char in _NAME_START:
        end = _run(text, start + 1, _NAME_CHARS)
        word = text[start:end]
        return _Token("keyword" if word in KEYWORDS else "name", word, start)
    if char in _DIGITS or (char == "-" and text[start + 1 : start + 2] in _DIGITS):
        end = _run(text, start + 1, _DIGITS)
        if end < len(text) and text[end] in _NAME_CHARS:
            reason = "levels are whole numbers" if text[end] == "." else "a number ends here"
            raise ExpressionError(f"unexpected character {text[end]!r} at {end}: {reason}", end)
        return _Token("integer", text[start:end], start, int(text[start:end]))
    if char == '"':
        return _string_token(text, start)
    for symbol in _SYMBOLS:
        if text.startswith(symbol, start):
            return _Token("symbol", symbol, start)
    hint = _HINTS.get(char, "names and keywords are lower case" if char.isupper() else "")
    raise ExpressionError(
        f"unexpected character {char!r} at {start}" + (f": {hint}" if hint else ""), start
    )


def _run(text: str, position: int, allowed: frozenset[str]) -> int:
    """The end of the run of `allowed` characters starting at `position`."""
    while position < len(text) and text[position] in allowed:
        position += 1
    return position


def _string_token(text: str, start: int) -> _Token:
    decoded: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == '"':
            return _Token("string", text[start : position + 1], start, "".join(decoded))
        if char == "\\":
            escaped = text[position + 1 : position + 2]
            if escaped not in ('"', "\\"):
                raise ExpressionError(
                    f'invalid escape at {position}: only \\" and \\\\ are allowed in a string',
                    position,
                )
            decoded.append(escaped)
            position += 2
            continue
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ExpressionError(f"control character in a string at {position}", position)
        decoded.append(char)
        position += 1
    raise ExpressionError(f"unterminated string at {start}", start)


# --- parser --------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list; `depth` bounds the recursion (MAX_DEPTH)."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def parse(self) -> Condition:
        condition = self.expression()
        if self.peek().kind != "end":
            raise self.unexpected("expected 'and', 'or' or the end")
        return condition

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def unexpected(self, expected: str) -> ExpressionError:
        token = self.peek()
        return ExpressionError(
            f"unexpected {token.shown()} at {token.position}: {expected}", token.position
        )

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(
                f"too deeply nested at {token.position}: at most {MAX_DEPTH} levels of"
                " parentheses and 'not'",
                token.position,
            )

    def expression(self) -> Condition:
        operands = [self.conjunction()]
        while self.peek().is_keyword("or"):
            self.advance()
            operands.append(self.conjunction())
        return _joined(Or, operands)

    def conjunction(self) -> Condition:
        operands = [self.negation()]
        while self.peek().is_keyword("and"):
            self.advance()
            operands.append(self.negation())
        return _joined(And, operands)

    def negation(self) -> Condition:
        # A loop, not recursion: `not not not …` counts towards the depth bound all the same.
        negations = 0
        while self.peek().is_keyword("not"):
            self.enter(self.advance())
            negations += 1
        condition = self.condition()
        for _ in range(negations):
            condition = Not(condition)
        self.depth -= negations
        return condition

    def condition(self) -> Condition:
        if self.peek().is_symbol("("):
            opening = self.advance()
            self.enter(opening)
            condition = self.expression()
            if not self.peek().is_symbol(")"):
                raise self.unexpected(f"expected ')' to close the '(' at {opening.position}")
            self.advance()
            self.depth -= 1
            return condition
        left = self.value("expected a value, 'not' or '('")
        operator = self.peek()
        if (operator.kind == "symbol" and operator.text in COMPARISONS) or operator.is_keyword(
            "has"
        ):
            self.advance()
            return Compare(operator.text, left, self.value("expected a value"))
        if operator.is_keyword("in"):
            self.advance()
            return In(left, self.options(left))
        if isinstance(left, Literal) and not isinstance(left.value, bool):
            raise self.unexpected(f"expected a comparison after {left}")
        return Truth(left)

    def value(self, expected: str) -> Value:
        token = self.peek()
        if token.kind == "name":
            self.advance()
            return Name(token.text)
        return self.literal(expected)

    def literal(self, expected: str) -> Literal:
        token = self.peek()
        if token.kind in ("string", "integer"):
            self.advance()
            return Literal(token.value)
        if token.is_keyword("true") or token.is_keyword("false"):
            self.advance()
            return Literal(token.text == "true")
        raise self.unexpected(expected)

    def options(self, operand: Value) -> tuple[Literal, ...]:
        if not self.peek().is_symbol("["):
            hint = ""
            if self.peek().kind == "name":
                hint = f" (to look in a set, write '{self.peek().text} has {operand}')"
            raise self.unexpected(f"expected '[' after 'in'{hint}")
        self.advance()
        options: list[Literal] = []
        if self.peek().is_symbol("]"):
            self.advance()
            return ()
        while True:
            options.append(self.literal("expected a string, integer, true or false"))
            if self.peek().is_symbol("]"):
                self.advance()
                return tuple(options)
            if not self.peek().is_symbol(","):
                raise self.unexpected("expected ',' or ']'")
            self.advance()


def _joined(kind: type[And] | type[Or], operands: list[Condition]) -> Condition:
    """One operand as itself; several as one flat `kind` (`a and (b and c)` is `a and b and c`)."""
    if len(operands) == 1:
        return operands[0]
    flat: list[Condition] = []
    for operand in operands:
        if isinstance(operand, kind):
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    return kind(tuple(flat))


# --- evaluation ----------------------------------------------------------------------------


def _is_level(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_set(value: object) -> TypeGuard[Collection[object]]:
    return isinstance(value, Set | list | tuple)


def _truthy(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if _is_level(value):
        return value > 0
    if isinstance(value, str) or _is_set(value):
        return len(value) > 0
    return False


def _equal(left: object, right: object) -> bool | None:
    """Whether the values are equal; None when they are of kinds that do not compare."""
    left = 0 if left is None else left
    right = 0 if right is None else right
    if isinstance(left, bool) or isinstance(right, bool):
        other = right if isinstance(left, bool) else left
        if not (isinstance(other, bool | str) or _is_level(other) or _is_set(other)):
            return None
        return _truthy(left) == _truthy(right)
    if _is_level(left) and _is_level(right):
        return left == right
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    return None


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {"<": lt, "<=": le, ">": gt, ">=": ge}


def _compare(operator: str, left: object, right: object) -> bool:
    if operator == "==":
        return _equal(left, right) is True
    if operator == "!=":
        return _equal(left, right) is False
    if operator == "has":
        return _is_set(left) and any(_equal(item, right) is True for item in left)
    left = 0 if left is None else left
    right = 0 if right is None else right
    comparable = (_is_level(left) and _is_level(right)) or (
        isinstance(left, str) and isinstance(right, str)
    )
    return comparable and bool(_ORDERINGS[operator](left, right))


def _resolve(value: Value, attributes: Mapping[str, object]) -> object:
    if isinstance(value, Name):
        return attributes.get(value.name)
    return value.value


def _evaluate(node: Condition, attributes: Mapping[str, object]) -> bool:
    if isinstance(node, Truth):
        return _truthy(_resolve(node.operand, attributes))
    if isinstance(node, Compare):
        left = _resolve(node.left, attributes)
        return _compare(node.operator, left, _resolve(node.right, attributes))
    if isinstance(node, In):
        value = _resolve(node.operand, attributes)
        return any(_equal(value, option.value) is True for option in node.options)
    if isinstance(node, Not):
        return not _evaluate(node.operand, attributes)
    if isinstance(node, And):
        return all(_evaluate(operand, attributes) for operand in node.operands)
    return any(_evaluate(operand, attributes) for operand in node.operands)


def _describe(value: object) -> str:
    """An attribute's value as the decision log shows it."""
    if value is None:
        return "missing"
    if isinstance(value, str) and len(value) > _SHOWN_TEXT_CHARS:
        return str(Literal(value[:_SHOWN_TEXT_CHARS])) + "…"
    if isinstance(value, bool | int | str):
        return str(Literal(value))
    if _is_level(value):
        return repr(value)
    if _is_set(value):
        items = sorted(_describe(item) for item in value)
        more = len(items) - _SHOWN_SET_ITEMS
        shown = items[:_SHOWN_SET_ITEMS] + ([f"… {more} more"] if more > 0 else [])
        return "[" + ", ".join(shown) + "]"
    return f"not a level ({type(value).__name__})"


# --- the public API ------------------------------------------------------------------------


class Failure(BaseModel):
    """One clause that is false for the operator, with what the operator has for its names."""

    model_config = ConfigDict(frozen=True)

    clause: str
    found: dict[str, str]

    def __str__(self) -> str:
        if not self.found:
            return self.clause
        found = ", ".join(f"{name} is {value}" for name, value in self.found.items())
        return f"{self.clause} ({found})"


class Explanation(BaseModel):
    """Whether the expression matched and, if not, the clauses of its top `and` that failed."""

    model_config = ConfigDict(frozen=True)

    matched: bool
    failures: tuple[Failure, ...] = ()

    def __str__(self) -> str:
        return "matched" if self.matched else "; ".join(str(failure) for failure in self.failures)


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled skills expression; build it with `compile_expression`."""

    root: Condition

    def matches(self, attributes: Mapping[str, object]) -> bool:
        return _evaluate(self.root, attributes)

    def names(self) -> Iterator[str]:
        """The attribute names the expression reads, in order, with repeats."""
        return _names(self.root)

    def explain(self, attributes: Mapping[str, object]) -> Explanation:
        """The failing clauses: each false operand of the top `and`, or the whole expression."""
        if _evaluate(self.root, attributes):
            return Explanation(matched=True)
        clauses = self.root.operands if isinstance(self.root, And) else (self.root,)
        failures = tuple(
            Failure(
                clause=str(clause),
                found={name: _describe(attributes.get(name)) for name in _names(clause)},
            )
            for clause in clauses
            if not _evaluate(clause, attributes)
        )
        return Explanation(matched=False, failures=failures)

    def __str__(self) -> str:
        return str(self.root)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validated,
            json_schema_input_schema=core_schema.str_schema(max_length=MAX_LENGTH),
            serialization=core_schema.to_string_ser_schema(when_used="always"),
        )


def compile_expression(text: str) -> Expression:
    """Parse `text`; raises ExpressionError with the position of the first problem."""
    expression = Expression(_Parser(_tokenize(text)).parse())
    # The canonical form spaces out operators, so it can outgrow the input; refusing it here
    # keeps every stored canonical form compilable.
    canonical_length = len(str(expression))
    if canonical_length > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long at 0: written out canonically it has {canonical_length}"
            f" characters, at most {MAX_LENGTH}",
            0,
        )
    return expression


def _validated(value: object) -> Expression:
    """A pydantic field's value: an Expression as it is, a text compiled."""
    if isinstance(value, Expression):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "expected the expression as a string")
    try:
        return compile_expression(value)
    except ExpressionError as error:
        raise PydanticCustomError(
            "skills_expression", "{reason}", {"reason": error.message}
        ) from None


def operator_attributes(
    skills: Mapping[str, object],
    languages: Mapping[str, object],
    facts: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The attributes an expression sees for one operator and one piece of work.

    `skills` and `languages` are `Operator.skills` / `Operator.languages` (name -> level);
    entries whose level is not a number are ignored. `facts` describe the work.
    """
    skill_levels = {name: level for name, level in skills.items() if _is_level(level)}
    language_levels = {code: level for code, level in languages.items() if _is_level(level)}
    attributes: dict[str, object] = dict(skill_levels)
    attributes.update(facts or {})
    attributes.update({f"skills.{name}": level for name, level in skill_levels.items()})
    attributes.update({f"languages.{code}": level for code, level in language_levels.items()})
    attributes["skills"] = frozenset(name for name, level in skill_levels.items() if _truthy(level))
    attributes["languages"] = frozenset(
        code for code, level in language_levels.items() if _truthy(level)
    )
    return attributes
