"""Conversation views: scopes, statuses and filters, paging to the end; saved views."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from core.db import SessionFactory
from core.identity import Address
from core.models import (
    AuditEntry,
    Contact,
    Conversation,
    ConversationStatus,
    IdentityKind,
    Role,
    utcnow,
)
from tests.conftest import UserFactory
from tests.test_conversations_api import inbound, json_of, queue_with
from tests.test_inbox_api import set_fields

pytestmark = pytest.mark.both_databases  # tests/conftest.py

EMAIL = IdentityKind.EMAIL


async def view(caller: Any, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = await json_of(
        await caller.get("/api/v1/views/conversations", params=params), 200
    )
    return body


def ids(body: dict[str, Any]) -> list[int]:
    return [item["id"] for item in body["items"]]


async def test_each_status_has_its_view_and_snoozed_ones_are_not_lost(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    me = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Support", me)
    made: dict[str, int] = {}
    for status in ConversationStatus:
        made[status] = await inbound(
            sessions, status, Address(EMAIL, f"{status}@example.com"), queue_id=queue
        )
        extra: dict[str, Any] = {"status": status, "assignee_id": me.operator.id}
        if status == ConversationStatus.SNOOZED:
            extra["snoozed_until"] = utcnow() + timedelta(hours=2)
        await set_fields(sessions, made[status], **extra)
    for status in ConversationStatus:
        assert ids(await view(me, status=status)) == [made[status]], status
        assert ids(await view(me, scope="mine", status=status)) == [made[status]], status
    everything = await view(me, status="all")
    assert sorted(ids(everything)) == sorted(made.values())
    assert everything["total"] == 4
    assert sorted(ids(await view(me, status="active"))) == sorted([made["open"], made["pending"]])
    item = (await view(me, status="snoozed"))["items"][0]
    assert item["snoozed_until"] is not None
    assert item["preview"] == "Hello, where is my order?"


async def test_scopes_split_my_queues_without_repeats(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    me = await make_user(Role.OPERATOR)
    colleague = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Support", me, colleague)
    mine = await inbound(sessions, "m", Address(EMAIL, "m@example.com"), queue_id=queue)
    theirs = await inbound(sessions, "t", Address(EMAIL, "t@example.com"), queue_id=queue)
    waiting = await inbound(sessions, "w", Address(EMAIL, "w@example.com"), queue_id=queue)
    await set_fields(sessions, mine, assignee_id=me.operator.id)
    await set_fields(sessions, theirs, assignee_id=colleague.operator.id)
    assert ids(await view(me, scope="mine")) == [mine]
    assert ids(await view(me, scope="queues")) == [theirs]
    assert ids(await view(me, scope="unassigned")) == [waiting]
    assert sorted(ids(await view(me, scope="all"))) == sorted([mine, theirs, waiting])
    assert ids(await view(me, assignee="none")) == [waiting]
    assert ids(await view(me, assignee=colleague.operator.id)) == [theirs]
    assert ids(await view(me, assignee="me")) == [mine]


async def test_filters_channel_queue_tag_and_dates(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    support = await queue_with(sessions, "Support")
    sales = await queue_with(sessions, "Sales")
    email = await inbound(sessions, "e", Address(EMAIL, "vip@example.com"), queue_id=support)
    sms = await inbound(
        sessions,
        "s",
        Address(IdentityKind.PHONE, "+4915112345678"),
        channel="sms",
        queue_id=sales,
    )
    async with sessions() as session, session.begin():
        conversation = await session.get(Conversation, email)
        assert conversation is not None
        contact = await session.get(Contact, conversation.contact_id)
        assert contact is not None
        contact.tags = ["vip", "b2b"]
    old = utcnow() - timedelta(days=10)
    await set_fields(sessions, sms, updated_at=old)
    assert ids(await view(admin, channel="sms")) == [sms]
    assert ids(await view(admin, queue_id=support)) == [email]
    assert ids(await view(admin, tag="vip")) == [email]
    assert ids(await view(admin, tag="vi")) == []
    week_ago = (utcnow() - timedelta(days=7)).isoformat()
    assert ids(await view(admin, since=week_ago)) == [email]
    assert ids(await view(admin, until=week_ago)) == [sms]
    response = await admin.get(
        "/api/v1/views/conversations", params={"since": week_ago, "until": week_ago}
    )
    assert response.status == 400
    for bad in ({"status": "gone"}, {"scope": "x"}, {"assignee": "you"}, {"limit": 201}):
        response = await admin.get("/api/v1/views/conversations", params=bad)
        assert response.status == 400, bad
    # The contacts list filters by tag and channel too.
    tagged = await json_of(await admin.get("/api/v1/contacts", params={"tag": "b2b"}), 200)
    assert [item["id"] for item in tagged["items"]] == [contact.id]
    by_channel = await json_of(await admin.get("/api/v1/contacts", params={"channel": "sms"}), 200)
    assert [item["tags"] for item in by_channel["items"]] == [[]]


async def test_load_more_reaches_past_100_without_repeats(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    me = await make_user(Role.OPERATOR)
    queue = await queue_with(sessions, "Support", me)
    first = await inbound(sessions, "first", Address(EMAIL, "first@example.com"), queue_id=queue)
    async with sessions() as session, session.begin():
        template = await session.get(Conversation, first)
        assert template is not None
        now = utcnow()
        await session.execute(
            insert(Conversation),
            [
                {
                    "contact_id": template.contact_id,
                    "channel": "email",
                    "status": "open",
                    "queue_id": queue,
                    # Ties on every sort key but the id, and on priority and wait.
                    "priority": n % 3,
                    "created_at": now - timedelta(minutes=n % 5),
                    "updated_at": now - timedelta(minutes=n % 5),
                }
                for n in range(249)
            ],
        )
    for scope in ("all", "unassigned"):
        seen: list[int] = []
        params: dict[str, Any] = {"scope": scope, "limit": 100}
        while True:
            body = await view(me, **params)
            assert body["total"] == 250
            seen += ids(body)
            if body["next_cursor"] is None:
                break
            params["cursor"] = body["next_cursor"]
        assert len(seen) == 250, scope
        assert len(set(seen)) == 250, scope
    inbox = await json_of(await me.get("/api/v1/inbox?limit=100"), 200)
    section = inbox["unassigned"]
    assert len(section["items"]) == 100
    assert section["total"] == 250
    rest = await view(me, scope="unassigned", cursor=section["next_cursor"], limit=200)
    together = ids(section) + ids(rest)
    assert len(together) == 250
    assert len(set(together)) == 250
    # Highest priority first.
    priorities = [item["priority"] for item in section["items"] + rest["items"]]
    assert priorities == sorted(priorities, reverse=True)


async def test_saved_views_are_each_operators_own_and_audited(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    me = await make_user(Role.OPERATOR)
    other = await make_user(Role.ADMIN)
    body = {"name": "Snoozed SMS", "filters": {"status": "snoozed", "channel": "sms"}}
    created = await json_of(await me.post("/api/v1/saved-views", json=body), 201)
    assert created["filters"]["status"] == "snoozed"
    assert created["filters"]["scope"] == "all"
    await json_of(await me.post("/api/v1/saved-views", json=body), 409)
    # Another operator may use the same name, and sees none of mine, even an admin.
    await json_of(await other.post("/api/v1/saved-views", json=body), 201)
    path = f"/api/v1/saved-views/{created['id']}"
    assert (await json_of(await other.get("/api/v1/saved-views"), 200))["items"][0]["id"] != (
        created["id"]
    )
    await json_of(await other.get(path), 404)
    await json_of(await other.patch(path, json={"name": "mine now"}), 404)
    await json_of(await other.delete(path), 404)
    changed = await json_of(
        await me.patch(path, json={"name": "SMS", "filters": {"status": "open"}}), 200
    )
    assert (changed["name"], changed["filters"]["status"]) == ("SMS", "open")
    listed = await json_of(await me.get("/api/v1/saved-views"), 200)
    assert [item["name"] for item in listed["items"]] == ["SMS"]
    bad = {"name": "x", "filters": {"status": "nope"}}
    await json_of(await me.post("/api/v1/saved-views", json=bad), 400)
    await json_of(await me.post("/api/v1/saved-views", json={"name": "", "filters": {}}), 400)
    assert (await me.delete(path)).status == 204
    await json_of(await me.get(path), 404)
    async with sessions() as session:
        actions = [
            (row.action, row.actor_id)
            for row in await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.entity_type == "saved_view")
                .order_by(AuditEntry.id)
            )
        ]
    assert actions == [
        ("saved_view.create", me.operator.id),
        ("saved_view.create", other.operator.id),
        ("saved_view.update", me.operator.id),
        ("saved_view.delete", me.operator.id),
    ]
