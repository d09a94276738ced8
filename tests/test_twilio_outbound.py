"""Replies through Twilio: the official client against the stand-in, status callbacks, errors,
WhatsApp's window and templates, retrying a failed message."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from core import clock
from core.db import SessionFactory
from core.models import AuditEntry, Identity, Interaction, OutboxStatus, Role, utcnow
from core.outbox import claim_due
from core.settings import Settings
from tests.conftest import User, UserFactory
from tests.twilio_helpers import (
    OUR_NUMBER,
    WHATSAPP_FROM,
    add_account,
    deliver,
    outbox_item,
    post_signed,
    running_standin,
    twilio_settings,
)
from tests.twilio_standin import Answer, TwilioStandIn, error, inbound, status

CUSTOMER = "+14155550123"
OTHER_NUMBER = "+15005550001"
TEMPLATE = {
    "name": "order_update",
    "content_sid": "HX" + "a" * 32,
    "text": "Hello {{1}}, your order {{2}} has news. Reply to continue.",
    "variables": ["customer name", "order number"],
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return twilio_settings(database_url, tmp_path, session_ttl_hours=72)


@pytest.fixture
async def standin() -> AsyncIterator[TwilioStandIn]:
    async with running_standin() as twilio:
        yield twilio


async def conversation_from(
    client: TestClient[Any, Any], sessions: SessionFactory, params: dict[str, str]
) -> int:
    response = await post_signed(client, params)
    assert response.status == 200, await response.text()
    async with sessions() as session:
        found = await session.scalar(
            select(Interaction.conversation_id).where(
                Interaction.external_id == params["MessageSid"]
            )
        )
    assert found is not None
    return int(found)


async def reply(user: User, conversation_id: int, status_code: int = 201, **body: Any) -> Any:
    response = await user.post(f"/api/v1/conversations/{conversation_id}/reply", json=body)
    assert response.status == status_code, await response.text()
    return await response.json()


async def outbox_of(user: User, conversation_id: int) -> list[dict[str, Any]]:
    response = await user.get(f"/api/v1/conversations/{conversation_id}/outbox")
    assert response.status == 200
    return list((await response.json())["items"])


async def test_a_reply_goes_out_from_the_number_the_customer_wrote_to_and_tracks_receipts(
    client: TestClient[Any, Any],
    app: web.Application,
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin, from_numbers=[OUR_NUMBER, OTHER_NUMBER])
    supervisor = await make_user(Role.SUPERVISOR)
    conversation = await conversation_from(
        client, sessions, inbound(CUSTOMER, "Hello?", to=OTHER_NUMBER)
    )
    sent = await reply(supervisor, conversation, text="Hi, how can we help?")
    outbox_id = sent["outbox"]["id"]
    assert sent["outbox"]["delivery"] == "queued"

    item = await deliver(app, outbox_id)
    assert item.status == OutboxStatus.SENT
    [message] = standin.messages
    assert message["To"] == CUSTOMER
    assert message["From"] == OTHER_NUMBER  # the number they wrote to answers
    assert message["Body"] == "Hi, how can we help?"
    assert message["StatusCallback"] == (
        f"https://crm.example.com/hooks/twilio/main/status?outbox={outbox_id}&attempt=1"
    )
    assert item.provider_id == message["Sid"]
    [call] = standin.calls
    assert call["auth"] is True  # the account's SID and token, as HTTP basic auth

    query = f"?outbox={outbox_id}&attempt=1"
    for state, shown in (
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("sent", "delivered"),  # late and out of order: never moves it back
        ("delivered", "delivered"),  # a repeat stores once
        ("read", "read"),
        ("delivered", "read"),
    ):
        response = await post_signed(client, status(message, state), hook="status", query=query)
        assert response.status == 200
        [row] = await outbox_of(supervisor, conversation)
        assert row["delivery"] == shown, state
    assert row["status"] == "sent"
    assert row["receipt"] == "read"


@pytest.mark.both_databases
async def test_a_receipt_that_outruns_the_worker_still_counts(
    client: TestClient[Any, Any],
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    """Twilio's callback may arrive before the worker recorded Twilio's answer."""
    await add_account(make_user, standin)
    supervisor = await make_user(Role.SUPERVISOR)
    conversation = await conversation_from(client, sessions, inbound(CUSTOMER, "Hi"))
    outbox_id = (await reply(supervisor, conversation, text="Answer"))["outbox"]["id"]
    async with sessions() as session, session.begin():
        [delivery] = await claim_due(session, ["sms"], 1, timedelta(seconds=60))
    message = {"Sid": "SM" + "c" * 32, "To": CUSTOMER, "From": OUR_NUMBER}
    response = await post_signed(
        client,
        status(message, "delivered"),
        hook="status",
        query=f"?outbox={outbox_id}&attempt={delivery.attempt}",
    )
    assert response.status == 200
    stored = await outbox_item(sessions, outbox_id)
    assert (stored.status, stored.receipt, stored.provider_id) == (
        OutboxStatus.SENT,
        "delivered",
        message["Sid"],
    )
    # A callback naming another attempt, or a message we never sent, changes nothing.
    stale = await post_signed(
        client, status(message, "failed", error_code="30003"), hook="status", query="?outbox=999"
    )
    assert stale.status == 200
    assert (await outbox_item(sessions, outbox_id)).status == OutboxStatus.SENT


async def test_undelivered_fails_the_message_with_twilios_code(
    client: TestClient[Any, Any],
    app: web.Application,
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin)
    supervisor = await make_user(Role.SUPERVISOR)
    conversation = await conversation_from(client, sessions, inbound(CUSTOMER, "Hi"))
    outbox_id = (await reply(supervisor, conversation, text="On its way"))["outbox"]["id"]
    await deliver(app, outbox_id)
    [message] = standin.messages
    query = f"?outbox={outbox_id}&attempt=1"
    await post_signed(client, status(message, "sent"), hook="status", query=query)
    await post_signed(
        client, status(message, "undelivered", error_code="30003"), hook="status", query=query
    )
    # Twilio may repeat or reorder: a late "delivered" does not undo the failure.
    await post_signed(client, status(message, "delivered"), hook="status", query=query)
    [row] = await outbox_of(supervisor, conversation)
    assert row["delivery"] == "failed"
    assert row["status"] == "failed"
    assert row["error_code"] == "30003"
    assert row["last_error"] == "30003: unreachable destination handset"


@pytest.mark.parametrize(
    ("answer", "code", "reason"),
    [
        (error(21211, "Invalid 'To' Phone Number: +1415"), "21211", "Invalid 'To' Phone Number"),
        (error(21610, "Attempt to send to unsubscribed recipient"), "21610", "unsubscribed"),
        (error(21408, "Permission to send an SMS has not been enabled"), "21408", "Permission"),
    ],
)
async def test_twilio_4xx_errors_fail_the_message_with_code_and_text(
    client: TestClient[Any, Any],
    app: web.Application,
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
    answer: Answer,
    code: str,
    reason: str,
) -> None:
    await add_account(make_user, standin)
    supervisor = await make_user(Role.SUPERVISOR)
    conversation = await conversation_from(client, sessions, inbound(CUSTOMER, "Hi"))
    outbox_id = (await reply(supervisor, conversation, text="Answer"))["outbox"]["id"]
    standin.script(answer)
    item = await deliver(app, outbox_id)
    assert item.status == OutboxStatus.FAILED
    assert item.attempts == 1  # permanent: not retried
    assert item.error_code == code
    assert item.last_error is not None
    assert f"Twilio {code}" in item.last_error
    assert reason in item.last_error
    async with sessions() as session:
        opted_out = await session.scalar(
            select(Identity.opted_out_at).where(Identity.kind == "phone")
        )
    if code == "21610":
        # The number is flagged: the next reply is refused before it is queued.
        assert opted_out is not None
        refused = await reply(supervisor, conversation, 400, text="Still there?")
        assert "unsubscribed" in refused["error"]["fields"]["channel"]
    else:
        assert opted_out is None


@pytest.mark.parametrize(
    ("answer", "waits_at_least"),
    [
        (error(20429, "Too Many Requests", 429, **{"Retry-After": "120"}), 110),
        (error(20500, "Internal Server Error", 500), 0),
        (Answer(503, {"code": 20503, "message": "Service Unavailable", "status": 503}), 0),
        (Answer(201, stall_seconds=3), 0),  # longer than the sender waits
    ],
)
async def test_429_5xx_and_timeouts_are_retried(
    client: TestClient[Any, Any],
    app: web.Application,
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
    monkeypatch: pytest.MonkeyPatch,
    answer: Answer,
    waits_at_least: float,
) -> None:
    from channels.twilio.sender import TwilioSender

    monkeypatch.setattr(TwilioSender, "timeout_seconds", 1.0)
    await add_account(make_user, standin)
    supervisor = await make_user(Role.SUPERVISOR)
    conversation = await conversation_from(client, sessions, inbound(CUSTOMER, "Hi"))
    outbox_id = (await reply(supervisor, conversation, text="Answer"))["outbox"]["id"]
    standin.script(answer)
    before = utcnow()
    item = await deliver(app, outbox_id)
    assert item.status == OutboxStatus.SENDING  # still ours to send
    assert item.last_error is not None
    assert item.next_attempt_at >= before + timedelta(seconds=waits_at_least)
    [row] = await outbox_of(supervisor, conversation)
    assert row["delivery"] == "sending"
    # Twilio is back: the next attempt goes out.
    async with sessions() as session, session.begin():
        stored = await session.get(type(item), outbox_id)
        assert stored is not None
        stored.next_attempt_at = utcnow()
    item = await deliver(app, outbox_id)
    assert item.status == OutboxStatus.SENT
    assert item.attempts == 2


async def test_whatsapp_outside_its_window_takes_only_a_template(
    client: TestClient[Any, Any],
    app: web.Application,
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin, templates=[TEMPLATE])
    supervisor = await make_user(Role.SUPERVISOR)
    start = utcnow()
    manual = clock.ManualClock(start)
    with clock.using(manual):
        conversation = await conversation_from(
            client, sessions, inbound(f"whatsapp:{CUSTOMER}", "Hi", to=WHATSAPP_FROM)
        )
        options = await (
            await supervisor.get(f"/api/v1/conversations/{conversation}/reply-options")
        ).json()
        whatsapp = next(item for item in options["options"] if item["channel"] == "whatsapp")
        assert whatsapp["window"]["open"] is True
        assert whatsapp["window"]["closes_at"].startswith(
            (start + timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M")
        )
        assert [item["name"] for item in whatsapp["templates"]] == ["order_update"]
        inside = await reply(supervisor, conversation, text="Within the window")
        assert inside["outbox"]["channel"] == "whatsapp"

        manual.advance(hours=25)
        refused = await reply(supervisor, conversation, 400, text="Too late for free text")
        assert "24-hour reply window" in refused["error"]["fields"]["template"]
        missing = await reply(
            supervisor, conversation, 400, template="order_update", variables={"1": "Kim"}
        )
        assert "{{2}} (order number)" in missing["error"]["fields"]["variables"]
        unknown = await reply(supervisor, conversation, 400, template="nope")
        assert "templates: order_update" in unknown["error"]["fields"]["template"]
        templated = await reply(
            supervisor,
            conversation,
            template="order_update",
            variables={"1": "Kim", "2": "4711"},
        )
        await deliver(app, inside["outbox"]["id"])
        await deliver(app, templated["outbox"]["id"])
    assert templated["interaction"]["text"] == (
        "Hello Kim, your order 4711 has news. Reply to continue."
    )
    free, template = standin.messages
    assert (free["To"], free["From"], free["Body"]) == (
        f"whatsapp:{CUSTOMER}",
        WHATSAPP_FROM,
        "Within the window",
    )
    assert template["ContentSid"] == TEMPLATE["content_sid"]
    assert json.loads(template["ContentVariables"]) == {"1": "Kim", "2": "4711"}
    assert "Body" not in template


async def test_63016_outside_the_window_fails_with_the_reason(
    client: TestClient[Any, Any],
    app: web.Application,
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    """Twilio's own window check (its clock, its idea of the last message) still wins."""
    await add_account(make_user, standin)
    supervisor = await make_user(Role.SUPERVISOR)
    conversation = await conversation_from(
        client, sessions, inbound(f"whatsapp:{CUSTOMER}", "Hi", to=WHATSAPP_FROM)
    )
    outbox_id = (await reply(supervisor, conversation, text="Hello"))["outbox"]["id"]
    standin.script(
        error(63016, "Failed to send freeform message because you are outside the allowed window.")
    )
    item = await deliver(app, outbox_id)
    assert item.status == OutboxStatus.FAILED
    assert item.error_code == "63016"
    assert item.last_error is not None
    assert "outside the allowed window" in item.last_error


