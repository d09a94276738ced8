"""The ERP panel benchmark runs end to end for a moment against the Odoo stand-in (no timings
checked: the warm panel is told from the cold one by what reaches the stand-in)."""

from __future__ import annotations

import pytest

from bench.erp import main


def test_the_erp_bench_times_cold_and_warm_panels_next_to_the_stand_in_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = main(["--runs=3", "--latency-ms=2"])

    assert result.violations == []
    for timings in (result.floor, result.cold, result.warm):
        assert len(timings.latencies) == 3
    assert len(result.first.latencies) == 1
    # The floor is three requests; a cold panel asks the stand-in every time, a warm one never.
    assert result.floor.standin_requests == [3, 3, 3]
    assert all(asked >= 3 for asked in result.cold.standin_requests)
    assert result.warm.standin_requests == [0, 0, 0]
    # The first panel also learns the database's fields (fields_get), once.
    assert result.first.standin_requests[0] > result.cold.standin_requests[0]
    printed = capsys.readouterr().out
    assert "Odoo stand-in adding 2 ms per request, 3 panels each" in printed
    for name in ("stand-in alone (3 requests)", "cold cache", "warm cache", "first panel"):
        assert name in printed
    assert "p99" in printed
    assert "p50 against the stand-in alone: cold" in printed


def test_the_erp_bench_explains_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert "--latency-ms" in capsys.readouterr().out
