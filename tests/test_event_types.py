"""One event catalogue (core/event_types.py): every type omnicrm emits is declared once, with
what its ids mean and who receives it; an undeclared type is an error where it is emitted."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from core import event_types
from core.db import SessionFactory
from core.event_types import (
    CATALOG,
    CONVERSATION_BY_STATE,
    OUTBOX_BY_STATUS,
    Audience,
    UnknownEventType,
)
from core.events import Event, EventBus, emit
from core.models import Contact, OutboxStatus

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "routing", "channels", "web", "erp_bridge")
# The names emit sites may pass as an event's type: the catalogue's constants and its tables
# of types chosen at run time.
CONSTANTS = {
    name
    for name, value in vars(event_types).items()
    if name.isupper() and isinstance(value, str) and value in CATALOG
}
TABLES = {"CONVERSATION_BY_STATE", "OUTBOX_BY_STATUS"}


def _sources() -> list[tuple[Path, ast.AST]]:
    return [
        (path, ast.parse(path.read_text(), str(path)))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


def _type_argument(node: ast.Call) -> ast.expr | None:
    if node.args:
        return node.args[0]
    return next((kw.value for kw in node.keywords if kw.arg == "type"), None)


def test_every_event_the_code_constructs_names_a_declared_type() -> None:
    """`Event(...)` takes a catalogue constant (or one of its tables), never a string: a string
    could be misspelt into a type nobody receives."""
    wrong: list[str] = []
    constructed = 0
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Event"
            ):
                continue
            constructed += 1
            first = _type_argument(node)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if isinstance(first, ast.Name) and first.id in CONSTANTS:
                continue
            if (
                isinstance(first, ast.Subscript)
                and isinstance(first.value, ast.Name)
                and first.value.id in TABLES
            ):
                continue
            wrong.append(f"{where}: {ast.unparse(first) if first else 'no type'}")
    assert constructed > 30  # the scan sees the emit sites
    assert wrong == [], "construct events with a constant from core/event_types.py"


def test_types_compared_by_name_are_declared() -> None:
    """Consumers that compare `event.type` with a string compare with a declared one."""
    undeclared: list[str] = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            if not any(isinstance(side, ast.Attribute) and side.attr == "type" for side in sides):
                continue
            for side in sides:
                texts = [side] if isinstance(side, ast.Constant) else []
                if isinstance(side, ast.Tuple | ast.Set | ast.List):
                    texts = [item for item in side.elts if isinstance(item, ast.Constant)]
                undeclared += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: {text.value}"
                    for text in texts
                    if isinstance(text.value, str) and "." in text.value
                    if text.value not in CATALOG
                ]
    assert undeclared == []


async def test_emitting_an_undeclared_type_is_an_error_and_publishes_nothing(
    sessions: SessionFactory, bus: EventBus
) -> None:
    heard: list[Event] = []
    bus.add_listener(heard.append)
    async with sessions() as session:
        session.add(Contact(display_name="Kim"))
        await session.flush()
        with pytest.raises(UnknownEventType, match=r"contact\.creatd"):
            await emit(session, Event("contact.creatd", {"contact": 1}))
        await session.commit()  # whatever the caller does next, nothing undeclared goes out
        assert await session.scalar(select(Contact.display_name)) == "Kim"
    async with sessions() as session, session.begin():
        await emit(session, Event(event_types.CONTACT_CREATED, {"contact": 1}))
    assert [event.type for event in heard] == ["contact.created"]


def test_types_chosen_at_run_time_cover_every_state() -> None:
    assert set(OUTBOX_BY_STATUS) == {str(status) for status in OutboxStatus}
    assert set(CONVERSATION_BY_STATE) == {"created", "reopened"}
    assert all(name in CATALOG for name in [*OUTBOX_BY_STATUS.values()])


def test_each_type_says_what_it_is_about_and_the_placed_ones_carry_their_audience() -> None:
    for name, declared in CATALOG.items():
        assert declared.name == name
        assert declared.about
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+)?", name), name
        if declared.audience is Audience.PLACED:
            assert {"queues", "operators"} <= set(declared.labels), name
        if declared.audience is Audience.OPERATOR:
            assert "operator" in declared.ids, name


def test_the_architecture_document_tables_every_declared_type() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Events", 1)[1].split("\n## ", 1)[0]
    tabled = set(re.findall(r"^\| `([a-z_.]+)` \|", section, flags=re.MULTILINE))
    assert tabled == set(CATALOG)