async def test_media_urls_go_out_with_the_message(
    client: TestClient[Any, Any],
    app: web.Application,
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin)
    supervisor = await make_user(Role.SUPERVISOR)
    conversation = await conversation_from(client, sessions, inbound(CUSTOMER, "Invoice?"))
    sent = await reply(
        supervisor,
        conversation,
        text="Here it is",
        media_urls=["https://files.example.com/invoice-4711.pdf"],
    )
    await deliver(app, sent["outbox"]["id"])
    [call] = standin.calls
    assert call["media"] == ["https://files.example.com/invoice-4711.pdf"]
    bad = await reply(supervisor, conversation, 400, text="x", media_urls=["not a url"])
    assert "media_urls" in json.dumps(bad["error"]["fields"])


async def test_a_failed_message_can_be_retried_by_those_who_see_it(
    client: TestClient[Any, Any],
    app: web.Application,
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin)
    supervisor = await make_user(Role.SUPERVISOR)
    outsider = await make_user(Role.OPERATOR)
    conversation = await conversation_from(client, sessions, inbound(CUSTOMER, "Hi"))
    outbox_id = (await reply(supervisor, conversation, text="Answer"))["outbox"]["id"]
    path = f"/api/v1/outbox/{outbox_id}/retry"
    not_failed = await supervisor.post(path)
    assert not_failed.status == 409
    standin.script(error(21211, "Invalid 'To' Phone Number"))
    failed = await deliver(app, outbox_id)
    assert failed.status == OutboxStatus.FAILED

    assert (await outsider.post(path)).status == 403  # not their conversation
    assert (await supervisor.post("/api/v1/outbox/987654/retry")).status == 404
    retried = await supervisor.post(path)
    assert retried.status == 200, await retried.text()
    body = await retried.json()
    assert (body["status"], body["delivery"], body["error_code"]) == ("queued", "queued", None)
    item = await deliver(app, outbox_id)
    assert item.status == OutboxStatus.SENT
    assert item.attempts == 2
    async with sessions() as session:
        audited = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "outbox.retry")
        )
    assert audited is not None
    assert audited.actor_id == supervisor.operator.id
    assert audited.details["error_code"] == "21211"


async def test_the_account_check_asks_twilio(
    make_user: UserFactory, standin: TwilioStandIn
) -> None:
    account = await add_account(make_user, standin)
    admin = await make_user(Role.ADMIN)
    path = f"/api/v1/channel-accounts/{account['id']}/check"
    good = await (await admin.post(path)).json()
    assert good == {"ok": True, "message": "signed in to omnicrm test account; sends sms, whatsapp"}
    # The addresses to enter in Twilio's console (the calls' next steps omnicrm hands over).
    await admin.patch(
        f"/api/v1/channel-accounts/{account['id']}", json={"settings": {"auth_token": "0" * 32}}
    )
    bad = await (await admin.post(path)).json()
    assert bad["ok"] is False
    assert "Authenticate" in bad["message"]
    assert account["webhooks"] == {
        "message": "https://crm.example.com/hooks/twilio/main/message",
        "status": "https://crm.example.com/hooks/twilio/main/status",
        "voice": "https://crm.example.com/hooks/twilio/main/voice",
        "voice-status": "https://crm.example.com/hooks/twilio/main/voice-status",
    }
    assert "auth_token" not in account["settings"]
    assert account["settings"]["auth_token_set"] is True
