"""The routing benchmark runs end to end on a tiny contact center (SQLite; no timings checked)."""

from __future__ import annotations

import pytest

from bench.routing import main


def test_the_routing_bench_drains_the_backlog_and_times_arrivals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (figures,) = main(
        [
            "--backend=sqlite",
            "--operators=20",
            "--conversations=150",
            "--queues=9",
            "--arrivals=6",
        ]
    )

    assert figures.backend == "sqlite"
    assert figures.decisions > 0
    assert figures.decisions == len(figures.probes.decision)
    # More work than room: some keeps waiting, each with the reason nobody took it.
    assert figures.still_waiting > 0
    assert figures.probes.outcomes.get("none", 0) > 0
    assert len(figures.probes.wait) > 0
    assert sum(len(times) for times in figures.arrivals.values()) == 6
    assert "undecided" not in figures.arrivals
    # Every second arrival is followed by a VIP's with a slot freed for it: it is given.
    assert list(figures.room_arrivals) == ["given"]
    assert len(figures.room_arrivals["given"]) == 3
    # Idle passes after one that left nothing to give skip the backlog.
    assert len(figures.incremental) == len(figures.idle) == 3
    assert figures.incremental_statements < figures.idle_statements
    assert len(figures.bare) == figures.decisions
    # The given rate is timed up to the pass that gave the last work.
    assert 0 < figures.given_seconds <= figures.drain_seconds
    printed = capsys.readouterr().out
    assert "routing on sqlite: 20 operators" in printed
    assert "bare UPDATE+INSERT per decision (ceiling)" in printed
    assert "drain: given/s until the last given" in printed
    assert "arrival with room commit -> given, committed" in printed
