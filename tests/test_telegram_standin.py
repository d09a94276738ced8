"""The Telegram stand-in speaks the Bot API as the official library (python-telegram-bot)
expects it: PTB's own `Bot`, pointed at the stand-in, gets what it would get from Telegram."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from telegram import Bot, InputFile, ReplyParameters, TelegramObject, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
)

from tests import telegram_standin as tg
from tests.telegram_standin import TOKEN, TelegramStandIn

CUSTOMER = 5_512_345_678


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramStandIn]:
    async with tg.running() as standin:
        yield standin


@pytest.fixture
async def bot(telegram: TelegramStandIn) -> AsyncIterator[Bot]:
    url = telegram.url
    async with Bot(TOKEN, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot") as ptb:
        yield ptb  # `async with` already called getMe (Bot.initialize)


def unknown_fields(value: Any, path: str = "update") -> list[str]:
    """Fields PTB did not recognise (its `api_kwargs`), anywhere in a parsed object."""
    if isinstance(value, tuple | list):
        return [found for index, item in enumerate(value) for found in unknown_fields(item, path)]
    if not isinstance(value, TelegramObject):
        return []
    found = [f"{path}.{key}" for key in value.api_kwargs]
    for cls in type(value).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if not name.startswith("_"):
                found += unknown_fields(getattr(value, name, None), f"{path}.{name}")
    return found


async def test_get_me_and_tokens(telegram: TelegramStandIn, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (tg.BOT_ID, tg.BOT_USERNAME, True)
    assert me.can_join_groups is True
    assert me.supports_inline_queries is False
    assert telegram.counts["getMe"] == 2

    stranger = "7000000001:" + "x" * 35  # shaped like a token, unknown to Telegram
    url = telegram.url
    with pytest.raises(InvalidToken):
        async with Bot(stranger, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot"):
            pass
    with pytest.raises(EndPointNotFound):  # PTB's reading of 404 for an unknown method
        await bot.do_api_request("noSuchMethod")


async def test_a_webhook_excludes_get_updates(telegram: TelegramStandIn, bot: Bot) -> None:
    assert await bot.set_webhook(
        "https://crm.example.com/hooks/telegram/1",
        secret_token="s3cret_-token",
        allowed_updates=["message", "edited_message"],
    )
    info = await bot.get_webhook_info()
    assert info.url == "https://crm.example.com/hooks/telegram/1"
    assert info.pending_update_count == 0
    assert info.allowed_updates == ("message", "edited_message")
    with pytest.raises(Conflict, match="can't use getUpdates method while webhook is active"):
        await bot.get_updates()

    with pytest.raises(BadRequest, match=r"(?i)secret token contains unallowed characters"):
        await bot.set_webhook("https://crm.example.com/hooks/telegram/1", secret_token="a b")
    with pytest.raises(BadRequest, match=r"(?i)an https url must be provided"):
        await bot.set_webhook("http://crm.example.com/hooks/telegram/1")
    assert await bot.set_webhook("http://127.0.0.1:8080/hooks/telegram/1")  # tests' loopback

    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates(timeout=0) == ()


async def test_long_polling_answers_when_an_update_arrives_and_offset_confirms(
    telegram: TelegramStandIn, bot: Bot
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    polling = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.1)
    pushed = telegram.push(
        TOKEN, tg.text_message(CUSTOMER, "Hello 👋", first_name="Ada", username="ada")
    )
    [update] = await polling
    assert loop.time() - started < 2  # woke at the push, not after the 10 s timeout
    assert isinstance(update, Update)
    assert update.update_id == pushed
    message = update.message
    assert message is not None
    assert message.from_user is not None
    assert message.text == "Hello 👋"
    assert (message.chat.id, message.chat.type) == (CUSTOMER, "private")
    assert (message.from_user.first_name, message.from_user.username) == ("Ada", "ada")
    assert message.date == datetime.fromtimestamp(tg.DATE, UTC)

    assert len(await bot.get_updates(timeout=0)) == 1  # not confirmed yet: again
    assert await bot.get_updates(offset=pushed + 1, timeout=0) == ()
    assert telegram.pending(TOKEN) == []

    # A second poller (another process with the same token) terminates the first.
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await telegram.called("getUpdates", telegram.counts["getUpdates"] + 1)
    url = telegram.url
    async with Bot(TOKEN, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot") as other:
        assert await other.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await first

    # Scripted failures, for a poller's backoff.
    telegram.script(tg.server_error(), method="getUpdates")
    telegram.script(tg.drop(), method="getUpdates")
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.get_updates(timeout=0)
    with pytest.raises(NetworkError, match="disconnected"):
        await bot.get_updates(timeout=0)
    assert await bot.get_updates(timeout=0) == ()


async def test_every_update_builder_is_what_ptb_parses(telegram: TelegramStandIn, bot: Bot) -> None:
    built = [
        tg.text_message(CUSTOMER, "hi", last_name="Lovelace", username="ada", is_premium=True),
        tg.command(CUSTOMER, "/start", payload="order-42"),
        tg.photo(telegram, TOKEN, CUSTOMER, caption="the receipt"),
        tg.document(telegram, TOKEN, CUSTOMER),
        tg.voice(telegram, TOKEN, CUSTOMER),
        tg.video_note(telegram, TOKEN, CUSTOMER),
        tg.video(telegram, TOKEN, CUSTOMER, caption="unboxing"),
        tg.sticker(telegram, TOKEN, CUSTOMER),
        tg.location(CUSTOMER, 52.52, 13.405, horizontal_accuracy=12.5),
        tg.contact(CUSTOMER, "+4915112345678"),
        tg.edited(CUSTOMER, "hi, fixed", message_id=7),
        tg.group_text(CUSTOMER, "hello group"),
        tg.update("channel_post", {"message_id": 3, "chat": {"id": -1001, "type": "channel",
                                   "title": "News"}, "date": tg.DATE, "text": "news"}),
    ]  # fmt: skip
    for one in built:
        telegram.push(TOKEN, one)
    updates = await bot.get_updates(timeout=0)
    assert len(updates) == len(built)
    for update in updates:
        assert unknown_fields(update) == []
    command, photo, document, contact, edited, group = (
        updates[1].message,
        updates[2].message,
        updates[3].message,
        updates[9].message,
        updates[10].edited_message,
        updates[11].message,
    )
    assert command is not None
    assert command.text == "/start order-42"
    assert command.parse_entities() == {command.entities[0]: "/start"}
    assert photo is not None
    assert photo.caption == "the receipt"
    assert [size.width for size in photo.photo] == sorted(size.width for size in photo.photo)
    assert document is not None
    assert document.document is not None
    assert document.document.file_name == "invoice.pdf"
    assert contact is not None
    assert contact.contact is not None
    assert contact.contact.user_id == CUSTOMER  # their own number
    assert edited is not None
    assert edited.edit_date is not None
    assert edited.message_id == 7
    assert group is not None
    assert (group.chat.type, group.chat.title) == (
        "supergroup",
        "Support group",
    )

    # The media are files the bot can fetch.
    assert photo.photo[-1].file_size is not None
    file = await photo.photo[-1].get_file()
    assert len(await file.download_as_bytearray()) == photo.photo[-1].file_size


async def test_get_file_and_download(telegram: TelegramStandIn, bot: Bot) -> None:
    file_id = telegram.add_file(TOKEN, b"%PDF-1.7 data", path_hint="documents/file_1.pdf")
    file = await bot.get_file(file_id)
    assert file.file_size == 13
    assert file.file_path is not None
    assert file.file_path.startswith(f"{telegram.url}/file/bot{TOKEN}/documents/")
    assert await file.download_as_bytearray() == bytearray(b"%PDF-1.7 data")

    big = telegram.add_file(TOKEN, b"x", size=25 * 1024 * 1024, path_hint="videos/file.mp4")
    with pytest.raises(BadRequest, match="File is too big"):
        await bot.get_file(big)
    with pytest.raises(BadRequest, match="Invalid file_id"):
        await bot.get_file("AgACAgIAAxkBAAIBogus")


async def test_send_message_parses_html_as_telegram_does(
    telegram: TelegramStandIn, bot: Bot
) -> None:
    pushed = tg.text_message(CUSTOMER, "Where is my order?", message_id=41)
    telegram.push(TOKEN, pushed)
    sent = await bot.send_message(
        CUSTOMER,
        "<b>Order</b> #42 &amp; more: <a href='https://shop.example/o/42'>track</a> 😀 <i>ok</i>",
        parse_mode="HTML",
        reply_parameters=ReplyParameters(message_id=41),
    )
    assert sent.text == "Order #42 & more: track 😀 ok"
    assert sent.message_id == 42  # after the customer's message in this chat
    assert sent.from_user is not None
    assert sent.from_user.id == tg.BOT_ID
    assert sent.reply_to_message is not None
    assert sent.reply_to_message.text == "Where is my order?"
    assert {(entity.type, text) for entity, text in sent.parse_entities().items()} == {
        ("bold", "Order"),
        ("text_link", "track"),
        ("italic", "ok"),  # after the emoji: UTF-16 offsets, as PTB expects
    }
    [call] = telegram.sent
    assert call.method == "sendMessage"
    assert call.chat_id == CUSTOMER
    assert call.params["reply_parameters"] == {"message_id": 41}

    with pytest.raises(BadRequest, match='unsupported start tag "br"'):
        await bot.send_message(CUSTOMER, "one<br>two", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't find end tag corresponding to start tag"):
        await bot.send_message(CUSTOMER, "<b>bold", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r'(?i)character "&"'):
        await bot.send_message(CUSTOMER, "Fish & chips", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)character '\.' is reserved"):
        await bot.send_message(CUSTOMER, "Thanks.", parse_mode="MarkdownV2")
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(CUSTOMER, "")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(CUSTOMER + 1, "hello?")
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(CUSTOMER, "hm", reply_parameters=ReplyParameters(message_id=9))
    assert len(telegram.sent) == 1
    assert len(telegram.attempts("sendMessage")) == 8


async def test_send_photo_uploads_multipart(telegram: TelegramStandIn, bot: Bot) -> None:
    telegram.add_chat(TOKEN, CUSTOMER)
    image = tg.png(640, 480)
    sent = await bot.send_photo(
        CUSTOMER, InputFile(image, filename="chart.png"), caption="<b>Your</b> chart",
        parse_mode="HTML",
    )  # fmt: skip
    [call] = telegram.sent
    assert call.files == {"photo": ("chart.png", image, "image/png")}
    assert call.params["caption"] == "<b>Your</b> chart"
    assert sent.caption == "Your chart"
    assert (sent.photo[-1].width, sent.photo[-1].height) == (640, 480)
    assert sent.photo[0].width == 90
    assert await (await sent.photo[-1].get_file()).download_as_bytearray() == bytearray(image)

    again = await bot.send_photo(CUSTOMER, sent.photo[-1].file_id)  # by file_id: a form field
    assert again.photo[-1].file_id == sent.photo[-1].file_id
    added = telegram.add_file(TOKEN, tg.png(30, 20), path_hint="photos/file.jpg")
    assert [
        (size.width, size.height) for size in (await bot.send_photo(CUSTOMER, added)).photo
    ] == [(30, 20)]
    with pytest.raises(BadRequest, match=r"(?i)image_process_failed"):
        await bot.send_photo(CUSTOMER, InputFile(b"not an image", filename="x.png"))

    document = await bot.send_document(CUSTOMER, InputFile(b"a,b\n1,2\n", filename="o.csv"))
    assert document.document is not None
    assert (document.document.file_name, document.document.mime_type) == ("o.csv", "text/csv")
    assert telegram.sent[-1].files["document"][1] == b"a,b\n1,2\n"
    assert await bot.send_chat_action(CUSTOMER, "upload_document")
    assert telegram.counts["sendChatAction"] == 1


async def test_scripted_failures(
    telegram: TelegramStandIn, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PTB 22 warns as soon as it builds a RetryAfter unless it may use timedelta.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    telegram.add_chat(TOKEN, CUSTOMER)
    telegram.add_chat(TOKEN, CUSTOMER + 1)
    telegram.script(tg.retry_after(7))
    telegram.script(tg.blocked(), chat_id=CUSTOMER + 1)
    with pytest.raises(RetryAfter, match=r"Flood control exceeded\. Retry in 0:00:07"):
        await bot.send_message(CUSTOMER, "one")
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(CUSTOMER + 1, "two")
    assert (await bot.send_message(CUSTOMER, "three")).text == "three"

    attempts = telegram.attempts("sendMessage")
    assert [call.status for call in attempts] == [429, 403, 200]
    assert attempts[0].at <= attempts[1].at <= attempts[2].at
    assert [call.params["text"] for call in telegram.sent] == ["three"]


async def test_deliver_posts_updates_to_the_webhook(telegram: TelegramStandIn, bot: Bot) -> None:
    seen: list[tuple[str, dict[str, str], Any]] = []
    answers = [200, 500, 200]

    async def hook(request: web.Request) -> web.Response:
        seen.append((request.path_qs, dict(request.headers), json.loads(await request.read())))
        if request.headers.get(tg.SECRET_HEADER) != "s3cret":
            return web.Response(status=403)
        return web.Response(status=answers.pop(0))

    app = web.Application()
    app.router.add_post("/hooks/telegram/1", hook)
    server = TestServer(app)
    await server.start_server()
    try:
        origin = str(server.make_url("")).rstrip("/")
        await bot.set_webhook("https://crm.example.com/hooks/telegram/1?v=1", secret_token="s3cret")
        first = telegram.push(TOKEN, tg.text_message(CUSTOMER, "one"))
        second = telegram.push(TOKEN, tg.text_message(CUSTOMER, "two"))
        assert await telegram.deliver(TOKEN, origin=origin) == [200, 500]

        path, headers, body = seen[0]
        assert path == "/hooks/telegram/1?v=1"
        assert headers["Content-Type"] == "application/json"
        assert headers[tg.SECRET_HEADER] == "s3cret"
        assert body["update_id"] == first
        assert body["message"]["text"] == "one"
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 1  # the 500 stays for redelivery
        assert (
            info.last_error_message == "Wrong response from the webhook: 500 Internal Server Error"
        )

        assert await telegram.deliver(TOKEN, origin=origin) == [200]
        assert seen[-1][2]["update_id"] == second
        assert telegram.pending(TOKEN) == []

        assert await telegram.deliver_raw(TOKEN, b"{}", None, origin=origin) == 403
        assert tg.SECRET_HEADER not in seen[-1][1]
    finally:
        await server.close()
