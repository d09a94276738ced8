"""Outbound email: operator replies go through the outbox to a real SMTP server (aiosmtpd),
threaded, with our own Message-ID; SMTP's verdicts decide retry or failure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from channels.accounts import add_account as add_email_account
from channels.accounts import change_account
from channels.email.plugin import EmailChannel
from channels.email.smtp import EmailSender
from channels.email.threads import parse_outbox_id
from channels.registry import ChannelRegistry
from core.audit import CLI
from core.channel_accounts import get_account
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind, Interaction, OutboxItem, OutboxStatus, Role
from core.outbox import OutboxWorker, enqueue
from routing.setup import create_queue
from tests.conftest import User, UserFactory
from tests.mailservers import ReceivedMail, SmtpServer
from tests.servers import free_port

pytest_plugins = ["tests.mailservers"]  # the `smtp_server` fixture

CUSTOMER = "ann@customer.example"
# Email accounts are stored with their passwords encrypted with this; the sender reads them
# with it.
CIPHER = CredentialCipher("the SMTP tests' credentials key")
REGISTRY = ChannelRegistry([EmailChannel()])
FIRST_MESSAGE_ID = "<m1@customer.example>"


async def add_account(sessions: SessionFactory, smtp_server: SmtpServer, **overrides: Any) -> int:
    """An email account sending through the test's SMTP server, made as the API makes one."""
    values = {
        "address": "support@shop.example",
        "display_name": "Shop Support",
        "imap_host": "imap.shop.example",
        "imap_user": "support",
        "smtp_host": smtp_server.host,
        "smtp_port": smtp_server.port,
        "smtp_tls": "none",
        **overrides,
    }
    name = values.pop("name", "support")
    queue_id = values.pop("queue_id", None)
    async with sessions() as session, session.begin():
        row = await add_email_account(
            session,
            CLI,
            REGISTRY,
            CIPHER,
            channel="email",
            name=name,
            settings=values,
            queue_id=queue_id,
        )
    return row.id


async def customer_writes(
    sessions: SessionFactory,
    external_id: str,
    *,
    account_id: int | None,
    answers: tuple[str, ...] = (),
    channel: str = "email",
    queue_id: int | None = None,
    subject: str = "Order 1234",
) -> int:
    """Ingest a customer's message as the IMAP poller would; its conversation id."""
    async with sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel=channel,
                external_id=external_id,
                addresses=[Address(IdentityKind.EMAIL, CUSTOMER)],
                subject=subject,
                text="Where is my order?",
                meta={"account_id": account_id} if account_id is not None else {},
                reply_to_external_ids=answers,
                thread_key=subject,
                queue_id=queue_id,
            ),
        )
    return result.conversation_id


async def reply(operator: User, conversation_id: int, text: str = "It ships today.") -> int:
    response = await operator.post(
        f"/api/v1/conversations/{conversation_id}/reply", json={"text": text}
    )
    assert response.status == 201, await response.text()
    outbox_id: int = (await response.json())["outbox"]["id"]
    return outbox_id


def worker_for(
    sessions: SessionFactory, timeout_seconds: float = 5.0, **kwargs: Any
) -> OutboxWorker:
    sender = EmailSender(sessions, cipher=CIPHER, timeout_seconds=timeout_seconds)
    return OutboxWorker(sessions, {"email": sender}, retry_base_seconds=0.02, **kwargs)


async def stored(sessions: SessionFactory, outbox_id: int) -> OutboxItem:
    async with sessions() as session:
        item = await session.get(OutboxItem, outbox_id)
    assert item is not None
    return item


async def deliver(worker: OutboxWorker, sessions: SessionFactory, outbox_id: int) -> OutboxItem:
    """Run worker passes until the item is sent or failed."""
    async with asyncio.timeout(20):
        while True:
            await worker.run_once()
            item = await stored(sessions, outbox_id)
            if item.status in (OutboxStatus.SENT, OutboxStatus.FAILED):
                return item
            await asyncio.sleep(0.02)


@pytest.fixture
async def operator(make_user: UserFactory) -> User:
    return await make_user(Role.SUPERVISOR)


def assert_ours(mail: ReceivedMail, item: OutboxItem) -> str:
    """The message carries our Message-ID for this item, recorded as its provider id."""
    message_id = str(mail.message["Message-ID"])
    assert message_id.endswith("@shop.example>")
    assert parse_outbox_id(message_id) == item.id
    assert item.provider_id == message_id
    return message_id


