"""The customer's history beside a conversation (`GET /api/v1/conversations/{id}/context`,
core/customer_context.py): where they wrote last, their language and tier, an order they keep
writing about this week, their open tasks and unresolved conversations elsewhere; each flag
appears and goes away as an operator would notice, only with what the operator may see, and
the ERP being down never fails it.

Time is the suite's injectable clock (`core.clock`), held still by a `ManualClock` and moved
on by hand: never today's date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from core import clock
from core.audit import CLI
from core.auth import create_token
from core.clock import ManualClock
from core.customer_context import ReplyChannel, last_activity, repeated_orders, reply_default
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, IngestResult, ingest
from core.models import Conversation, IdentityKind, InteractionKind, Role
from core.queues import set_members
from core.settings import Settings
from erp_bridge.base import ErpUnavailable
from erp_bridge.models import Customer, CustomerQuery
from routing.setup import create_queue
from tests.conftest import User, UserFactory
from web import routes_context
from web.keys import ERP

pytestmark = pytest.mark.both_databases  # tests/conftest.py

# A Tuesday morning, years away from when this was written.
START = datetime(2031, 3, 11, 9, 0, tzinfo=UTC)
EMAIL = Address(IdentityKind.EMAIL, "max.mueller@example.de")
WHATSAPP = Address(IdentityKind.WHATSAPP, "+4915112345678")
# Max writes on every channel from the same addresses: one contact.
MAX = (EMAIL, WHATSAPP)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Sign-ins that outlast the days these tests move the clock on."""
    return settings.model_copy(update={"session_ttl_hours": 24 * 60})


@pytest.fixture
def now() -> Iterator[ManualClock]:
    manual = ManualClock(START)
    with clock.using(manual):
        yield manual


@dataclass
class Team:
    anna: User  # an operator of Support
    sue: User  # a supervisor
    support: int
    sales: int  # a queue Anna is not in


@pytest.fixture
async def team(now: ManualClock, make_user: UserFactory, sessions: SessionFactory) -> Team:
    anna = await make_user(Role.OPERATOR, email="anna@example.com", name="Anna")
    sue = await make_user(Role.SUPERVISOR, email="sue@example.com", name="Sue")
    async with sessions() as session, session.begin():
        support = await create_queue(session, CLI, name="Support")
        sales = await create_queue(session, CLI, name="Sales")
        await set_members(session, CLI, support.id, [anna.operator.id])
    return Team(anna, sue, support.id, sales.id)


async def write(
    sessions: SessionFactory,
    external_id: str,
    channel: str,
    text: str,
    *,
    ago: timedelta = timedelta(0),
    queue_id: int | None = None,
    **fields: Any,
) -> IngestResult:
    """Max writes `text` on `channel`, `ago` before the clock's now."""
    async with sessions() as session, session.begin():
        return await ingest(
            session,
            InboundEvent(
                channel=channel,
                external_id=external_id,
                addresses=MAX,
                display_name="Max Müller",
                text=text,
                occurred_at=clock.utcnow() - ago,
                queue_id=queue_id,
                **fields,
            ),
        )


async def context(user: User, conversation_id: int, status: int = 200) -> Any:
    response = await user.get(f"/api/v1/conversations/{conversation_id}/context")
    assert response.status == status, await response.text()
    return await response.json()


def repeats(body: Any) -> dict[str, int]:
    return {order["number"]: order["messages"] for order in body["repeat"]["orders"]}


# --- the pure parts -----------------------------------------------------------------------------


def test_an_order_counts_once_per_message_and_from_its_second_message() -> None:
    def numbers(text: str) -> list[str]:
        return [word for word in text.split() if word.isdigit()]

    day = timedelta(days=1)
    found = repeated_orders(
        [
            (START, "10330 10330 and 10401"),
            (START - day, "still 10330"),
            (START - 2 * day, "10500"),
            (START - 3 * day, "10500 again"),
            (START - 4 * day, "and 10330"),
        ],
        numbers,
    )
    assert [(order.number, order.messages) for order in found] == [("10330", 3), ("10500", 2)]
    assert (found[0].first_at, found[0].last_at) == (START - 4 * day, START)


