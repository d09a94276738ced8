"""Sales pipelines (core/pipelines.py, web/routes_pipelines.py) and the leads that go through
them (core/leads.py, web/routes_leads.py): admins shape the pipelines, the board shows each
stage's leads with their value and next step, a move is recorded (a reason when lost, a
follow-up when the stage asks for one), and a lead is made from a conversation in one call.

Every test runs on a `ManualClock` starting on Monday 2 March 2026 09:00 UTC, so times in the
answers are exact and no test depends on today's date.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from core import clock, pipelines
from core.audit import Actor
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, LeadRequest, ingest
from core.leads import NewLead, create_lead
from core.models import (
    AuditEntry,
    Contact,
    IdentityKind,
    InteractionKind,
    Lead,
    LeadStageChange,
    Operator,
    Role,
    Task,
)
from tests.conftest import User, UserFactory
from tests.test_tasks_api import conversation_in, queue_with

pytestmark = pytest.mark.both_databases  # tests/conftest.py


START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_serial = itertools.count(1)

SALES_STAGES = [
    # key, outcome, probability, follow-up days
    ("new", "open", 10, None),
    ("qualified", "open", 30, None),
    ("proposal", "open", 60, 2),
    ("won", "won", 100, None),
    ("lost", "lost", 0, None),
]

RENEWALS: dict[str, Any] = {
    "name": "Renewals",
    "position": 1,
    "stages": [
        {
            "key": "due",
            "name": "Renewal due",
            "probability": 50,
            "follow_up_days": 1,
            "follow_up_note": "Ask about the renewal",
        },
        {"key": "quoted", "name": "Quoted", "probability": 80},
        {"key": "renewed", "name": "Renewed", "probability": 100, "outcome": "won"},
        {"key": "churned", "name": "Churned", "outcome": "lost"},
    ],
}


@pytest.fixture(autouse=True)
def manual_clock() -> Iterator[clock.ManualClock]:
    manual = clock.ManualClock(START)
    with clock.using(manual):
        yield manual


# --- helpers ------------------------------------------------------------------------------------


async def json_of(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def error_of(response: Any, status: int, code: str) -> dict[str, str]:
    """The fields of an error answer (asserting its status and code)."""
    body = await json_of(response, status)
    assert body["error"]["code"] == code, body
    return dict(body["error"].get("fields") or {})


def operator_actor(user: User) -> Actor:
    return Actor(f"operator-{user.operator.id}", Role(user.operator.role), user.operator.id)


async def web_form_lead(
    sessions: SessionFactory, queue_id: int | None = None, *, source: str = "form:contact"
) -> int:
    """A web form's submission asking for a lead (ingest makes it); the lead's id."""
    serial = next(_serial)
    async with sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel="webform",
                external_id=f"submission-{serial}",
                addresses=[Address(IdentityKind.EMAIL, f"prospect{serial}@example.com")],
                display_name=f"Prospect {serial}",
                kind=InteractionKind.FORM,
                text="please call me back",
                queue_id=queue_id,
                lead=LeadRequest(source=source),
            ),
        )
    assert result.lead_id is not None
    return result.lead_id


async def contact(sessions: SessionFactory, name: str) -> int:
    async with sessions() as session, session.begin():
        row = Contact(display_name=name)
        session.add(row)
        await session.flush()
        return row.id


async def new_lead(user: User, status: int = 201, **body: Any) -> Any:
    return await json_of(await user.post("/api/v1/leads", json=body), status)


async def move(user: User, lead_id: int, **body: Any) -> Any:
    return await json_of(await user.patch(f"/api/v1/leads/{lead_id}", json=body), 200)


async def pipelines_of(user: User, **params: Any) -> list[dict[str, Any]]:
    return list(await json_of(await user.get("/api/v1/pipelines", params=params), 200))


async def sales(user: User) -> dict[str, Any]:
    [found] = [item for item in await pipelines_of(user) if item["name"] == "Sales"]
    return found


def body_of(pipeline: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A PUT body that keeps `pipeline` as it is but for `changes`."""
    stage_fields = ("key", "name", "probability", "outcome", "follow_up_days", "follow_up_note")
    return {
        "name": pipeline["name"],
        "position": pipeline["position"],
        "archived": pipeline["archived"],
        "stages": [{key: stage[key] for key in stage_fields} for stage in pipeline["stages"]],
        **changes,
    }


async def board(user: User, pipeline_id: int, **params: Any) -> Any:
    return await json_of(
        await user.get(f"/api/v1/pipelines/{pipeline_id}/board", params=params), 200
    )


def column(found: dict[str, Any], key: str) -> dict[str, Any]:
    [match] = [item for item in found["columns"] if item["stage"]["key"] == key]
    return dict(match)


def card_ids(found: dict[str, Any], key: str | None = None) -> list[int]:
    columns = found["columns"] if key is None else [column(found, key)]
    return [card["lead"]["id"] for item in columns for card in item["cards"]]


async def history(sessions: SessionFactory, lead_id: int) -> list[LeadStageChange]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(LeadStageChange)
                .where(LeadStageChange.lead_id == lead_id)
                .order_by(LeadStageChange.id)
            )
        )


def moves(rows: list[LeadStageChange]) -> list[tuple[str | None, str]]:
    return [(row.from_stage, row.to_stage) for row in rows]


async def lead_row(sessions: SessionFactory, lead_id: int) -> Lead:
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
    assert lead is not None
    return lead


async def lead_count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Lead)) or 0)


async def audit_rows(sessions: SessionFactory, *actions: str) -> list[AuditEntry]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action.in_(actions)).order_by(AuditEntry.id)
            )
        )


async def tasks_of_lead(sessions: SessionFactory, lead_id: int) -> list[Task]:
    async with sessions() as session:
        return list(
            await session.scalars(select(Task).where(Task.lead_id == lead_id).order_by(Task.id))
        )


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


# --- pipelines ----------------------------------------------------------------------------------


@pytest.mark.sqlite_only
async def test_every_installation_has_the_sales_pipeline(make_user: UserFactory) -> None:
    ann = await make_user(Role.OPERATOR)
    [pipeline] = await pipelines_of(ann)
    assert (pipeline["name"], pipeline["archived"]) == ("Sales", False)
    stages = pipeline["stages"]
    assert [
        (s["key"], s["outcome"], s["probability"], s["follow_up_days"]) for s in stages
    ] == SALES_STAGES
    assert [s["position"] for s in stages] == [0, 1, 2, 3, 4]
    assert stages[2]["follow_up_note"] == "Call back about the proposal"


