"""Customers writing to a Telegram bot: by webhook and by long polling, through the official
library against the Bot API stand-in (tests/telegram_standin.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from channels.pollers import PollerSupervisor
from channels.registry import default_channels
from channels.telegram.settings import webhook_secret
from core.db import SessionFactory
from core.models import (
    ChannelCursor,
    Contact,
    Conversation,
    Identity,
    IdentityKind,
    Interaction,
    Lead,
    OutboxItem,
    QuarantinedMessage,
    Role,
)
from core.settings import Settings
from core.storage import FilesystemStore
from tests import telegram_standin as tg
from tests.conftest import UserFactory
from tests.telegram_helpers import PUBLIC, add_bot, fast_channel, telegram_settings
from tests.telegram_standin import TOKEN, TelegramStandIn
from tests.waiting import eventually
from web.app import create_app
from web.keys import REGISTRY, SERVICES

ALICE = 5_550_001


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return telegram_settings(database_url, tmp_path, public_url=PUBLIC)


@pytest.fixture
def app(settings: Settings, engine: Any) -> web.Application:
    channels = [item for item in default_channels() if item.name != "telegram"]
    return create_app(settings, background_workers=False, channels=[*channels, fast_channel()])


@pytest.fixture
async def standin() -> AsyncIterator[TelegramStandIn]:
    async with tg.running() as telegram:
        yield telegram


@pytest.fixture
async def pollers(app: web.Application, server: TestServer) -> AsyncIterator[PollerSupervisor]:
    supervisor = PollerSupervisor(app[REGISTRY], app[SERVICES])
    await supervisor.start()
    try:
        yield supervisor
    finally:
        await supervisor.stop()


async def messages(sessions: SessionFactory) -> list[Interaction]:
    async with sessions() as session:
        query = select(Interaction).where(Interaction.channel == "telegram")
        return list(await session.scalars(query.order_by(Interaction.id)))


async def inbound_count(sessions: SessionFactory) -> int:
    return len([item for item in await messages(sessions) if item.direction == "in"])


async def test_a_wrong_token_is_refused_when_the_bot_is_added(
    make_user: UserFactory, standin: TelegramStandIn, sessions: SessionFactory
) -> None:
    other = "7000000001:" + "A" * 35  # well formed, but no bot of the stand-in's
    body = await add_bot(make_user, standin, token=other, expect=400)
    assert "token" in body["error"]["fields"]["settings.token"]
    assert other not in json.dumps(body)
    added = await add_bot(make_user, standin)
    assert added["settings"]["bot_username"] == tg.BOT_USERNAME
    assert TOKEN not in json.dumps(added)  # secrets are never shown


@pytest.mark.both_databases
async def test_webhook_mode_registers_authenticates_and_stores_each_message_once(
    make_user: UserFactory,
    standin: TelegramStandIn,
    sessions: SessionFactory,
    server: TestServer,
    pollers: PollerSupervisor,
) -> None:
    await add_bot(make_user, standin, mode="webhook")
    bot = standin.bots[TOKEN]
    await eventually(lambda: _true(bot.webhook is not None), "the webhook registered")
    assert bot.webhook is not None
    assert bot.webhook.url == f"{PUBLIC}/hooks/telegram/support/update"
    assert bot.webhook.secret_token == webhook_secret(TOKEN)
    origin = str(server.make_url("")).rstrip("/")

    update = tg.text_message(ALICE, "Where is my order 4711?", first_name="Alice", last_name="Li")
    standin.push(TOKEN, update)
    assert await standin.deliver(TOKEN, origin=origin) == [200]
    # Telegram delivers the same message again (say our answer was lost): nothing new.
    standin.push(TOKEN, update)
    assert await standin.deliver(TOKEN, origin=origin) == [200]
    stored = await messages(sessions)
    assert [item.text for item in stored] == ["Where is my order 4711?"]
    async with sessions() as session:
        contact = await session.get(Contact, stored[0].contact_id)
        identity = await session.scalar(
            select(Identity).where(Identity.contact_id == stored[0].contact_id)
        )
    assert contact is not None
    assert contact.display_name == "Alice Li"
    assert identity is not None
    assert (identity.kind, identity.address) == ("telegram", str(ALICE))

    body = json.dumps(tg.text_message(ALICE, "forged") | {"update_id": 1}).encode()
    assert await standin.deliver_raw(TOKEN, body, "not-the-secret", origin=origin) == 403
    assert await standin.deliver_raw(TOKEN, body, None, origin=origin) == 403
    secret = webhook_secret(TOKEN)
    assert await standin.deliver_raw(TOKEN, b"{not json", secret, origin=origin) == 400
    assert await standin.deliver_raw(TOKEN, b'{"message": {}}', secret, origin=origin) == 400
    # An Update the library cannot read: kept in quarantine, acknowledged (else Telegram
    # would deliver it again and again, then drop it).
    unreadable = b'{"update_id": 5, "message": {"message_id": 1}}'
    assert await standin.deliver_raw(TOKEN, unreadable, secret, origin=origin) == 200
    async with sessions() as session:
        held = await session.scalar(select(QuarantinedMessage))
    assert held is not None
    assert held.reference == "update:5"
    # A group message: valid, not for us (the account takes private chats only).
    standin.push(TOKEN, tg.group_text(ALICE, "hello group"))
    assert await standin.deliver(TOKEN, origin=origin) == [200]
    assert await inbound_count(sessions) == 1


async def test_polling_stores_media_edits_and_moves_the_offset_with_them(
    app: web.Application,
    make_user: UserFactory,
    standin: TelegramStandIn,
    sessions: SessionFactory,
    pollers: PollerSupervisor,
    settings: Settings,
) -> None:
    await add_bot(make_user, standin, mode="polling")
    picture = b"\xff\xd8\xff" + b"jpeg" * 50
    standin.push(TOKEN, tg.text_message(ALICE, "Hi, my parcel is damaged", message_id=10))
    standin.push(TOKEN, tg.photo(standin, TOKEN, ALICE, data=picture, caption="the box"))
    standin.push(TOKEN, tg.edited(ALICE, "Hi, my parcel 4711 is damaged", message_id=10))
    big = standin.add_file(TOKEN, b"x", size=25 * 1024 * 1024, path_hint="videos/file_9.mp4")
    huge = tg.update(
        "message",
        tg._message(ALICE, {}, video={"file_id": big, "file_unique_id": "u9", "width": 1,
                                      "height": 1, "duration": 3, "file_size": 25 * 1024 * 1024}),
    )  # fmt: skip
    standin.push(TOKEN, huge)

    async def all_in() -> bool:
        return await inbound_count(sessions) == 3 and not standin.pending(TOKEN)

    await eventually(all_in, "the updates stored")
    first, photo, video = await messages(sessions)
    assert first.text == "Hi, my parcel 4711 is damaged"
    assert [edit["text"] for edit in first.meta["edits"]] == ["Hi, my parcel is damaged"]
    async with sessions() as session:
        named = await session.get(Conversation, first.conversation_id)
    assert named is not None
    assert named.subject == "Hi, my parcel 4711 is damaged"  # named after it, renamed with it
    assert photo.text == "the box"
    assert photo.attachments[0]["pending"] is True
    assert video.attachments[0]["too_large"] is True
    assert "20 MB" in video.attachments[0]["error"]
    async with sessions() as session:
        cursor = await session.scalar(select(ChannelCursor))
    assert cursor is not None
    assert cursor.state["offset"] > 0

    from tests.telegram_helpers import fetcher

    assert await fetcher(app).run_once() == 1
    async with sessions() as session:
        fetched = await session.get(Interaction, photo.id, populate_existing=True)
    assert fetched is not None
    entry = fetched.attachments[0]
    assert entry["pending"] is False, entry
    store = FilesystemStore(Path(settings.attachments_dir))
    assert await store.get(entry["key"]) == picture


async def test_start_with_a_deep_link_records_the_source_opens_a_lead_and_greets(
    make_user: UserFactory,
    standin: TelegramStandIn,
    sessions: SessionFactory,
    pollers: PollerSupervisor,
) -> None:
    await add_bot(make_user, standin, mode="polling", leads_from_start=True)
    standin.push(TOKEN, tg.command(ALICE, "/start", "spring_sale", language_code="ru"))
    await eventually(lambda: _more_than(sessions, 0), "the /start stored")
    async with sessions() as session:
        contact = await session.scalar(select(Contact))
        lead = await session.scalar(select(Lead))
        greeting = await session.scalar(select(OutboxItem))
    assert contact is not None
    assert contact.marketing_source["start"] == "spring_sale"
    assert contact.language == "ru"
    assert lead is not None
    assert lead.source == "telegram:spring_sale"
    assert greeting is not None
    assert greeting.channel == "telegram"
    assert greeting.payload["text"].startswith("Здравствуйте")


async def test_sharing_a_phone_number_joins_the_customers_sms_history(
    make_user: UserFactory,
    standin: TelegramStandIn,
    sessions: SessionFactory,
    pollers: PollerSupervisor,
) -> None:
    from core.identity import Address
    from core.ingest import InboundEvent, ingest

    async with sessions() as session, session.begin():
        sms = await ingest(
            session,
            InboundEvent(
                channel="sms",
                external_id="SM1",
                addresses=[Address(IdentityKind.PHONE, "+4915112345678")],
                text="Hello by SMS",
            ),
        )
    await add_bot(make_user, standin, mode="polling")
    standin.push(TOKEN, tg.text_message(ALICE, "Hello on Telegram"))
    standin.push(TOKEN, tg.contact(ALICE, "4915112345678"))

    async def merged() -> bool:
        async with sessions() as session:
            owner = await session.scalar(
                select(Identity.contact_id).where(Identity.address == str(ALICE))
            )
        return owner == sms.contact_id

    await eventually(merged, "the contacts merged")
    async with sessions() as session:
        mine = list(
            await session.scalars(
                select(Interaction.text).where(Interaction.contact_id == sms.contact_id)
            )
        )
    assert set(mine) >= {"Hello by SMS", "Hello on Telegram"}


async def test_every_kind_of_message_a_customer_sends_is_stored_with_its_files(
    app: web.Application,
    make_user: UserFactory,
    standin: TelegramStandIn,
    sessions: SessionFactory,
    pollers: PollerSupervisor,
) -> None:
    await add_bot(make_user, standin, mode="polling")
    sent = [
        tg.document(standin, TOKEN, ALICE),
        tg.voice(standin, TOKEN, ALICE),
        tg.video_note(standin, TOKEN, ALICE),
        tg.video(standin, TOKEN, ALICE, caption="unboxing"),
        tg.sticker(standin, TOKEN, ALICE),
        tg.location(ALICE, 52.520008, 13.404954),
        tg.contact(ALICE, "+4930901820", own=False, contact_first_name="Bob"),
    ]
    for update in sent:
        standin.push(TOKEN, update)

    async def all_in() -> bool:
        return await inbound_count(sessions) == len(sent)

    await eventually(all_in, "every message stored")
    stored = await messages(sessions)
    texts = [item.text for item in stored]
    assert texts[1] == "(voice message)"
    assert texts[2] == "(video message)"
    assert texts[3] == "unboxing"
    assert texts[4] == "(sticker 👍)"
    assert texts[5].startswith("(location) 52.520008, 13.404954 https://www.openstreetmap.org/")
    assert stored[5].meta["telegram"]["location"] == {"latitude": 52.520008, "longitude": 13.404954}
    assert texts[6] == "(contact) Bob +4930901820"
    names = [item.attachments[0]["filename"] for item in stored[:5]]
    assert names[0] == "invoice.pdf"
    assert names[1].endswith(".ogg")
    assert names[4].endswith(".webp")
    # Someone else's number is a card to read, not the customer's own: no phone identity.
    async with sessions() as session:
        phones = await session.scalar(
            select(func.count()).select_from(Identity).where(Identity.kind == "phone")
        )
    assert phones == 0

    from tests.telegram_helpers import fetcher

    assert await fetcher(app).run_once() == 5
    async with sessions() as session:
        fetched = list(
            await session.scalars(
                select(Interaction).where(Interaction.id.in_([item.id for item in stored[:5]]))
            )
        )
    assert all(item.attachments[0]["pending"] is False for item in fetched)
    assert all(item.attachments[0]["key"] for item in fetched)


async def test_blocking_the_bot_marks_the_customer_unreachable_until_they_write_again(
    make_user: UserFactory,
    standin: TelegramStandIn,
    sessions: SessionFactory,
    pollers: PollerSupervisor,
) -> None:
    await add_bot(make_user, standin, mode="polling")
    standin.push(TOKEN, tg.text_message(ALICE, "Hello"))
    standin.push(TOKEN, member_update(ALICE, "kicked"))

    async def opted_out() -> bool:
        async with sessions() as session:
            identity = await session.scalar(select(Identity).where(Identity.address == str(ALICE)))
        return identity is not None and identity.opted_out_at is not None

    await eventually(opted_out, "the customer marked unreachable")
    standin.push(TOKEN, member_update(ALICE, "member"))
    standin.push(TOKEN, tg.text_message(ALICE, "I am back"))

    async def reachable() -> bool:
        return not await opted_out() and await inbound_count(sessions) == 2

    await eventually(reachable, "the customer reachable again")


async def test_group_chats_are_ignored_unless_the_account_takes_them(
    make_user: UserFactory,
    standin: TelegramStandIn,
    sessions: SessionFactory,
    pollers: PollerSupervisor,
) -> None:
    admin = await make_user(Role.ADMIN)
    added = await add_bot(make_user, standin, mode="polling")
    standin.push(TOKEN, tg.group_text(ALICE, "in the group, before"))
    standin.push(TOKEN, tg.text_message(ALICE, "in private"))
    await eventually(lambda: _more_than(sessions, 0), "the private message")
    assert [item.text for item in await messages(sessions)] == ["in private"]

    changed = await admin.patch(
        f"/api/v1/channel-accounts/{added['id']}", json={"settings": {"groups": True}}
    )
    assert changed.status == 200, await changed.text()
    standin.push(TOKEN, tg.group_text(ALICE, "in the group, after", title="Buyers"))
    await eventually(lambda: _more_than(sessions, 1), "the group message")
    group = (await messages(sessions))[-1]
    assert group.text == "in the group, after"
    assert group.meta["telegram"]["chat_title"] == "Buyers"
    async with sessions() as session:
        conversation = await session.get(Conversation, group.conversation_id)
    assert conversation is not None
    assert conversation.thread_key == f"chat:{group.meta['telegram']['chat_id']}"


def member_update(user_id: int, status: str) -> dict[str, Any]:
    """`my_chat_member` of a private chat: the user blocked ("kicked") or restarted the bot."""
    bot = {"id": int(TOKEN.split(":")[0]), "is_bot": True, "first_name": "Support"}
    user = {"id": user_id, "is_bot": False, "first_name": "Alice"}
    before = "member" if status == "kicked" else "kicked"

    def member(state: str) -> dict[str, Any]:
        return {"status": state, "user": bot, **({"until_date": 0} if state == "kicked" else {})}

    return {
        "my_chat_member": {
            "chat": {"id": user_id, "type": "private", "first_name": "Alice"},
            "from": user,
            "date": tg.DATE + 100,
            "old_chat_member": member(before),
            "new_chat_member": member(status),
        }
    }


async def test_an_update_the_library_cannot_read_is_quarantined_not_blocking_the_rest(
    make_user: UserFactory,
    standin: TelegramStandIn,
    sessions: SessionFactory,
    pollers: PollerSupervisor,
) -> None:
    await add_bot(make_user, standin, mode="polling")
    standin.push(TOKEN, {"message": {"message_id": 7, "text": "no chat, no date"}})
    standin.push(TOKEN, tg.text_message(ALICE, "behind it"))
    await eventually(lambda: _more_than(sessions, 0), "the readable update")
    async with sessions() as session:
        held = await session.scalar(select(QuarantinedMessage))
    assert held is not None
    assert held.channel == "telegram"
    assert b"no chat, no date" in held.raw
    admin = await make_user(Role.ADMIN)
    listed = await (await admin.get("/api/v1/quarantine")).json()
    assert listed["items"][0]["subject"] == "no chat, no date"
    # Not readable, yet it names its sender: erasing the person takes it too.
    standin.push(TOKEN, {"message": {"message_id": 8, "from": {"id": ALICE}, "text": "mine"}})
    await eventually(lambda: _quarantined(sessions, 2), "the second unreadable update held")
    contact_id = (await messages(sessions))[0].contact_id
    erased = await admin.delete(f"/api/v1/contacts/{contact_id}?erase=true&confirm={contact_id}")
    assert erased.status == 200, await erased.text()
    async with sessions() as session:
        left = list(await session.scalars(select(QuarantinedMessage.raw)))
    assert [b"mine" in raw for raw in left] == [False]


async def test_a_revoked_token_is_the_accounts_error_and_never_shown(
    app: web.Application,
    server: TestServer,
    make_user: UserFactory,
    standin: TelegramStandIn,
    sessions: SessionFactory,
    settings: Settings,
) -> None:
    from core.audit import CLI
    from core.channel_accounts import create_account
    from core.credentials import CredentialCipher

    revoked = "7000000002:" + "C" * 35  # as in a config file: not checked when it was saved
    async with sessions() as session, session.begin():
        await create_account(
            session,
            CLI,
            channel="telegram",
            name="old",
            settings={"token": revoked, "mode": "polling", "api_base_url": standin.url},
            secret_fields=["token"],
            cipher=CredentialCipher.from_settings(settings),
        )
    admin = await make_user(Role.ADMIN)

    async def failing() -> bool:
        listed = await (await admin.get("/api/v1/channel-accounts")).json()
        return bool(listed and listed[0]["last_error"])

    # Started after the account was written (its event went to this test's bus, not the app's).
    supervisor = PollerSupervisor(app[REGISTRY], app[SERVICES])
    await supervisor.start()
    try:
        await eventually(failing, "the poller's error recorded")
    finally:
        await supervisor.stop()
    (account,) = await (await admin.get("/api/v1/channel-accounts")).json()
    assert "rejected the bot token" in account["last_error"]
    assert account["health"].startswith("error")
    assert revoked not in json.dumps(account)


async def _quarantined(sessions: SessionFactory, n: int) -> bool:
    async with sessions() as session:
        held = await session.scalar(select(func.count()).select_from(QuarantinedMessage))
    return held == n


async def _true(value: bool) -> bool:
    return value


async def _more_than(sessions: SessionFactory, n: int) -> bool:
    return await inbound_count(sessions) > n
