"""Routing over HTTP: offers, transfers, the decision log, rule sets; and the live engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import WSCloseCode, WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from core import routing_log
from core.audit import CLI
from core.auth import create_token
from core.clock import ManualClock
from core.db import SessionFactory
from core.models import Operator, Presence, Role, utcnow
from core.operators import set_presence
from core.settings import Settings
from routing.service import AUTO_AWAY_REASON
from tests.conftest import UserFactory
from tests.routing_world import World
from web.app import create_app
from web.console_presence import OpenConsoles
from web.keys import BUS


@pytest.fixture
def world(sessions: SessionFactory) -> World:
    # Real time: offers made here expire in the real future, as the API checks.
    return World(sessions, ManualClock(utcnow()))


async def test_an_operator_accepts_an_offer_and_the_history_explains_it(
    world: World, make_user: UserFactory
) -> None:
    ann = await make_user(Role.OPERATOR)
    await world.ready(ann.operator.id)
    chat = await world.queue("Chat", [ann.operator.id], offer_timeout_seconds=30)
    work = await world.arrive(queue_id=chat)
    await world.route()

    offers = await (await ann.get("/api/v1/offers")).json()
    [offer] = offers["items"]
    assert (offer["conversation_id"], offer["status"]) == (work.conversation_id, "pending")
    accepted = await ann.post(f"/api/v1/offers/{offer['id']}/accept")
    assert accepted.status == 200
    assert (await accepted.json())["status"] == "accepted"
    again = await ann.post(f"/api/v1/offers/{offer['id']}/accept")
    assert again.status == 409
    assert "accepted already" in (await again.json())["error"]["message"]

    history = await ann.get(f"/api/v1/conversations/{work.conversation_id}/routing")
    assert history.status == 200
    entries = (await history.json())["items"]
    assert [entry["kind"] for entry in entries] == ["queue", "offer", "accepted"]
    offered = entries[1]
    assert offered["operator_id"] == ann.operator.id
    assert offered["details"]["winner_id"] == ann.operator.id
    assert entries[2]["actor_label"] == f"operator:{ann.operator.id}"
    # The console names people, not labels.
    assert (entries[2]["actor_kind"], entries[2]["actor_name"]) == ("operator", ann.operator.name)
    assert entries[2]["actor_operator_id"] == ann.operator.id
    assert (entries[0]["actor_kind"], entries[0]["actor_name"]) == ("routing", None)


async def test_a_rejected_offer_and_someone_elses_offer(
    world: World, make_user: UserFactory
) -> None:
    ann = await make_user(Role.OPERATOR)
    bob = await make_user(Role.OPERATOR)
    await world.ready(ann.operator.id)
    chat = await world.queue("Chat", [ann.operator.id, bob.operator.id], offer_timeout_seconds=30)
    await world.arrive(queue_id=chat)
    await world.route()
    [offer] = (await (await ann.get("/api/v1/offers")).json())["items"]
    assert (await (await bob.get("/api/v1/offers")).json())["items"] == []
    stolen = await bob.post(f"/api/v1/offers/{offer['id']}/accept")
    assert stolen.status == 404
    forbidden = await bob.get(f"/api/v1/offers?operator_id={ann.operator.id}")
    assert forbidden.status == 403
    rejected = await ann.post(f"/api/v1/offers/{offer['id']}/reject")
    assert (await rejected.json())["status"] == "rejected"
    missing = await ann.post("/api/v1/offers/999999/accept")
    assert missing.status == 404


async def test_the_routing_history_is_only_for_those_who_may_see_the_conversation(
    world: World, make_user: UserFactory
) -> None:
    outsider = await make_user(Role.OPERATOR)
    supervisor = await make_user(Role.SUPERVISOR)
    support = await world.queue("Support")
    work = await world.arrive(queue_id=support)
    await world.route()
    hidden = await outsider.get(f"/api/v1/conversations/{work.conversation_id}/routing")
    assert hidden.status == 403
    seen = await supervisor.get(f"/api/v1/conversations/{work.conversation_id}/routing")
    assert [entry["kind"] for entry in (await seen.json())["items"]] == ["queue", "none"]


async def test_transfer_over_http(world: World, make_user: UserFactory) -> None:
    ann = await make_user(Role.OPERATOR)
    await world.ready(ann.operator.id)
    support = await world.queue("Support", [ann.operator.id])
    billing = await world.queue("Billing")
    work = await world.arrive(queue_id=support)
    await world.route()
    path = f"/api/v1/conversations/{work.conversation_id}/transfer"
    both = await ann.post(path, json={"queue_id": billing, "operator_id": ann.operator.id})
    assert both.status == 400
    neither = await ann.post(path, json={"note": "?"})
    assert neither.status == 400
    unknown = await ann.post(path, json={"queue_id": billing + 100})
    assert unknown.status == 400
    assert (await world.conversation(work.conversation_id)).queue_id == support
    moved = await ann.post(path, json={"queue_id": billing, "note": "for billing"})
    assert moved.status == 200
    body = await moved.json()
    assert (body["queue_id"], body["assignee_id"]) == (billing, None)


async def test_rule_sets_are_admin_only_and_checked(world: World, make_user: UserFactory) -> None:
    admin = await make_user(Role.ADMIN)
    supervisor = await make_user(Role.SUPERVISOR)
    support = await world.queue("Support")
    path = "/api/v1/routing/queue-rules"
    assert (await supervisor.get(path)).status == 403
    assert (await (await admin.get(path)).json()) == {"rules": None}
    bad = await admin.put(path, json={"rules": {"default_queue_id": support, "rules": [{}]}})
    assert bad.status == 400
    assert (await (await admin.get(path)).json()) == {"rules": None}
    bad_pattern = await admin.put(
        path,
        json={
            "rules": {
                "default_queue_id": support,
                "rules": [{"pattern": "(a", "queue_id": support}],
            }
        },
    )
    assert bad_pattern.status == 400
    assert "rules.0.pattern" in (await bad_pattern.json())["error"]["fields"]
    # Rules name the channels this server runs; the answer lists them.
    bad_channel = await admin.put(
        path,
        json={
            "rules": {
                "default_queue_id": support,
                "rules": [{"channels": ["email", "fax"], "queue_id": support}],
            }
        },
    )
    assert bad_channel.status == 400
    assert (await bad_channel.json())["error"]["fields"] == {
        "rules.0.channels.1": (
            "no channel 'fax'; channels: api, email, sms, telegram, voice, webchat, webform,"
            " whatsapp"
        )
    }
    assert (await (await admin.get(path)).json()) == {"rules": None}
    good = await admin.put(
        path,
        json={
            "rules": {
                "default_queue_id": support,
                "rules": [{"channels": ["email"], "queue_id": support}],
            }
        },
    )
    assert good.status == 200
    assert (await (await admin.get(path)).json())["rules"]["default_queue_id"] == support
    assert (await admin.delete(path)).status == 200
    assert (await (await admin.get(path)).json()) == {"rules": None}

    leads = await admin.put(
        "/api/v1/routing/lead-rules",
        json={"rules": {"timezone": "Mars/Olympus", "rules": []}},
    )
    assert leads.status == 400
    assert "timezone" in (await leads.json())["error"]["fields"]


async def test_queue_config_errors_are_400s_per_field(make_user: UserFactory) -> None:
    admin = await make_user(Role.ADMIN)
    response = await admin.post(
        "/api/v1/queues",
        json={
            "name": "Chat",
            "config": {"strategies": ["sticky", "sticky"], "offer_timeout_seconds": -1},
        },
    )
    assert response.status == 400
    fields = (await response.json())["error"]["fields"]
    assert set(fields) == {"config.strategies", "config.offer_timeout_seconds"}
    listed = await (await admin.get("/api/v1/queues")).json()
    assert listed == []


async def test_the_engine_routes_new_work_live_without_being_asked(
    settings: Settings,
    sessions: SessionFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    app = create_app(settings, background_workers=False, routing=True)
    assigned = asyncio.Event()
    app[BUS].add_listener(
        lambda event: assigned.set() if event.type == "conversation.assigned" else None
    )
    client = await aiohttp_client(await aiohttp_server(app))
    world = World(sessions, ManualClock(utcnow()))
    ann = await world.operator("Ann")
    await world.queue("Support", [ann])
    async with sessions() as session, session.begin():
        _, token = await create_token(session, CLI, "crm")

    response = await client.post(
        "/api/v1/interactions",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "external_id": "live-1",
            "contact": {"email": "live@example.com"},
            "text": "Hello",
            "queue": "Support",
        },
    )
    assert response.status in (200, 201), await response.text()
    conversation_id = (await response.json())["conversation_id"]
    # Nobody runs a pass here: the engine saw the committed event and routed the work.
    await asyncio.wait_for(assigned.wait(), 10)
    assert (await world.conversation(conversation_id)).assignee_id == ann
    log = await world.log(conversation_id)
    assert [entry.kind for entry in log] == ["queue", "assign"]
    metrics = await (await client.get("/metrics")).text()
    assert 'omnicrm_routing_decisions_total{kind="assign"} 1.0' in metrics


async def test_the_console_socket_keeps_an_operator_present_and_marks_when_it_left(
    world: World, make_user: UserFactory
) -> None:
    ann = await make_user(Role.OPERATOR)
    async with world.sessions() as session, session.begin():
        operator = await session.get(Operator, ann.operator.id)
        assert operator is not None
        await set_presence(session, operator, Presence.AWAY, AUTO_AWAY_REASON)
    async with ann.client.ws_connect("/ws") as socket:
        assert (await socket.receive_json())["type"] == "hello"
        # Coming back undoes the automatic away; the console is seen while it is open.
        message = await socket.receive_json()
        assert message["type"] == "operator.presence"
        assert message["labels"]["presence"] == "available"
        opened = await _operator(world, ann.operator.id)
        assert opened.console_seen_at is not None
    closed = await _operator(world, ann.operator.id)
    assert closed.console_seen_at is not None
    assert closed.console_seen_at >= opened.console_seen_at
    # A routing pass past the grace, with the console still closed, sets the operator away.
    world.now = closed.console_seen_at + timedelta(seconds=61)
    await world.route()
    gone = await _operator(world, ann.operator.id)
    assert (gone.presence, gone.presence_reason) == (Presence.AWAY, AUTO_AWAY_REASON)


async def test_a_process_keeps_its_open_consoles_seen_together_and_each_close_counts(
    world: World,
) -> None:
    ann = await world.operator("Ann")
    bob = await world.operator("Bob")
    moment = [world.now]
    consoles = OpenConsoles(world.sessions, interval=60, clock=lambda: moment[0])
    await consoles.opened(ann)
    await consoles.opened(bob)
    await consoles.opened(bob)  # a second tab
    # Bob was set away automatically while his consoles stayed open (a stalled process).
    async with world.sessions() as session, session.begin():
        operator = await session.get(Operator, bob)
        assert operator is not None
        await set_presence(session, operator, Presence.AWAY, AUTO_AWAY_REASON, at=moment[0])

    moment[0] += timedelta(seconds=30)
    await consoles.refresh()
    seen_ann, seen_bob = await _operator(world, ann), await _operator(world, bob)
    assert seen_ann.console_seen_at == seen_bob.console_seen_at == moment[0]
    assert seen_bob.presence == Presence.AVAILABLE

    # One of Bob's tabs closes: the other keeps him seen; then the last one.
    await consoles.closed(bob)
    moment[0] += timedelta(seconds=30)
    await consoles.refresh()
    assert (await _operator(world, bob)).console_seen_at == moment[0]
    moment[0] += timedelta(seconds=1)
    await consoles.closed(bob)
    left = moment[0]
    moment[0] += timedelta(seconds=30)
    await consoles.refresh()
    assert (await _operator(world, bob)).console_seen_at == left
    assert (await _operator(world, ann)).console_seen_at == moment[0]


async def _operator(world: World, operator_id: int) -> Operator:
    async with world.sessions() as session:
        found = await session.get(Operator, operator_id)
        assert found is not None
        return found


async def test_shutting_down_closes_open_consoles_at_once(
    make_user: UserFactory, server: TestServer
) -> None:
    ann = await make_user(Role.OPERATOR)
    async with ann.client.ws_connect("/ws") as socket:
        assert (await socket.receive_json())["type"] == "hello"
        closing = asyncio.ensure_future(server.close())
        # Well inside the 30 s heartbeat that would otherwise end it.
        message = await asyncio.wait_for(socket.receive(), 5)
        assert message.type == WSMsgType.CLOSE
        assert message.data == WSCloseCode.GOING_AWAY
        await asyncio.wait_for(closing, 10)


@pytest.mark.parametrize(
    ("label", "kind", "operator_id", "name"),
    [
        ("supervisor:3", "operator", 3, None),
        ("admin:12", "operator", 12, None),
        ("token:crm", "token", None, "crm"),
        ("cli", "cli", None, None),
        ("routing", "routing", None, None),
        ("system", "routing", None, None),
        ("sla", "sla", None, None),
        ("config-file", "config", None, None),
        ("operator:ann@example.com", "other", None, "operator:ann@example.com"),
    ],
)
def test_a_stored_actor_label_reads_as_who_it_names(
    label: str, kind: str, operator_id: int | None, name: str | None
) -> None:
    assert routing_log.actor_ref(label) == routing_log.ActorRef(kind, operator_id, name)
