"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_insert(dialect_name: str) -> Any:
    """The INSERT construct of the dialect (PostgreSQL's or SQLite's), with ON CONFLICT."""
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert


def insert_ignoring_conflicts(
    session: AsyncSession, model: Any, index_elements: list[str], index_where: Any = None
) -> Any:
    """INSERT … ON CONFLICT (index_elements) [WHERE index_where] DO NOTHING for the session's
    dialect (`index_where`: the predicate of a partial unique index, which the conflict
    target must repeat to match it)."""
    insert = dialect_insert(session.get_bind().dialect.name)
    return insert(model).on_conflict_do_nothing(
        index_elements=index_elements, index_where=index_where
    )


def supports_skip_locked(session: AsyncSession) -> bool:
    # SQLite has one writer at a time (BEGIN IMMEDIATE), which gives the same exclusivity.
    return session.get_bind().dialect.name == "postgresql"
