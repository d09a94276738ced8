"""The timeline benchmark runs end to end on a tiny history on the test PostgreSQL (no timings
checked): every way of asking got every contact's first page, the supervisor's pages are the
floor's rows, the operator's what visibility leaves of them, and the table, the verdicts and
--explain's plans are printed.

Without a reachable PostgreSQL the test is skipped with the reason, except under CI=true, where
that is a failure (as the suite's PostgreSQL half, tests/conftest.py)."""

from __future__ import annotations

import asyncio
import re

import pytest

from bench.common import postgresql_unreachable
from bench.timeline import (
    FLOOR,
    HTTP_OPERATOR,
    HTTP_SUPERVISOR,
    OPERATOR,
    PAGE,
    PAGES,
    PATHS,
    SUPERVISOR,
    main,
)
from core.db import asyncpg_dsn
from tests.conftest import POSTGRES_ADMIN_URL, unavailable


def test_the_timeline_bench_times_every_page_next_to_its_floor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    problem = asyncio.run(postgresql_unreachable(asyncpg_dsn(POSTGRES_ADMIN_URL)))
    if problem is not None:
        unavailable(f"PostgreSQL {problem}")

    result = main(["--quick", "--explain", f"--postgres-url={POSTGRES_ADMIN_URL}"])

    assert result is not None
    counts = result.seeded.counts
    assert (counts["contact"], counts["interaction"]) == (2000, 20_000)
    assert len(result.heavy) == 10
    assert len(result.sampled) == 40
    assert result.paths == PATHS
    visited = {contact_id for contact_id, _ in result.heavy} | set(result.sampled)
    assert len(visited) == 50
    # The heavy tail is the heaviest: no contact drawn at random has more interactions.
    assert [count for _, count in result.heavy] == sorted(
        (count for _, count in result.heavy), reverse=True
    )
    assert min(len(result.histories[c].ids) for c, _ in result.heavy) >= max(
        len(result.histories[c].ids) for c in result.sampled
    )

    for path in PATHS:
        firsts = {call.contact_id for call in result.calls if call.path == path and call.page == 1}
        assert firsts == visited, path
    floor = {(call.contact_id, call.page): call.ids for call in result.calls if call.path == FLOOR}
    supervisor = [call for call in result.calls if call.path in (SUPERVISOR, HTTP_SUPERVISOR)]
    operator = [call for call in result.calls if call.path in (OPERATOR, HTTP_OPERATOR)]
    # The heaviest contacts have a second page, and the floor was asked for it too.
    assert any(call.page == 2 for call in supervisor)
    for call in supervisor:
        assert call.ids == floor[(call.contact_id, call.page)], call
    assert {(call.contact_id, call.page) for call in supervisor if call.path == SUPERVISOR} == set(
        floor
    )
    for call in operator:
        history = result.histories[call.contact_id]
        assert set(call.ids) <= set(history.ids), call
        assert call.ids == history.visible[(call.page - 1) * PAGE : call.page * PAGE], call
        if call.page == 1:
            # What the operator may see of the floor's page comes first in theirs, in its order.
            seen = set(history.visible)
            shown = [i for i in floor[(call.contact_id, 1)] if i in seen]
            assert list(call.ids[: len(shown)]) == shown, call
    # Visibility left the operator some rows, and not all of them.
    assert (
        0
        < sum(len(call.ids) for call in operator if call.path == OPERATOR)
        < sum(len(call.ids) for call in supervisor if call.path == SUPERVISOR)
    )
    assert result.mismatches() == []
    assert set(result.verdicts()) <= {
        f"{path}, {page}" for path in PATHS if path != FLOOR for page in PAGES.values()
    }
    assert result.explained
    assert {item.label for item in result.explained} >= {
        "supervisor, first page",
        "operator, first page",
        "floor (asyncpg), first page",
    }
    for item in result.explained:
        assert item.explained.custom.milliseconds >= 0
        assert item.explained.generic.milliseconds >= 0

    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].startswith("timeline bench: 2,000 contacts, 5,000 conversations")
    assert any(line.startswith("seeded 2,000 contacts") for line in lines)
    number = r"[0-9][0-9,]*\.[0-9]"
    for heavy_only in (False, True):
        for figures in result.figures(heavy_only):
            name = re.escape(figures.name)
            if not figures.latencies:
                assert re.search(rf"^{name} +0 +0 +- +- +- +- +\| +-$", printed, re.MULTILINE)
                continue
            # Its row: calls, rows, first, p50, p99, max | the ratio to the floor.
            assert re.search(
                rf"^{name} +{len(figures.latencies)} +[0-9,]+ +{number} +{number} +{number}"
                rf" +{number} +\| +{number}x$",
                printed,
                re.MULTILINE,
            ), figures.name
    for figures in result.figures():
        if figures.path != FLOOR and figures.latencies:
            assert re.search(
                rf"^verdict {re.escape(figures.name)}: (within|OVER) the 20 ms goal"
                rf" \(p99 {number} ms over",
                printed,
                re.MULTILINE,
            ), figures.name
    assert re.search(r"^checked [0-9,]+ calls: the supervisor's pages", printed, re.MULTILINE)
    assert "EXPLAIN (ANALYZE, BUFFERS) for the heaviest contact" in printed
    assert "Execution Time:" in printed
    assert "ix_interaction_contact_time" in printed
