"""The web-form ingest benchmark runs end to end for a moment (SQLite; no timings checked)."""

from __future__ import annotations

import shutil

import pytest

from bench.ingest import main
from tests.conftest import unavailable


def test_the_ingest_bench_answers_every_target_and_stores_what_omnicrm_acknowledged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    if shutil.which("wrk") is None:
        unavailable("wrk is not installed (apt-get install wrk)")
    (result,) = main(
        ["--seconds=1", "--open-loop-seconds=1", "--concurrency=2", "--backends=sqlite"]
    )

    assert result.backend == "sqlite"
    assert result.processes == 1
    for closed in (result.empty, result.durable, result.omnicrm):
        assert closed.requests > 0, closed.name
        assert closed.socket_errors == 0, closed.name
        assert closed.unexpected == 0, closed.name  # every answer a 303
    # Every 303 is stored; wrk may leave one request per connection in flight, stored or not.
    assert result.durable.acknowledged <= result.durable_stored <= result.durable.acknowledged + 2
    assert result.omnicrm.acknowledged <= result.omnicrm_stored <= result.omnicrm.acknowledged + 2
    # The open loop waits for every answer: exactly what it was answered is stored.
    assert result.open_loop.scheduled > 0
    assert result.open_loop.errors == 0
    assert result.open_loop_stored == result.open_loop.answered == result.open_loop.scheduled
    assert result.pacer_check.errors == 0
    assert result.pacer_check.answered == result.pacer_check.scheduled
    # The queue's operators had their consoles open: ingest fanned out to them.
    assert result.heard["interaction.created"] > 0
    assert result.ok
    printed = capsys.readouterr().out
    assert "wrk -t1 -c2, 1 s per target" in printed
    assert "sqlite: omnicrm serves from 1 web process" in printed
    assert "bare aiohttp, empty" in printed
    assert "bare aiohttp + aiosqlite write" in printed
    assert "omnicrm (sqlite)" in printed
    assert "of durable" in printed
    assert f"omnicrm {result.omnicrm_stored} interactions" in printed
    assert "open loop (bench/open_loop.py" in printed
    assert "rate: omnicrm at" in printed
    assert "(target ≥ 25%)" in printed
    assert "latency: open-loop p99" in printed
    assert "MISMATCH" not in printed
    assert "ERRORS" not in printed


def test_without_wrk_it_says_how_to_install_it_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(SystemExit) as exit_:
        main(["--backends=sqlite"])

    assert exit_.value.code == 2
    said = capsys.readouterr().err
    assert "wrk is not installed" in said
    assert "apt-get install wrk" in said
