"""Reports over a known history: every figure of every report, worked out by hand below, on
both databases (the figures are SQL: time buckets, windows, JSON, date arithmetic).

The history, in Europe/Berlin (UTC+1 all March 2-15, 2026), period Mon 2 to Sun 15 March:

Conversations (Support: Mon-Fri 09:00-17:00; Sales: no business hours):
- C1 email, Support, Ann: opened Mon 2 10:00, answered 10:30 (1800 s), resolved 12:00
  (7200 s), SLA due 11:00: met.
- C2 email, Support, Ann: opened Fri 6 16:00, answered Mon 9 09:30 (business 3600 + 1800 =
  5400 s), resolved Mon 9 10:00 (7200 s), reopened once; SLA due Mon 9 09:15: breached.
- C3 telegram, Sales, Bob: opened Tue 3 20:00, answered 20:10 (600 s), still open.
- C4 telegram, Sales, Bob: opened Wed 4 08:00, never answered, SLA due 09:00: breached.
- C5 webform, Support, nobody: opened Fri 13 00:30 (Thu 12 23:30 UTC: a Berlin day, not a
  UTC one), resolved 09:00 unanswered (0 s of business time), SLA: neither met nor breached.
- C6 email, Support, Ann: opened Fri 20 (after the period).
Calls that waited in Support: 2 March (abandoned), 3 March (answered), 5 March (abandoned),
20 March (after the period).

Leads (pipeline "Sales"; history new -> ...):
- L1 form:contact google/spring, Ann, 1000 EUR: new Mon 2, qualified, proposal, won Fri 6
  (4 days).
- L2 form:contact google/spring, Ann, 500 EUR: new Tue 3, lost Thu 5.
- L3 api, Bob, 200 USD: new Wed 4, won Tue 10 (6 days).
- L4 form:contact google/autumn, nobody: new Thu 5, qualified Fri 6, open.
- L5 form:contact: opened 20 March (after the period).
- L6 api, Bob, 300 EUR: opened 20 February, won Wed 11 (19 days).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.clock import ManualClock, using
from core.db import SessionFactory
from core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Interaction,
    InteractionKind,
    Lead,
    LeadStageChange,
    Queue,
    Role,
    VoiceCall,
)
from core.pipelines import default_pipeline_query
from core.reports.base import Chart, ReportResult
from routing.calendar import BusinessHours
from routing.metrics import measure
from tests.conftest import User, UserFactory

pytestmark = pytest.mark.both_databases  # tests/conftest.py

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 16, 11, 0, tzinfo=UTC)
PERIOD = {"start": "2026-03-02", "end": "2026-03-15", "time_zone": "Europe/Berlin"}
SUPPORT_HOURS = {
    "timezone": "Europe/Berlin",
    "weekly": {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
}


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    """A Berlin wall-clock time in 2026, as UTC."""
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


class History:
    def __init__(self, ann: User, bob: User) -> None:
        self.ann, self.bob = ann.operator.id, bob.operator.id
        self.support = self.sales = 0


async def build(sessions: SessionFactory, ann: User, bob: User) -> History:
    history = History(ann, bob)
    async with sessions() as session, session.begin():
        support = Queue(name="Support", config={"business_hours": SUPPORT_HOURS})
        sales = Queue(name="Sales")
        contact = Contact(display_name="Jonas Weber")
        session.add_all([support, sales, contact])
        await session.flush()
        history.support, history.sales = support.id, sales.id

        def conversation(channel: str, queue: Queue, assignee: int | None, **fields: Any) -> Any:
            return Conversation(
                contact_id=contact.id,
                channel=channel,
                queue_id=queue.id,
                assignee_id=assignee,
                status=fields.pop("status", ConversationStatus.OPEN),
                **fields,
            )

        c1 = conversation(
            "email",
            support,
            history.ann,
            created_at=at(2, 10),
            first_response_at=at(2, 10, 30),
            resolved_at=at(2, 12),
            sla_due_at=at(2, 11),
            status=ConversationStatus.RESOLVED,
        )
        c2 = conversation(
            "email",
            support,
            history.ann,
            created_at=at(6, 16),
            first_response_at=at(9, 9, 30),
            resolved_at=at(9, 10),
            sla_due_at=at(9, 9, 15),
            reopened_count=1,
            status=ConversationStatus.RESOLVED,
        )
        c3 = conversation(
            "telegram", sales, history.bob, created_at=at(3, 20), first_response_at=at(3, 20, 10)
        )
        c4 = conversation("telegram", sales, history.bob, created_at=at(4, 8), sla_due_at=at(4, 9))
        c5 = conversation(
            "webform",
            support,
            None,
            created_at=at(13, 0, 30),
            resolved_at=at(13, 9),
            sla_due_at=at(13, 10),
            status=ConversationStatus.RESOLVED,
        )
        c6 = conversation("email", support, history.ann, created_at=at(20, 10))
        session.add_all([c1, c2, c3, c4, c5, c6])
        await session.flush()

        def message(conv: Conversation, when: datetime, **fields: Any) -> Interaction:
            return Interaction(
                conversation_id=conv.id,
                contact_id=contact.id,
                kind=fields.pop("kind", InteractionKind.MESSAGE),
                direction=fields.pop("direction", Direction.IN),
                channel=conv.channel,
                occurred_at=when,
                **fields,
            )

        session.add_all(
            [
                message(c1, at(2, 10)),
                message(c1, at(2, 10, 30), direction=Direction.OUT),
                message(c2, at(6, 16)),
                message(c2, at(9, 11)),
                message(c3, at(3, 20)),
                message(c4, at(4, 8)),
                message(c5, at(13, 0, 30), kind=InteractionKind.FORM),
                message(c6, at(20, 10)),
            ]
        )
        for n, (queued, outcome) in enumerate(
            [
                (at(2, 11), "abandoned"),
                (at(3, 11), "answered"),
                (at(5, 11), "abandoned"),
                (at(20, 11), "abandoned"),
            ]
        ):
            session.add(
                VoiceCall(
                    call_sid=f"CA{n:032d}",
                    direction="in",
                    from_number="+4930123456",
                    to_number="+4930999999",
                    queue_id=support.id,
                    state="ended",
                    outcome=outcome,
                    started_at=queued,
                    queued_at=queued,
                )
            )
        pipeline = await session.scalar(default_pipeline_query())
        assert pipeline is not None

        async def lead(
            source: str,
            owner: int | None,
            moves: list[tuple[str, datetime]],
            *,
            value: str | None = None,
            currency: str | None = None,
            utm: tuple[str, str] | None = None,
        ) -> None:
            final, final_at = moves[-1]
            closed = final in ("won", "lost")
            row = Lead(
                contact_id=contact.id,
                pipeline_id=pipeline,
                source=source,
                stage=final,
                owner_id=owner,
                value=None if value is None else Decimal(value),
                currency=currency,
                marketing={"utm_source": utm[0], "utm_campaign": utm[1]} if utm else {},
                lost_reason="too expensive" if final == "lost" else None,
                stage_entered_at=final_at,
                closed_at=final_at if closed else None,
                created_at=moves[0][1],
            )
            session.add(row)
            await session.flush()
            previous = None
            for stage, when in moves:
                session.add(
                    LeadStageChange(
                        lead_id=row.id,
                        pipeline_id=pipeline,
                        from_stage=previous,
                        to_stage=stage,
                        changed_at=when,
                    )
                )
                previous = stage

        spring = ("google", "spring")
        await lead(
            "form:contact",
            history.ann,
            [
                ("new", at(2, 10)),
                ("qualified", at(3, 10)),
                ("proposal", at(4, 10)),
                ("won", at(6, 10)),
            ],
            value="1000",
            currency="EUR",
            utm=spring,
        )
        await lead(
            "form:contact",
            history.ann,
            [("new", at(3, 10)), ("lost", at(5, 10))],
            value="500",
            currency="EUR",
            utm=spring,
        )
        await lead(
            "api",
            history.bob,
            [("new", at(4, 10)), ("won", at(10, 10))],
            value="200",
            currency="USD",
        )
        await lead(
            "form:contact",
            None,
            [("new", at(5, 10)), ("qualified", at(6, 10))],
            utm=("google", "autumn"),
        )
        await lead("form:contact", history.ann, [("new", at(20, 10))])
        await lead(
            "api",
            history.bob,
            [("new", at(20, 10, month=2)), ("won", at(11, 10))],
            value="300",
            currency="EUR",
        )
        # Business-time durations, as routing's pass measures them.
        hours = BusinessHours.model_validate(SUPPORT_HOURS)
        assert await measure(session, {support.id: hours, sales.id: None}) == 4
    return history


@pytest.fixture
async def world(sessions: SessionFactory, make_user: UserFactory) -> tuple[History, User]:
    ann = await make_user(Role.OPERATOR, name="Ann Meyer")
    bob = await make_user(Role.OPERATOR, name="Bob Stein")
    boss = await make_user(Role.SUPERVISOR, name="Clara Boss")
    return await build(sessions, ann, bob), boss


async def report(boss: User, name: str, **params: Any) -> dict[str, Any]:
    with using(ManualClock(NOW)):
        response = await boss.get(f"/api/v1/reports/{name}", params={**PERIOD, **params})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def rows_by(body: dict[str, Any], key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in body["rows"]}


SHARED = ("key", "name")


def figures(row: dict[str, Any], *drop: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in (*SHARED, *drop)}


async def test_performance_per_queue_and_for_everyone(world: tuple[History, User]) -> None:
    history, boss = world
    body = await report(boss, "performance", group_by="queue")
    assert [row["name"] for row in body["rows"]] == ["Sales", "Support", "All"]
    support, sales, everyone = (
        rows_by(body, "key")[k] for k in (history.support, history.sales, "all")
    )
    assert figures(support) == {
        "conversations": 3,
        "answered": 2,
        "first_response_median": 1800,
        "first_response_p90": 5400,
        "resolved": 3,
        "resolution_median": 7200,
        "resolution_p90": 7200,
        "sla_met": 1,
        "sla_breached": 1,
        "sla_attainment": 0.5,
        "reopened": 1,
        "reopen_rate": 0.3333,
        "closed_unanswered": 1,
        "abandoned_rate": 0.3333,
        "calls_queued": 3,
        "calls_abandoned": 2,
        "abandonment": 0.6667,
    }
    assert figures(sales) == {
        "conversations": 2,
        "answered": 1,
        "first_response_median": 600,
        "first_response_p90": 600,
        "resolved": 0,
        "resolution_median": None,
        "resolution_p90": None,
        "sla_met": 0,
        "sla_breached": 1,
        "sla_attainment": 0.0,
        "reopened": 0,
        "reopen_rate": None,
        "closed_unanswered": 0,
        "abandoned_rate": 0.0,
        "calls_queued": 0,
        "calls_abandoned": 0,
        "abandonment": None,
    }
    assert figures(everyone) == {
        "conversations": 5,
        "answered": 3,
        "first_response_median": 1800,
        "first_response_p90": 5400,
        "resolved": 3,
        "resolution_median": 7200,
        "resolution_p90": 7200,
        "sla_met": 1,
        "sla_breached": 2,
        "sla_attainment": 0.3333,
        "reopened": 1,
        "reopen_rate": 0.3333,
        "closed_unanswered": 1,
        "abandoned_rate": 0.2,
        "calls_queued": 3,
        "calls_abandoned": 2,
        "abandonment": 0.6667,
    }
    assert body["chart"]["kind"] == "bar"


async def test_performance_per_operator(world: tuple[History, User]) -> None:
    history, boss = world
    body = await report(boss, "performance", group_by="operator")
    assert [row["name"] for row in body["rows"]] == ["Ann Meyer", "Bob Stein", "Unassigned", "All"]
    rows = rows_by(body, "key")
    assert figures(rows[history.ann]) == {
        "conversations": 2,
        "answered": 2,
        "first_response_median": 1800,
        "first_response_p90": 5400,
        "resolved": 2,
        "resolution_median": 7200,
        "resolution_p90": 7200,
        "sla_met": 1,
        "sla_breached": 1,
        "sla_attainment": 0.5,
        "reopened": 1,
        "reopen_rate": 0.5,
        "closed_unanswered": 0,
        "abandoned_rate": 0.0,
    }
    assert figures(rows[None]) == {
        "conversations": 1,
        "answered": 0,
        "first_response_median": None,
        "first_response_p90": None,
        "resolved": 1,
        "resolution_median": 0,
        "resolution_p90": 0,
        "sla_met": 0,
        "sla_breached": 0,
        "sla_attainment": None,
        "reopened": 0,
        "reopen_rate": 0.0,
        "closed_unanswered": 1,
        "abandoned_rate": 1.0,
    }
    assert "calls_queued" not in rows[history.bob]
    # One operator: their row and everyone's are the same figures.
    only_bob = await report(boss, "performance", group_by="operator", operator_id=str(history.bob))
    assert [row["name"] for row in only_bob["rows"]] == ["Bob Stein", "All"]
    assert (
        figures(only_bob["rows"][0]) == figures(only_bob["rows"][1]) == figures(rows[history.bob])
    )


async def test_volume_per_local_day_and_week(world: tuple[History, User]) -> None:
    history, boss = world
    body = await report(boss, "volume")
    assert len(body["rows"]) == 14 * 3
    found = {
        (row["period"], row["channel"]): (row["inbound"], row["conversations"])
        for row in body["rows"]
        if row["inbound"] or row["conversations"]
    }
    assert found == {
        ("2026-03-02", "email"): (1, 1),
        ("2026-03-03", "telegram"): (1, 1),
        ("2026-03-04", "telegram"): (1, 1),
        ("2026-03-06", "email"): (1, 1),
        ("2026-03-09", "email"): (1, 0),
        # 00:30 in Berlin is still the 12th in UTC: the day is Berlin's.
        ("2026-03-13", "webform"): (1, 1),
    }
    weekly = await report(boss, "volume", granularity="week")
    assert {
        (row["period"], row["channel"]): (row["inbound"], row["conversations"])
        for row in weekly["rows"]
    } == {
        ("2026-03-02", "email"): (2, 2),
        ("2026-03-02", "telegram"): (2, 2),
        ("2026-03-02", "webform"): (0, 0),
        ("2026-03-09", "email"): (1, 0),
        ("2026-03-09", "telegram"): (0, 0),
        ("2026-03-09", "webform"): (1, 1),
    }
    in_sales = await report(boss, "volume", granularity="week", queue_id=str(history.sales))
    assert {row["channel"] for row in in_sales["rows"]} == {"telegram"}
    assert sum(row["inbound"] for row in in_sales["rows"]) == 2
    utc = await report(boss, "volume", time_zone="UTC")
    webform = {row["period"]: row["inbound"] for row in utc["rows"] if row["channel"] == "webform"}
    assert (webform["2026-03-12"], webform["2026-03-13"]) == (1, 0)


async def test_leads_by_source_and_campaign(world: tuple[History, User]) -> None:
    _, boss = world
    body = await report(boss, "lead_sources")
    assert body["rows"] == [
        {
            "source": "form:contact",
            "utm_source": "google",
            "utm_campaign": "spring",
            "leads": 2,
            "open": 0,
            "won": 1,
            "lost": 1,
            "win_rate": 0.5,
        },
        {
            "source": "api",
            "utm_source": "",
            "utm_campaign": "",
            "leads": 1,
            "open": 0,
            "won": 1,
            "lost": 0,
            "win_rate": 1.0,
        },
        {
            "source": "form:contact",
            "utm_source": "google",
            "utm_campaign": "autumn",
            "leads": 1,
            "open": 1,
            "won": 0,
            "lost": 0,
            "win_rate": None,
        },
    ]
    only_api = await report(boss, "lead_sources", source="api")
    assert [row["source"] for row in only_api["rows"]] == ["api"]


async def test_the_funnel_counts_how_far_each_lead_got(world: tuple[History, User]) -> None:
    _, boss = world
    body = await report(boss, "funnel")
    assert [
        (row["stage"], row["reached"], row["from_previous"], row["from_start"], row["lost_after"])
        for row in body["rows"]
    ] == [
        ("new", 4, None, 1.0, 1),
        ("qualified", 3, 0.75, 0.75, 0),
        ("proposal", 2, 0.6667, 0.5, 0),
        ("won", 2, 1.0, 0.5, 0),
    ]
    assert body["chart"]["kind"] == "funnel"


async def test_sales_by_owner(world: tuple[History, User]) -> None:
    history, boss = world
    body = await report(boss, "sales_by_owner")
    assert [column["key"] for column in body["columns"]][-2:] == ["won_value_EUR", "won_value_USD"]
    rows = rows_by(body, "key")
    assert figures(rows[history.ann]) == {
        "won": 1,
        "lost": 1,
        "win_rate": 0.5,
        "cycle_median_days": 4.0,
        "cycle_p90_days": 4.0,
        "won_value_EUR": "1000.00",
        "won_value_USD": "0.00",
    }
    assert figures(rows[history.bob]) == {
        "won": 2,
        "lost": 0,
        "win_rate": 1.0,
        "cycle_median_days": 6.0,
        "cycle_p90_days": 19.0,
        "won_value_EUR": "300.00",
        "won_value_USD": "200.00",
    }
    assert figures(rows["all"]) == {
        "won": 3,
        "lost": 1,
        "win_rate": 0.75,
        "cycle_median_days": 6.0,
        "cycle_p90_days": 19.0,
        "won_value_EUR": "1300.00",
        "won_value_USD": "200.00",
    }


@pytest.mark.sqlite_only
async def test_exports_in_the_readers_language(world: tuple[History, User]) -> None:
    _, boss = world
    response = await boss.patch("/api/v1/auth/me/preferences", json={"locale": "ru"})
    assert response.status == 200
    with using(ManualClock(NOW)):
        exported = await boss.get(
            "/api/v1/reports/sales_by_owner/export", params={**PERIOD, "format": "csv"}
        )
    assert exported.status == 200
    assert exported.headers["Content-Type"].startswith("text/csv")
    assert "sales_by_owner-2026-03-02-2026-03-15.csv" in exported.headers["Content-Disposition"]
    raw = await exported.read()
    assert raw.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert table[0][0] == "Ответственный"
    assert table[-1][:3] == ["Все", "3", "1"]  # noqa: RUF001 (Russian)
    with using(ManualClock(NOW)):
        book = await boss.get("/api/v1/reports/funnel/export", params={**PERIOD, "format": "xlsx"})
    assert book.status == 200
    with zipfile.ZipFile(io.BytesIO(await book.read())) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
        strings = archive.read("xl/sharedStrings.xml").decode()
    assert "Proposal" in strings
    # The "reached" column holds numbers, not text.
    assert re.search(r'<c r="B2"[^>]*><v>4</v>', sheet)


def test_csv_text_is_never_a_formula() -> None:
    from datetime import date

    from core.i18n import translator
    from core.reports.base import ColumnSpec, Kind, ReportFilters
    from core.reports.export import to_csv

    result = ReportResult(
        name="lead_sources",
        title="Leads by source and campaign",
        filters=ReportFilters(start=date(2026, 3, 2), end=date(2026, 3, 15)),
        columns=[
            ColumnSpec(key="utm_campaign", label="Campaign", kind=Kind.TEXT),
            ColumnSpec(key="leads", label="Leads"),
        ],
        rows=[{"utm_campaign": '=HYPERLINK("http://x.example","win")', "leads": -1}],
        chart=Chart(kind="bar", x="utm_campaign", y=("leads",)),
        generated_at=NOW,
    )
    table = list(csv.reader(io.StringIO(to_csv(result, translator("en")).decode("utf-8-sig"))))
    assert table[1] == ['\'=HYPERLINK("http://x.example","win")', "-1"]


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("performance", {"start": "2026-03-05", "end": "2026-03-01"}, 400, "end"),
        ("performance", {"queue_id": "1,x"}, 400, "queue_id"),
        ("performance", {"time_zone": "Mars/Olympus"}, 400, "time_zone"),
        ("performance", {"group_by": "channel"}, 400, "group_by"),
        ("volume", {"source": "api"}, 400, "source"),
        ("volume", {"start": "2024-01-01", "end": "2026-03-01"}, 400, "end"),
        ("funnel", {"pipeline_id": "999"}, 400, "pipeline_id"),
        ("nothing", {}, 404, None),
    ],
)
async def test_bad_report_requests(
    make_user: UserFactory, path: str, params: dict[str, str], status: int, field: str | None
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    response = await boss.get(f"/api/v1/reports/{path}", params={**PERIOD, **params})
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    if field is not None:
        assert field in error["fields"]


@pytest.mark.sqlite_only
async def test_reports_are_for_supervisors(make_user: UserFactory) -> None:
    operator = await make_user(Role.OPERATOR)
    for path in ("/api/v1/reports", "/api/v1/reports/volume", "/api/v1/reports/volume/export"):
        response = await operator.get(path, params=PERIOD)
        assert response.status == 403, path
    boss = await make_user(Role.SUPERVISOR)
    listed = await (await boss.get("/api/v1/reports")).json()
    assert [item["name"] for item in listed] == [
        "volume",
        "performance",
        "lead_sources",
        "funnel",
        "sales_by_owner",
    ]
    assert listed[0]["filters"] == ["channel", "granularity", "operator_id", "queue_id"]


def test_week_buckets_cut_at_the_period_and_follow_the_clock_change() -> None:
    from datetime import date

    from core.reports.base import Granularity, ReportFilters, buckets

    filters = ReportFilters(
        start=date(2026, 3, 25),
        end=date(2026, 4, 2),
        time_zone="Europe/Berlin",
        granularity=Granularity.WEEK,
    )
    found = buckets(filters)
    assert [(b.label.isoformat(), b.until - b.since) for b in found] == [
        # Wed 25 to Sun 29 March: five days, one of them 23 hours long.
        ("2026-03-23", timedelta(days=5, hours=-1)),
        ("2026-03-30", timedelta(days=4)),
    ]