def test_last_activity_is_the_latest_message_either_way() -> None:
    conversation = Conversation(created_at=START, last_inbound_at=None, last_outbound_at=None)
    assert last_activity(conversation) == START
    conversation.last_inbound_at = START + timedelta(hours=1)
    conversation.last_outbound_at = START + timedelta(hours=2)
    assert last_activity(conversation) == START + timedelta(hours=2)


def test_the_default_reply_channel_is_where_the_customer_wrote_last_if_it_reaches_them() -> None:
    def wrote_on(channel: str, send_on: str) -> ReplyChannel:
        return ReplyChannel(channel, 2, START, send_on, differs=True)

    both = {"email": "max@example.de", "whatsapp": "+4915112345678"}
    assert reply_default("email", wrote_on("whatsapp", "whatsapp"), both) == "whatsapp"
    assert reply_default("email", None, both) == "email"
    # A web form is answered by email: a contact without an email address gets the
    # conversation's own channel, as does one whose last channel cannot send.
    assert reply_default("whatsapp", wrote_on("webform", "email"), both) == "email"
    assert reply_default("whatsapp", wrote_on("webform", "email"), {"whatsapp": "+49"}) == (
        "whatsapp"
    )
    assert reply_default("email", wrote_on("nowhere", "nowhere"), both) == "email"
    # A web form's conversation is answered by email when nothing else is known.
    assert reply_default("webform", None, both) == "email"


# --- the API ------------------------------------------------------------------------------------


async def test_the_third_message_about_an_order_this_week_is_flagged_until_it_ages_out(
    team: Team, now: ManualClock, sessions: SessionFactory
) -> None:
    day = timedelta(days=1)
    await write(sessions, "<old@max>", "email", "About order 10330, please.", ago=9 * day)
    await write(
        sessions, "<1@max>", "email", "Where is my order 10330?", ago=5 * day, subject="Order"
    )
    await write(sessions, "wa-1", "whatsapp", "Order 10330 is still not here", ago=2 * day)
    # An out-of-office naming the order is not Max writing again.
    await write(
        sessions,
        "<away@max>",
        "email",
        "I am away until Monday. Re: order 10330",
        ago=day,
        may_reopen=False,
    )
    third = await write(
        sessions,
        "wa-2",
        "whatsapp",
        "Third time now: 10330. And what about 10401?",
        ago=timedelta(hours=1),
        queue_id=team.support,
    )
    body = await context(team.sue, third.conversation_id)
    assert repeats(body) == {"10330": 3}  # 10401 once, the one 9 days ago outside the week
    (order,) = body["repeat"]["orders"]
    assert datetime.fromisoformat(order["first_at"]) == START - 5 * day
    assert datetime.fromisoformat(order["last_at"]) == START - timedelta(hours=1)
    assert body["repeat"]["messages"] == 3
    assert body["repeat"]["window_days"] == 7
    assert datetime.fromisoformat(body["repeat"]["since"]) == START - 7 * day

    now.advance(days=3)  # the email of 5 days ago is now 8 days old
    assert repeats(await context(team.sue, third.conversation_id)) == {"10330": 2}
    now.advance(days=3)  # only the last message is within the week
    body = await context(team.sue, third.conversation_id)
    assert body["repeat"]["orders"] == []
    assert body["repeat"]["messages"] == 1


