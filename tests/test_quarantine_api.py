"""The quarantine API: admins list, download, retry and discard held inbound messages."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from channels.email.inbound import ImportStatus, import_message
from core.db import SessionFactory
from core.ingest import IngestPolicy
from core.models import AuditEntry, Interaction, Mailbox, QuarantinedMessage, Role
from core.storage import MemoryStore
from tests.conftest import UserFactory

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


async def create_mailbox(sessions: SessionFactory, name: str = "support") -> int:
    async with sessions() as session, session.begin():
        mailbox = Mailbox(
            name=name,
            address=f"{name}@omnicrm.test",
            imap_host="127.0.0.1",
            imap_user=name,
            smtp_host="127.0.0.1",
        )
        session.add(mailbox)
        await session.flush()
        return mailbox.id


async def hold(sessions: SessionFactory, mailbox_id: int, raw: bytes, uid: int = 1) -> int:
    """Import `raw` as the poller would; it must end up quarantined."""
    async with sessions() as session, session.begin():
        mailbox = await session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        outcome = await import_message(session, mailbox, 1, uid, raw, MemoryStore(), IngestPolicy())
    assert outcome.status is ImportStatus.QUARANTINED
    assert outcome.quarantine_id is not None
    return outcome.quarantine_id


async def insert_held(sessions: SessionFactory, mailbox_id: int, raw: bytes, uid: int = 2) -> int:
    """A held message that would go through now (held by an older version, say)."""
    async with sessions() as session, session.begin():
        row = QuarantinedMessage(
            mailbox_id=mailbox_id, uidvalidity=1, uid=uid, raw=raw, reason="parser crashed"
        )
        session.add(row)
        await session.flush()
        return row.id


async def test_admins_list_held_messages_with_reason_and_summary(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    mailbox_id = await create_mailbox(sessions)
    other_mailbox = await create_mailbox(sessions, "sales")
    held_id = await hold(sessions, mailbox_id, NO_SENDER)
    await hold(sessions, other_mailbox, NO_SENDER.replace(b"nobody@", b"other@"))
    admin = await make_user(Role.ADMIN)

    response = await admin.get(f"/api/v1/mailboxes/{mailbox_id}/quarantine")
    assert response.status == 200
    body = await response.json()
    assert body["next_cursor"] is None
    [item] = body["items"]
    assert item["id"] == held_id
    assert item["mailbox_id"] == mailbox_id
    assert (item["uidvalidity"], item["uid"]) == (1, 1)
    assert item["status"] == "quarantined"
    assert "no sender address" in item["reason"]
    assert item["interaction_id"] is None
    assert item["size"] == len(NO_SENDER)
    assert item["subject"] == "Who am I?"
    assert item["sender"] == ""


async def test_the_list_filters_by_status_and_pages(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    mailbox_id = await create_mailbox(sessions)
    ids = [
        await hold(sessions, mailbox_id, NO_SENDER.replace(b"nobody@", f"n{n}@".encode()), uid=n)
        for n in range(3)
    ]
    admin = await make_user(Role.ADMIN)
    assert (await admin.post(f"/api/v1/quarantine/{ids[0]}/discard")).status == 200

    held = await (
        await admin.get(f"/api/v1/mailboxes/{mailbox_id}/quarantine?status=quarantined")
    ).json()
    assert [item["id"] for item in held["items"]] == [ids[2], ids[1]]
    first = await (await admin.get(f"/api/v1/mailboxes/{mailbox_id}/quarantine?limit=2")).json()
    rest = await (
        await admin.get(
            f"/api/v1/mailboxes/{mailbox_id}/quarantine?limit=2&cursor={first['next_cursor']}"
        )
    ).json()
    assert [i["id"] for i in first["items"] + rest["items"]] == list(reversed(ids))
    bad = await admin.get(f"/api/v1/mailboxes/{mailbox_id}/quarantine?status=lost")
    assert bad.status == 400
    assert "status" in (await bad.json())["error"]["fields"]


async def test_the_raw_message_downloads_as_received(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    held_id = await hold(sessions, await create_mailbox(sessions), NO_SENDER)
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
    held_id = await hold(sessions, await create_mailbox(sessions), NO_SENDER)
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
    held_id = await insert_held(sessions, await create_mailbox(sessions), GOOD)
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
    held_id = await hold(sessions, await create_mailbox(sessions), NO_SENDER)
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
        ("GET", "/api/v1/mailboxes/999/quarantine"),
        ("GET", "/api/v1/quarantine/999/raw"),
        ("POST", "/api/v1/quarantine/999/retry"),
        ("POST", "/api/v1/quarantine/999/discard"),
        ("GET", "/api/v1/quarantine/abc/raw"),
    ):
        call = admin.get if method == "GET" else admin.post
        response = await call(path)
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "not_found"


def every_route(held_id: int, mailbox_id: int) -> list[tuple[str, str]]:
    return [
        ("GET", f"/api/v1/mailboxes/{mailbox_id}/quarantine"),
        ("GET", f"/api/v1/quarantine/{held_id}/raw"),
        ("POST", f"/api/v1/quarantine/{held_id}/retry"),
        ("POST", f"/api/v1/quarantine/{held_id}/discard"),
    ]


async def test_anonymous_callers_are_401(
    sessions: SessionFactory, client: TestClient[Any, Any]
) -> None:
    mailbox_id = await create_mailbox(sessions)
    held_id = await hold(sessions, mailbox_id, NO_SENDER)
    for method, path in every_route(held_id, mailbox_id):
        response = await client.request(method, path)
        assert response.status == 401, path


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.SUPERVISOR])
async def test_only_admins_may_see_or_touch_the_quarantine(
    sessions: SessionFactory, make_user: UserFactory, role: Role
) -> None:
    mailbox_id = await create_mailbox(sessions)
    held_id = await hold(sessions, mailbox_id, NO_SENDER)
    user = await make_user(role)
    for method, path in every_route(held_id, mailbox_id):
        call = user.get if method == "GET" else user.post
        response = await call(path)
        assert response.status == 403, path
    async with sessions() as session:
        row = await session.get(QuarantinedMessage, held_id)
    assert row is not None
    assert row.status == "quarantined"
