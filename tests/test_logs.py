"""Structured logs: one JSON object per line, with the call's extra fields."""

from __future__ import annotations

import ast
import io
import json
import logging
import sys
from pathlib import Path

import pytest

from core.logfields import log_fields
from web.logs import LINE_KEYS, JsonFormatter, wants_json


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


# Every attribute a LogRecord has, plus what Formatter.format adds to it: the names `extra=`
# may not use.
RESERVED = sorted(
    set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "exception"}
)


@pytest.mark.parametrize("name", RESERVED)
def test_every_reserved_name_reaches_the_json_line_through_the_helper(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("omnicrm.test")
    with caplog.at_level(logging.INFO, logger="omnicrm.test"):
        logger.info("synced %s", "it", extra=log_fields({name: ["support"]}, other=1))
    [record] = caplog.records
    entry = json.loads(JsonFormatter().format(record))
    # The line's own keys keep their meaning; a field named like one of them is renamed.
    key = f"field_{name}" if name in LINE_KEYS else name
    assert entry[key] == ["support"]
    assert entry["other"] == 1
    assert entry["message"] == "synced it"
    assert entry["logger"] == "omnicrm.test"
    assert entry["level"] == "info"


def test_a_plain_extra_with_a_reserved_name_is_what_the_helper_prevents() -> None:
    # The failure the helper exists for: logging refuses it where the call is made.
    with pytest.raises(KeyError, match="created"):
        logging.getLogger("omnicrm.test").error("x", extra={"created": []})


SOURCE_PACKAGES = ("core", "channels", "routing", "web", "erp_bridge", "bench")


def _extra_arguments_not_from_the_helper() -> list[str]:
    root = Path(__file__).resolve().parent.parent
    found: list[str] = []
    for package in SOURCE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text("utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                for keyword in node.keywords:
                    value = keyword.value
                    if keyword.arg != "extra":
                        continue
                    # pydantic's `extra="forbid"` is a model option, not log fields.
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        continue
                    if (
                        isinstance(value, ast.Call)
                        and isinstance(value.func, ast.Name)
                        and value.func.id == "log_fields"
                    ):
                        continue
                    where = path.relative_to(root)
                    found.append(f"{where}:{value.lineno}: extra={ast.unparse(value)}")
    return found


def test_every_extra_argument_in_the_code_base_is_built_by_the_helper() -> None:
    assert _extra_arguments_not_from_the_helper() == []


class _Stream(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


@pytest.mark.parametrize(
    ("configured", "terminal", "expected"),
    [
        (None, True, False),  # a person at a terminal reads plain text
        (None, False, True),  # a service manager, container or file gets JSON lines
        (True, True, True),
        (False, False, False),
    ],
)
def test_logs_are_plain_on_a_terminal_and_json_elsewhere_unless_configured(
    configured: bool | None, terminal: bool, expected: bool
) -> None:
    assert wants_json(configured, _Stream(terminal)) is expected