@pytest.mark.sqlite_only
async def test_admins_add_and_replace_pipelines(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ada = await make_user(Role.ADMIN)
    ann = await make_user(Role.OPERATOR)
    created = await json_of(await ada.post("/api/v1/pipelines", json=RENEWALS), 201)
    assert (created["name"], created["position"], created["archived"]) == ("Renewals", 1, False)
    assert [(s["key"], s["position"], s["outcome"]) for s in created["stages"]] == [
        ("due", 0, "open"),
        ("quoted", 1, "open"),
        ("renewed", 2, "won"),
        ("churned", 3, "lost"),
    ]
    assert created["stages"][0]["follow_up_note"] == "Ask about the renewal"
    assert [p["name"] for p in await pipelines_of(ann)] == ["Sales", "Renewals"]

    # Renamed, first on the board, "quoted" dropped, "signed" added, "due" moved after it.
    replaced = await json_of(
        await ada.put(
            f"/api/v1/pipelines/{created['id']}",
            json={
                "name": "Renewals 2027",
                "position": 0,
                "stages": [
                    {"key": "signed", "name": "Signed", "probability": 90},
                    {"key": "due", "name": "Due", "probability": 40},
                    {"key": "renewed", "name": "Renewed", "probability": 100, "outcome": "won"},
                    {"key": "churned", "name": "Churned", "outcome": "lost"},
                ],
            },
        ),
        200,
    )
    assert replaced["id"] == created["id"]
    assert [(s["key"], s["name"], s["position"], s["probability"]) for s in replaced["stages"]] == [
        ("signed", "Signed", 0, 90),
        ("due", "Due", 1, 40),
        ("renewed", "Renewed", 2, 100),
        ("churned", "Churned", 3, 0),
    ]
    # The replaced rule is gone with the body that left it out.
    assert replaced["stages"][1]["follow_up_days"] is None
    sales_pipeline = await sales(ada)
    await json_of(
        await ada.put(
            f"/api/v1/pipelines/{sales_pipeline['id']}", json=body_of(sales_pipeline, position=2)
        ),
        200,
    )
    listed = await pipelines_of(ann)
    assert [p["name"] for p in listed] == ["Renewals 2027", "Sales"]
    assert listed[0]["stages"] == replaced["stages"]

    archived = body_of(listed[0], archived=True)
    await json_of(await ada.put(f"/api/v1/pipelines/{created['id']}", json=archived), 200)
    assert [p["name"] for p in await pipelines_of(ann)] == ["Sales"]
    everything = await pipelines_of(ann, include_archived="true")
    assert [(p["name"], p["archived"]) for p in everything] == [
        ("Renewals 2027", True),
        ("Sales", False),
    ]
    entries = await audit_rows(sessions, "pipeline.create", "pipeline.update")
    assert [(e.action, e.actor_id, e.entity_id) for e in entries] == [
        ("pipeline.create", ada.operator.id, str(created["id"])),
        ("pipeline.update", ada.operator.id, str(created["id"])),
        ("pipeline.update", ada.operator.id, str(sales_pipeline["id"])),
        ("pipeline.update", ada.operator.id, str(created["id"])),
    ]
    assert entries[1].details == {
        "name": "Renewals 2027",
        "stages": ["signed", "due", "renewed", "churned"],
    }


@pytest.mark.sqlite_only
@pytest.mark.parametrize("role", [Role.OPERATOR, Role.SUPERVISOR])
async def test_only_admins_change_pipelines(make_user: UserFactory, role: Role) -> None:
    user = await make_user(role)
    before = await pipelines_of(user)
    await error_of(await user.post("/api/v1/pipelines", json=RENEWALS), 403, "forbidden")
    renamed = body_of(before[0], name="Mine now")
    response = await user.put(f"/api/v1/pipelines/{before[0]['id']}", json=renamed)
    await error_of(response, 403, "forbidden")
    assert await pipelines_of(user, include_archived="true") == before


OPEN = {"key": "talking", "name": "Talking", "probability": 20}
WON = {"key": "won", "name": "Won", "probability": 100, "outcome": "won"}
LOST = {"key": "lost", "name": "Lost", "outcome": "lost"}


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"stages": [OPEN, {**WON, "key": "Won Deal"}, LOST]}, "stages.1.key"),
        ({"stages": [OPEN, {**WON, "key": "w" * 41}, LOST]}, "stages.1.key"),
        ({"stages": [OPEN, WON, {**LOST, "key": "won"}]}, "stages.2.key"),
        ({"stages": [OPEN, LOST]}, "stages"),
        ({"stages": [OPEN, WON]}, "stages"),
        ({"stages": [WON, LOST]}, "stages"),
        ({"stages": []}, "stages"),
        ({"stages": [OPEN, {**WON, "probability": 101}, LOST]}, "stages.1.probability"),
        ({"stages": [{**OPEN, "probability": -1}, WON, LOST]}, "stages.0.probability"),
        ({"stages": [{**OPEN, "follow_up_days": 366}, WON, LOST]}, "stages.0.follow_up_days"),
        ({"stages": [{**OPEN, "name": "  "}, WON, LOST]}, "stages.0.name"),
        ({"stages": [{**OPEN, "outcome": "maybe"}, WON, LOST]}, "stages.0.outcome"),
        ({"stages": [{**OPEN, "colour": "red"}, WON, LOST]}, "stages.0.colour"),
        ({"name": "   "}, "name"),
    ],
)
async def test_a_bad_pipeline_is_400_naming_the_field(
    make_user: UserFactory, changes: dict[str, Any], field: str
) -> None:
    ada = await make_user(Role.ADMIN)
    before = await pipelines_of(ada, include_archived="true")
    created = await ada.post(
        "/api/v1/pipelines", json={"name": "Broken", "stages": [OPEN, WON, LOST], **changes}
    )
    assert field in await error_of(created, 400, "invalid_input")
    replaced = await ada.put(
        f"/api/v1/pipelines/{before[0]['id']}", json=body_of(before[0], **changes)
    )
    assert field in await error_of(replaced, 400, "invalid_input")
    assert await pipelines_of(ada, include_archived="true") == before