async def test_the_reply_goes_where_the_customer_wrote_last_in_their_language(
    team: Team, sessions: SessionFactory
) -> None:
    email = await write(
        sessions,
        "<1@max>",
        "email",
        "Hello, I would like to know where my parcel is.",
        ago=timedelta(days=1),
    )
    body = await context(team.sue, email.conversation_id)
    assert body["reply_channel"]["channel"] == "email"
    assert body["reply_channel"]["differs"] is False
    assert body["language"] == "en"

    whatsapp = await write(
        sessions, "wa-1", "whatsapp", "Hallo, wo ist mein Paket? Ich warte seit Tagen darauf."
    )
    body = await context(team.sue, email.conversation_id)
    assert body["reply_channel"] == {
        "channel": "whatsapp",
        "conversation_id": whatsapp.conversation_id,
        "at": "2031-03-11T09:00:00Z",
        "send_on": "whatsapp",
        "differs": True,
    }
    assert body["language"] == "de"
    assert body["channel"] == "email"

    # A web form is answered by email; a call by SMS.
    form = await write(
        sessions,
        "contact:1",
        "webform",
        "Bitte rufen Sie mich wegen meiner Lieferung zurück.",
        kind=InteractionKind.FORM,
    )
    reply = (await context(team.sue, email.conversation_id))["reply_channel"]
    assert (reply["channel"], reply["send_on"], reply["conversation_id"]) == (
        "webform",
        "email",
        form.conversation_id,
    )


async def test_a_reply_without_a_channel_goes_out_where_the_customer_wrote_last(
    team: Team, sessions: SessionFactory
) -> None:
    email = await write(
        sessions,
        "<1@max>",
        "email",
        "Hello, where is my parcel?",
        queue_id=team.support,
        ago=timedelta(hours=2),
    )
    path = f"/api/v1/conversations/{email.conversation_id}"

    async def reply(**body: Any) -> tuple[str, str]:
        response = await team.anna.post(f"{path}/reply", json={"text": "It is on its way.", **body})
        assert response.status == 201, await response.text()
        sent = await response.json()
        assert sent["interaction"]["channel"] == sent["outbox"]["channel"]
        return sent["outbox"]["channel"], sent["outbox"]["recipient"]

    assert await reply() == ("email", "max.mueller@example.de")
    # Max writes again on WhatsApp (a new conversation): the email conversation's reply goes
    # there by default, as the console's composer and the reply options say.
    await write(sessions, "wa-1", "whatsapp", "Any news?", queue_id=team.support)
    options = await (await team.anna.get(f"{path}/reply-options")).json()
    assert options["default_channel"] == "whatsapp"
    assert (await context(team.anna, email.conversation_id))["default_channel"] == "whatsapp"
    assert await reply() == ("whatsapp", "+4915112345678")
    # A channel the operator names is the channel.
    assert await reply(channel="email") == ("email", "max.mueller@example.de")


async def test_open_tasks_and_unresolved_conversations_elsewhere_come_and_go(
    team: Team, now: ManualClock, sessions: SessionFactory
) -> None:
    email = await write(
        sessions, "<1@max>", "email", "Invoice question", queue_id=team.support, ago=timedelta(1)
    )
    whatsapp = await write(sessions, "wa-1", "whatsapp", "Any news?", queue_id=team.support)
    body = await context(team.anna, email.conversation_id)
    assert body["open_tasks"] == []
    [elsewhere] = body["unresolved_elsewhere"]
    assert elsewhere == {
        "id": whatsapp.conversation_id,
        "channel": "whatsapp",
        "status": "open",
        "subject": "Any news?",
        "last_activity_at": "2031-03-11T09:00:00Z",
        "same_channel": False,
    }

    made = await team.anna.post(
        "/api/v1/tasks",
        json={"conversation_id": whatsapp.conversation_id, "due_at": "2031-03-11T13:00:00Z"},
    )
    assert made.status == 201, await made.text()
    task_id = (await made.json())["id"]
    [task] = (await context(team.anna, email.conversation_id))["open_tasks"]
    assert task == {
        "id": task_id,
        "kind": "follow_up",
        "due_at": "2031-03-11T13:00:00Z",
        "overdue": False,
        "conversation_id": whatsapp.conversation_id,
    }
    now.advance(hours=5)
    [task] = (await context(team.anna, email.conversation_id))["open_tasks"]
    assert task["overdue"] is True

    done = await team.anna.post(f"/api/v1/tasks/{task_id}/done", json={})
    assert done.status == 200, await done.text()
    resolved = await team.anna.post(
        f"/api/v1/conversations/{whatsapp.conversation_id}/status", json={"status": "resolved"}
    )
    assert resolved.status == 200, await resolved.text()
    body = await context(team.anna, email.conversation_id)
    assert body["open_tasks"] == []
    assert body["unresolved_elsewhere"] == []


