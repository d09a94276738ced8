"""Migration 0017 on a real 0016 database, on both backends: the leads that were there come out
in the pipeline "Sales" in the stage they had, won and lost ones closed at their last update,
each with the one history row of its current stage, on the board and movable at once; the
downgrade keeps them and their stages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from core import pipelines
from core.audit import Actor
from core.db import make_session_factory
from core.leads import LeadChanges, update_lead
from core.migrate import downgrade, upgrade
from core.models import Lead, LeadStageChange, Pipeline, Role
from tests.test_credentials_migration import engine_of, fetch

pytestmark = pytest.mark.both_databases  # tests/conftest.py

ADMIN = Actor("test", Role.ADMIN)
CONTACTED = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
# The leads of the 0016 database: id, stage, created, last updated.
LEADS = [
    (1, "won", datetime(2026, 6, 2, 10, 0, tzinfo=UTC), datetime(2026, 6, 20, 16, 30, tzinfo=UTC)),
    (2, "new", datetime(2026, 6, 3, 11, 0, tzinfo=UTC), datetime(2026, 6, 4, 12, 0, tzinfo=UTC)),
    (3, "lost", datetime(2026, 6, 5, 8, 0, tzinfo=UTC), datetime(2026, 6, 6, 8, 15, tzinfo=UTC)),
]


def stored(moment: datetime, url: str) -> datetime:
    """How a plain statement writes a timestamp: naive UTC on SQLite, as 0016's models did."""
    return moment.replace(tzinfo=None) if url.startswith("sqlite") else moment


async def at_0016_with_leads(url: str) -> None:
    await upgrade(url, "0016")
    async with engine_of(url) as engine, engine.begin() as connection:
        now = stored(CONTACTED, url)
        await connection.execute(
            text(
                "INSERT INTO contact (id, display_name, tags, custom_fields, priority_tier,"
                " marketing_source, created_at, updated_at) VALUES (1, 'Anna Novak', '[]',"
                " '{}', 'standard', '{}', :now, :now)"
            ),
            {"now": now},
        )
        await connection.execute(
            text(
                "INSERT INTO conversation (id, contact_id, channel, status, priority, subject,"
                " created_at, updated_at) VALUES (1, 1, 'webform', 'open', 0, '', :now, :now)"
            ),
            {"now": now},
        )
        for lead_id, stage, created, updated in LEADS:
            await connection.execute(
                text(
                    "INSERT INTO lead (id, contact_id, conversation_id, source, stage, value,"
                    " currency, marketing, created_at, updated_at) VALUES (:id, 1, 1,"
                    " 'form:contact', :stage, 1200.50, 'EUR', '{}', :created, :updated)"
                ),
                {
                    "id": lead_id,
                    "stage": stage,
                    "created": stored(created, url),
                    "updated": stored(updated, url),
                },
            )


async def test_0017_puts_existing_leads_into_sales_with_their_history(scratch_url: str) -> None:
    await at_0016_with_leads(scratch_url)
    await upgrade(scratch_url)
    async with engine_of(scratch_url) as engine:
        sessions = make_session_factory(engine)
        async with sessions() as session:
            [pipeline] = list(await session.scalars(select(Pipeline)))
            assert (pipeline.name, pipeline.archived) == ("Sales", False)
            assert [(s.key, s.outcome) for s in pipeline.stages] == [
                ("new", "open"),
                ("qualified", "open"),
                ("proposal", "open"),
                ("won", "won"),
                ("lost", "lost"),
            ]
            leads = {lead.id: lead for lead in await session.scalars(select(Lead))}
            changes = list(
                await session.scalars(select(LeadStageChange).order_by(LeadStageChange.lead_id))
            )
            columns = await pipelines.board(session, ADMIN, pipeline, pipelines.BoardFilters())
        closes = {"won": True, "new": False, "lost": True}
        for lead_id, stage, created, updated in LEADS:
            lead = leads[lead_id]
            assert (lead.pipeline_id, lead.stage, lead.title) == (pipeline.id, stage, "")
            assert lead.stage_entered_at == created
            assert lead.closed_at == (updated if closes[stage] else None)
            assert lead.lost_reason is None
        assert [
            (c.lead_id, c.pipeline_id, c.from_stage, c.to_stage, c.changed_at, c.operator_id)
            for c in changes
        ] == [
            (lead_id, pipeline.id, None, stage, created, None)
            for lead_id, stage, created, _ in LEADS
        ]
        by_stage = {column.stage.key: column for column in columns}
        assert {key: [card.lead.id for card in by_stage[key].cards] for key in by_stage} == {
            "new": [2],
            "qualified": [],
            "proposal": [],
            "won": [1],
            "lost": [3],
        }
        assert str(by_stage["won"].totals["EUR"]) == "1200.50"

        # A migrated lead moves like any other: reopened, it is open again, with a new row.
        async with sessions() as session, session.begin():
            moved = await update_lead(session, ADMIN, 1, LeadChanges(stage="qualified"))
            assert (moved.stage, moved.closed_at) == ("qualified", None)
        async with sessions() as session:
            rows = list(
                await session.scalars(
                    select(LeadStageChange.to_stage)
                    .where(LeadStageChange.lead_id == 1)
                    .order_by(LeadStageChange.id)
                )
            )
        assert rows == ["won", "qualified"]

    await downgrade(scratch_url, "0016")
    assert await fetch(scratch_url, "SELECT id, stage FROM lead ORDER BY id") == [
        {"id": 1, "stage": "qualified"},
        {"id": 2, "stage": "new"},
        {"id": 3, "stage": "lost"},
    ]
    await upgrade(scratch_url)
    counted = await fetch(
        scratch_url,
        "SELECT lead_id, count(*) AS n FROM lead_stage_change GROUP BY lead_id ORDER BY lead_id",
    )
    assert counted == [{"lead_id": 1, "n": 1}, {"lead_id": 2, "n": 1}, {"lead_id": 3, "n": 1}]
