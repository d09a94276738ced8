"""Privacy requests: export everything held on a person, and erase it without a trace in any
endpoint while the monitor's figures stay as they were (both databases)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.email.imap import reference_of
from channels.email.inbound import import_message, store_attachments
from channels.email.message import parse_message
from core import clock, quarantine
from core.audit import CLI
from core.auth import create_token
from core.channel_accounts import get_account, view_without_secrets
from core.clock import ManualClock
from core.contacts import merge_contacts
from core.db import SessionFactory, make_engine, make_session_factory
from core.errors import NotFound
from core.forms import create_form
from core.identity import Address
from core.ingest import InboundEvent, IngestPolicy, ingest
from core.migrate import upgrade
from core.models import (
    AuditEntry,
    Base,
    Contact,
    Identity,
    IdentityKind,
    Interaction,
    Lead,
    OutboxItem,
    Role,
    Task,
)
from core.outbox import claim_due, mark_failed
from core.privacy import TEXT_BATCH, erase_contact
from core.queues import set_members
from core.storage import AttachmentStore, FilesystemStore
from routing.setup import create_queue
from tests import test_cli
from tests.conftest import User, UserFactory
from tests.email_accounts import create_email_account
from tests.test_cli import Run, query
from web.keys import ATTACHMENTS, SETTINGS

pytestmark = pytest.mark.both_databases  # tests/conftest.py

START = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)
POLICY = IngestPolicy(default_region="DE")

NAME = "Jolanta Wierzbicka"
OTHER_NAME = "J. Wierzbicka"
EMAIL = "jolanta.w@example.org"
PHONE = "+4930123456"
CUSTOMER_ID = "CUST-88123"
EMAIL_TEXT = "My passport renewal number is P-5521, please hurry."
EMAIL_HTML = "<p>My passport renewal number is <b>P-5521</b>, please hurry.</p>"
SUBJECT = "Passport renewal for Jolanta"
FORM_TEXT = "Please call me back about the pumps offer, Jolanta."
API_TEXT = "Jolanta complained about order A-17 arriving damaged."
NOTE_TEXT = "Called Jolanta back, she travels on the 12th"
REPLY_TEXTS = ("We are on it, Mrs Wierzbicka.", "Your passport P-5521 is renewed, Mrs Wierzbicka.")
TASK_NOTE = "Ring Jolanta about the pumps offer"
CAMPAIGN = "spring-jw-campaign"
CUSTOMER_NO = "C-7781"
PERSONAL_FILE = b"PERSONAL-SCAN-OF-JOLANTA-PASSPORT-0001"
SHARED_FILE = b"SHARED-PRICE-LIST-2031-EVERYBODY-GETS-IT"
QUARANTINED_FILE = b"QUARANTINED-ATTACHMENT-OF-JOLANTA-0002"
QUARANTINED_TEXT = "Jolanta's message that ingest refused"
PROVIDER_ERROR = f"550 5.1.1 <{EMAIL}>: mailbox unavailable"

MAX_NAME = "Maximilian Otherperson"
MAX_EMAIL = "max.o@other.example"
MAX_TEXT = "Maximilian asks for the price list"

# Everything of the person that must never be readable after the erasure.
NEEDLES = (
    "Jolanta",
    "Wierzbicka",
    EMAIL,
    PHONE,
    PHONE.removeprefix("+49"),
    CUSTOMER_ID,
    "P-5521",
    "pumps offer",
    "A-17",
    "travels on the 12th",
    CAMPAIGN,
    CUSTOMER_NO,
    PERSONAL_FILE.decode(),
    base64.b64encode(PERSONAL_FILE).decode(),
    QUARANTINED_FILE.decode(),
    base64.b64encode(QUARANTINED_FILE).decode(),
    "passport",
)

Client = TestClient[Any, Any]


@pytest.fixture
def manual_clock() -> Iterator[ManualClock]:
    with clock.using(ManualClock(START)) as installed:
        assert isinstance(installed, ManualClock)
        yield installed


def email_bytes(
    sender: str,
    subject: str,
    text: str,
    *,
    html: str | None = None,
    files: tuple[tuple[str, bytes], ...] = (),
    message_id: str,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "Support <support@crm.test>"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message["Date"] = "Tue, 04 Mar 2031 08:30:00 +0000"
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for filename, data in files:
        message.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return message.as_bytes()


async def contact_of(sessions: SessionFactory, interaction_id: int) -> int:
    async with sessions() as session:
        found = await session.scalar(
            select(Interaction.contact_id).where(Interaction.id == interaction_id)
        )
    assert found is not None
    return found


@dataclass
class World:
    admin: User
    supervisor: User
    operator: User
    store: AttachmentStore
    mailbox_id: int
    contact_id: int
    merged_id: int
    other_id: int
    email_conversation: int
    form_conversation: int
    email_interaction: int
    other_interaction: int
    quarantine_id: int
    lead_id: int


async def arrange(
    app: web.Application,
    sessions: SessionFactory,
    client: Client,
    make_user: UserFactory,
    manual_clock: ManualClock,
) -> World:
    """A person with history on several channels, merged from two records, and another
    contact who shares an attachment's bytes with them."""
    admin = await make_user(Role.ADMIN, email="root@crm.test", name="Root Admin")
    supervisor = await make_user(Role.SUPERVISOR, email="sam@crm.test", name="Sam Super")
    operator = await make_user(Role.OPERATOR, email="olga@crm.test", name="Olga Operator")
    store = app[ATTACHMENTS]
    async with sessions() as session, session.begin():
        queue = await create_queue(session, CLI, name="Support")
        await set_members(session, CLI, queue.id, [operator.operator.id])
    mailbox = await create_email_account(
        sessions, "support", queue_id=queue.id, address="support@crm.test"
    )
    async with sessions() as session, session.begin():
        await create_form(
            session, CLI, slug="callback", queue_id=queue.id, create_lead=True, title="Callback"
        )
    # Email with HTML and two attachments, one of them the same bytes another customer sends.
    raw = email_bytes(
        f"{NAME} <{EMAIL}>",
        SUBJECT,
        EMAIL_TEXT,
        html=EMAIL_HTML,
        files=(("passport.pdf", PERSONAL_FILE), ("prices.pdf", SHARED_FILE)),
        message_id="<m1@example.org>",
    )
    async with sessions() as session, session.begin():
        mine = await import_message(session, mailbox, reference_of(1, 1), raw, store, POLICY)
    other_raw = email_bytes(
        f"{MAX_NAME} <{MAX_EMAIL}>",
        "Price list",
        MAX_TEXT,
        files=(("prices.pdf", SHARED_FILE),),
        message_id="<m2@other.example>",
    )
    async with sessions() as session, session.begin():
        others = await import_message(
            session, mailbox, reference_of(1, 2), other_raw, store, POLICY
        )
    assert mine.interaction_id
    assert others.interaction_id
    assert mine.conversation_id
    contact_id = await contact_of(sessions, mine.interaction_id)
    manual_clock.advance(minutes=5)
    # A web form from the same address, opening a lead with marketing data.
    form = await client.post(
        "/forms/callback",
        json={"name": NAME, "email": EMAIL, "message": FORM_TEXT, "utm_campaign": CAMPAIGN},
    )
    assert form.status == 201, await form.text()
    submitted = await form.json()
    async with sessions() as session, session.begin():
        _, token = await create_token(session, CLI, "shop")
    # The API channel knows the person by phone and customer id: a second record.
    api = await client.post(
        "/api/v1/interactions",
        json={
            "external_id": "crm-881",
            "contact": {"phone": PHONE, "name": OTHER_NAME, "external_id": CUSTOMER_ID},
            "text": API_TEXT,
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status == 201, await api.text()
    merged_id = (await api.json())["contact_id"]
    assert merged_id != contact_id
    patched = await admin.patch(
        f"/api/v1/contacts/{merged_id}",
        json={"custom_fields": {"customer_no": CUSTOMER_NO}, "tags": ["passport"]},
    )
    assert patched.status == 200, await patched.text()
    merged = await admin.post(f"/api/v1/contacts/{contact_id}/merge", json={"merge_id": merged_id})
    assert merged.status == 200, await merged.text()
    conversation = mine.conversation_id
    assigned = await admin.post(
        f"/api/v1/conversations/{conversation}/assign",
        json={"assignee_id": operator.operator.id},
    )
    assert assigned.status == 200, await assigned.text()
    manual_clock.advance(minutes=5)
    # Two replies: the first failed with an error quoting the address, the second waits.
    first = await admin.post(
        f"/api/v1/conversations/{conversation}/reply", json={"text": REPLY_TEXTS[0]}
    )
    assert first.status == 201, await first.text()
    async with sessions() as session, session.begin():
        [delivery] = await claim_due(session, ["email"], 10, timedelta(minutes=1))
        assert await mark_failed(session, delivery, PROVIDER_ERROR)
    second = await admin.post(
        f"/api/v1/conversations/{conversation}/reply", json={"text": REPLY_TEXTS[1]}
    )
    assert second.status == 201, await second.text()
    note = await admin.post(
        f"/api/v1/conversations/{conversation}/notes", json={"text": f"{NOTE_TEXT} @sam"}
    )
    assert note.status == 201, await note.text()
    resolved = await admin.post(
        f"/api/v1/conversations/{submitted['conversation_id']}/status",
        json={"status": "resolved"},
    )
    assert resolved.status == 200, await resolved.text()
    # A message from the person that ingest refused: held whole, its attachment already kept.
    held_raw = email_bytes(
        f"{NAME} <{EMAIL}>",
        "Another passport question",
        QUARANTINED_TEXT,
        files=(("scan.pdf", QUARANTINED_FILE),),
        message_id="<m3@example.org>",
    )
    await store_attachments(parse_message(held_raw), store)
    async with sessions() as session, session.begin():
        session.add(
            Task(
                kind="callback",
                contact_id=contact_id,
                conversation_id=conversation,
                due_at=START + timedelta(days=1),
                note=TASK_NOTE,
            )
        )
        held = await quarantine.quarantine(
            session,
            channel="email",
            account_id=mailbox.id,
            reference=reference_of(1, 3),
            raw=held_raw,
            reason=f"the database refused the message: {EMAIL}",
        )
    discarded = await admin.post(f"/api/v1/quarantine/{held.id}/discard")
    assert discarded.status == 200, await discarded.text()
    # Another was held while the database failed, and went through when retried.
    retried_raw = email_bytes(
        f"{NAME} <{EMAIL}>", "Passport photo", EMAIL_TEXT, message_id="<m5@example.org>"
    )
    async with sessions() as session, session.begin():
        retried = await quarantine.quarantine(
            session,
            channel="email",
            account_id=mailbox.id,
            reference=reference_of(1, 5),
            raw=retried_raw,
            reason=f'the database refused the message: invalid value "{EMAIL}"',
        )
    imported = await admin.post(f"/api/v1/quarantine/{retried.id}/retry")
    assert imported.status == 200, await imported.text()
    assert (await imported.json())["status"] == "ingested"
    manual_clock.advance(minutes=5)
    async with sessions() as session:
        lead_id = await session.scalar(select(Lead.id).where(Lead.contact_id == contact_id))
    assert lead_id is not None
    return World(
        admin=admin,
        supervisor=supervisor,
        operator=operator,
        store=store,
        mailbox_id=mailbox.id,
        contact_id=contact_id,
        merged_id=merged_id,
        other_id=await contact_of(sessions, others.interaction_id),
        email_conversation=conversation,
        form_conversation=submitted["conversation_id"],
        email_interaction=mine.interaction_id,
        other_interaction=others.interaction_id,
        quarantine_id=held.id,
        lead_id=lead_id,
    )


@pytest.fixture
async def world(
    app: web.Application,
    sessions: SessionFactory,
    client: Client,
    make_user: UserFactory,
    manual_clock: ManualClock,
) -> World:
    return await arrange(app, sessions, client, make_user, manual_clock)


async def export(world: World, contact_id: int | None = None) -> zipfile.ZipFile:
    response = await world.admin.get(f"/api/v1/contacts/{contact_id or world.contact_id}/export")
    assert response.status == 200, await response.text()
    assert response.content_type == "application/zip"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="contact-{contact_id or world.contact_id}-export.zip"'
    )
    return zipfile.ZipFile(io.BytesIO(await response.read()))


def leaks(text: str, needles: tuple[str, ...] = NEEDLES) -> list[str]:
    return [needle for needle in needles if needle.lower() in text.lower()]


async def test_the_export_holds_everything_of_the_person_and_nothing_of_anyone_else(
    world: World,
) -> None:
    archive = await export(world)
    data = json.loads(archive.read("contact.json"))
    assert (data["format"], data["version"], data["contact_id"]) == (
        "omnicrm.contact-export",
        1,
        world.contact_id,
    )
    contact = data["contact"]
    assert contact["display_name"] == NAME
    assert contact["custom_fields"]["customer_no"] == CUSTOMER_NO
    assert contact["marketing_source"]["utm_campaign"] == CAMPAIGN
    assert [(r["id"], r["display_name"]) for r in data["merged_records"]] == [
        (world.merged_id, OTHER_NAME)
    ]
    assert {(i["kind"], i["address"]) for i in data["identities"]} == {
        ("email", EMAIL),
        ("phone", PHONE),
        ("external", CUSTOMER_ID),
    }
    texts = [i["text"] for i in data["interactions"]]
    for text in (EMAIL_TEXT, FORM_TEXT, API_TEXT, f"{NOTE_TEXT} @sam", *REPLY_TEXTS):
        assert any(text in stored for stored in texts), text
    [email] = [i for i in data["interactions"] if i["id"] == world.email_interaction]
    assert email["subject"] == SUBJECT
    assert "P-5521" in email["html"]
    files = {a["filename"]: a["file"] for a in email["attachments"]}
    assert archive.read(files["passport.pdf"]) == PERSONAL_FILE
    assert archive.read(files["prices.pdf"]) == SHARED_FILE
    assert files["passport.pdf"] == f"attachments/{world.email_interaction}/0-passport.pdf"
    assert {c["id"] for c in data["conversations"]} >= {
        world.email_conversation,
        world.form_conversation,
    }
    [lead] = data["leads"]
    assert (lead["id"], lead["marketing"]["utm_campaign"]) == (world.lead_id, CAMPAIGN)
    assert [t["note"] for t in data["tasks"]] == [TASK_NOTE]
    assert [(o["recipient"], o["payload"]["text"], o["status"]) for o in data["outbox"]] == [
        (EMAIL, REPLY_TEXTS[0], "failed"),
        (EMAIL, REPLY_TEXTS[1], "queued"),
    ]
    assert data["outbox"][0]["last_error"] == PROVIDER_ERROR
    [held] = [row for row in data["quarantined_messages"] if row["id"] == world.quarantine_id]
    assert len(data["quarantined_messages"]) == 2
    assert QUARANTINED_FILE.decode() in parse_message(archive.read(held["file"])).text + str(
        [a.content for a in parse_message(archive.read(held["file"])).attachments]
    )
    actions = {entry["action"] for entry in data["audit"]}
    assert {"contact.merge", "contact.update", "conversation.reply"} <= actions
    assert all("actor_label" not in entry for entry in data["audit"])
    assert data["routing_decisions"]  # the manual assignment
    # Nothing of the other customer, apart from the bytes both of them sent.
    everything = b"".join(archive.read(name) for name in archive.namelist())
    for foreign in (MAX_NAME, MAX_EMAIL, MAX_TEXT):
        assert foreign.encode() not in everything
    assert str(world.other_interaction) not in {str(i["id"]) for i in data["interactions"]}


async def test_an_export_is_audited_with_counts_only(world: World) -> None:
    await export(world)
    response = await world.admin.get("/api/v1/audit?action=contact.export")
    [entry] = (await response.json())["items"]
    assert entry["entity_id"] == str(world.contact_id)
    assert entry["actor_id"] == world.admin.operator.id
    assert entry["details"]["interactions"] >= 6
    assert entry["details"]["attachments"] == 2
    assert leaks(json.dumps(entry)) == []


async def read_everything(world: World) -> dict[str, str]:
    """Every read endpoint that could show the person, as each user who could see it."""
    w = world
    conversations = [w.email_conversation, w.form_conversation]
    admin_paths = [
        f"/api/v1/contacts?q={NAME.split()[0]}",
        f"/api/v1/contacts?q={EMAIL}",
        f"/api/v1/contacts?q={PHONE.replace('+', '%2B')}",
        f"/api/v1/contacts?q={CUSTOMER_ID}",
        "/api/v1/contacts",
        f"/api/v1/contacts/{w.contact_id}",
        f"/api/v1/contacts/{w.merged_id}",
        f"/api/v1/contacts/{w.contact_id}/timeline",
        f"/api/v1/contacts/{w.merged_id}/timeline",
        f"/api/v1/contacts/{w.contact_id}/merge-suggestions",
        "/api/v1/conversations",
        f"/api/v1/conversations?contact_id={w.contact_id}",
        "/api/v1/inbox",
        "/api/v1/leads",
        f"/api/v1/leads/{w.lead_id}",
        "/api/v1/audit?limit=200",
        f"/api/v1/quarantine?account_id={w.mailbox_id}",
        f"/api/v1/quarantine/{w.quarantine_id}/raw",
        f"/api/v1/interactions/{w.email_interaction}/attachments/0",
        f"/api/v1/interactions/{w.email_interaction}/attachments/1",
        f"/api/v1/interactions/{w.email_interaction}/html",
        "/api/v1/monitor",
        "/api/v1/notifications",
    ]
    for conversation in conversations:
        admin_paths += [
            f"/api/v1/conversations/{conversation}",
            f"/api/v1/conversations/{conversation}/interactions",
            f"/api/v1/conversations/{conversation}/outbox",
            f"/api/v1/conversations/{conversation}/routing",
        ]
    answers: dict[str, str] = {}
    for user in (w.admin, w.supervisor, w.operator):
        paths = admin_paths if user is w.admin else ["/api/v1/inbox", "/api/v1/notifications"]
        if user is w.operator:
            paths = [*paths, f"/api/v1/conversations/{w.email_conversation}/interactions"]
        for path in paths:
            response = await user.get(path)
            body = await response.read()
            answers[f"{user.operator.email} {path} {response.status}"] = body.decode(
                "utf-8", "replace"
            )
    return answers


async def test_after_erasure_nothing_of_the_person_is_readable_and_the_figures_stand(
    world: World, sessions: SessionFactory, app: web.Application, manual_clock: ManualClock
) -> None:
    before = await read_everything(world)
    # Before, every piece of the person is readable somewhere, so the search below can find
    # it (the passport scan as a download, the quarantined scan base64 in the raw message).
    unreadable = {base64.b64encode(PERSONAL_FILE).decode(), QUARANTINED_FILE.decode()}
    assert set(leaks("\n".join(before.values()))) == set(NEEDLES) - unreadable
    monitor = await world.supervisor.get("/api/v1/monitor")
    figures = await monitor.json()
    assert figures["queues"][0]["waiting"] >= 1

    response = await world.admin.delete(
        f"/api/v1/contacts/{world.contact_id}?erase=true&confirm={world.contact_id}"
    )
    assert response.status == 200, await response.text()
    report = await response.json()
    assert report["contact_id"] == world.contact_id
    assert report["merged_ids"] == [world.merged_id]
    assert report["counts"]["identities"] == 3
    assert report["counts"]["outbox_cancelled"] == 1
    assert report["counts"]["quarantined_messages"] == 2
    assert report["counts"]["audit_entries_scrubbed"] == 1
    # passport.pdf and the quarantined scan go; prices.pdf is the other customer's too.
    assert (report["attachments_deleted"], report["attachments_kept"]) == (2, 1)
    assert leaks(json.dumps(report)) == []

    after = await read_everything(world)
    found = {key: leaks(body) for key, body in after.items() if leaks(body)}
    assert found == {}
    assert await database_leaks(sessions) == {}
    assert store_leaks(app) == []
    notifications = await (await world.supervisor.get("/api/v1/notifications")).json()
    assert notifications == {"items": [], "unread_count": 0}
    statuses = {key.rsplit(" ", 1)[1] for key in after if "/attachments/" in key}
    assert statuses == {"404"}
    assert (await world.supervisor.get("/api/v1/monitor")).status == 200
    assert await (await world.supervisor.get("/api/v1/monitor")).json() == figures

    # The files: the person's are gone, the shared one still serves the other customer.
    with pytest.raises(NotFound):
        await world.store.get(_key(PERSONAL_FILE))
    with pytest.raises(NotFound):
        await world.store.get(_key(QUARANTINED_FILE))
    shared = await world.admin.get(f"/api/v1/interactions/{world.other_interaction}/attachments/0")
    assert (shared.status, await shared.read()) == (200, SHARED_FILE)
    max_contact = await (await world.admin.get(f"/api/v1/contacts/{world.other_id}")).json()
    assert max_contact["display_name"] == MAX_NAME

    # The record stays as a tombstone; the unsent reply is cancelled, nothing is sent.
    contact = await (await world.admin.get(f"/api/v1/contacts/{world.contact_id}")).json()
    assert contact["display_name"] == f"Erased contact {world.contact_id}"
    assert contact["erased_at"] is not None
    assert contact["identities"] == []
    async with sessions() as session:
        outbox = list(await session.scalars(select(OutboxItem).order_by(OutboxItem.id)))
    assert [(item.status, item.last_error) for item in outbox] == [
        ("failed", "erased with the contact"),
        ("failed", "cancelled: the contact was erased"),
    ]

    # The person writes again: a fresh contact, knowing nothing of the erased one.
    manual_clock.advance(minutes=1)
    again = email_bytes(
        f"{NAME} <{EMAIL}>", "Hello again", "It is me again", message_id="<m4@example.org>"
    )
    async with sessions() as session, session.begin():
        account = view_without_secrets(await get_account(session, world.mailbox_id), ())
        outcome = await import_message(
            session, account, reference_of(1, 4), again, world.store, POLICY
        )
    assert outcome.interaction_id is not None
    fresh_id = await contact_of(sessions, outcome.interaction_id)
    assert fresh_id not in (world.contact_id, world.merged_id)
    fresh = await (await world.admin.get(f"/api/v1/contacts/{fresh_id}/timeline")).json()
    assert [item["text"].strip() for item in fresh["items"]] == ["It is me again"]


async def database_leaks(sessions: SessionFactory) -> dict[str, list[str]]:
    """Needles found in any row of any table, by table."""
    found: dict[str, list[str]] = {}
    async with sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                text = " ".join(
                    value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    for value in row
                )
                if hits := leaks(text):
                    found.setdefault(table.name, []).extend(hits)
    return found


def store_leaks(app: web.Application) -> list[str]:
    """Files of the attachment store that hold the person's bytes."""
    root = Path(app[SETTINGS].attachments_dir)
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and leaks(path.read_bytes().decode("utf-8", "replace"))
    ]