async def test_operator_reply_goes_out_threaded_with_our_message_id(
    sessions: SessionFactory, operator: User, smtp_server: SmtpServer
) -> None:
    account_id = await add_account(sessions, smtp_server)
    conversation = await customer_writes(sessions, FIRST_MESSAGE_ID, account_id=account_id)
    worker = worker_for(sessions)

    first = await deliver(worker, sessions, await reply(operator, conversation))
    assert (first.status, first.attempts) == (OutboxStatus.SENT, 1)
    [mail] = await smtp_server.wait_for(1)
    assert (mail.mail_from, mail.rcpt_tos) == ("support@shop.example", (CUSTOMER,))
    [sender] = mail.message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Shop Support", "support@shop.example")
    assert [a.addr_spec for a in mail.message["To"].addresses] == [CUSTOMER]
    assert mail.message["Subject"] == "Re: Order 1234"
    first_id = assert_ours(mail, first)
    assert mail.message["In-Reply-To"] == FIRST_MESSAGE_ID
    assert mail.message["References"] == FIRST_MESSAGE_ID
    assert mail.message["Auto-Submitted"] is None
    assert mail.message.get_content().strip() == "It ships today."
    assert mail.login is None

    # The customer answers our email: ingest threads it by our Message-ID, and the next
    # reply carries the whole thread, oldest first.
    answer = await customer_writes(
        sessions,
        "<m2@customer.example>",
        account_id=account_id,
        answers=(first_id,),
        subject="Re: Order 1234",
    )
    assert answer == conversation
    second = await deliver(worker, sessions, await reply(operator, conversation, "Tracking: 42"))
    [_, follow_up] = await smtp_server.wait_for(2)
    assert_ours(follow_up, second)
    assert follow_up.message["In-Reply-To"] == "<m2@customer.example>"
    assert str(follow_up.message["References"]).split() == [
        FIRST_MESSAGE_ID,
        first_id,
        "<m2@customer.example>",
    ]


async def test_reply_to_a_web_form_goes_to_the_address_on_the_form(
    sessions: SessionFactory, operator: User, smtp_server: SmtpServer
) -> None:
    async with sessions() as session, session.begin():
        sales = await create_queue(session, CLI, name="Sales")
    await add_account(sessions, smtp_server)
    await add_account(
        sessions,
        smtp_server,
        name="sales",
        address="sales@shop.example",
        display_name="Shop Sales",
        queue_id=sales.id,
    )
    conversation = await customer_writes(
        sessions,
        "quote:1",
        account_id=None,
        channel="webform",
        queue_id=sales.id,
        subject="Quote request",
    )
    item = await deliver(worker_for(sessions), sessions, await reply(operator, conversation))
    assert item.status == OutboxStatus.SENT
    [mail] = await smtp_server.wait_for(1)
    # No email of the customer's to answer: the mailbox serving the form's queue sends.
    assert mail.rcpt_tos == (CUSTOMER,)
    assert mail.message["From"].addresses[0].addr_spec == "sales@shop.example"
    assert mail.message["Subject"] == "Re: Quote request"
    assert mail.message["In-Reply-To"] is None
    assert mail.message["References"] is None
    assert item.provider_id == str(mail.message["Message-ID"])
    assert parse_outbox_id(item.provider_id) == item.id


async def test_automatic_messages_are_marked_auto_submitted(
    sessions: SessionFactory, smtp_server: SmtpServer
) -> None:
    account_id = await add_account(sessions, smtp_server)
    conversation = await customer_writes(sessions, FIRST_MESSAGE_ID, account_id=account_id)
    async with sessions() as session, session.begin():
        item = await enqueue(
            session,
            channel="email",
            recipient=CUSTOMER,
            payload={
                "text": "We got your message and answer within a day.",
                "subject": "Re: Order 1234",
                "in_reply_to": FIRST_MESSAGE_ID,
                "automatic": True,
            },
            conversation_id=conversation,
        )
    sent = await deliver(worker_for(sessions), sessions, item.id)
    assert sent.status == OutboxStatus.SENT
    [mail] = await smtp_server.wait_for(1)
    assert mail.message["Auto-Submitted"] == "auto-replied"
    assert mail.message["In-Reply-To"] == FIRST_MESSAGE_ID


