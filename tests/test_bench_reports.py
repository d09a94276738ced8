"""The reports benchmark runs end to end on a tiny history on the test PostgreSQL (no timings
checked): every report gets its figures, its floor and a verdict, and --explain prints a plan.

Without a reachable PostgreSQL the test is skipped with the reason, except under CI=true, where
that is a failure (as the suite's PostgreSQL half, tests/conftest.py)."""

from __future__ import annotations

import asyncio
import re

import pytest

from bench.common import postgresql_unreachable
from bench.reports import main
from core.db import asyncpg_dsn
from core.reports import REPORTS
from tests.conftest import POSTGRES_ADMIN_URL, unavailable


def test_the_reports_bench_times_every_report_next_to_its_floor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    problem = asyncio.run(postgresql_unreachable(asyncpg_dsn(POSTGRES_ADMIN_URL)))
    if problem is not None:
        unavailable(f"PostgreSQL {problem}")

    result = main(["--quick", "--explain", f"--postgres-url={POSTGRES_ADMIN_URL}"])

    assert result is not None
    counts = result.seeded.counts
    assert (counts["contact"], counts["conversation"], counts["interaction"]) == (
        2000,
        5000,
        20_000,
    )
    assert counts["lead"] == 1000
    assert counts["lead"] <= counts["lead_stage_change"] <= 4 * counts["lead"]
    assert counts["voice_call"] > 0
    assert {figures.case.report for figures in result.figures} == set(REPORTS)
    for figures in result.figures:
        assert len(figures.report.latencies) == len(figures.floor.latencies) == 3
        # Every filter set finds rows in the seeded history, and so does its floor.
        assert figures.report.rows > 0, figures.case.name
        assert figures.floor.rows > 0, figures.case.name
    assert set(result.verdicts()) == set(REPORTS)
    explained = [figures for figures in result.figures if figures.explained]
    assert explained
    for e in (e for figures in explained for e in figures.explained):
        # Planned for its parameters and generic, both run.
        assert e.custom.milliseconds >= 0
        assert e.generic.milliseconds >= 0

    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].startswith("reports bench: 2,000 contacts, 5,000 conversations")
    assert any(line.startswith("seeded 2,000 contacts") for line in lines)
    number = r"[0-9][0-9,]*\.[0-9]"
    for figures in result.figures:
        name = re.escape(figures.case.name)
        # Its row: rows, first, p50, p99, max | floor p50, p99, rows read | the ratio.
        assert re.search(
            rf"^{name} +[0-9,]+ +{number} +{number} +{number} +{number} +\| +{number}"
            rf" +{number} +[0-9,]+ +\| +{number}x$",
            printed,
            re.MULTILINE,
        ), figures.case.name
        assert re.search(
            rf"^verdict {name}: (within|OVER) the 500 ms goal \(p99 {number} ms",
            printed,
            re.MULTILINE,
        ), figures.case.name
    for report in REPORTS:
        assert re.search(rf"^report {report}: (within|OVER) the goal", printed, re.MULTILINE)
    assert "EXPLAIN (ANALYZE, BUFFERS) of " in printed
    assert "Execution Time:" in printed
    assert "-- custom plan (for these parameters" in printed
