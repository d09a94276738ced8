"""Answers through Telegram: the outbox worker and the official library against the Bot API
stand-in (tests/telegram_standin.py). Customers write by webhook (the POST Telegram would
make); the worker runs with the channel's own sender, its pacing on fake time."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from channels.telegram.sender import MAX_TEXT, RateLimiter, TelegramSender
from channels.telegram.settings import webhook_secret
from channels.telegram.store import BLOCKED_REASON
from channels.telegram.webhooks import SECRET_HEADER
from core import clock
from core.db import SessionFactory
from core.models import Conversation, Identity, Interaction, OutboxItem, OutboxStatus, Role
from core.outbox import OutboxWorker
from core.settings import Settings
from tests import telegram_standin as tg
from tests.conftest import User, UserFactory
from tests.telegram_helpers import PUBLIC, add_bot, telegram_settings
from tests.telegram_standin import TOKEN, Answer, Call, TelegramStandIn
from web.keys import REGISTRY, SERVICES

ALICE = 5_550_001
BOB = 5_550_002
SALES_TOKEN = "7000000002:" + "S" * 35
GROUP = -1_001_987_654_321


class FakeTime:
    """Monotonic time for the limiter: it moves only when the limiter sleeps (at once)."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return telegram_settings(database_url, tmp_path, public_url=PUBLIC)


@pytest.fixture
async def standin() -> AsyncIterator[TelegramStandIn]:
    async with tg.running() as telegram:
        yield telegram


@pytest.fixture
def outbox(app: web.Application) -> OutboxWorker:
    """The outbox worker with the app's senders; Telegram's pacing runs on fake time (the
    spacing itself is tested below), so a long answer does not take seconds."""
    senders = app[REGISTRY].senders(app[SERVICES])
    sender = senders["telegram"]
    assert isinstance(sender, TelegramSender)
    fake = FakeTime()
    sender.limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    return OutboxWorker(app[SERVICES].sessions, senders, poll_seconds=0.05, retry_base_seconds=0.01)


@pytest.fixture
async def supervisor(make_user: UserFactory, standin: TelegramStandIn) -> User:
    """A supervisor, with the support bot added (by webhook) for them to answer through."""
    await add_bot(make_user, standin, mode="webhook")
    return await make_user(Role.SUPERVISOR)


async def write(
    client: TestClient[Any, Any],
    standin: TelegramStandIn,
    update: dict[str, Any],
    *,
    token: str = TOKEN,
    account: str = "support",
) -> None:
    """The customer's update, delivered to our webhook as Telegram delivers it."""
    update_id = standin.push(token, update)  # the stand-in learns the chat, numbers the update
    response = await client.post(
        f"/hooks/telegram/{account}/update",
        json={"update_id": update_id, **update},
        headers={SECRET_HEADER: webhook_secret(token)},
    )
    assert response.status == 200, await response.text()


async def conversation_of(sessions: SessionFactory, user_id: int) -> int:
    """The conversation of the customer's latest message."""
    async with sessions() as session:
        found = await session.scalar(
            select(Interaction.conversation_id)
            .join(Identity, Identity.contact_id == Interaction.contact_id)
            .where(Identity.kind == "telegram", Identity.address == str(user_id))
            .order_by(Interaction.id.desc())
            .limit(1)
        )
    assert found is not None
    return int(found)


async def reply(user: User, conversation_id: int, status_code: int = 201, **body: Any) -> Any:
    response = await user.post(f"/api/v1/conversations/{conversation_id}/reply", json=body)
    assert response.status == status_code, await response.text()
    return await response.json()


async def item_of(sessions: SessionFactory, outbox_id: int) -> OutboxItem:
    async with sessions() as session:
        item = await session.get(OutboxItem, outbox_id)
    assert item is not None
    return item


async def attempt(outbox: OutboxWorker, sessions: SessionFactory, outbox_id: int) -> OutboxItem:
    """One worker pass (the item is due); the item after it."""
    await outbox.run_once()
    return await item_of(sessions, outbox_id)


async def until_sent(outbox: OutboxWorker, sessions: SessionFactory, outbox_id: int) -> OutboxItem:
    """Worker passes until the item is sent (a retry is due within milliseconds)."""
    async with asyncio.timeout(10):
        while True:
            await outbox.run_once()
            item = await item_of(sessions, outbox_id)
            if item.status in (OutboxStatus.SENT, OutboxStatus.FAILED):
                return item
            await asyncio.sleep(0.01)


def messages_to(standin: TelegramStandIn, chat_id: int) -> list[Call]:
    return [call for call in standin.sent if call.chat_id == chat_id]


