"""The Twilio webhook benchmark runs end to end for a moment (SQLite; no timings checked)."""

from __future__ import annotations

import pytest

from bench.twilio_ingest import is_twiml, main


def test_twiml_is_recognised_however_it_is_spelled() -> None:
    assert is_twiml('<?xml version="1.0" encoding="UTF-8"?><Response />')
    assert is_twiml("<Response></Response>")
    assert not is_twiml("<Say>hello</Say>")
    assert not is_twiml('{"error": "nope"}')


def test_the_twilio_bench_gets_twiml_for_every_webhook(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seconds=0.5", "--concurrency=2", "--backends=sqlite"]) == 0
    printed = capsys.readouterr().out
    assert "Twilio SMS webhooks, 0.5s per target, 2 concurrent clients" in printed
    rows = [line.split() for line in printed.splitlines() if line.startswith(("bare", "omnicrm"))]
    assert [row[0] for row in rows] == ["bare", "omnicrm"]
    # Requests were answered and none of them wrongly (the last column counts errors).
    assert all(int(row[-2]) > 0 and row[-1] == "0" for row in rows), printed
