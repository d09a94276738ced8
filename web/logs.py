"""Structured logs: one JSON object per line, with the structured fields of each call.

Fields come from `core.logfields.log_fields` (the only way omnicrm's own code passes them) and
from plain `extra=` attributes other libraries set. Each field is written under its own name,
`created` or `msg` included; a field named like one of the line's own keys (`time`, `level`,
`logger`, `message`, `exception`) is written as `field_<name>`, so it never replaces them.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from core.logfields import FIELDS_ATTRIBUTE, fields_of

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    FIELDS_ATTRIBUTE,
}
LINE_KEYS = frozenset({"time", "level", "logger", "message", "exception"})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = {key: value for key, value in record.__dict__.items() if key not in _STANDARD}
        fields.update(fields_of(record))
        entry.update(
            (f"field_{key}" if key in LINE_KEYS else key, value) for key, value in fields.items()
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def wants_json(configured: bool | None, stream: Any) -> bool:
    """JSON lines unless configured otherwise or writing to a terminal."""
    if configured is not None:
        return configured
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(level: str, configured_json: bool | None) -> None:
    handler = logging.StreamHandler()
    as_json = wants_json(configured_json, handler.stream)
    handler.setFormatter(
        JsonFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log repeats what the latency histogram and our logs already say, and
    # alembic's step-by-step notes add nothing to "database is up to date".
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
