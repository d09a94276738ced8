"""The routing engine over a small world (tests/routing_world.py), as the engine's tests
drive it: the `world` and `routing` fixtures (a plugin of tests/conftest.py; a module's own
fixtures of those names come first), and `settle`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.clock import using
from core.db import SessionFactory
from core.events import EventBus
from routing.engine import RoutingEngine
from routing.service import PassReport
from tests.routing_world import World


@pytest.fixture
def world(sessions: SessionFactory) -> Iterator[World]:
    world = World(sessions)
    with using(world.clock):
        yield world


@pytest.fixture
def routing(world: World, bus: EventBus) -> RoutingEngine:
    return RoutingEngine(world.sessions, bus, world.options, clock=world.clock.now)


async def settle(routing: RoutingEngine) -> PassReport:
    """Passes as the engine runs them until one leaves nothing it could give."""
    report = await routing.run_next()
    while report.more or report.undecided is not False:
        report = await routing.run_next()
    return report
