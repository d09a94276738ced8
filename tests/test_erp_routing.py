"""Routing on ERP facts, end to end: the routing engine's pass asks the real `ErpEnricher`,
which asks an ERPNext adapter, which asks the ERPNext stand-in over HTTP; a queue rule on
`erp.turnover` sends a VIP's conversation to the key-account queue, everyone else to support.
With the ERP down or hanging, routing still queues and assigns, within the enricher's
deadline, and the decision log says why the ERP's facts were missing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from core.audit import CLI
from core.clock import using
from core.db import SessionFactory
from core.events import EventBus
from erp_bridge.base import CircuitBreaker, ErpContext
from erp_bridge.enricher import ErpEnricher
from erp_bridge.erpnext import KIND, ErpNextAdapter, ErpNextSettings
from routing.engine import RoutingEngine
from routing.service import RoutingOptions
from routing.setup import QUEUE_RULES, set_rules
from tests.erp_standins.erpnext import (
    API_KEY,
    API_SECRET,
    ErpNextStandIn,
    hang,
    proxy_error,
    seed,
)
from tests.routing_world import World

KIM = "kim.lee@example.com"  # the stand-in's Kim Lee: 506.90 EUR invoiced since March 2025
DEADLINE = 0.5  # enricher_timeout_seconds of these passes


def erp_clock() -> datetime:
    """The stand-in's data is of early 2026: its last 12 months are counted from here."""
    return datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def world(sessions: SessionFactory) -> Iterator[World]:
    world = World(sessions, options=RoutingOptions(enricher_timeout=DEADLINE))
    with using(world.clock):
        yield world


@pytest.fixture
async def erpnext() -> AsyncIterator[ErpNextStandIn]:
    site = ErpNextStandIn()
    seed(site)
    await site.start()
    yield site
    await site.close()


@pytest.fixture
async def adapter(erpnext: ErpNextStandIn) -> AsyncIterator[ErpNextAdapter]:
    settings = ErpNextSettings(
        url=erpnext.url, api_key=API_KEY, api_secret=API_SECRET, company="Omni Supplies GmbH"
    )
    built = KIND.build(
        settings,
        ErpContext(),
        timeout=5.0,  # longer than routing waits: the enricher's deadline must decide
        clock=erp_clock,
        breaker=CircuitBreaker(failures=5, cooldown=30),
    )
    assert isinstance(built, ErpNextAdapter)
    yield built
    await built.close()


async def key_accounts_setup(world: World) -> tuple[int, int, int, int]:
    """Support (Ann) is the default queue; Key accounts (Kay) takes customers who were
    invoiced 500 or more over the last 12 months."""
    ann = await world.operator("Ann")
    kay = await world.operator("Kay")
    support = await world.queue("Support", [ann])
    key_accounts = await world.queue("Key accounts", [kay])
    async with world.sessions() as session, session.begin():
        await set_rules(
            session,
            CLI,
            QUEUE_RULES,
            {
                "default_queue_id": support,
                "rules": [
                    {
                        "name": "VIP by turnover",
                        "erp": [{"key": "erp.turnover", "op": ">=", "value": 500}],
                        "queue_id": key_accounts,
                    }
                ],
            },
        )
    return ann, kay, support, key_accounts


def engine(world: World, bus: EventBus, adapter: ErpNextAdapter) -> RoutingEngine:
    """The engine as the app builds it (web/app.py: routing_engine), on the world's clock."""

    async def current() -> ErpNextAdapter:
        return adapter

    enricher = ErpEnricher(world.sessions, current, lambda: world.now.date())
    return RoutingEngine(world.sessions, bus, world.options, [enricher], clock=world.clock.now)


async def test_a_vips_conversation_goes_to_the_key_account_queue_by_erp_turnover(
    world: World, bus: EventBus, adapter: ErpNextAdapter, erpnext: ErpNextStandIn
) -> None:
    ann, kay, support, key_accounts = await key_accounts_setup(world)
    vip = await world.arrive(sender=KIM, text="Where is my order SAL-ORD-2026-00003?")
    stranger = await world.arrive(sender="someone@example.org", text="Do you sell desks?")
    report = await engine(world, bus, adapter).run_once()
    assert report.assigned == 2
    mine = await world.conversation(vip.conversation_id)
    assert (mine.queue_id, mine.assignee_id) == (key_accounts, kay)
    theirs = await world.conversation(stranger.conversation_id)
    assert (theirs.queue_id, theirs.assignee_id) == (support, ann)
    # The decision log says which fact decided, with the ERP's figure.
    queued = (await world.log(vip.conversation_id))[0]
    assert queued.reason == "queue Key accounts: rule 1: erp.turnover 506.9 >= 500"
    assert "enricher_failures" not in queued.details
    # The ERP was asked for Kim's invoices of the last twelve months.
    invoices = [r for r in erpnext.lists("Sales Invoice") if "posting_date" in str(r.params)]
    assert ["posting_date", ">=", "2025-03-10"] in invoices[0].json("filters")


@pytest.mark.parametrize(
    ("trouble", "reason"),
    [("hanging", f"timed out after {DEADLINE:g} s"), ("down", "failed: ErpUnavailable")],
)
async def test_with_the_erp_hanging_or_down_routing_assigns_within_the_deadline(
    world: World,
    bus: EventBus,
    adapter: ErpNextAdapter,
    erpnext: ErpNextStandIn,
    trouble: str,
    reason: str,
) -> None:
    ann, _kay, support, _key_accounts = await key_accounts_setup(world)
    erpnext.script(*([hang()] if trouble == "hanging" else [proxy_error(502)] * 5))
    vip = await world.arrive(sender=KIM, text="Where is my order?")
    started = time.monotonic()
    report = await engine(world, bus, adapter).run_once()
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + 1.5  # the deadline, not the ERP's 5 s timeout, decided
    assert report.assigned == 1
    # Without the ERP's facts the VIP rule cannot hold: the default queue, and Ann answers.
    conversation = await world.conversation(vip.conversation_id)
    assert (conversation.queue_id, conversation.assignee_id) == (support, ann)
    queued = (await world.log(vip.conversation_id))[0]
    assert "default queue" in queued.reason
    [failure] = queued.details["enricher_failures"]
    assert failure["enricher"] == "erp"
    assert failure["reason"].startswith(reason)


async def test_without_a_rule_on_erp_facts_routing_does_not_ask_the_erp(
    world: World, bus: EventBus, adapter: ErpNextAdapter, erpnext: ErpNextStandIn
) -> None:
    ann, _kay, support, _key_accounts = await key_accounts_setup(world)
    async with world.sessions() as session, session.begin():
        await set_rules(session, CLI, QUEUE_RULES, {"default_queue_id": support, "rules": []})
    arrived = await world.arrive(sender=KIM, text="Where is my order SAL-ORD-2026-00003?")
    report = await engine(world, bus, adapter).run_once()
    assert report.assigned == 1
    conversation = await world.conversation(arrived.conversation_id)
    assert (conversation.queue_id, conversation.assignee_id) == (support, ann)
    # No rule compares an ERP fact: the ERP's round trips would have decided nothing.
    assert erpnext.lists("Customer") == []
    assert erpnext.lists("Sales Invoice") == []
