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
            "--queues=5",
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
    assert len(figures.bare) == figures.decisions
    printed = capsys.readouterr().out
    assert "routing on sqlite: 20 operators" in printed
    assert "bare UPDATE+INSERT per decision (ceiling)" in printed