async def test_a_reply_reaches_the_customers_chat_as_written(
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    standin: TelegramStandIn,
    supervisor: User,
    outbox: OutboxWorker,
) -> None:
    await write(client, standin, tg.text_message(ALICE, "Is <b> bold here?"))
    conversation = await conversation_of(sessions, ALICE)
    text = "Type <b>bold</b> & it shows as written -> fine"
    outbox_id = (await reply(supervisor, conversation, text=text))["outbox"]["id"]

    item = await attempt(outbox, sessions, outbox_id)
    assert item.status == OutboxStatus.SENT
    [call] = standin.sent
    assert (call.method, call.chat_id, call.params["parse_mode"]) == ("sendMessage", ALICE, "HTML")
    assert call.result["text"] == text  # escaped: Telegram shows the markup as typed
    assert "entities" not in call.result
    assert item.provider_id == f"{ALICE}:{call.result['message_id']}"


async def test_a_long_reply_arrives_in_order_in_pieces_within_telegrams_limit(
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    standin: TelegramStandIn,
    supervisor: User,
    outbox: OutboxWorker,
) -> None:
    await write(client, standin, tg.text_message(ALICE, "Please explain everything"))
    conversation = await conversation_of(sessions, ALICE)
    paragraph = " ".join(f"Step {n}: check that a < b & b > c, then go on." for n in range(60))
    text = "\n\n".join(f"Part {n}. {paragraph}" for n in range(4))
    assert len(text) > 2 * MAX_TEXT
    outbox_id = (await reply(supervisor, conversation, text=text))["outbox"]["id"]

    item = await attempt(outbox, sessions, outbox_id)
    assert item.status == OutboxStatus.SENT
    calls = messages_to(standin, ALICE)
    assert len(calls) >= 3
    ids = [call.result["message_id"] for call in calls]
    assert ids == sorted(ids)
    assert item.provider_id == f"{ALICE}:{ids[-1]}"
    shown = [str(call.result["text"]) for call in calls]
    assert all(len(piece) <= MAX_TEXT for piece in shown)
    # The pieces are the text in order; only whitespace at the cuts is left out.
    end = 0
    for piece in shown:
        start = text.index(piece, end)
        assert text[end:start].strip() == ""
        end = start + len(piece)
    assert text[end:].strip() == ""


async def test_media_addresses_go_as_a_photo_or_a_document(
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    standin: TelegramStandIn,
    supervisor: User,
    outbox: OutboxWorker,
) -> None:
    await write(client, standin, tg.text_message(ALICE, "Photo and invoice, please"))
    conversation = await conversation_of(sessions, ALICE)
    photo = "https://files.example.com/parcel.jpg"
    invoice = "https://files.example.com/invoice-4711.pdf"
    sent = await reply(supervisor, conversation, text="Here you are", media_urls=[photo, invoice])

    item = await attempt(outbox, sessions, sent["outbox"]["id"])
    assert item.status == OutboxStatus.SENT
    text, picture, document = messages_to(standin, ALICE)
    assert (text.method, text.result["text"]) == ("sendMessage", "Here you are")
    assert (picture.method, picture.params["photo"]) == ("sendPhoto", photo)
    assert "photo" in picture.result
    assert (document.method, document.params["document"]) == ("sendDocument", invoice)
    assert document.result["document"]["file_name"] == "invoice-4711.pdf"


async def test_flood_control_waits_as_long_as_telegram_asks_then_sends_once(
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    standin: TelegramStandIn,
    make_user: UserFactory,
    outbox: OutboxWorker,
) -> None:
    manual = clock.ManualClock(clock.utcnow())
    with clock.using(manual):
        await add_bot(make_user, standin, mode="webhook")
        supervisor = await make_user(Role.SUPERVISOR)
        await write(client, standin, tg.text_message(ALICE, "Hello?"))
        conversation = await conversation_of(sessions, ALICE)
        outbox_id = (await reply(supervisor, conversation, text="Hi Alice"))["outbox"]["id"]
        standin.script(tg.retry_after(7), chat_id=ALICE)

        item = await attempt(outbox, sessions, outbox_id)
        assert item.status == OutboxStatus.SENDING  # still to be sent: not failed
        assert item.error_code == "429"
        assert item.last_error is not None
        assert "wait 7 s" in item.last_error
        assert item.next_attempt_at >= manual.now() + timedelta(seconds=7)
        assert standin.sent == []

        manual.advance(seconds=6)
        assert await outbox.run_once() == 0  # not before Telegram said
        manual.advance(seconds=1)
        item = await attempt(outbox, sessions, outbox_id)
    assert (item.status, item.attempts) == (OutboxStatus.SENT, 2)
    [call] = messages_to(standin, ALICE)
    assert call.result["text"] == "Hi Alice"
    assert len(standin.attempts(chat_id=ALICE)) == 2


