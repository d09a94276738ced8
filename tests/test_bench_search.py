"""The search benchmark runs end to end on a tiny data set (SQLite; no timings checked)."""

from __future__ import annotations

import pytest

from bench.search import main


def test_the_search_bench_seeds_and_times_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    figures = main(["--backends=sqlite", "--contacts=200", "--interactions=600", "--queries=5"])
    (results,) = figures.values()
    assert [timing.name for timing in results][:3] == [
        "fts conversations (admin)",
        "fts conversations (operator)",
        "fts contacts",
    ]
    assert all(len(timing.latencies) >= 5 for timing in results)
    # The full-text search and the scan find things in the same data.
    assert results[0].found > 0
    assert results[3].found > 0
    assert "p99" in capsys.readouterr().out
