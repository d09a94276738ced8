"""Inbound SMS and WhatsApp through Twilio's webhook, signed as Twilio signs it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from twilio.twiml.messaging_response import MessagingResponse

from channels.media import Claimed, MediaFetcher, pending_attachment, queue_fetch
from core import clock
from core.db import SessionFactory, transaction
from core.models import AttachmentFetch, Contact, Identity, Interaction, Role, utcnow
from core.settings import Settings
from core.storage import FilesystemStore
from tests.conftest import UserFactory
from tests.twilio_helpers import (
    OUR_NUMBER,
    PUBLIC,
    add_account,
    count,
    fetcher,
    post_signed,
    running_standin,
    twilio_settings,
)
from tests.twilio_standin import AUTH_TOKEN, Signer, TwilioStandIn, inbound
from web.keys import SERVICES

CUSTOMER = "+14155550123"
TWIML = str(MessagingResponse())  # empty: omnicrm sends nothing back to a message


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return twilio_settings(database_url, tmp_path, max_attachment_bytes=4096)


@pytest.fixture
async def standin() -> AsyncIterator[TwilioStandIn]:
    async with running_standin() as twilio:
        yield twilio


async def interactions(sessions: SessionFactory) -> list[Interaction]:
    async with sessions() as session:
        return list(await session.scalars(select(Interaction).order_by(Interaction.id)))


async def test_a_signed_sms_and_whatsapp_with_media_become_one_contacts_history(
    client: TestClient[Any, Any],
    app: web.Application,
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
    settings: Settings,
) -> None:
    await add_account(make_user, standin)
    sms = await post_signed(client, inbound(CUSTOMER, "Where is my order 4711?"))
    assert sms.status == 200
    assert sms.content_type == "text/xml"
    assert await sms.text() == TWIML
    photo = standin.add_media(b"\x89PNG photo of the parcel", "image/png")
    whatsapp = await post_signed(
        client,
        inbound(
            f"whatsapp:{CUSTOMER}",
            "Here is the damaged parcel",
            to="whatsapp:+14155238886",
            profile_name="Kim Lee",
            media=[(photo, "image/png")],
        ),
    )
    assert whatsapp.status == 200, await whatsapp.text()

    stored = await interactions(sessions)
    assert [(item.channel, item.text) for item in stored] == [
        ("sms", "Where is my order 4711?"),
        ("whatsapp", "Here is the damaged parcel"),
    ]
    assert stored[0].contact_id == stored[1].contact_id  # one person on both channels
    assert stored[1].attachments[0]["pending"] is True  # stored before the media is fetched
    async with sessions() as session:
        contact = await session.get(Contact, stored[0].contact_id)
        rows = await session.execute(select(Identity.kind, Identity.address))
        identities = {(str(kind), str(address)) for kind, address in rows}
    assert contact is not None
    assert contact.display_name == "Kim Lee"
    assert identities == {("phone", CUSTOMER), ("whatsapp", CUSTOMER)}

    assert await fetcher(app).run_once() == 1
    entry = (await interactions(sessions))[1].attachments[0]
    assert entry["pending"] is False
    assert entry["filename"] == "media-1.png"
    assert entry["content_type"] == "image/png"
    assert await FilesystemStore(settings.attachments_dir).get(entry["key"]) == (
        b"\x89PNG photo of the parcel"
    )
    media = next(iter(standin.media.values()))
    assert media.auth_seen[0] is not None
    assert media.auth_seen[0].startswith("Basic ")

    # The operator sees the picture like any attachment.
    supervisor = await make_user(Role.SUPERVISOR)
    download = await supervisor.get(f"/api/v1/interactions/{stored[1].id}/attachments/0")
    assert download.status == 200
    assert await download.read() == b"\x89PNG photo of the parcel"


async def test_a_bad_or_missing_signature_is_403_and_stores_nothing(
    client: TestClient[Any, Any],
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin)
    params = inbound(CUSTOMER, "Hello")
    path = "/hooks/twilio/main/message"
    body, headers = Signer().form(f"{PUBLIC}{path}", params)
    attempts = [
        {k: v for k, v in headers.items() if k != "X-Twilio-Signature"},  # missing
        {**headers, "X-Twilio-Signature": ""},
        {
            **headers,
            "X-Twilio-Signature": Signer("0" * 32).form(f"{PUBLIC}{path}", params)[1][
                "X-Twilio-Signature"
            ],
        },  # another account's token
        {
            **headers,
            "X-Twilio-Signature": Signer().form(f"{PUBLIC}/hooks/twilio/other/message", params)[1][
                "X-Twilio-Signature"
            ],
        },
    ]
    for sent in attempts:
        response = await client.post(path, data=body, headers=sent)
        assert response.status == 403, sent
        assert (await response.json())["error"]["code"] == "forbidden"
    tampered = body.replace(b"Hello", b"Hellx")
    response = await client.post(path, data=tampered, headers=headers)
    assert response.status == 403
    assert await count(sessions) == 0

    response = await client.post(path, data=body, headers=headers)
    assert response.status == 200  # the genuine one still goes through
    assert await count(sessions) == 1


@pytest.mark.both_databases
async def test_a_replayed_webhook_stores_once(
    client: TestClient[Any, Any],
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin)
    photo = standin.add_media(b"jpeg", "image/jpeg")
    params = inbound(CUSTOMER, "Hi", media=[(photo, "image/jpeg")])
    for _ in range(3):
        response = await post_signed(client, params)
        assert response.status == 200
        assert await response.text() == TWIML
    assert await count(sessions) == 1
    assert await count(sessions, AttachmentFetch) == 1


async def test_the_json_variant_is_checked_by_its_body_hash(
    client: TestClient[Any, Any],
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin)
    path = "/hooks/twilio/main/message"
    signed_url, body, headers = Signer().json(f"{PUBLIC}{path}", inbound(CUSTOMER, "JSON hi"))
    query = signed_url.removeprefix(f"{PUBLIC}{path}")
    tampered = body.replace(b"JSON hi", b"JSON ho")
    response = await client.post(f"{path}{query}", data=tampered, headers=headers)
    assert response.status == 403
    assert await count(sessions) == 0
    response = await client.post(f"{path}{query}", data=body, headers=headers)
    assert response.status == 200, await response.text()
    assert [item.text for item in await interactions(sessions)] == ["JSON hi"]


async def test_the_account_is_the_one_in_the_path_never_the_messaging_service(
    client: TestClient[Any, Any],
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    shared_service = "MG" + "1" * 32
    admin = await make_user(Role.ADMIN)
    queues = []
    for name in ("Sales", "Support"):
        response = await admin.post("/api/v1/queues", json={"name": name})
        assert response.status == 201, await response.text()
        queues.append((await response.json())["id"])
    other_token = "e" * 32
    await add_account(make_user, standin, "sales", queues[0], messaging_service_sid=shared_service)
    await add_account(
        make_user,
        standin,
        "support",
        queues[1],
        messaging_service_sid=shared_service,
        auth_token=other_token,
    )
    params = inbound(CUSTOMER, "Which queue?", messaging_service_sid=shared_service)
    # Signed with the support account's token but sent to the sales account's address.
    wrong = await post_signed(client, params, account="sales", signer=Signer(other_token))
    assert wrong.status == 403
    right = await post_signed(client, params, account="support", signer=Signer(other_token))
    assert right.status == 200
    stored = (await interactions(sessions))[0]
    assert stored.meta["twilio"]["account_id"] == await admin_account_id(admin, "support")
    conversation = await (await admin.get(f"/api/v1/conversations/{stored.conversation_id}")).json()
    assert conversation["queue_id"] == queues[1]


async def admin_account_id(admin: Any, name: str) -> int:
    accounts = await (await admin.get("/api/v1/channel-accounts")).json()
    return int(next(item["id"] for item in accounts if item["name"] == name))


async def test_media_that_fails_is_retried_and_the_message_is_kept(
    client: TestClient[Any, Any],
    app: web.Application,
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin)
    flaky = standin.add_media(b"voice note", "audio/ogg", failures=2)
    huge = standin.add_media(b"x" * 5000, "video/mp4")  # over max_attachment_bytes (4096)
    response = await post_signed(
        client, inbound(CUSTOMER, "", media=[(flaky, "audio/ogg"), (huge, "video/mp4")])
    )
    assert response.status == 200
    assert await count(sessions) == 1  # the message is in before any download

    manual = clock.ManualClock(utcnow())
    with clock.using(manual):
        media = fetcher(app)
        assert await media.run_once() == 2
        first = (await interactions(sessions))[0].attachments
        assert first[0]["pending"] is True  # Twilio's media server failed: later
        assert first[1]["too_large"] is True
        assert first[1]["pending"] is False
        assert await media.run_once() == 0  # not before its time
        for _ in range(2):
            manual.advance(hours=1)
            assert await media.run_once() == 1
    entry = (await interactions(sessions))[0].attachments[0]
    assert entry["pending"] is False
    assert entry["size"] == len(b"voice note")
    async with sessions() as session:
        rows = list(await session.scalars(select(AttachmentFetch).order_by(AttachmentFetch.id)))
    assert [(row.status, row.attempts) for row in rows] == [("done", 3), ("failed", 1)]


async def test_media_elsewhere_than_the_accounts_api_is_not_fetched(
    client: TestClient[Any, Any],
    app: web.Application,
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin)
    response = await post_signed(
        client, inbound(CUSTOMER, "see", media=[("https://attacker.example/x", "image/png")])
    )
    assert response.status == 200
    assert await fetcher(app).run_once() == 1
    entry = (await interactions(sessions))[0].attachments[0]
    assert entry["pending"] is False
    assert "API origin" in entry["error"]


class _OtherChannelFetcher(MediaFetcher):
    """Another channel's fetcher: its files are ids, not URLs, and come from elsewhere."""

    def __init__(self, app: web.Application, content: bytes) -> None:
        super().__init__(app[SERVICES], frozenset({"otherchat"}), poll_seconds=0.05)
        self.content = content
        self.asked: list[str] = []

    async def do_download(self, item: Claimed) -> bytes:
        self.asked.append(item.url)
        return self.content


