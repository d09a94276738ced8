"""The websocket fan-out benchmark runs end to end for a moment (SQLite; no timings checked)."""

from __future__ import annotations

import pytest

from bench.websockets import main


def test_the_websocket_bench_delivers_every_event_to_every_console(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (result,) = main(["--quick", "--consoles=12", "--events=6"])

    assert result.backend == "sqlite"
    assert result.ok, (result.ceiling.errors, result.omnicrm.errors)
    for target in (result.ceiling, result.omnicrm):
        assert target.clients.opened == 12
        assert target.clients.failures == []
        assert target.clients.closed == 0
        assert target.clients.duplicates == 0
        overall = target.overall
        assert overall.events == 6
        assert overall.missed == 0
        assert overall.trigger_errors == 0
        # Every console heard every event it may see: the ceiling's broadcasts, omnicrm's
        # presence changes (everyone) and new conversations (all are in the form's queue).
        assert len(overall.latencies_ms) == overall.expected == 6 * 12
    presence, created = result.omnicrm.deliveries
    assert (presence.events, created.events) == (3, 3)
    assert presence.missed == created.missed == 0
    # A form post also tells the consoles of the contact, the message and routing's decision.
    assert result.omnicrm.clients.messages > 6 * 12
    for item in (*result.ceiling.processes, *result.omnicrm.processes):
        assert item.idle_kib
        assert item.loaded_kib
    printed = capsys.readouterr().out
    assert "live events to 12 websocket consoles: 6 events" in printed
    assert "bare aiohttp broadcast" in printed
    assert "omnicrm operator.presence (everyone)" in printed
    assert "omnicrm conversation.created (form's queue)" in printed
    assert "omnicrm (sqlite), all events" in printed
    assert "RSS (VmRSS)" in printed
    assert "serve (web and background)" in printed
    assert "verdict (sqlite): p99" in printed
    assert "ERROR" not in printed