@pytest.mark.sqlite_only
async def test_a_pipeline_name_is_taken_whatever_its_case(make_user: UserFactory) -> None:
    ada = await make_user(Role.ADMIN)
    taken = await ada.post("/api/v1/pipelines", json={**RENEWALS, "name": "sales"})
    assert "name" in await error_of(taken, 409, "conflict")
    renewals = await json_of(await ada.post("/api/v1/pipelines", json=RENEWALS), 201)
    renamed = await ada.put(
        f"/api/v1/pipelines/{renewals['id']}", json=body_of(renewals, name="SALES")
    )
    assert "name" in await error_of(renamed, 409, "conflict")
    # Its own name is no conflict.
    sales_pipeline = await sales(ada)
    await json_of(
        await ada.put(f"/api/v1/pipelines/{sales_pipeline['id']}", json=body_of(sales_pipeline)),
        200,
    )
    assert [p["name"] for p in await pipelines_of(ada)] == ["Sales", "Renewals"]


@pytest.mark.sqlite_only
async def test_a_stage_holding_leads_cannot_be_removed_nor_change_its_outcome(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ada = await make_user(Role.ADMIN)
    lead = await new_lead(ada, contact_id=await contact(sessions, "Anna Novak"))
    await move(ada, lead["id"], stage="qualified")
    pipeline = await sales(ada)
    without_qualified = body_of(pipeline)
    without_qualified["stages"] = [
        s for s in without_qualified["stages"] if s["key"] != "qualified"
    ]
    # Made a won stage, its open lead would be won without being closed.
    qualified_is_won = body_of(pipeline)
    qualified_is_won["stages"][1]["outcome"] = "won"
    for body in (without_qualified, qualified_is_won):
        refused = await ada.put(f"/api/v1/pipelines/{pipeline['id']}", json=body)
        fields = await error_of(refused, 409, "conflict")
        assert "qualified (1)" in fields["stages"]
    assert await sales(ada) == pipeline
    row = await lead_row(sessions, lead["id"])
    assert (row.stage, row.closed_at) == ("qualified", None)
    # Its name and probability may change.
    renamed = body_of(pipeline)
    renamed["stages"][1].update(name="Interested", probability=40)
    replaced = await json_of(
        await ada.put(f"/api/v1/pipelines/{pipeline['id']}", json=renamed), 200
    )
    assert (replaced["stages"][1]["name"], replaced["stages"][1]["probability"]) == (
        "Interested",
        40,
    )
    pipeline = replaced

    # An empty stage may go; leads cannot enter it any more.
    without_proposal = body_of(pipeline)
    without_proposal["stages"] = [s for s in without_proposal["stages"] if s["key"] != "proposal"]
    await json_of(await ada.put(f"/api/v1/pipelines/{pipeline['id']}", json=without_proposal), 200)
    assert [s["key"] for s in (await sales(ada))["stages"]] == ["new", "qualified", "won", "lost"]
    response = await ada.patch(f"/api/v1/leads/{lead['id']}", json={"stage": "proposal"})
    assert "stage" in await error_of(response, 400, "invalid_input")
    assert (await lead_row(sessions, lead["id"])).stage == "qualified"


@pytest.mark.sqlite_only
async def test_the_last_pipeline_taking_leads_cannot_be_archived(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ada = await make_user(Role.ADMIN)
    pipeline = await sales(ada)
    archive = body_of(pipeline, archived=True)
    refused = await ada.put(f"/api/v1/pipelines/{pipeline['id']}", json=archive)
    assert "archived" in await error_of(refused, 409, "conflict")
    assert await pipelines_of(ada) == [pipeline]

    renewals = await json_of(await ada.post("/api/v1/pipelines", json=RENEWALS), 201)
    await json_of(await ada.put(f"/api/v1/pipelines/{pipeline['id']}", json=archive), 200)
    # New leads go to the pipeline left, in its first stage (whose rule asks for a follow-up).
    lead = await new_lead(ada, contact_id=await contact(sessions, "Anna Novak"))
    assert (lead["pipeline_id"], lead["stage"]) == (renewals["id"], "due")
    [task] = await tasks_of_lead(sessions, lead["id"])
    assert (task.note, task.due_at) == ("Ask about the renewal", START + timedelta(days=1))
    refused = await ada.put(
        f"/api/v1/pipelines/{renewals['id']}", json=body_of(renewals, archived=True)
    )
    assert "archived" in await error_of(refused, 409, "conflict")
    # The archived one takes no lead.
    response = await ada.post(
        "/api/v1/leads",
        json={"contact_id": lead["contact_id"], "pipeline_id": pipeline["id"]},
    )
    assert "pipeline_id" in await error_of(response, 400, "invalid_input")
    assert await lead_count(sessions) == 1


@pytest.mark.sqlite_only
async def test_replacing_an_unknown_pipeline_is_404(make_user: UserFactory) -> None:
    ada = await make_user(Role.ADMIN)
    response = await ada.put("/api/v1/pipelines/999999", json=RENEWALS)
    await error_of(response, 404, "not_found")
    board_response = await ada.get("/api/v1/pipelines/999999/board")
    await error_of(board_response, 404, "not_found")


# --- the board ----------------------------------------------------------------------------------


async def test_the_board_counts_and_weighs_each_column_to_the_cent(
    make_user: UserFactory,
    sessions: SessionFactory,
    manual_clock: clock.ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sue = await make_user(Role.SUPERVISOR)
    made: dict[str, list[int]] = {}
    for stage, value, currency in [
        ("new", "100.10", "EUR"),
        ("new", "200.20", "EUR"),
        ("new", "50", "USD"),
        ("new", None, None),
        ("qualified", "1999.99", "EUR"),
        ("qualified", "999999999999.99", "USD"),
        ("qualified", "999999999999.99", "USD"),
        ("qualified", "999999999999.99", "USD"),
        ("proposal", "333.33", "EUR"),
        ("proposal", "0.01", "EUR"),
        ("won", "1000", "EUR"),
        ("lost", "70", "EUR"),
    ]:
        manual_clock.advance(minutes=1)
        name = f"Customer {sum(len(ids) for ids in made.values()) + 1}"
        lead = await new_lead(
            sue, contact_id=await contact(sessions, name), value=value, currency=currency
        )
        if stage == "lost":
            await move(sue, lead["id"], stage=stage, reason="Too expensive")
        elif stage != "new":
            await move(sue, lead["id"], stage=stage)
        made.setdefault(stage, []).append(lead["id"])
    found = await board(sue, (await sales(sue))["id"])
    assert [item["stage"]["key"] for item in found["columns"]] == [s[0] for s in SALES_STAGES]
    assert [item["count"] for item in found["columns"]] == [4, 4, 2, 1, 1]
    expected = {
        "new": ({"EUR": "300.30", "USD": "50.00"}, {"EUR": "30.03", "USD": "5.00"}),
        "qualified": (
            {"EUR": "1999.99", "USD": "2999999999999.97"},
            {"EUR": "600.00", "USD": "899999999999.99"},
        ),
        "proposal": ({"EUR": "333.34"}, {"EUR": "200.00"}),
        "won": ({"EUR": "1000.00"}, {"EUR": "1000.00"}),
        "lost": ({"EUR": "70.00"}, {"EUR": "0.00"}),
    }
    for key, (totals, weighted) in expected.items():
        item = column(found, key)
        assert (item["totals"], item["weighted"]) == (totals, weighted), key
        # Newest first, each with its contact's name.
        assert card_ids(found, key) == made[key][::-1]
    first = column(found, "new")["cards"][-1]
    assert first["contact_name"] == "Customer 1"
    assert (first["lead"]["value"], first["lead"]["currency"]) == ("100.10", "EUR")

    # A long column shows the leads that entered it last; its count and sums are of all.
    monkeypatch.setattr(pipelines, "CARDS_PER_COLUMN", 3)
    again = await board(sue, (await sales(sue))["id"])
    assert [item["count"] for item in again["columns"]] == [4, 4, 2, 1, 1]
    assert card_ids(again, "new") == made["new"][:0:-1]
    assert card_ids(again, "qualified") == made["qualified"][:0:-1]
    assert card_ids(again, "proposal") == made["proposal"][::-1]
    assert column(again, "qualified")["totals"] == expected["qualified"][0]


@pytest.mark.sqlite_only
async def test_a_card_shows_the_next_step_and_flags_open_leads_without_one(
    make_user: UserFactory, sessions: SessionFactory, manual_clock: clock.ManualClock
) -> None:
    ann = await make_user(Role.OPERATOR)
    pipeline_id = (await sales(ann))["id"]
    lead = await new_lead(ann, contact_id=await contact(sessions, "Anna Novak"))
    other = await new_lead(ann, contact_id=await contact(sessions, "Boris Berg"))
    won = await new_lead(ann, contact_id=await contact(sessions, "Clara Diaz"))
    await move(ann, won["id"], stage="won")

    def card(found: dict[str, Any], lead_id: int) -> dict[str, Any]:
        [match] = [
            c for item in found["columns"] for c in item["cards"] if c["lead"]["id"] == lead_id
        ]
        return dict(match)

    found = await board(ann, pipeline_id)
    assert card(found, lead["id"])["needs_next_step"] is True
    assert card(found, lead["id"])["next_task_id"] is None
    assert card(found, won["id"])["needs_next_step"] is False

    later = await json_of(
        await ann.post(
            "/api/v1/tasks",
            json={
                "lead_id": lead["id"],
                "due_at": (START + timedelta(hours=5)).isoformat(),
                "note": "Send the price list",
            },
        ),
        201,
    )
    assert (later["lead_id"], later["owner_id"], later["kind"]) == (
        lead["id"],
        ann.operator.id,
        "follow_up",
    )
    assert later["contact"] == {"id": lead["contact_id"], "name": "Anna Novak"}
    sooner = await json_of(
        await ann.post(
            "/api/v1/tasks",
            json={
                "lead_id": lead["id"],
                "due_at": (START + timedelta(hours=1)).isoformat(),
                "note": "Call first",
            },
        ),
        201,
    )
    found = await board(ann, pipeline_id)
    shown = card(found, lead["id"])
    assert shown["needs_next_step"] is False
    # The earliest open task is the next step.
    assert (shown["next_task_id"], shown["next_task_note"]) == (sooner["id"], "Call first")
    assert at(shown["next_task_due_at"]) == START + timedelta(hours=1)
    assert shown["next_task_overdue"] is False
    assert card(found, other["id"])["needs_next_step"] is True

    manual_clock.advance(hours=2)
    assert card(await board(ann, pipeline_id), lead["id"])["next_task_overdue"] is True
    await json_of(await ann.post(f"/api/v1/tasks/{sooner['id']}/done", json={}), 200)
    shown = card(await board(ann, pipeline_id), lead["id"])
    assert (shown["next_task_id"], shown["next_task_overdue"]) == (later["id"], False)
    manual_clock.advance(minutes=1)
    await json_of(await ann.post(f"/api/v1/tasks/{later['id']}/done", json={}), 200)
    assert card(await board(ann, pipeline_id), lead["id"])["needs_next_step"] is True

    # The lead's tasks, and only its.
    listed = await json_of(
        await ann.get(
            "/api/v1/tasks", params={"scope": "all", "state": "done", "lead_id": lead["id"]}
        ),
        200,
    )
    assert [item["id"] for item in listed["items"]] == [later["id"], sooner["id"]]
    listed = await json_of(
        await ann.get("/api/v1/tasks", params={"scope": "all", "lead_id": other["id"]}), 200
    )
    assert listed["items"] == []


@pytest.mark.sqlite_only
async def test_a_leads_next_step_is_seen_by_who_sees_the_lead(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ann = await make_user(Role.OPERATOR)
    carl = await make_user(Role.OPERATOR)
    sue = await make_user(Role.SUPERVISOR)
    lead = await new_lead(ann, contact_id=await contact(sessions, "Anna Novak"))
    due = (START + timedelta(days=1)).isoformat()
    # Sue sets herself a task on Ann's lead: no conversation, no queue; Ann sees the lead.
    task = await json_of(
        await sue.post("/api/v1/tasks", json={"lead_id": lead["id"], "due_at": due}), 201
    )
    assert (task["owner_id"], task["queue_id"], task["conversation_id"]) == (
        sue.operator.id,
        None,
        None,
    )
    params = {"scope": "all", "lead_id": lead["id"]}
    anns = await json_of(await ann.get("/api/v1/tasks", params=params), 200)
    assert [item["id"] for item in anns["items"]] == [task["id"]]
    carls = await json_of(await carl.get("/api/v1/tasks", params=params), 200)
    assert carls["items"] == []
    moved = await carl.patch(f"/api/v1/tasks/{task['id']}", json={"note": "mine now"})
    await error_of(moved, 404, "not_found")
    # Nor may Carl give the lead a task.
    refused = await carl.post("/api/v1/tasks", json={"lead_id": lead["id"], "due_at": due})
    assert "lead_id" in await error_of(refused, 404, "not_found")
    assert len(await tasks_of_lead(sessions, lead["id"])) == 1


@pytest.mark.sqlite_only
async def test_the_board_filters_by_owner_source_and_creation_day(
    make_user: UserFactory, sessions: SessionFactory, manual_clock: clock.ManualClock
) -> None:
    ann = await make_user(Role.OPERATOR)
    bob = await make_user(Role.OPERATOR)
    sue = await make_user(Role.SUPERVISOR)
    support = await queue_with(sessions, "Support", bob)
    conversation, _ = await conversation_in(sessions, support)

    # Leads made late on Sunday, at Monday's midnight, late on Monday and at Tuesday's midnight.
    manual_clock.set(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC))
    anna = await contact(sessions, "Anna Novak")
    async with sessions() as session, session.begin():
        anns = await create_lead(session, operator_actor(ann), NewLead(contact_id=anna))
    manual_clock.set(datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    demo = await web_form_lead(sessions, source="form:demo")
    manual_clock.set(datetime(2026, 3, 2, 23, 59, 59, tzinfo=UTC))
    async with sessions() as session, session.begin():
        bobs = await create_lead(
            session, operator_actor(bob), NewLead(conversation_id=conversation)
        )
    manual_clock.set(datetime(2026, 3, 3, 0, 0, tzinfo=UTC))
    contact_form = await web_form_lead(sessions)
    manual_clock.set(START + timedelta(hours=1))

    pipeline_id = (await sales(sue))["id"]

    async def shown(**params: Any) -> list[int]:
        found = await board(sue, pipeline_id, **params)
        assert column(found, "new")["count"] == len(card_ids(found))
        return card_ids(found)

    assert await shown() == [contact_form, bobs.id, demo, anns.id]
    assert await shown(owner_id=ann.operator.id) == [anns.id]
    assert await shown(owner_id=bob.operator.id) == [bobs.id]
    assert await shown(unowned="true") == [contact_form, demo]
    assert await shown(unowned="true", owner_id=ann.operator.id) == [contact_form, demo]
    assert await shown(source="form:demo") == [demo]
    assert await shown(source="conversation:email") == [bobs.id]
    assert await shown(source="manual") == [anns.id]
    assert await shown(created_from="2026-03-02") == [contact_form, bobs.id, demo]
    assert await shown(created_to="2026-03-02") == [bobs.id, demo, anns.id]
    assert await shown(created_from="2026-03-02", created_to="2026-03-02") == [bobs.id, demo]
    assert await shown(created_from="2026-03-03", unowned="true") == [contact_form]
    backwards = await sue.get(
        f"/api/v1/pipelines/{pipeline_id}/board",
        params={"created_from": "2026-03-03", "created_to": "2026-03-02"},
    )
    await error_of(backwards, 400, "invalid_input")


async def test_an_operator_sees_and_sums_only_the_leads_they_may_see(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ann = await make_user(Role.OPERATOR)
    bob = await make_user(Role.OPERATOR)
    carl = await make_user(Role.OPERATOR)
    sue = await make_user(Role.SUPERVISOR)
    support = await queue_with(sessions, "Support", ann, bob)
    sales_queue = await queue_with(sessions, "Sales", carl)
    in_support, _ = await conversation_in(sessions, support, "Support customer")
    in_sales, _ = await conversation_in(sessions, sales_queue, "Sales customer")

    # Ann's own; Bob's on a conversation in Ann's queue; Carl's on one in his queue; an
    # unowned web form's in Carl's queue; Carl's for a contact (won).
    anns = await new_lead(
        ann, contact_id=await contact(sessions, "Own"), value="100", currency="EUR"
    )
    bobs = await new_lead(bob, conversation_id=in_support, value="200", currency="EUR")
    carls = await new_lead(carl, conversation_id=in_sales, value="400", currency="EUR")
    form = await web_form_lead(sessions, sales_queue)
    await move(sue, form, value="800", currency="EUR")
    carls_own = await new_lead(
        carl, contact_id=await contact(sessions, "Carl's"), value="1600", currency="EUR"
    )
    await move(carl, carls_own["id"], stage="won")
    pipeline_id = (await sales(ann))["id"]

    async def seen(user: User) -> dict[str, tuple[list[int], int, dict[str, str], dict[str, str]]]:
        found = await board(user, pipeline_id)
        return {
            key: (card_ids(found, key), item["count"], item["totals"], item["weighted"])
            for key in ("new", "won")
            for item in [column(found, key)]
        }

    assert await seen(ann) == {
        "new": ([bobs["id"], anns["id"]], 2, {"EUR": "300.00"}, {"EUR": "30.00"}),
        "won": ([], 0, {}, {}),
    }
    assert await seen(carl) == {
        "new": ([form, carls["id"]], 2, {"EUR": "1200.00"}, {"EUR": "120.00"}),
        "won": ([carls_own["id"]], 1, {"EUR": "1600.00"}, {"EUR": "1600.00"}),
    }
    assert await seen(sue) == {
        "new": (
            [form, carls["id"], bobs["id"], anns["id"]],
            4,
            {"EUR": "1500.00"},
            {"EUR": "150.00"},
        ),
        "won": ([carls_own["id"]], 1, {"EUR": "1600.00"}, {"EUR": "1600.00"}),
    }
    # The contact names of cards one may not see are nowhere in the answer.
    answer = await (await ann.get(f"/api/v1/pipelines/{pipeline_id}/board")).text()
    assert "Sales customer" not in answer
    assert "Carl's" not in answer
    assert "Support customer" in answer


# --- moves --------------------------------------------------------------------------------------


@pytest.mark.sqlite_only
async def test_every_move_is_recorded_and_closing_follows_the_outcome(
    make_user: UserFactory, sessions: SessionFactory, manual_clock: clock.ManualClock
) -> None:
    ann = await make_user(Role.OPERATOR)
    lead = await new_lead(ann, contact_id=await contact(sessions, "Anna Novak"))
    assert (at(lead["stage_entered_at"]), lead["closed_at"]) == (START, None)
    times = {"qualified": START + timedelta(minutes=10)}
    manual_clock.set(times["qualified"])
    moved = await move(ann, lead["id"], stage="qualified")
    assert (moved["stage"], at(moved["stage_entered_at"]), moved["closed_at"]) == (
        "qualified",
        times["qualified"],
        None,
    )
    won_at = manual_clock.advance(hours=1)
    moved = await move(ann, lead["id"], stage="won")
    assert (moved["stage"], at(moved["stage_entered_at"]), at(moved["closed_at"])) == (
        "won",
        won_at,
        won_at,
    )
    # Asking for the stage it is in is no move.
    manual_clock.advance(minutes=1)
    await move(ann, lead["id"], stage="won")
    reopened_at = manual_clock.advance(minutes=5)
    moved = await move(ann, lead["id"], stage="qualified", reason="They came back")
    assert (moved["stage"], at(moved["stage_entered_at"]), moved["closed_at"]) == (
        "qualified",
        reopened_at,
        None,
    )
    row = await lead_row(sessions, lead["id"])
    assert (row.stage, row.stage_entered_at, row.closed_at) == ("qualified", reopened_at, None)
    rows = await history(sessions, lead["id"])
    assert [(r.from_stage, r.to_stage, r.changed_at, r.operator_id, r.reason) for r in rows] == [
        (None, "new", START, ann.operator.id, None),
        ("new", "qualified", times["qualified"], ann.operator.id, None),
        ("qualified", "won", won_at, ann.operator.id, None),
        ("won", "qualified", reopened_at, ann.operator.id, "They came back"),
    ]
    assert {r.pipeline_id for r in rows} == {lead["pipeline_id"]}
    entries = await audit_rows(sessions, "lead.stage")
    assert [e.details for e in entries] == [
        {"from": "new", "to": "qualified"},
        {"from": "qualified", "to": "won"},
        {"from": "won", "to": "qualified", "reason": "They came back"},
    ]


@pytest.mark.sqlite_only
async def test_a_lost_lead_needs_a_reason_and_keeps_it_while_lost(
    make_user: UserFactory, sessions: SessionFactory, manual_clock: clock.ManualClock
) -> None:
    ann = await make_user(Role.OPERATOR)
    lead = await new_lead(ann, contact_id=await contact(sessions, "Anna Novak"))
    for body in (
        {"stage": "lost"},
        {"stage": "lost", "reason": "   "},
        {"stage": "lost", "title": "Twenty seats", "value": "500"},
    ):
        response = await ann.patch(f"/api/v1/leads/{lead['id']}", json=body)
        assert "reason" in await error_of(response, 400, "invalid_input"), body
    row = await lead_row(sessions, lead["id"])
    assert (row.stage, row.closed_at, row.lost_reason, row.title, row.value) == (
        "new",
        None,
        None,
        "",
        None,
    )
    assert moves(await history(sessions, lead["id"])) == [(None, "new")]
    assert await audit_rows(sessions, "lead.stage", "lead.update") == []

    lost_at = manual_clock.advance(minutes=3)
    lost = await move(ann, lead["id"], stage="lost", reason=" Chose a competitor ")
    assert (lost["stage"], lost["lost_reason"], at(lost["closed_at"])) == (
        "lost",
        "Chose a competitor",
        lost_at,
    )
    rows = await history(sessions, lead["id"])
    assert [(r.to_stage, r.reason) for r in rows] == [("new", None), ("lost", "Chose a competitor")]
    [entry] = await audit_rows(sessions, "lead.stage")
    assert entry.details == {"from": "new", "to": "lost", "reason": "Chose a competitor"}
    # Other changes keep the reason; leaving the lost stage drops it.
    assert (await move(ann, lead["id"], title="Twenty seats"))[
        "lost_reason"
    ] == "Chose a competitor"
    reopened = await move(ann, lead["id"], stage="new")
    assert (reopened["lost_reason"], reopened["closed_at"]) == (None, None)


@pytest.mark.sqlite_only
async def test_moving_to_another_pipeline_takes_a_stage_of_it(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ada = await make_user(Role.ADMIN)
    ann = await make_user(Role.OPERATOR)
    renewals = await json_of(await ada.post("/api/v1/pipelines", json=RENEWALS), 201)
    old = await json_of(
        await ada.post(
            "/api/v1/pipelines", json={**RENEWALS, "name": "Old", "position": 2, "archived": True}
        ),
        201,
    )
    lead = await new_lead(ann, contact_id=await contact(sessions, "Anna Novak"))
    sales_id = lead["pipeline_id"]
    for body, status, field in [
        ({"pipeline_id": renewals["id"]}, 400, "stage"),
        ({"pipeline_id": renewals["id"], "stage": "qualified"}, 400, "stage"),
        ({"pipeline_id": old["id"], "stage": "due"}, 400, "pipeline_id"),
        ({"pipeline_id": 999_999, "stage": "due"}, 404, "pipeline_id"),
    ]:
        response = await ann.patch(f"/api/v1/leads/{lead['id']}", json=body)
        code = "not_found" if status == 404 else "invalid_input"
        assert field in await error_of(response, status, code), body
    row = await lead_row(sessions, lead["id"])
    assert (row.pipeline_id, row.stage) == (sales_id, "new")
    assert moves(await history(sessions, lead["id"])) == [(None, "new")]

    moved = await move(ann, lead["id"], pipeline_id=renewals["id"], stage="quoted")
    assert (moved["pipeline_id"], moved["stage"]) == (renewals["id"], "quoted")
    last = (await history(sessions, lead["id"]))[-1]
    assert (last.pipeline_id, last.from_stage, last.to_stage) == (renewals["id"], "new", "quoted")
    [entry] = await audit_rows(sessions, "lead.stage")
    assert entry.details == {
        "from": "new",
        "to": "quoted",
        "from_pipeline_id": sales_id,
        "pipeline_id": renewals["id"],
    }
    assert card_ids(await board(ann, sales_id)) == []
    assert card_ids(await board(ann, renewals["id"]), "quoted") == [lead["id"]]


@pytest.mark.sqlite_only
async def test_entering_proposal_gives_the_owner_a_follow_up_two_days_later(
    make_user: UserFactory, sessions: SessionFactory, manual_clock: clock.ManualClock
) -> None:
    ann = await make_user(Role.OPERATOR)
    bob = await make_user(Role.OPERATOR)
    sue = await make_user(Role.SUPERVISOR)
    lead = await new_lead(ann, contact_id=await contact(sessions, "Anna Novak"))
    await move(sue, lead["id"], stage="qualified")
    assert await tasks_of_lead(sessions, lead["id"]) == []

    moved_at = manual_clock.advance(minutes=17, seconds=3)
    await move(sue, lead["id"], stage="proposal")
    [task] = await tasks_of_lead(sessions, lead["id"])
    assert (task.kind, task.owner_id, task.created_by_id, task.done_at) == (
        "follow_up",
        ann.operator.id,
        sue.operator.id,
        None,
    )
    assert task.due_at == moved_at + timedelta(days=2)
    assert task.note == "Call back about the proposal"
    # Ann finds it among her tasks and as the lead's next step.
    mine = await json_of(await ann.get("/api/v1/tasks", params={"lead_id": lead["id"]}), 200)
    assert [(item["id"], item["lead_id"]) for item in mine["items"]] == [(task.id, lead["id"])]
    found = await board(ann, lead["pipeline_id"])
    [card] = column(found, "proposal")["cards"]
    assert (card["next_task_id"], card["needs_next_step"]) == (task.id, False)
    assert at(card["next_task_due_at"]) == moved_at + timedelta(days=2)

    # An unowned lead: the task goes to who moved it, in its conversation's queue.
    support = await queue_with(sessions, "Support", bob)
    form = await web_form_lead(sessions, support)
    await move(bob, form, stage="proposal")
    [form_task] = await tasks_of_lead(sessions, form)
    assert (form_task.owner_id, form_task.queue_id) == (bob.operator.id, support)
    assert form_task.due_at == moved_at + timedelta(days=2)

    # A deactivated owner's lead still moves: its next step goes to who moved it.
    carl = await make_user(Role.OPERATOR)
    theirs = await new_lead(carl, contact_id=await contact(sessions, "Ben Ode"))
    async with sessions() as session, session.begin():
        await session.execute(
            update(Operator).where(Operator.id == carl.operator.id).values(active=False)
        )
    await move(sue, theirs["id"], stage="proposal")
    [handed] = await tasks_of_lead(sessions, theirs["id"])
    assert handed.owner_id == sue.operator.id


@pytest.mark.sqlite_only
async def test_closing_a_lead_cancels_its_open_next_steps(
    make_user: UserFactory, sessions: SessionFactory, manual_clock: clock.ManualClock
) -> None:
    ann = await make_user(Role.OPERATOR)
    lead = await new_lead(ann, contact_id=await contact(sessions, "Anna Novak"))
    await move(ann, lead["id"], stage="proposal")
    [rule_made] = await tasks_of_lead(sessions, lead["id"])
    assert rule_made.done_at is None
    won_at = manual_clock.advance(hours=3)
    await move(ann, lead["id"], stage="won")
    [closed] = await tasks_of_lead(sessions, lead["id"])
    assert (closed.id, closed.outcome, closed.done_at) == (rule_made.id, "cancelled", won_at)
    mine = await json_of(await ann.get("/api/v1/tasks"), 200)
    assert mine["items"] == []


# --- leads made by hand -------------------------------------------------------------------------


@pytest.mark.sqlite_only
async def test_a_lead_from_a_conversation_in_one_call(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ann = await make_user(Role.OPERATOR)
    bob = await make_user(Role.OPERATOR)
    support = await queue_with(sessions, "Support", ann, bob)
    conversation, contact_id = await conversation_in(sessions, support)
    sales_id = (await sales(ann))["id"]
    lead = await new_lead(ann, conversation_id=conversation, title=" Twenty seats ", value="99.5")
    assert {key: lead[key] for key in ("pipeline_id", "stage", "owner_id", "source")} == {
        "pipeline_id": sales_id,
        "stage": "new",
        "owner_id": ann.operator.id,
        "source": "conversation:email",
    }
    assert (lead["contact_id"], lead["conversation_id"]) == (contact_id, conversation)
    assert (lead["title"], lead["value"], lead["closed_at"]) == ("Twenty seats", "99.50", None)
    assert at(lead["stage_entered_at"]) == START
    assert (await json_of(await ann.get(f"/api/v1/leads/{lead['id']}"), 200)) == lead
    rows = await history(sessions, lead["id"])
    assert [(r.from_stage, r.to_stage, r.operator_id, r.changed_at) for r in rows] == [
        (None, "new", ann.operator.id, START)
    ]
    [entry] = await audit_rows(sessions, "lead.create")
    assert (entry.actor_id, entry.entity_id) == (ann.operator.id, str(lead["id"]))

    # A second click, or a colleague, finds the open lead.
    for user in (ann, bob):
        response = await user.post("/api/v1/leads", json={"conversation_id": conversation})
        fields = await error_of(response, 409, "conflict")
        assert f"lead {lead['id']}" in fields["conversation_id"]
    assert await lead_count(sessions) == 1
    # Once it is closed, the conversation may bring a new opportunity.
    await move(ann, lead["id"], stage="won")
    again = await new_lead(bob, conversation_id=conversation)
    assert (again["owner_id"], again["stage"]) == (bob.operator.id, "new")


async def test_a_double_click_makes_one_lead(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ann = await make_user(Role.OPERATOR)
    support = await queue_with(sessions, "Support", ann)
    for attempt in range(3):
        conversation, _ = await conversation_in(sessions, support)
        responses = await asyncio.gather(
            *(ann.post("/api/v1/leads", json={"conversation_id": conversation}) for _ in range(2))
        )
        assert sorted(response.status for response in responses) == [201, 409], attempt
    assert await lead_count(sessions) == 3


@pytest.mark.sqlite_only
async def test_a_conversation_one_may_not_see_makes_no_lead(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ann = await make_user(Role.OPERATOR)
    carl = await make_user(Role.OPERATOR)
    support = await queue_with(sessions, "Support", ann)
    await queue_with(sessions, "Sales", carl)
    conversation, _ = await conversation_in(sessions, support)
    for conversation_id in (conversation, conversation + 1000):
        response = await carl.post("/api/v1/leads", json={"conversation_id": conversation_id})
        assert "conversation_id" in await error_of(response, 404, "not_found")
    assert await lead_count(sessions) == 0


@pytest.mark.sqlite_only
async def test_a_lead_for_a_contact_and_requests_naming_neither(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ann = await make_user(Role.OPERATOR)
    contact_id = await contact(sessions, "Anna Novak")
    lead = await new_lead(ann, contact_id=contact_id, currency="eur")
    assert (lead["source"], lead["contact_id"], lead["conversation_id"]) == (
        "manual",
        contact_id,
        None,
    )
    assert (lead["owner_id"], lead["stage"], lead["currency"]) == (ann.operator.id, "new", "EUR")
    neither = await ann.post("/api/v1/leads", json={"title": "Something"})
    assert "conversation_id" in await error_of(neither, 400, "invalid_input")
    unknown = await ann.post("/api/v1/leads", json={"contact_id": contact_id + 1000})
    assert "contact_id" in await error_of(unknown, 404, "not_found")
    assert await lead_count(sessions) == 1


@pytest.mark.sqlite_only
async def test_only_supervisors_give_a_new_lead_to_someone_else(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ann = await make_user(Role.OPERATOR)
    bob = await make_user(Role.OPERATOR)
    sue = await make_user(Role.SUPERVISOR)
    support = await queue_with(sessions, "Support", ann, bob)
    conversation, contact_id = await conversation_in(sessions, support)
    for body in ({"conversation_id": conversation}, {"contact_id": contact_id}):
        response = await ann.post("/api/v1/leads", json={**body, "owner_id": bob.operator.id})
        assert "owner_id" in await error_of(response, 403, "forbidden")
    assert await lead_count(sessions) == 0
    mine = await new_lead(ann, contact_id=contact_id, owner_id=ann.operator.id)
    assert mine["owner_id"] == ann.operator.id
    given = await new_lead(sue, conversation_id=conversation, owner_id=bob.operator.id)
    assert given["owner_id"] == bob.operator.id
    unknown = await sue.post("/api/v1/leads", json={"contact_id": contact_id, "owner_id": 999_999})
    assert "owner_id" in await error_of(unknown, 400, "invalid_input")


async def receive_until_sentinel(socket: Any) -> list[dict[str, Any]]:
    """Every event up to the next contact.updated (which every socket receives)."""
    seen: list[dict[str, Any]] = []
    while True:
        # A bound so a broken socket fails the test instead of hanging it; no timing is tested.
        message = await asyncio.wait_for(socket.receive_json(), 10)
        if message["type"] == "contact.updated":
            return seen
        seen.append(message)


@pytest.mark.sqlite_only
async def test_a_new_lead_is_announced_to_who_may_see_it(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ann = await make_user(Role.OPERATOR)
    bob = await make_user(Role.OPERATOR)
    carl = await make_user(Role.OPERATOR)
    sue = await make_user(Role.SUPERVISOR)
    support = await queue_with(sessions, "Support", ann, bob)
    await queue_with(sessions, "Sales", carl)
    conversation, contact_id = await conversation_in(sessions, support)
    async with (
        bob.client.ws_connect("/ws") as bobs,
        carl.client.ws_connect("/ws") as carls,
        sue.client.ws_connect("/ws") as sues,
    ):
        for socket in (bobs, carls, sues):
            assert (await socket.receive_json())["type"] == "hello"
        from_conversation = await new_lead(ann, conversation_id=conversation)
        carls_own = await new_lead(carl, contact_id=contact_id)
        tagged = await sue.patch(f"/api/v1/contacts/{contact_id}", json={"tags": ["sentinel"]})
        await json_of(tagged, 200)
        heard = {
            name: [
                (event["ids"]["lead"], event["ids"]["contact"])
                for event in await receive_until_sentinel(socket)
                if event["type"] == "lead.created"
            ]
            for name, socket in (("bob", bobs), ("carl", carls), ("sue", sues))
        }
    assert heard == {
        # Bob works the conversation's queue; Carl does not, but owns his lead.
        "bob": [(from_conversation["id"], contact_id)],
        "carl": [(carls_own["id"], contact_id)],
        "sue": [(from_conversation["id"], contact_id), (carls_own["id"], contact_id)],
    }


# --- web forms ----------------------------------------------------------------------------------


async def test_a_web_form_lead_starts_in_the_default_pipelines_first_open_stage(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    ada = await make_user(Role.ADMIN)
    sales_pipeline = await sales(ada)
    first = await web_form_lead(sessions)
    row = await lead_row(sessions, first)
    assert (row.pipeline_id, row.stage, row.stage_entered_at, row.closed_at) == (
        sales_pipeline["id"],
        "new",
        START,
        None,
    )
    [change] = await history(sessions, first)
    assert (change.pipeline_id, change.from_stage, change.to_stage, change.operator_id) == (
        sales_pipeline["id"],
        None,
        "new",
        None,
    )
    assert change.changed_at == START

    # A pipeline put before Sales takes the next ones, in its first open stage.
    inbound = await json_of(
        await ada.post(
            "/api/v1/pipelines",
            json={
                "name": "Inbound",
                "position": 0,
                "stages": [
                    {"key": "spam", "name": "Spam", "outcome": "lost"},
                    {"key": "triage", "name": "Triage", "probability": 5},
                    {"key": "signed", "name": "Signed", "outcome": "won"},
                ],
            },
        ),
        201,
    )
    await json_of(
        await ada.put(
            f"/api/v1/pipelines/{sales_pipeline['id']}", json=body_of(sales_pipeline, position=1)
        ),
        200,
    )
    second = await web_form_lead(sessions)
    row = await lead_row(sessions, second)
    assert (row.pipeline_id, row.stage) == (inbound["id"], "triage")
    assert [(c.pipeline_id, c.to_stage) for c in await history(sessions, second)] == [
        (inbound["id"], "triage")
    ]
    # Archived, it takes none.
    await json_of(
        await ada.put(f"/api/v1/pipelines/{inbound['id']}", json=body_of(inbound, archived=True)),
        200,
    )
    third = await web_form_lead(sessions)
    row = await lead_row(sessions, third)
    assert (row.pipeline_id, row.stage) == (sales_pipeline["id"], "new")
    assert column(await board(ada, sales_pipeline["id"]), "new")["count"] == 2
