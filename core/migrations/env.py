"""Alembic environment: runs migrations on the engine given by core.migrate.

Migrations that touch encrypted data find the installation's CredentialCipher (or None) in
`config.attributes["credentials"]`, put there by core.migrate.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from core.db import make_engine
from core.models import Base
from core.search import is_search_object

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode alters a SQLite table by copying it and dropping the old one; with foreign
        # keys enforced, that drop would first delete the old rows and cascade to the rows that
        # refer to them (a mailbox's quarantined messages). So they are off while migrating (a
        # pragma that only changes outside a transaction), and checked before the commit.
        _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=sqlite,
        compare_type=True,
        # SQLite's DDL is transactional too: one transaction for the whole run, so a migration
        # that fails leaves the database at the revision it started from (Alembic would
        # otherwise commit each step on SQLite).
        transactional_ddl=True,
        # The full-text tables, triggers and indexes (migration 0012) are not in the models.
        include_name=_not_search_object,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
            raise RuntimeError("the migration left rows whose foreign keys point nowhere")


def _not_search_object(name: str | None, type_: str, parent_names: object) -> bool:
    return not is_search_object(name)


def _sqlite_pragma(connection: Connection, statement: str) -> None:
    """Run a pragma on the driver's connection, outside any transaction SQLAlchemy begins."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


async def _run_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
            if connection.dialect.name == "sqlite":
                await connection.run_sync(_sqlite_pragma, "PRAGMA foreign_keys=ON")
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `omnicrm migrate`")

asyncio.run(_run_online())
