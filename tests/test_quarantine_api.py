"""The quarantine API, for every channel: admins list (by channel, account, status),
download, retry (through the channel's own import) and discard held inbound items."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from channels.email.imap import reference_of
from channels.email.inbound import ImportStatus, import_message
from channels.registry import default_channels
from core.audit import CLI
from core.channel_accounts import create_account, get_account, view_without_secrets
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.ingest import IngestPolicy
from core.models import AuditEntry, Interaction, QuarantinedMessage, Role
from core.settings import Settings
from core.storage import MemoryStore
from tests.conftest import UserFactory
from tests.email_accounts import create_email_account
from tests.fake_channel import FakeSms
from web.app import create_app

NO_SENDER = (
    b"To: support@omnicrm.test\r\n"
    b"Subject: Who am I?\r\n"
    b"Message-ID: <nobody@customer.test>\r\n"
    b"\r\n"
    b"There is no From header here.\r\n"
)
GOOD = (
    b"From: Ann <ann@customer.test>\r\n"
    b"To: support@omnicrm.test\r\n"
    b"Subject: Hello\r\n"
    b"Message-ID: <hello@customer.test>\r\n"
    b"\r\n"
    b"Hello there.\r\n"
)


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine) -> web.Application:
    """With a channel that quarantines nothing of its own, beside email."""
    return create_app(settings, background_workers=False, channels=[*default_channels(), FakeSms()])


async def create_account_named(sessions: SessionFactory, name: str = "support") -> int:
    return (await create_email_account(sessions, name)).id


async def hold(sessions: SessionFactory, account_id: int, raw: bytes, uid: int = 1) -> int:
    """Import `raw` as the poller would; it must end up quarantined."""
    async with sessions() as session, session.begin():
        account = view_without_secrets(await get_account(session, account_id), ())
        outcome = await import_message(
            session, account, reference_of(1, uid), raw, MemoryStore(), IngestPolicy()
        )
    assert outcome.status is ImportStatus.QUARANTINED
    assert outcome.quarantine_id is not None
    return outcome.quarantine_id


async def insert_held(sessions: SessionFactory, account_id: int, raw: bytes, uid: int = 2) -> int:
    """A held message that would go through now (held by an older version, say)."""
    async with sessions() as session, session.begin():
        row = QuarantinedMessage(
            channel="email",
            account_id=account_id,
            reference=reference_of(1, uid),
            raw=raw,
            reason="parser crashed",
        )
        session.add(row)
        await session.flush()
        return row.id


async def test_admins_list_held_messages_with_reason_and_summary(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    account_id = await create_account_named(sessions)
    other_account = await create_account_named(sessions, "sales")
    held_id = await hold(sessions, account_id, NO_SENDER)
    await hold(sessions, other_account, NO_SENDER.replace(b"nobody@", b"other@"))
    admin = await make_user(Role.ADMIN)

    response = await admin.get(f"/api/v1/quarantine?account_id={account_id}")
    assert response.status == 200
    body = await response.json()
    assert body["next_cursor"] is None
    [item] = body["items"]
    assert item["id"] == held_id
    assert (item["channel"], item["account_id"], item["reference"]) == ("email", account_id, "1:1")
    assert item["status"] == "quarantined"
    assert "no sender address" in item["reason"]
    assert item["interaction_id"] is None
    assert item["size"] == len(NO_SENDER)
    assert item["subject"] == "Who am I?"
    assert item["sender"] == ""


@pytest.mark.both_databases
async def test_the_list_filters_by_status_and_pages(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    account_id = await create_account_named(sessions)
    ids = [
        await hold(sessions, account_id, NO_SENDER.replace(b"nobody@", f"n{n}@".encode()), uid=n)
        for n in range(3)
    ]
    admin = await make_user(Role.ADMIN)
    assert (await admin.post(f"/api/v1/quarantine/{ids[0]}/discard")).status == 200

    held = await (
        await admin.get(f"/api/v1/quarantine?account_id={account_id}&status=quarantined")
    ).json()
    assert [item["id"] for item in held["items"]] == [ids[2], ids[1]]
    first = await (await admin.get(f"/api/v1/quarantine?account_id={account_id}&limit=2")).json()
    rest = await (
        await admin.get(
            f"/api/v1/quarantine?account_id={account_id}&limit=2&cursor={first['next_cursor']}"
        )
    ).json()
    assert [i["id"] for i in first["items"] + rest["items"]] == list(reversed(ids))
    bad = await admin.get(f"/api/v1/quarantine?account_id={account_id}&status=lost")
    assert bad.status == 400
    assert "status" in (await bad.json())["error"]["fields"]


async def test_the_raw_message_downloads_as_received(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    held_id = await hold(sessions, await create_account_named(sessions), NO_SENDER)
    admin = await make_user(Role.ADMIN)
    response = await admin.get(f"/api/v1/quarantine/{held_id}/raw")
    assert response.status == 200
    assert response.content_type == "message/rfc822"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="quarantine-{held_id}.eml"'
    )
    assert await response.read() == NO_SENDER


async def test_a_retry_that_fails_again_keeps_the_message_held_with_the_reason(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    held_id = await hold(sessions, await create_account_named(sessions), NO_SENDER)
    admin = await make_user(Role.ADMIN)
    response = await admin.post(f"/api/v1/quarantine/{held_id}/retry")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "quarantined"
    assert "no sender address" in body["reason"]
    async with sessions() as session:
        rows = list(await session.scalars(select(QuarantinedMessage)))
        audit = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "quarantine.retry")
        )
        interactions = list(await session.scalars(select(Interaction)))
    assert len(rows) == 1
    assert interactions == []
    assert audit is not None
    assert audit.entity_id == str(held_id)
    assert audit.actor_id == admin.operator.id
    assert audit.details["outcome"] == "quarantined"


async def test_a_retry_that_goes_through_links_the_interaction(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    held_id = await insert_held(sessions, await create_account_named(sessions), GOOD)
    admin = await make_user(Role.ADMIN)
    response = await admin.post(f"/api/v1/quarantine/{held_id}/retry")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ingested"
    async with sessions() as session:
        interaction = await session.get(Interaction, body["interaction_id"])
    assert interaction is not None
    assert interaction.external_id == "<hello@customer.test>"
    assert interaction.text == "Hello there."
    again = await admin.post(f"/api/v1/quarantine/{held_id}/retry")
    assert again.status == 409
    assert (await admin.post(f"/api/v1/quarantine/{held_id}/discard")).status == 409


async def test_discard_is_final_and_repeatable(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    held_id = await hold(sessions, await create_account_named(sessions), NO_SENDER)
    admin = await make_user(Role.ADMIN)
    for _ in range(2):
        response = await admin.post(f"/api/v1/quarantine/{held_id}/discard")
        assert response.status == 200
        assert (await response.json())["status"] == "discarded"
    assert (await admin.post(f"/api/v1/quarantine/{held_id}/retry")).status == 409
    # Still downloadable.
    assert await (await admin.get(f"/api/v1/quarantine/{held_id}/raw")).read() == NO_SENDER
    async with sessions() as session:
        actions = list(
            await session.scalars(
                select(AuditEntry.action).where(AuditEntry.entity_type == "quarantine")
            )
        )
    assert actions == ["quarantine.discard"]


async def test_unknown_records_are_404(sessions: SessionFactory, make_user: UserFactory) -> None:
    admin = await make_user(Role.ADMIN)
    for method, path in (
        ("GET", "/api/v1/quarantine?account_id=999"),
        ("GET", "/api/v1/quarantine/999/raw"),
        ("POST", "/api/v1/quarantine/999/retry"),
        ("POST", "/api/v1/quarantine/999/discard"),
        ("GET", "/api/v1/quarantine/abc/raw"),
    ):
        call = admin.get if method == "GET" else admin.post
        response = await call(path)
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "not_found"


def every_route(held_id: int, account_id: int) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/v1/quarantine?account_id={account_id}"),
        ("GET", f"/api/v1/quarantine/{held_id}/raw"),
        ("POST", f"/api/v1/quarantine/{held_id}/retry"),
        ("POST", f"/api/v1/quarantine/{held_id}/discard"),
    ]


async def test_anonymous_callers_are_401(
    sessions: SessionFactory, client: TestClient[Any, Any]
) -> None:
    account_id = await create_account_named(sessions)
    held_id = await hold(sessions, account_id, NO_SENDER)
    for method, path in every_route(held_id, account_id):
        response = await client.request(method, path)
        assert response.status == 401, path


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.SUPERVISOR])
async def test_only_admins_may_see_or_touch_the_quarantine(
    sessions: SessionFactory, make_user: UserFactory, role: Role
) -> None:
    account_id = await create_account_named(sessions)
    held_id = await hold(sessions, account_id, NO_SENDER)
    user = await make_user(role)
    for method, path in every_route(held_id, account_id):
        call = user.get if method == "GET" else user.post
        response = await call(path)
        assert response.status == 403, path
    async with sessions() as session:
        row = await session.get(QuarantinedMessage, held_id)
    assert row is not None
    assert row.status == "quarantined"


async def test_every_channels_quarantine_is_listed_filtered_and_read_by_its_channel(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    email_account = await create_account_named(sessions)
    email_held = await hold(sessions, email_account, NO_SENDER)
    async with sessions() as session, session.begin():
        fake = await create_account(
            session,
            CLI,
            channel="fakesms",
            name="main",
            settings={"token": "token-of-the-fake", "sender_number": "+15550100"},
            secret_fields=FakeSms.secret_fields,
            cipher=CredentialCipher("the quarantine tests' key"),
        )
        row = QuarantinedMessage(
            channel="fakesms", account_id=fake.id, reference="m-9", raw=b'{"id": 1', reason="bad"
        )
        session.add(row)
        await session.flush()
        fake_held = row.id
    admin = await make_user(Role.ADMIN)

    everything = await (await admin.get("/api/v1/quarantine")).json()
    assert [item["id"] for item in everything["items"]] == [fake_held, email_held]
    fake_only = await (await admin.get("/api/v1/quarantine?channel=fakesms")).json()
    [item] = fake_only["items"]
    assert (item["channel"], item["account_id"], item["reference"]) == ("fakesms", fake.id, "m-9")
    # The email channel reads its items' heads; another channel's bytes say nothing here.
    assert (item["sender"], item["subject"]) == ("", "")
    email_only = await (await admin.get("/api/v1/quarantine?channel=email")).json()
    assert [item["subject"] for item in email_only["items"]] == ["Who am I?"]
    by_account = await (await admin.get(f"/api/v1/quarantine?account_id={fake.id}")).json()
    assert [item["id"] for item in by_account["items"]] == [fake_held]

    raw = await admin.get(f"/api/v1/quarantine/{fake_held}/raw")
    assert raw.content_type == "application/octet-stream"
    assert raw.headers["Content-Disposition"] == (
        f'attachment; filename="quarantine-{fake_held}.bin"'
    )
    assert await raw.read() == b'{"id": 1'
    # A channel without an import of its own cannot retry; the item stays as it was.
    refused = await admin.post(f"/api/v1/quarantine/{fake_held}/retry")
    assert refused.status == 409
    assert "cannot retry" in (await refused.json())["error"]["message"]
    discarded = await admin.post(f"/api/v1/quarantine/{fake_held}/discard")
    assert (await discarded.json())["status"] == "discarded"
