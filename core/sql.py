"""Small SQL helpers that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from sqlalchemy import BindParameter, ClauseElement
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import visitors


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


_Statement = TypeVar("_Statement", bound=ClauseElement)


def constants_written_in(statement: _Statement) -> _Statement:
    """`statement` with every bound value written into its text when it runs (SQLAlchemy's
    `literal_execute`), for a statement whose values never change: statuses, names, ids.

    PostgreSQL plans a statement with parameters anew at each execution when it cannot tell
    that one plan suits every value; one without parameters it plans once per connection.
    For a statement of many subqueries (routing's look at what is due), planning cost more
    than running it. Only for values fixed when the statement is built, never for what a
    user sends."""

    def written(element: Any, **_kw: Any) -> Any:
        if isinstance(element, BindParameter) and not element.literal_execute:
            return BindParameter(
                element.key,
                element.value,
                type_=element.type,
                unique=True,
                expanding=element.expanding,
                literal_execute=True,
            )
        return None

    options: dict[str, Any] = {}
    return cast(_Statement, visitors.replacement_traverse(cast(Any, statement), options, written))