def _key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_erasure_is_audited_without_the_data(world: World) -> None:
    await world.admin.delete(
        f"/api/v1/contacts/{world.contact_id}?erase=true&confirm={world.contact_id}"
    )
    response = await world.admin.get("/api/v1/audit?action=contact.erase")
    [entry] = (await response.json())["items"]
    assert (entry["entity_type"], entry["entity_id"]) == ("contact", str(world.contact_id))
    assert entry["actor_id"] == world.admin.operator.id
    assert entry["details"]["interactions"] >= 6
    assert entry["details"]["merged_ids"] == [world.merged_id]
    assert leaks(json.dumps(entry)) == []
    # Erasing again is allowed (it would catch what arrived meanwhile) and finds nothing.
    again = await world.admin.delete(
        f"/api/v1/contacts/{world.contact_id}?erase=true&confirm={world.contact_id}"
    )
    assert again.status == 200
    counts = (await again.json())["counts"]
    assert (counts["identities"], counts["outbox_cancelled"], counts["quarantined_messages"]) == (
        0,
        0,
        0,
    )


async def test_an_erased_contact_is_no_contact_to_find_change_or_merge(world: World) -> None:
    path = f"/api/v1/contacts/{world.contact_id}"
    erased = await world.admin.delete(f"{path}?erase=true&confirm={world.contact_id}")
    assert erased.status == 200
    listed = await (await world.supervisor.get("/api/v1/contacts?limit=200")).json()
    assert world.contact_id not in {item["id"] for item in listed["items"]}
    assert world.other_id in {item["id"] for item in listed["items"]}
    # Its tombstone still answers by id (statistics and links point at it), marked as erased.
    tombstone = await (await world.supervisor.get(path)).json()
    assert tombstone["erased_at"] is not None
    changed = await world.supervisor.patch(path, json={"display_name": "Somebody"})
    assert changed.status == 409
    assert "erased" in (await changed.json())["error"]["message"]
    for survivor, merged in (
        (world.other_id, world.contact_id),
        (world.contact_id, world.other_id),
    ):
        response = await world.supervisor.post(
            f"/api/v1/contacts/{survivor}/merge", json={"merge_id": merged}
        )
        assert response.status == 409, await response.text()
        assert "erased" in (await response.json())["error"]["message"]
    suggestions = await world.supervisor.get(f"/api/v1/contacts/{world.other_id}/merge-suggestions")
    assert world.contact_id not in {
        item["contact"]["id"] for item in (await suggestions.json())["items"]
    }


