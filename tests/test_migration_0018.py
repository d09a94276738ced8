"""Migration 0018 on a real 0017 database, on both backends: legal entities keep what they had
and get no tax id; a tax id set afterwards is searchable by its index; the downgrade drops
only the column (the entities stay), and upgrading again brings it back empty."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.migrate import downgrade, upgrade
from tests.test_credentials_migration import engine_of, fetch

pytestmark = pytest.mark.both_databases  # tests/conftest.py


async def test_0018_adds_an_empty_tax_id_and_the_downgrade_keeps_the_entities(
    scratch_url: str,
) -> None:
    await upgrade(scratch_url, "0017")
    async with engine_of(scratch_url) as engine, engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO account (id, name, created_at) VALUES (1, 'Nordwind',"
                " CURRENT_TIMESTAMP)"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO legal_entity (id, account_id, name, erp_ref)"
                " VALUES (1, 1, 'Nordwind GmbH', 'C-10042')"
            )
        )
    await upgrade(scratch_url, "0018")
    entities = "SELECT id, name, erp_ref, tax_id FROM legal_entity ORDER BY id"
    assert await fetch(scratch_url, entities) == [
        {"id": 1, "name": "Nordwind GmbH", "erp_ref": "C-10042", "tax_id": None}
    ]
    async with engine_of(scratch_url) as engine, engine.begin() as connection:
        await connection.execute(text("UPDATE legal_entity SET tax_id = 'DE123456789'"))
    found = "SELECT id FROM legal_entity WHERE tax_id = 'DE123456789'"
    assert await fetch(scratch_url, found) == [{"id": 1}]

    await downgrade(scratch_url, "0017")
    assert await fetch(scratch_url, "SELECT id, name, erp_ref FROM legal_entity") == [
        {"id": 1, "name": "Nordwind GmbH", "erp_ref": "C-10042"}
    ]
    await upgrade(scratch_url)
    assert (await fetch(scratch_url, entities))[0]["tax_id"] is None