async def test_each_fetcher_claims_only_its_own_channels_media(
    client: TestClient[Any, Any],
    app: web.Application,
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin)
    photo = standin.add_media(b"png", "image/png")
    response = await post_signed(client, inbound(CUSTOMER, "hi", media=[(photo, "image/png")]))
    assert response.status == 200
    interaction = (await interactions(sessions))[0]
    async with transaction(sessions) as session:
        for position in (1, 2):
            await queue_fetch(
                session,
                channel="otherchat",
                account_id=None,
                interaction_id=interaction.id,
                position=position,
                url=f"file-id-{position}",
            )
        stored = await session.get(Interaction, interaction.id)
        assert stored is not None
        stored.attachments = [
            *stored.attachments,
            pending_attachment("a.bin", "application/octet-stream"),
            pending_attachment("b.bin", "application/octet-stream"),
        ]

    assert await fetcher(app).run_once() == 1  # the SMS's photo only
    assert await fetcher(app).run_once() == 0
    other = _OtherChannelFetcher(app, b"x" * 5000)  # over max_attachment_bytes (4096)
    assert await other.run_once() == 2
    assert sorted(other.asked) == ["file-id-1", "file-id-2"]
    entries = (await interactions(sessions))[0].attachments
    assert entries[0]["size"] == len(b"png")
    assert [entries[n]["too_large"] for n in (1, 2)] == [True, True]
    assert [entries[n]["pending"] for n in (0, 1, 2)] == [False, False, False]