async def test_the_mailbox_the_customer_wrote_to_answers(
    sessions: SessionFactory, operator: User, smtp_server: SmtpServer
) -> None:
    await add_account(sessions, smtp_server)
    sales = await add_account(sessions, smtp_server, name="sales", address="sales@shop.example")
    conversation = await customer_writes(sessions, FIRST_MESSAGE_ID, account_id=sales)
    worker = worker_for(sessions)
    await deliver(worker, sessions, await reply(operator, conversation))
    [mail] = await smtp_server.wait_for(1)
    assert mail.message["From"].addresses[0].addr_spec == "sales@shop.example"

    # A disabled account sends nothing: the next one in line answers.
    async with sessions() as session, session.begin():
        row = await get_account(session, sales)
        await change_account(session, CLI, REGISTRY, CIPHER, row, enabled=False)
    await deliver(worker, sessions, await reply(operator, conversation))
    [_, second] = await smtp_server.wait_for(2)
    assert second.message["From"].addresses[0].addr_spec == "support@shop.example"


async def test_a_reply_waits_in_the_outbox_until_a_mailbox_is_configured(
    sessions: SessionFactory, operator: User, smtp_server: SmtpServer
) -> None:
    conversation = await customer_writes(sessions, FIRST_MESSAGE_ID, account_id=None)
    outbox_id = await reply(operator, conversation)
    worker = worker_for(sessions)
    assert await worker.run_once() == 0
    item = await stored(sessions, outbox_id)
    assert (item.status, item.attempts) == (OutboxStatus.QUEUED, 0)
    assert smtp_server.messages == []

    await add_account(sessions, smtp_server)
    item = await deliver(worker, sessions, outbox_id)
    assert item.status == OutboxStatus.SENT
    [mail] = await smtp_server.wait_for(1)
    assert [a.addr_spec for a in mail.message["To"].addresses] == [CUSTOMER]


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(lambda server: server.fail_next(1, 451), id="451 at DATA"),
        pytest.param(lambda server: server.fail_next(1, 421, stage="mail"), id="421 at MAIL"),
        pytest.param(lambda server: server.fail_next(1, 450, stage="rcpt"), id="450 at RCPT"),
        pytest.param(lambda server: server.drop_next(1), id="dropped connection"),
    ],
)
async def test_transient_failures_are_retried(
    sessions: SessionFactory, operator: User, smtp_server: SmtpServer, script: Any
) -> None:
    account_id = await add_account(sessions, smtp_server)
    conversation = await customer_writes(sessions, FIRST_MESSAGE_ID, account_id=account_id)
    outbox_id = await reply(operator, conversation)
    script(smtp_server)
    worker = worker_for(sessions)

    await worker.run_once()
    waiting = await stored(sessions, outbox_id)
    assert (waiting.status, waiting.attempts) == (OutboxStatus.SENDING, 1)
    assert waiting.last_error
    assert smtp_server.messages == []

    item = await deliver(worker, sessions, outbox_id)
    assert (item.status, item.attempts) == (OutboxStatus.SENT, 2)
    [mail] = await smtp_server.wait_for(1)
    assert_ours(mail, item)


async def test_a_timeout_is_retried_with_the_same_message_id(
    sessions: SessionFactory, operator: User, smtp_server: SmtpServer
) -> None:
    account_id = await add_account(sessions, smtp_server)
    conversation = await customer_writes(sessions, FIRST_MESSAGE_ID, account_id=account_id)
    outbox_id = await reply(operator, conversation)
    # Silent for longer than the client waits: the message may or may not have arrived.
    smtp_server.drop_next(1, after=1.5)

    await worker_for(sessions, timeout_seconds=0.3).run_once()
    waiting = await stored(sessions, outbox_id)
    assert waiting.status == OutboxStatus.SENDING
    assert "timed out" in (waiting.last_error or "").lower()
    # The retry waits as long as a sender does (a second short wait could time out too on a
    # busy machine, and make it a third attempt).
    item = await deliver(worker_for(sessions), sessions, outbox_id)
    assert (item.status, item.attempts) == (OutboxStatus.SENT, 2)
    [mail] = await smtp_server.wait_for(1)
    # Every attempt carries the same Message-ID, so a copy that did arrive is a duplicate
    # the recipient can drop, and an answer to either threads here.
    assert_ours(mail, item)