async def test_a_customer_who_blocked_the_bot_is_not_answered_until_they_write_again(
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    standin: TelegramStandIn,
    supervisor: User,
    outbox: OutboxWorker,
) -> None:
    await write(client, standin, tg.text_message(ALICE, "Hello?"))
    conversation = await conversation_of(sessions, ALICE)
    outbox_id = (await reply(supervisor, conversation, text="Hi Alice"))["outbox"]["id"]
    standin.script(tg.blocked(), chat_id=ALICE)

    item = await attempt(outbox, sessions, outbox_id)
    assert (item.status, item.attempts, item.error_code) == (OutboxStatus.FAILED, 1, "blocked")
    assert item.last_error is not None
    assert "blocked by the user" in item.last_error
    async with sessions() as session:
        identity = await session.scalar(select(Identity).where(Identity.kind == "telegram"))
    assert identity is not None
    assert identity.opted_out_at is not None
    assert identity.opt_out_reason == BLOCKED_REASON

    refused = await reply(supervisor, conversation, 400, text="Are you still there?")
    assert BLOCKED_REASON in refused["error"]["fields"]["channel"]
    response = await supervisor.get(f"/api/v1/conversations/{conversation}/reply-options")
    options = (await response.json())["options"]
    [telegram] = [option for option in options if option["channel"] == "telegram"]
    assert telegram["opted_out"] == BLOCKED_REASON

    # They unblock the bot and write: reachable again.
    await write(client, standin, tg.text_message(ALICE, "Sorry, I am back"))
    response = await supervisor.get(f"/api/v1/conversations/{conversation}/reply-options")
    options = (await response.json())["options"]
    [telegram] = [option for option in options if option["channel"] == "telegram"]
    assert telegram["opted_out"] is None
    again = await reply(supervisor, await conversation_of(sessions, ALICE), text="Welcome back")
    item = await attempt(outbox, sessions, again["outbox"]["id"])
    assert item.status == OutboxStatus.SENT
    assert [call.result["text"] for call in messages_to(standin, ALICE)] == ["Welcome back"]


@pytest.mark.parametrize(
    "failure", [tg.drop(), tg.server_error(502)], ids=["connection dropped", "bad gateway"]
)
@pytest.mark.both_databases
async def test_a_network_failure_is_retried_and_the_reply_arrives_once(
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    standin: TelegramStandIn,
    supervisor: User,
    outbox: OutboxWorker,
    failure: Answer,
) -> None:
    await write(client, standin, tg.text_message(ALICE, "Hello?"))
    conversation = await conversation_of(sessions, ALICE)
    outbox_id = (await reply(supervisor, conversation, text="Hi Alice"))["outbox"]["id"]
    standin.script(failure, chat_id=ALICE)

    item = await attempt(outbox, sessions, outbox_id)
    assert item.status == OutboxStatus.SENDING  # transient: to be tried again
    assert item.last_error is not None
    item = await until_sent(outbox, sessions, outbox_id)
    assert (item.status, item.attempts) == (OutboxStatus.SENT, 2)
    assert [call.result["text"] for call in messages_to(standin, ALICE)] == ["Hi Alice"]


async def test_a_retry_after_a_failure_midway_sends_only_the_parts_not_yet_sent(
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    standin: TelegramStandIn,
    supervisor: User,
    outbox: OutboxWorker,
) -> None:
    await write(client, standin, tg.text_message(ALICE, "The photo, please"))
    conversation = await conversation_of(sessions, ALICE)
    photo = "https://files.example.com/parcel.jpg"
    sent = await reply(supervisor, conversation, text="Here it is", media_urls=[photo])
    standin.script(tg.server_error(502), chat_id=ALICE, method="sendPhoto")

    item = await attempt(outbox, sessions, sent["outbox"]["id"])
    assert item.status == OutboxStatus.SENDING  # the text went, the photo did not
    item = await until_sent(outbox, sessions, sent["outbox"]["id"])
    assert item.status == OutboxStatus.SENT
    # The customer got the text once and the photo once.
    assert [call.method for call in messages_to(standin, ALICE)] == ["sendMessage", "sendPhoto"]


