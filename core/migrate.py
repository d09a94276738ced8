"""Run Alembic migrations programmatically (the `omnicrm migrate` command and the tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


def upgrade_sync(database_url: str, revision: str = "head") -> None:
    """Upgrade the schema; must not be called from a running event loop (env.py owns one)."""
    command.upgrade(alembic_config(database_url), revision)


async def upgrade(database_url: str, revision: str = "head") -> None:
    # env.py runs its own event loop, so it gets a thread of its own.
    await asyncio.to_thread(upgrade_sync, database_url, revision)