async def test_an_unreachable_server_is_retried_then_given_up(
    sessions: SessionFactory, operator: User, smtp_server: SmtpServer
) -> None:
    account_id = await add_account(sessions, smtp_server, smtp_port=free_port())
    conversation = await customer_writes(sessions, FIRST_MESSAGE_ID, account_id=account_id)
    item = await deliver(
        worker_for(sessions, max_attempts=2), sessions, await reply(operator, conversation)
    )
    assert (item.status, item.attempts) == (OutboxStatus.FAILED, 2)
    assert (item.last_error or "").startswith("gave up after 2 attempts")


@pytest.mark.parametrize("stage", ["data", "rcpt", "mail"])
async def test_a_5xx_reply_fails_the_message_with_the_servers_reason(
    sessions: SessionFactory, operator: User, smtp_server: SmtpServer, stage: Any
) -> None:
    account_id = await add_account(sessions, smtp_server)
    conversation = await customer_writes(sessions, FIRST_MESSAGE_ID, account_id=account_id)
    smtp_server.fail_next(1, 550, "5.1.1 Mailbox unavailable", stage=stage)
    outbox_id = await reply(operator, conversation)
    item = await deliver(worker_for(sessions), sessions, outbox_id)
    assert (item.status, item.attempts) == (OutboxStatus.FAILED, 1)
    assert "550 5.1.1 Mailbox unavailable (scripted)" in (item.last_error or "")
    assert smtp_server.messages == []

    response = await operator.get(f"/api/v1/conversations/{conversation}/outbox")
    assert response.status == 200
    [row] = (await response.json())["items"]
    assert (row["id"], row["status"]) == (outbox_id, "failed")
    assert "550 5.1.1 Mailbox unavailable" in row["last_error"]
    assert row["provider_id"] is None


async def test_smtp_auth_with_the_mailbox_credentials(
    sessions: SessionFactory, operator: User, smtp_server: SmtpServer
) -> None:
    smtp_server.require_auth("support@shop.example", "right horse battery")
    good = await add_account(
        sessions,
        smtp_server,
        smtp_user="support@shop.example",
        smtp_password="right horse battery",
    )
    conversation = await customer_writes(sessions, FIRST_MESSAGE_ID, account_id=good)
    worker = worker_for(sessions)
    sent = await deliver(worker, sessions, await reply(operator, conversation))
    assert sent.status == OutboxStatus.SENT
    [mail] = await smtp_server.wait_for(1)
    assert mail.login == "support@shop.example"

    wrong = await add_account(
        sessions,
        smtp_server,
        name="sales",
        address="sales@shop.example",
        smtp_user="support@shop.example",
        smtp_password="wrong horse battery",
    )
    other = await customer_writes(
        sessions, "<other@customer.example>", account_id=wrong, subject="Refund"
    )
    failed = await deliver(worker, sessions, await reply(operator, other))
    assert (failed.status, failed.attempts) == (OutboxStatus.FAILED, 1)
    assert "535" in (failed.last_error or "")
    assert "wrong horse battery" not in (failed.last_error or "")
    assert len(smtp_server.messages) == 1


async def test_the_sent_reply_is_the_stored_interaction(
    sessions: SessionFactory, operator: User, smtp_server: SmtpServer
) -> None:
    account_id = await add_account(sessions, smtp_server)
    conversation = await customer_writes(sessions, FIRST_MESSAGE_ID, account_id=account_id)
    response = await operator.post(
        f"/api/v1/conversations/{conversation}/reply",
        json={"text": "", "html": "<p>It <b>ships</b> today.</p>"},
    )
    assert response.status == 201
    body = await response.json()
    item = await deliver(worker_for(sessions), sessions, body["outbox"]["id"])
    assert item.status == OutboxStatus.SENT
    [mail] = await smtp_server.wait_for(1)
    html = mail.message.get_body(("html",))
    plain = mail.message.get_body(("plain",))
    assert html is not None
    assert plain is not None
    assert "<b>ships</b>" in html.get_content()
    assert "It ships today." in plain.get_content()
    async with sessions() as session:
        interaction = await session.scalar(
            select(Interaction).where(Interaction.id == body["interaction"]["id"])
        )
    assert interaction is not None
    assert interaction.html == "<p>It <b>ships</b> today.</p>"
