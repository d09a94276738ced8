"""Structured logs: one JSON object per line, with the call's extra fields."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from web.logs import JsonFormatter


def test_a_log_line_is_json_with_extra_fields() -> None:
    record = logging.LogRecord(
        "omnicrm.outbox", logging.INFO, __file__, 1, "sent %s", ("it",), None
    )
    record.outbox_id = 7
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["message"] == "sent it"
    assert entry["level"] == "info"
    assert entry["logger"] == "omnicrm.outbox"
    assert entry["outbox_id"] == 7
    assert "\n" not in line


def test_exceptions_are_kept_inside_the_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "omnicrm", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info()
        )
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]


@pytest.mark.parametrize("value", [object(), {"nested": [1, 2]}])
def test_values_json_cannot_encode_become_strings(value: object) -> None:
    record = logging.LogRecord("omnicrm", logging.INFO, __file__, 1, "m", (), None)
    record.thing = value
    assert "thing" in json.loads(JsonFormatter().format(record))