async def test_stop_opts_the_number_out_and_start_back_in(
    client: TestClient[Any, Any],
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin)
    supervisor = await make_user(Role.SUPERVISOR)
    response = await post_signed(client, inbound(CUSTOMER, "STOP", opt_out="STOP"))
    assert response.status == 200
    conversation_id = (await interactions(sessions))[0].conversation_id
    path = f"/api/v1/conversations/{conversation_id}/reply"
    refused = await supervisor.post(path, json={"text": "Sorry to see you go"})
    assert refused.status == 400
    assert "unsubscribed" in (await refused.json())["error"]["fields"]["channel"]
    options = await (
        await supervisor.get(f"/api/v1/conversations/{conversation_id}/reply-options")
    ).json()
    sms = next(item for item in options["options"] if item["channel"] == "sms")
    assert sms["opted_out"] == "replied STOP"

    await post_signed(client, inbound(CUSTOMER, "START", opt_out="START"))
    accepted = await supervisor.post(path, json={"text": "Welcome back"})
    assert accepted.status == 201, await accepted.text()


async def test_other_senders_are_ignored_and_broken_requests_are_400(
    client: TestClient[Any, Any],
    make_user: UserFactory,
    sessions: SessionFactory,
    standin: TwilioStandIn,
) -> None:
    await add_account(make_user, standin)
    short_code = await post_signed(client, inbound("72345", "Your code is 1234"))
    assert short_code.status == 200  # valid, but no person to answer: nothing stored
    broken = inbound(CUSTOMER, "Hi")
    del broken["MessageSid"], broken["SmsMessageSid"], broken["SmsSid"]
    response = await post_signed(client, broken)
    assert response.status == 400
    assert "MessageSid" in (await response.json())["error"]["message"]
    other_account = await post_signed(client, inbound(CUSTOMER, "Hi", account_sid="AC" + "9" * 32))
    assert other_account.status == 400
    unknown = await post_signed(client, inbound(CUSTOMER, "Hi"), account="nobody")
    assert unknown.status == 404
    assert await count(sessions) == 0
    assert OUR_NUMBER
    assert AUTH_TOKEN
