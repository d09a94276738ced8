"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_ignoring_conflicts(
    session: AsyncSession, model: Any, index_elements: list[str], index_where: Any = None
) -> Any:
    """INSERT … ON CONFLICT (index_elements) [WHERE index_where] DO NOTHING for the session's
    dialect (`index_where`: the predicate of a partial unique index, which the conflict
    target must repeat to match it)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(model).on_conflict_do_nothing(
        index_elements=index_elements, index_where=index_where
    )


def supports_skip_locked(session: AsyncSession) -> bool:
    # SQLite has one writer at a time (BEGIN IMMEDIATE), which gives the same exclusivity.
    return session.get_bind().dialect.name == "postgresql"
