"""Structured log fields that can never collide with a `LogRecord`'s own attributes.

`logging` refuses an `extra=` key that names an attribute of the record (`created`, `name`,
`msg`, `args`, `module`, `filename`, `message`, ...) with a `KeyError`, raised where the call
is made, so a log line can crash the code that logs it. Every structured log call therefore
passes its fields through `log_fields`, which puts them all under one attribute of its own;
the JSON formatter (`web.logs`) writes them out under their own names.

    log.info("config mailboxes synced", extra=log_fields(created=["support"]))

Invariant: `log_fields(...)` has exactly one key, `FIELDS_ATTRIBUTE`, which no `LogRecord`
has, whatever the field names are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FIELDS_ATTRIBUTE = "omnicrm_fields"


def log_fields(fields: Mapping[str, object] | None = None, /, **more: object) -> dict[str, Any]:
    """The `extra=` argument of a log call carrying `fields` and `more` (`more` wins)."""
    return {FIELDS_ATTRIBUTE: {**(fields or {}), **more}}


def fields_of(record: object) -> dict[str, object]:
    """The fields a log call passed through `log_fields` (empty if it passed none)."""
    found = getattr(record, FIELDS_ATTRIBUTE, None)
    return dict(found) if isinstance(found, Mapping) else {}
