"""Migration 0012 on a real 0011 database, on both backends: the messages and contacts that
were there are found by the new full-text search at once, later writes follow, and the
downgrade removes the indexes and saved views."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from core.audit import Actor
from core.contacts import search_contacts
from core.db import make_session_factory
from core.migrate import downgrade, upgrade
from core.models import Role
from core.search import search_conversations
from tests.test_credentials_migration import engine_of, fetch

pytestmark = pytest.mark.both_databases  # tests/conftest.py

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ADMIN = Actor("test", Role.ADMIN)


async def test_0012_indexes_what_was_there_and_goes_back(scratch_url: str) -> None:
    await upgrade(scratch_url, "0011")
    async with engine_of(scratch_url) as engine, engine.begin() as connection:
        for statement in (
            "INSERT INTO contact (id, display_name, tags, custom_fields, priority_tier,"
            " marketing_source, created_at, updated_at) VALUES (1, 'Ольга Смирнова', '[]', '{}',"
            " 'standard', '{}', :now, :now)",
            "INSERT INTO identity (id, contact_id, kind, address, created_at)"
            " VALUES (1, 1, 'email', 'olga@example.ru', :now)",
            "INSERT INTO conversation (id, contact_id, channel, status, priority, subject,"
            " created_at, updated_at) VALUES (1, 1, 'email', 'open', 0, '', :now, :now)",
            "INSERT INTO interaction (id, conversation_id, contact_id, kind, direction, channel,"
            " subject, text, attachments, meta, occurred_at, created_at) VALUES (1, 1, 1,"
            " 'message', 'in', 'email', 'Возврат', 'Верните деньги за заказ', '[]', '{}',"
            " :now, :now)",
        ):
            await connection.execute(text(statement), {"now": NOW.replace(tzinfo=None)})
    await upgrade(scratch_url)
    async with engine_of(scratch_url) as engine:
        sessions = make_session_factory(engine)
        async with sessions() as session:
            hits, _ = await search_conversations(session, ADMIN, "деньги", cursor=None, limit=5)
            assert [hit.conversation.id for hit in hits] == [1]
            hits, _ = await search_conversations(session, ADMIN, "возврат", cursor=None, limit=5)
            assert [hit.conversation.id for hit in hits] == [1]
            for query in ("Ольга", "olga", "olga@example.ru"):
                found, _ = await search_contacts(
                    session, query, default_region=None, cursor=None, limit=5
                )
                assert [contact.id for contact in found] == [1], query
    await downgrade(scratch_url, "0011")
    tables = await fetch(
        scratch_url,
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'saved_view'"
        if scratch_url.startswith("postgresql")
        else "SELECT count(*) AS n FROM sqlite_master WHERE name LIKE '%fts%'"
        " OR name = 'saved_view'",
    )
    assert tables == [{"n": 0}]
    await upgrade(scratch_url)