async def test_an_operator_sees_only_the_history_of_their_queues(
    app: web.Application, team: Team, sessions: SessionFactory
) -> None:
    hour = timedelta(hours=1)
    email = await write(
        sessions, "<1@max>", "email", "Order 10330?", queue_id=team.support, ago=3 * hour
    )
    # Max's WhatsApp conversation sits in Sales, where Anna does not work.
    sales = await write(
        sessions, "wa-1", "whatsapp", "Order 10330 again", queue_id=team.sales, ago=2 * hour
    )
    await write(sessions, "wa-2", "whatsapp", "10330, please answer", ago=hour)
    due = (START + timedelta(days=1)).isoformat()
    made = await team.sue.post(
        "/api/v1/tasks", json={"conversation_id": sales.conversation_id, "due_at": due}
    )
    assert made.status == 201, await made.text()

    anna = await context(team.anna, email.conversation_id)
    assert anna["unresolved_elsewhere"] == []
    assert anna["open_tasks"] == []
    assert anna["reply_channel"]["channel"] == "email"
    assert anna["repeat"]["messages"] == 1
    assert anna["repeat"]["orders"] == []

    sue = await context(team.sue, email.conversation_id)
    assert [item["id"] for item in sue["unresolved_elsewhere"]] == [sales.conversation_id]
    assert len(sue["open_tasks"]) == 1
    assert sue["reply_channel"]["conversation_id"] == sales.conversation_id
    assert repeats(sue) == {"10330": 3}

    # The Sales conversation itself: refused like its other routes; no such one: 404.
    await context(team.anna, sales.conversation_id, status=403)
    await context(team.anna, 999_999, status=404)
    async with sessions() as session, session.begin():
        _, token = await create_token(session, CLI, "erp")
    response = await team.anna.client.get(
        f"/api/v1/conversations/{email.conversation_id}/context",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status == 403


async def test_the_tier_comes_from_the_contact_and_the_erp_and_a_down_erp_fails_nothing(
    app: web.Application,
    team: Team,
    sessions: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = await write(sessions, "<1@max>", "email", "Order 10330?", queue_id=team.support)
    patched = await team.sue.patch(
        f"/api/v1/contacts/{first.contact_id}", json={"priority_tier": "VIP"}
    )
    assert patched.status == 200, await patched.text()
    adapter = await app[ERP].adapter()
    assert adapter is not None

    async def gold(query: CustomerQuery) -> Customer:
        return Customer(ref="C-7", name="Max Müller", tier="Gold")

    monkeypatch.setattr(adapter, "do_find_customer", gold)
    body = await context(team.anna, first.conversation_id)
    assert body["tier"] == {"priority": "vip", "erp": "Gold", "erp_error": None}

    async def down(query: CustomerQuery) -> Customer:
        raise ErpUnavailable("connection refused")

    adapter.cache.clear()
    monkeypatch.setattr(adapter, "do_find_customer", down)
    body = await context(team.anna, first.conversation_id)
    assert body["tier"]["priority"] == "vip"
    assert body["tier"]["erp"] is None
    assert "connection refused" in body["tier"]["erp_error"]
    assert repeats(body) == {}  # the rest is there as ever
    assert body["reply_channel"]["channel"] == "email"

    async def slow(query: CustomerQuery) -> Customer:
        await asyncio.sleep(30)
        raise AssertionError("waited for")

    adapter.cache.clear()
    adapter.breaker.succeeded()
    monkeypatch.setattr(adapter, "do_find_customer", slow)
    monkeypatch.setattr(routes_context, "ERP_WAIT_SECONDS", 0.05)
    body = await context(team.anna, first.conversation_id)
    assert body["tier"]["erp"] is None
    assert "did not answer" in body["tier"]["erp_error"]