async def test_the_answer_goes_through_the_bot_the_customer_wrote_to(
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    standin: TelegramStandIn,
    make_user: UserFactory,
    supervisor: User,
    outbox: OutboxWorker,
) -> None:
    standin.add_bot(SALES_TOKEN, username="omnicrm_sales_bot")
    await add_bot(make_user, standin, "sales", token=SALES_TOKEN, mode="webhook")
    await write(client, standin, tg.text_message(BOB, "Support, help!"))
    await write(client, standin, tg.text_message(ALICE, "A question for support"))
    # Alice then writes to the sales bot: the support bot may not be the one she reads now.
    await write(
        client,
        standin,
        tg.text_message(ALICE, "A price, please"),
        token=SALES_TOKEN,
        account="sales",
    )
    for user_id, text in ((ALICE, "For Alice"), (BOB, "For Bob")):
        sent = await reply(supervisor, await conversation_of(sessions, user_id), text=text)
        assert (await attempt(outbox, sessions, sent["outbox"]["id"])).status == OutboxStatus.SENT

    [to_alice] = messages_to(standin, ALICE)
    [to_bob] = messages_to(standin, BOB)
    assert (to_alice.token, to_alice.result["text"]) == (SALES_TOKEN, "For Alice")
    assert to_alice.result["from"]["username"] == "omnicrm_sales_bot"
    assert (to_bob.token, to_bob.result["text"]) == (TOKEN, "For Bob")


async def test_the_start_greeting_is_delivered_and_is_no_ones_first_response(
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    standin: TelegramStandIn,
    supervisor: User,
    outbox: OutboxWorker,
) -> None:
    await write(client, standin, tg.command(ALICE, "/start", language_code="en"))
    conversation = await conversation_of(sessions, ALICE)

    assert await outbox.run_once() == 1
    [greeting] = messages_to(standin, ALICE)
    assert greeting.result["text"].startswith("Hello! Write your question here")
    async with sessions() as session:
        found = await session.get(Conversation, conversation)
    assert found is not None
    assert found.first_response_at is None  # the SLA clock still runs for the team

    await reply(supervisor, conversation, text="Hi, I am Kim from support")
    async with sessions() as session:
        found = await session.get(Conversation, conversation)
    assert found is not None
    assert found.first_response_at is not None


# --- pacing, on fake time -----------------------------------------------------------------------

BOT = 7_123_456_789


async def paced(limiter: RateLimiter, time: FakeTime, *chats: int) -> list[float]:
    """When each send (one to each of `chats`, in order) was allowed, in fake seconds."""
    times = []
    for chat in chats:
        await limiter.wait(BOT, chat)
        times.append(time.now)
    return times


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def limiter(time: FakeTime) -> RateLimiter:
    return RateLimiter(clock=time.clock, sleep=time.sleep)


async def test_messages_to_one_private_chat_are_a_second_apart(
    limiter: RateLimiter, time: FakeTime
) -> None:
    times = await paced(limiter, time, ALICE, ALICE, ALICE)
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(times))


async def test_messages_to_a_group_are_three_seconds_apart(
    limiter: RateLimiter, time: FakeTime
) -> None:
    times = await paced(limiter, time, GROUP, GROUP, GROUP)
    assert all(later - earlier >= 3.0 for earlier, later in itertools.pairwise(times))


async def test_a_bot_sends_at_most_thirty_messages_a_second(
    limiter: RateLimiter, time: FakeTime
) -> None:
    times = await paced(limiter, time, *range(1, 41))  # 40 chats, one message each
    assert all(sum(1 for other in times if at - 1.0 < other <= at) <= 30 for at in times)
    assert times[-1] - times[0] >= 1.0  # the last ten waited for the next second


async def test_a_chat_telegram_held_back_waits_as_long_as_asked(
    limiter: RateLimiter, time: FakeTime
) -> None:
    await limiter.wait(BOT, BOB)
    held_at = time.now
    limiter.hold(BOT, BOB, 5)  # Telegram answered 429 with retry_after 5
    await limiter.wait(BOT, BOB)
    assert time.now - held_at >= 5.0


async def test_a_chat_held_back_does_not_hold_back_the_others(time: FakeTime) -> None:
    asleep, wake = asyncio.Event(), asyncio.Event()

    async def sleep(seconds: float) -> None:  # time stands still until the test moves it
        asleep.set()
        await wake.wait()
        time.now += seconds

    limiter = RateLimiter(clock=time.clock, sleep=sleep)
    limiter.hold(BOT, ALICE, 30)  # Telegram answered 429 with retry_after 30
    to_alice = asyncio.create_task(limiter.wait(BOT, ALICE))
    await asleep.wait()
    to_bob = asyncio.create_task(limiter.wait(BOT, BOB))
    try:
        for _ in range(5):
            await asyncio.sleep(0)
        assert to_bob.done()  # Bob is answered while Alice's chat waits
        assert not to_alice.done()
    finally:
        wake.set()
        await asyncio.gather(to_alice, to_bob)
    assert time.now >= 30.0
