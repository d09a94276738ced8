"""The Telegram webhook benchmark runs end to end for a moment (SQLite; no timings checked)."""

from __future__ import annotations

import pytest

from bench.telegram_ingest import main


def test_the_telegram_bench_stores_every_accepted_update_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (result,) = main(["--seconds=0.5", "--concurrency=2", "--backends=sqlite"])

    assert result.backend == "sqlite"
    assert result.ceiling.requests > 0
    assert result.ceiling.errors == 0
    assert result.figures.requests > 0
    assert result.figures.errors == 0
    # Every update omnicrm answered 200 is stored, once; delivering some again adds nothing.
    assert result.accepted == result.figures.requests
    assert result.stored == result.distinct == result.accepted
    assert result.redelivered > 0
    assert result.stored_after_redelivery == result.stored
    assert result.ok
    printed = capsys.readouterr().out
    assert "Telegram webhook updates, 0.5s per target, 2 concurrent clients" in printed
    assert "bare aiohttp" in printed
    assert "omnicrm (sqlite)" in printed
    assert "p99" in printed
    assert f"stored {result.stored} messages" in printed
    assert "MISMATCH" not in printed