async def snapshot(sessions: SessionFactory, world: World) -> tuple[Any, ...]:
    async with sessions() as session:
        names = list(
            await session.scalars(
                select(Contact.display_name)
                .where(Contact.id.in_([world.contact_id, world.merged_id]))
                .order_by(Contact.id)
            )
        )
        identities = await session.scalar(select(func.count()).select_from(Identity))
    return names, identities, await world.store.get(_key(PERSONAL_FILE))


async def test_non_admins_may_neither_export_nor_erase(
    world: World, sessions: SessionFactory
) -> None:
    before = await snapshot(sessions, world)
    for user in (world.supervisor, world.operator):
        path = f"/api/v1/contacts/{world.contact_id}"
        exported = await user.get(f"{path}/export")
        erased = await user.delete(f"{path}?erase=true&confirm={world.contact_id}")
        for response in (exported, erased):
            assert response.status == 403
            assert (await response.json())["error"]["code"] == "forbidden"
    assert await snapshot(sessions, world) == before


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "erase"),
        ("?erase=false&confirm={id}", "erase"),
        ("?erase=true", "confirm"),
        ("?erase=true&confirm={other}", "confirm"),
        ("?erase=true&confirm=Jolanta%20Wierzbicka", "confirm"),
    ],
)
async def test_erasing_without_the_confirmation_is_400_and_changes_nothing(
    world: World, sessions: SessionFactory, query: str, field: str
) -> None:
    before = await snapshot(sessions, world)
    response = await world.admin.delete(
        f"/api/v1/contacts/{world.contact_id}"
        + query.format(id=world.contact_id, other=world.other_id)
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "invalid_input"
    assert field in error["fields"]
    assert await snapshot(sessions, world) == before


async def test_a_merged_record_points_at_the_survivor(
    world: World, sessions: SessionFactory
) -> None:
    before = await snapshot(sessions, world)
    path = f"/api/v1/contacts/{world.merged_id}"
    for response in (
        await world.admin.get(f"{path}/export"),
        await world.admin.delete(f"{path}?erase=true&confirm={world.merged_id}"),
    ):
        assert response.status == 409
        message = (await response.json())["error"]["message"]
        assert f"merged into contact {world.contact_id}" in message
    assert await snapshot(sessions, world) == before


async def test_an_unknown_contact_is_404(world: World) -> None:
    for response in (
        await world.admin.get("/api/v1/contacts/999999/export"),
        await world.admin.delete("/api/v1/contacts/999999?erase=true&confirm=999999"),
    ):
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


# --- the command line ------------------------------------------------------------------------

# The CLI tests' fixtures: `run` runs the command in-process, `sqlite_url` is a new file at the
# schema's head.
run = test_cli.run
sqlite_url = test_cli.sqlite_url
migrated_sqlite_file = test_cli.migrated_sqlite_file


def cli_world(url: str, attachments: Path) -> tuple[int, int]:
    """A person with an email and its attachment, and a second record merged into them."""

    async def go() -> tuple[int, int]:
        await upgrade(url)
        engine = make_engine(url)
        store = FilesystemStore(attachments)
        key = await store.put(PERSONAL_FILE)
        try:
            async with make_session_factory(engine)() as session, session.begin():
                mine = await ingest(
                    session,
                    InboundEvent(
                        channel="email",
                        external_id="<cli@example.org>",
                        addresses=[Address(IdentityKind.EMAIL, EMAIL)],
                        display_name=NAME,
                        text=EMAIL_TEXT,
                        attachments=[{"key": key, "filename": "passport.pdf", "size": 38}],
                    ),
                )
                second = await ingest(
                    session,
                    InboundEvent(
                        channel="api",
                        external_id="crm-1",
                        addresses=[Address(IdentityKind.PHONE, PHONE)],
                        display_name=OTHER_NAME,
                        text=API_TEXT,
                    ),
                )
                await merge_contacts(session, CLI, mine.contact_id, second.contact_id)
            return mine.contact_id, second.contact_id
        finally:
            await engine.dispose()

    return asyncio.run(go())


def cli_contact(url: str, contact_id: int) -> tuple[str, int]:
    async def work(session: AsyncSession) -> tuple[str, int]:
        contact = await session.get(Contact, contact_id)
        assert contact is not None
        identities = await session.scalar(select(func.count()).select_from(Identity))
        return contact.display_name, int(identities or 0)

    return query(url, work)


@pytest.mark.usefixtures("keep_logging")
def test_the_cli_exports_a_contact_to_a_file_once(
    run: Run, sqlite_url: str, tmp_path: Path
) -> None:
    attachments = tmp_path / "files"
    contact_id, merged_id = cli_world(sqlite_url, attachments)
    output = tmp_path / "jolanta.zip"
    env = {"OMNICRM_ATTACHMENTS_DIR": str(attachments)}
    argv = ("contact", "export", str(contact_id), "--output", str(output))
    result = run(*argv, database_url=sqlite_url, **env)
    assert result.code == 0, result.err
    assert f"contact {contact_id} exported to {output}" in result.out
    with zipfile.ZipFile(output) as archive:
        data = json.loads(archive.read("contact.json"))
        [file] = [name for name in archive.namelist() if name.startswith("attachments/")]
        assert archive.read(file) == PERSONAL_FILE
    assert data["contact"]["display_name"] == NAME
    assert [record["id"] for record in data["merged_records"]] == [merged_id]
    assert {i["text"] for i in data["interactions"]} == {EMAIL_TEXT, API_TEXT}
    # An archive is never overwritten, and a merged record names the survivor.
    again = run(*argv, database_url=sqlite_url, **env)
    assert again.code == 2
    assert "exists already" in again.error_line
    merged = run(
        "contact",
        "export",
        str(merged_id),
        "--output",
        str(tmp_path / "m.zip"),
        database_url=sqlite_url,
        **env,
    )
    assert merged.code == 2
    assert f"merged into contact {contact_id}" in merged.error_line
    assert not (tmp_path / "m.zip").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []

    async def audited(session: AsyncSession) -> list[tuple[str, str | None]]:
        rows = await session.execute(
            select(AuditEntry.actor_label, AuditEntry.entity_id).where(
                AuditEntry.action == "contact.export"
            )
        )
        return [(label, entity) for label, entity in rows]

    assert query(sqlite_url, audited) == [("cli", str(contact_id))]


@pytest.mark.usefixtures("keep_logging")
def test_the_cli_erases_only_with_yes(run: Run, sqlite_url: str, tmp_path: Path) -> None:
    attachments = tmp_path / "files"
    contact_id, merged_id = cli_world(sqlite_url, attachments)
    env = {"OMNICRM_ATTACHMENTS_DIR": str(attachments)}
    refused = run("contact", "erase", str(contact_id), database_url=sqlite_url, **env)
    assert refused.code == 2
    assert "--yes" in refused.error_line
    assert cli_contact(sqlite_url, contact_id) == (NAME, 2)
    for bad in ("abc", "0", "-3"):
        wrong = run("contact", "erase", bad, "--yes", database_url=sqlite_url, **env)
        assert wrong.code == 2
        assert "not a record id" in wrong.error_line
    missing = run("contact", "erase", "999999", "--yes", database_url=sqlite_url, **env)
    assert missing.code == 2
    assert "no contact with id 999999" in missing.error_line

    erased = run("contact", "erase", str(contact_id), "--yes", database_url=sqlite_url, **env)
    assert erased.code == 0, erased.err
    assert f"contact {contact_id} (with merged records {merged_id}) erased" in erased.out
    assert "1 attachment files deleted" in erased.out
    assert cli_contact(sqlite_url, contact_id) == (f"Erased contact {contact_id}", 0)
    assert [path for path in attachments.rglob("*") if path.is_file()] == []


async def test_a_long_history_is_exported_and_erased_page_by_page(
    app: web.Application, sessions: SessionFactory, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    store = app[ATTACHMENTS]
    count = 3 * TEXT_BATCH + 5
    async with sessions() as session, session.begin():
        for number in range(count):
            key = await store.put(f"file {number} of Jolanta".encode())
            result = await ingest(
                session,
                InboundEvent(
                    channel="api",
                    external_id=f"long-{number}",
                    addresses=[Address(IdentityKind.EMAIL, EMAIL)],
                    display_name=NAME,
                    text=f"Jolanta's message number {number}",
                    attachments=[{"key": key, "filename": f"{number}.txt"}],
                ),
            )
    contact_id = result.contact_id
    response = await admin.get(f"/api/v1/contacts/{contact_id}/export")
    archive = zipfile.ZipFile(io.BytesIO(await response.read()))
    data = json.loads(archive.read("contact.json"))
    assert [i["text"] for i in data["interactions"]] == [
        f"Jolanta's message number {number}" for number in range(count)
    ]
    files = [i["attachments"][0]["file"] for i in data["interactions"]]
    assert [archive.read(file) for file in files] == [
        f"file {number} of Jolanta".encode() for number in range(count)
    ]
    erased = await admin.delete(f"/api/v1/contacts/{contact_id}?erase=true&confirm={contact_id}")
    report = await erased.json()
    assert (report["counts"]["interactions"], report["attachments_deleted"]) == (count, count)
    assert await database_leaks(sessions) == {}


async def test_an_erasure_that_rolls_back_loses_no_data_and_no_file(
    app: web.Application, sessions: SessionFactory
) -> None:
    store = app[ATTACHMENTS]
    key = await store.put(PERSONAL_FILE)
    async with sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel="api",
                external_id="kept-1",
                addresses=[Address(IdentityKind.EMAIL, EMAIL)],
                display_name=NAME,
                text=EMAIL_TEXT,
                attachments=[{"key": key, "filename": "passport.pdf"}],
            ),
        )

    async with sessions() as session:
        transaction = await session.begin()
        erasure = await erase_contact(session, CLI, result.contact_id)
        assert erasure.attachment_keys == {key}
        await transaction.rollback()
    assert await store.get(key) == PERSONAL_FILE
    async with sessions() as session:
        contact = await session.get(Contact, result.contact_id)
        interaction = await session.get(Interaction, result.interaction_id)
        assert contact is not None
        assert interaction is not None
        assert (contact.display_name, contact.erased_at) == (NAME, None)
        assert interaction.text == EMAIL_TEXT
        assert [entry["key"] for entry in interaction.attachments] == [key]
