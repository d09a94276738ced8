"""Keyset pagination: an opaque cursor holds the sort key of the last item served."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, literal, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from core.errors import InvalidInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Ids are 64-bit columns on PostgreSQL.
MAX_ID = 2**63 - 1

RowT = TypeVar("RowT")


def encode_cursor(*key: datetime | int | str) -> str:
    """Encode a sort key such as (occurred_at, id) as a URL-safe cursor."""
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(raw: str, *types: type) -> tuple[Any, ...]:
    """Decode a cursor made by encode_cursor with values of these types; 400 if malformed."""
    try:
        padded = raw + "=" * (-len(raw) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong length")
        decoded: list[Any] = []
        for value, kind in zip(values, types, strict=True):
            if kind is datetime:
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    raise ValueError("naive timestamp")
                # Converting now also rejects dates that would overflow when stored as UTC.
                decoded.append(parsed.astimezone(UTC))
            elif kind is int and _is(value, int) and not 0 <= value <= MAX_ID:
                raise ValueError("id out of range")
            elif _is(value, kind):
                decoded.append(value)
            else:
                raise ValueError("wrong type")
        return tuple(decoded)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "cursor is not valid; use next_cursor from a page", field="cursor"
        ) from None


def _is(value: Any, kind: type) -> bool:
    # bool is an int in Python, but never a valid id in a cursor.
    return isinstance(value, kind) and not isinstance(value, bool)


async def keyset_page(
    session: AsyncSession,
    query: Select[RowT],
    time_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[int],
    *,
    cursor: str | None,
    limit: int,
    newest_first: bool = True,
) -> tuple[list[RowT], str | None]:
    """One keyset page of `query` ordered by (time, id); the cursor is the last row's key."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}", field="limit")
    if cursor:
        after_time, after_id = decode_cursor(cursor, datetime, int)
        # A row comparison, which the (…, time, id) indexes answer as a range: page k reads
        # one page of rows, not k (an OR of the two conditions is only a filter).
        key = tuple_(time_column, id_column)
        after = tuple_(literal(after_time, time_column.type), literal(after_id, id_column.type))
        query = query.where(key < after if newest_first else key > after)
    if newest_first:
        query = query.order_by(time_column.desc(), id_column.desc())
    else:
        query = query.order_by(time_column.asc(), id_column.asc())
    rows = list(await session.scalars(query.limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    next_cursor = encode_cursor(getattr(last, time_column.key), getattr(last, id_column.key))
    return rows[:limit], next_cursor
