"""Checks on text before it reaches the database."""

from __future__ import annotations

import math
from typing import Any

from core.errors import InvalidInput


def check_storable(value: Any, field: str) -> None:
    """Reject what the databases cannot store: NUL, lone surrogates, NaN and infinity.

    Walks nested lists and dicts (keys too) without recursion, so depth cannot crash it.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise InvalidInput("must not contain NUL characters", field=field)
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput("must be valid Unicode text", field=field) from None
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidInput("numbers must be finite", field=field)
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
