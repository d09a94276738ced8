"""Who sees what, on every read path (core.visibility): a world of two queues, and for every
caller and every GET route, exactly what comes back; then the websocket, event by event.

The world: queue One worked by operator Ann, queue Two by operator Bob; supervisor Sue, admin
Ada, an integration token (erp) and a token with the operator role (bot). One contact, Anna,
has a conversation in each queue, each with an inbound email (subject, HTML, an attachment,
a lead), an operator's reply and a supervisor's internal note; plus an interaction outside
any conversation, a lead Ann owns on the conversation in queue Two, and an offer per queue.
Every piece of content carries a marker (``zq...qz``), so a leak shows as a marker in a body.
"""

from __future__ import annotations

import asyncio
import re
import typing
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, get_args

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel
from sqlalchemy import select

from core.audit import CLI
from core.auth import create_token
from core.events import Event
from core.identity import Address
from core.ingest import InboundEvent, LeadRequest, ingest
from core.models import (
    Contact,
    Direction,
    Identity,
    IdentityKind,
    Interaction,
    InteractionKind,
    Lead,
    Offer,
    Role,
    SuggestionDoc,
    SuggestionKind,
    utcnow,
)
from core.pipelines import default_pipeline_query
from core.queues import set_members
from core.suggestions.lexical import LexicalEngine
from core.tasks import MissedCall, open_callback
from core.visibility import EVENT_AUDIENCE, Audience
from routing.setup import create_queue
from tests.conftest import User, UserFactory
from web.keys import ATTACHMENTS, BUS, SESSIONS
from web.openapi import ROUTE_DOCS
from web.schemas import ConversationOut, InteractionOut

pytestmark = pytest.mark.both_databases  # tests/conftest.py

CALLERS = ("ann", "bob", "sue", "ada", "erp", "bot")
# Roles the console routes (ANYONE_SIGNED_IN) let in: every caller but the integration token.
CONSOLE = frozenset({"ann", "bob", "sue", "ada", "bot"})
SUPERVISORS = frozenset({"sue", "ada"})

# The interactions of the world, by name; each carries the markers of `PIECES`.
INTERACTIONS = ("q1.in", "q1.reply", "q1.note", "q2.in", "q2.reply", "q2.note", "orphan")
CUSTOMER_FACING = frozenset({"q1.in", "q1.reply", "q2.in", "q2.reply"})
PIECES = {
    "q1.in": ("zqq1inqz", "zqq1htmlqz", "zqq1subjectqz", "zqq1fileqz"),
    "q1.reply": ("zqq1replyqz",),
    "q1.note": ("zqq1noteqz",),
    "q2.in": ("zqq2inqz", "zqq2htmlqz", "zqq2subjectqz", "zqq2fileqz"),
    "q2.reply": ("zqq2replyqz",),
    "q2.note": ("zqq2noteqz",),
    "orphan": ("zqorphanqz",),
}
ALL_MARKERS = frozenset(marker for markers in PIECES.values() for marker in markers)

# What each caller may see: the expectations, written down rather than computed by the rule.
SEES_INTERACTIONS: dict[str, frozenset[str]] = {
    "ann": frozenset({"q1.in", "q1.reply", "q1.note"}),
    "bob": frozenset({"q2.in", "q2.reply", "q2.note"}),
    "sue": frozenset(INTERACTIONS),
    "ada": frozenset(INTERACTIONS),
    "erp": CUSTOMER_FACING,
    "bot": frozenset(),
}
SEES_CONVERSATIONS: dict[str, frozenset[str]] = {
    "ann": frozenset({"q1"}),
    "bob": frozenset({"q2"}),
    "sue": frozenset({"q1", "q2"}),
    "ada": frozenset({"q1", "q2"}),
    "erp": frozenset(),
    "bot": frozenset(),
}
# The lead of each conversation, and "owned": Ann's lead on the conversation in queue Two.
SEES_LEADS: dict[str, frozenset[str]] = {
    "ann": frozenset({"q1", "owned"}),
    "bob": frozenset({"q2", "owned"}),
    "sue": frozenset({"q1", "q2", "owned"}),
    "ada": frozenset({"q1", "q2", "owned"}),
    "erp": frozenset(),
    "bot": frozenset(),
}

# The pipeline leads go to (tests/conftest.py seeds it like migrations do).
DEFAULT_PIPELINE = default_pipeline_query().scalar_subquery()


def allowed_markers(caller: str) -> frozenset[str]:
    return frozenset(marker for name in SEES_INTERACTIONS[caller] for marker in PIECES[name])


@dataclass
class Caller:
    name: str
    client: TestClient[Any, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers, **kwargs)


@dataclass
class World:
    app: web.Application
    users: dict[str, User]
    callers: dict[str, Caller]
    queues: dict[str, int]
    contact: int
    other_contact: int
    conversations: dict[str, int]
    interactions: dict[str, int]
    leads: dict[str, int]
    offers: dict[str, int]

    def conversation_name(self, conversation_id: int) -> str:
        return {v: k for k, v in self.conversations.items()}[conversation_id]

    def interaction_names(self, ids: list[int]) -> set[str]:
        names = {v: k for k, v in self.interactions.items()}
        return {names.get(item, f"unknown {item}") for item in ids}

    def lead_names(self, ids: list[int]) -> set[str]:
        names = {v: k for k, v in self.leads.items()}
        return {names[item] for item in ids}


async def json_of(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


async def inbound(
    app: web.Application,
    queue: str,
    queue_id: int,
    *,
    n: int = 0,
    text: str | None = None,
    attachment_key: str | None = None,
    lead: bool = False,
) -> tuple[int, int]:
    """An email from Anna into the thread of queue `queue`; (interaction, conversation)."""
    async with app[SESSIONS]() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id=f"<{queue}-{n}@anna.example>",
                addresses=[Address(IdentityKind.EMAIL, "anna@example.com")],
                display_name="Anna Novak",
                subject=f"zq{queue}subjectqz",
                text=text or f"zq{queue}inqz",
                html=f"<p>zq{queue}htmlqz</p>",
                attachments=(
                    [
                        {
                            "key": attachment_key,
                            "filename": "invoice.pdf",
                            "content_type": "application/pdf",
                            "size": 10,
                        }
                    ]
                    if attachment_key
                    else []
                ),
                thread_key=queue,
                queue_id=queue_id,
                lead=LeadRequest(source=f"form:{queue}") if lead else None,
            ),
        )
    return result.interaction_id, result.conversation_id


@pytest.fixture
async def world(
    app: web.Application, make_user: UserFactory, client: TestClient[Any, Any]
) -> World:
    ann = await make_user(Role.OPERATOR, email="ann@example.com", name="Ann")
    bob = await make_user(Role.OPERATOR, email="bob@example.com", name="Bob")
    sue = await make_user(Role.SUPERVISOR, email="sue@example.com", name="Sue")
    ada = await make_user(Role.ADMIN, email="ada@example.com", name="Ada")
    sessions = app[SESSIONS]
    async with sessions() as session, session.begin():
        one = await create_queue(session, CLI, name="One")
        two = await create_queue(session, CLI, name="Two")
        await set_members(session, CLI, one.id, [ann.operator.id])
        await set_members(session, CLI, two.id, [bob.operator.id])
        _, erp = await create_token(session, CLI, "erp")
        _, bot = await create_token(session, CLI, "bot", Role.OPERATOR)
    keys = {
        queue: await app[ATTACHMENTS].put(f"zq{queue}fileqz".encode()) for queue in ("q1", "q2")
    }
    interactions: dict[str, int] = {}
    conversations: dict[str, int] = {}
    for queue, queue_id in (("q1", one.id), ("q2", two.id)):
        interactions[f"{queue}.in"], conversations[queue] = await inbound(
            app, queue, queue_id, attachment_key=keys[queue], lead=True
        )
    for queue, user in (("q1", ann), ("q2", bob)):
        reply = await user.post(
            f"/api/v1/conversations/{conversations[queue]}/reply",
            json={"text": f"zq{queue}replyqz"},
        )
        interactions[f"{queue}.reply"] = (await json_of(reply, 201))["interaction"]["id"]
    # Sue's notes mention Ann in both: only the one Ann may see notifies her.
    for queue in ("q1", "q2"):
        note = await sue.post(
            f"/api/v1/conversations/{conversations[queue]}/notes",
            json={"text": f"@ann @bob zq{queue}noteqz"},
        )
        interactions[f"{queue}.note"] = (await json_of(note, 201))["id"]
    for queue, user in (("q1", ann), ("q2", bob)):
        assigned = await sue.post(
            f"/api/v1/conversations/{conversations[queue]}/assign",
            json={"assignee_id": user.operator.id},
        )
        await json_of(assigned, 200)
    async with sessions() as session, session.begin():
        contact = await session.get(Interaction, interactions["q1.in"])
        assert contact is not None
        contact_id = contact.contact_id
        orphan = Interaction(
            conversation_id=None,
            contact_id=contact_id,
            kind=InteractionKind.EVENT,
            direction=Direction.IN,
            channel="api",
            text="zqorphanqz",
            occurred_at=utcnow(),
        )
        # The same name: a merge suggestion for Anna.
        other = Contact(display_name="Anna Novak")
        session.add_all([orphan, other])
        await session.flush()
        session.add(Identity(contact_id=other.id, kind=IdentityKind.EMAIL, address="an@x.example"))
        owned = Lead(
            contact_id=contact_id,
            conversation_id=conversations["q2"],
            source="manual",
            owner_id=ann.operator.id,
            pipeline_id=DEFAULT_PIPELINE,
        )
        offers = {
            queue: Offer(
                conversation_id=conversations[queue],
                operator_id=user.operator.id,
                queue_id=queue_id,
                expires_at=utcnow() + timedelta(hours=1),
            )
            for queue, user, queue_id in (("q1", ann, one.id), ("q2", bob, two.id))
        }
        session.add_all([owned, *offers.values()])
        await session.flush()
        interactions["orphan"] = orphan.id
        by_conversation = {conversation: name for name, conversation in conversations.items()}
        leads = {
            "owned" if lead.owner_id is not None else by_conversation[lead.conversation_id]: lead.id
            for lead in await session.scalars(select(Lead))
            if lead.conversation_id is not None
        }
    users = {"ann": ann, "bob": bob, "sue": sue, "ada": ada}
    callers = {name: Caller(name, user.client) for name, user in users.items()}
    callers["erp"] = Caller("erp", client, {"Authorization": f"Bearer {erp}"})
    callers["bot"] = Caller("bot", client, {"Authorization": f"Bearer {bot}"})
    return World(
        app=app,
        users=users,
        callers=callers,
        queues={"q1": one.id, "q2": two.id},
        contact=contact_id,
        other_contact=other.id,
        conversations=conversations,
        interactions=interactions,
        leads=leads,
        offers={queue: offer.id for queue, offer in offers.items()},
    )


# --- the matrix: exactly what each caller gets from each route ------------------------------


async def test_timeline_is_each_callers_view_and_never_a_note_for_tokens(world: World) -> None:
    for name, caller in world.callers.items():
        response = await caller.get(
            f"/api/v1/contacts/{world.contact}/timeline", params={"limit": 100}
        )
        items = (await json_of(response, 200))["items"]
        got = world.interaction_names([item["id"] for item in items])
        assert got == SEES_INTERACTIONS[name], name
    erp = await world.callers["erp"].get(f"/api/v1/contacts/{world.contact}/timeline")
    items = (await erp.json())["items"]
    assert {item["direction"] for item in items} == {"in", "out"}
    assert all(item["kind"] != "note" for item in items)
    # What the customer saw comes with its HTML and attachment list.
    inbound = next(item for item in items if item["id"] == world.interactions["q2.in"])
    assert "zqq2htmlqz" in inbound["html"]
    assert inbound["attachments"][0]["filename"] == "invoice.pdf"


async def test_timeline_pages_hold_only_the_callers_view(world: World) -> None:
    """Paging filters in the query, so no page is short of what follows it, and none leaks."""
    ann = world.callers["ann"]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = await json_of(
            await ann.get(f"/api/v1/contacts/{world.contact}/timeline", params=params), 200
        )
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert world.interaction_names(seen) == SEES_INTERACTIONS["ann"]


async def test_conversation_routes_follow_the_rule(world: World) -> None:
    for name, caller in world.callers.items():
        listed = await caller.get("/api/v1/conversations")
        if name not in CONSOLE:
            assert listed.status == 403, name
        else:
            items = (await json_of(listed, 200))["items"]
            got = {world.conversation_name(item["id"]) for item in items}
            assert got == SEES_CONVERSATIONS[name], name
        for queue, conversation_id in world.conversations.items():
            visible = queue in SEES_CONVERSATIONS[name]
            base = f"/api/v1/conversations/{conversation_id}"
            for path in (base, f"{base}/outbox", f"{base}/routing", f"{base}/reply-options"):
                response = await caller.get(path)
                assert response.status == (200 if visible else 403), (name, path)
            response = await caller.get(f"{base}/interactions", params={"limit": 100})
            if not visible:
                assert response.status == 403, (name, queue)
                continue
            items = (await json_of(response, 200))["items"]
            got = world.interaction_names([item["id"] for item in items])
            assert got == {f"{queue}.in", f"{queue}.reply", f"{queue}.note"}, name


async def test_attachments_and_html_only_for_those_who_see_the_interaction(world: World) -> None:
    for name, caller in world.callers.items():
        for interaction, interaction_id in world.interactions.items():
            visible = interaction in SEES_INTERACTIONS[name] and name in CONSOLE
            html = await caller.get(f"/api/v1/interactions/{interaction_id}/html")
            attachment = await caller.get(f"/api/v1/interactions/{interaction_id}/attachments/0")
            if not visible:
                assert (html.status, attachment.status) == (403, 403), (name, interaction)
                continue
            if interaction.endswith(".in"):
                queue = interaction.split(".")[0]
                assert html.status == 200, (name, interaction)
                assert f"zq{queue}htmlqz" in await html.text()
                assert attachment.status == 200, (name, interaction)
                assert await attachment.read() == f"zq{queue}fileqz".encode()
            else:
                # Seen, but there is no HTML or attachment to it.
                assert (html.status, attachment.status) == (404, 404), (name, interaction)


async def test_leads_follow_the_rule(world: World) -> None:
    for name, caller in world.callers.items():
        listed = await caller.get("/api/v1/leads")
        if name not in CONSOLE:
            assert listed.status == 403
        else:
            items = (await json_of(listed, 200))["items"]
            assert world.lead_names([item["id"] for item in items]) == SEES_LEADS[name], name
        for lead, lead_id in world.leads.items():
            response = await caller.get(f"/api/v1/leads/{lead_id}")
            visible = lead in SEES_LEADS[name]
            assert response.status == (200 if visible else 403), (name, lead)


async def test_tasks_follow_the_rule(world: World) -> None:
    """A callback waiting in queue Two, a follow-up Ann set on queue One's conversation, and
    one Sue gave Ann on queue Two's conversation (Ann's own, in a conversation she may not
    see: like the lead she owns there)."""
    async with world.app[SESSIONS]() as session, session.begin():
        contact = world.contact
        callback = await open_callback(
            session,
            MissedCall(
                contact_id=contact,
                conversation_id=world.conversations["q2"],
                queue_id=world.queues["q2"],
                number="+4930123456",
                reason="abandoned",
            ),
            utcnow(),
        )
    due = (utcnow() + timedelta(hours=1)).isoformat()
    q1_body = {"conversation_id": world.conversations["q1"], "due_at": due}
    follow_up = await json_of(await world.users["ann"].post("/api/v1/tasks", json=q1_body), 201)
    q2_body = {
        "conversation_id": world.conversations["q2"],
        "due_at": due,
        "owner_id": world.users["ann"].operator.id,
    }
    given = await json_of(await world.users["sue"].post("/api/v1/tasks", json=q2_body), 201)
    names = {callback.id: "callback", follow_up["id"]: "q1", given["id"]: "owned"}
    sees = {
        "ann": {"q1", "owned"},
        "bob": {"callback", "owned"},
        "sue": {"callback", "q1", "owned"},
        "ada": {"callback", "q1", "owned"},
        "bot": set(),
    }
    for name, caller in world.callers.items():
        listed = await caller.get("/api/v1/tasks", params={"scope": "all"})
        if name not in CONSOLE:
            assert listed.status == 403, name
            continue
        items = (await json_of(listed, 200))["items"]
        assert {names[item["id"]] for item in items} == sees[name], name
    # Bob may not set a follow-up on a conversation he may not see, nor close Ann's task there.
    refused = await world.users["bob"].post("/api/v1/tasks", json=q1_body)
    assert refused.status == 404
    assert (await world.users["bob"].post(f"/api/v1/tasks/{follow_up['id']}/done")).status == 404


async def test_the_customer_context_holds_only_what_the_caller_may_see(world: World) -> None:
    """Beside a conversation, the customer's other conversations, where they wrote last and
    how often this week come only from conversations the caller may see."""
    for name, caller in world.callers.items():
        for queue, conversation_id in world.conversations.items():
            response = await caller.get(f"/api/v1/conversations/{conversation_id}/context")
            if queue not in SEES_CONVERSATIONS[name]:
                assert response.status == 403, (name, queue)
                continue
            body = await json_of(response, 200)
            others = {world.conversation_name(item["id"]) for item in body["unresolved_elsewhere"]}
            assert others == SEES_CONVERSATIONS[name] - {queue}, (name, queue)
            # Anna wrote in q2 last: the callers who see it are pointed there.
            last = "q2" if "q2" in SEES_CONVERSATIONS[name] else "q1"
            assert body["reply_channel"]["conversation_id"] == world.conversations[last], name
            assert body["repeat"]["messages"] == len(SEES_CONVERSATIONS[name]), name


async def test_suggested_replies_come_only_from_conversations_the_caller_may_see(
    world: World,
) -> None:
    """Each conversation's reply is indexed as the answer to the other one's question, so a
    caller asking in one is offered the other's reply only if they may see it."""
    async with world.app[SESSIONS]() as session, session.begin():
        docs = [
            SuggestionDoc(
                kind=SuggestionKind.REPLY,
                source_id=world.interactions[f"{queue}.reply"],
                conversation_id=world.conversations[queue],
                question=PIECES[f"{other}.in"][0],
                answer=PIECES[f"{queue}.reply"][0],
                answer_key=queue,
            )
            for queue, other in (("q1", "q2"), ("q2", "q1"))
        ]
        session.add_all(docs)
        await session.flush()
        await LexicalEngine().index(session, docs)
    for name, caller in world.callers.items():
        for queue, conversation_id in world.conversations.items():
            response = await caller.get(f"/api/v1/conversations/{conversation_id}/suggestions")
            if queue not in SEES_CONVERSATIONS[name]:
                assert response.status == 403, (name, queue)
                continue
            body = await json_of(response, 200)
            other = "q2" if queue == "q1" else "q1"
            offered = {
                world.conversation_name(item["source"]["conversation_id"])
                for item in body["suggestions"]
            }
            assert offered == SEES_CONVERSATIONS[name] & {other}, (name, queue)
            texts = " ".join(item["text"] for item in body["suggestions"])
            assert set(re.findall(r"zq\w+qz", texts)) <= allowed_markers(name), (name, queue)


async def test_an_operator_may_not_change_a_lead_they_may_not_see(world: World) -> None:
    ann = world.users["ann"]
    response = await ann.patch(f"/api/v1/leads/{world.leads['q2']}", json={"stage": "won"})
    assert response.status == 403
    async with world.app[SESSIONS]() as session:
        lead = await session.get(Lead, world.leads["q2"])
    assert lead is not None
    assert lead.stage == "new"


async def test_console_routes_show_only_the_callers_conversations(world: World) -> None:
    for name, caller in world.callers.items():
        inbox = await caller.get("/api/v1/inbox")
        notifications = await caller.get("/api/v1/notifications")
        offers = await caller.get("/api/v1/offers")
        suggestions = await caller.get(f"/api/v1/contacts/{world.contact}/merge-suggestions")
        monitor = await caller.get("/api/v1/monitor")
        if name not in CONSOLE:
            statuses = {r.status for r in (inbox, notifications, offers, suggestions, monitor)}
            assert statuses == {403}
            continue
        assert monitor.status == (200 if name in SUPERVISORS else 403)
        suggested = (await json_of(suggestions, 200))["items"]
        assert [item["contact"]["id"] for item in suggested] == [world.other_contact]
        offered = {item["conversation_id"] for item in (await json_of(offers, 200))["items"]}
        expected_offers = {
            "ann": {"q1"},
            "bob": {"q2"},
            "sue": {"q1", "q2"},
            "ada": {"q1", "q2"},
            "bot": set(),
        }[name]
        assert {world.conversation_name(item) for item in offered} == expected_offers, name
        if name == "bot":
            # A token is nobody's inbox.
            assert (inbox.status, notifications.status) == (400, 400)
            continue
        sections = await json_of(inbox, 200)
        in_inbox = {
            world.conversation_name(item["id"])
            for section in ("mine", "queues", "unassigned")
            for item in sections[section]["items"]
        }
        # Supervisors work no queue here and hold nothing: their inbox is empty.
        assert in_inbox == (set() if name in SUPERVISORS else SEES_CONVERSATIONS[name]), name
        noted = (await json_of(notifications, 200))["items"]
        expected_notes = {"ann": {"q1"}, "bob": {"q2"}}.get(name, set())
        assert {world.conversation_name(item["conversation_id"]) for item in noted} == (
            expected_notes
        ), name


async def test_search_and_views_find_only_what_the_caller_may_see(world: World) -> None:
    for name, caller in world.callers.items():
        views = await caller.get("/api/v1/views/conversations", params={"status": "all"})
        if name not in CONSOLE:
            assert views.status == 403
            assert (await caller.get("/api/v1/search", params={"q": "zqq1inqz"})).status == 403
            continue
        listed = {world.conversation_name(item["id"]) for item in (await views.json())["items"]}
        assert listed == SEES_CONVERSATIONS[name], name
        for interaction, markers in PIECES.items():
            for marker in markers:
                response = await caller.get("/api/v1/search", params={"q": marker})
                assert response.status == 200, await response.text()
                hits = (await response.json())["conversations"]["items"]
                found = {world.conversation_name(hit["conversation"]["id"]) for hit in hits}
                shown = interaction in SEES_INTERACTIONS[name] and interaction != "orphan"
                # Markers only the HTML or the attachment list carries are not indexed.
                indexed = "html" not in marker and "file" not in marker
                expected = {interaction.split(".")[0]} if shown and indexed else set()
                assert found == expected, (name, marker)


# --- every GET route, every caller: no content outside the caller's view -------------------

# Routes tested exactly above (what each caller gets), or elsewhere in this file.
EXACT_ROUTES = frozenset(
    {
        "/api/v1/contacts/{id}/timeline",
        "/api/v1/conversations",
        "/api/v1/conversations/{id}",
        "/api/v1/conversations/{id}/interactions",
        "/api/v1/conversations/{id}/outbox",
        "/api/v1/conversations/{id}/routing",
        "/api/v1/conversations/{id}/reply-options",
        "/api/v1/conversations/{id}/context",
        "/api/v1/conversations/{id}/suggestions",
        "/api/v1/interactions/{id}/html",
        "/api/v1/interactions/{id}/attachments/{index}",
        "/api/v1/leads",
        "/api/v1/leads/{id}",
        "/api/v1/tasks",
        "/api/v1/inbox",
        "/api/v1/notifications",
        "/api/v1/offers",
        "/api/v1/contacts/{id}/merge-suggestions",
        "/api/v1/monitor",
        "/api/v1/search",
        "/api/v1/views/conversations",
        "/ws",
    }
)
# Routes whose answer may hold message content but that only admins may call (admins see
# everything): listed here on purpose, so a new such route still needs a decision.
# Routes only admins may call (checked below), whatever the conversation: raw email held in
# quarantine, and a person's whole history for a privacy request.
ADMINS_ONLY_CONTENT = frozenset(
    {
        "/api/v1/quarantine",
        "/api/v1/quarantine/{id}/raw",
        "/api/v1/contacts/{id}/export",
    }
)
# Routes whose text is the team's own writing for every operator, never a customer's:
# knowledge articles (core/knowledge.py; tests/test_knowledge_api.py checks who may read).
TEAM_WRITTEN = frozenset(
    {
        "/api/v1/knowledge/articles",
        "/api/v1/knowledge/articles/{id}",
        "/api/v1/knowledge/articles/{id}/versions",
        "/api/v1/knowledge/articles/{id}/versions/{index}",
    }
)
# Routes that answer figures over the whole team's work (counts, times, values, names of
# queues, operators and lead sources; never what anyone wrote), for supervisors and admins
# only, who see everything (core/reports; tests/test_reports.py checks the figures).
SUPERVISORS_ONLY_FIGURES = frozenset({"/api/v1/reports/{name}", "/api/v1/reports/{name}/export"})
# Field names that hold what people wrote (or its subject).
CONTENT_FIELDS = frozenset(
    {"text", "html", "subject", "conversation_subject", "excerpt", "preview", "attachments"}
)


def _carries_content(annotation: Any, seen: set[Any] | None = None) -> bool:
    """Whether a response annotation can hold interactions or conversation content."""
    seen = set() if seen is None else seen
    if annotation in seen:
        return False
    seen.add(annotation)
    if annotation in (InteractionOut, ConversationOut):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(
            name in CONTENT_FIELDS or _carries_content(info.annotation, seen)
            for name, info in annotation.model_fields.items()
        )
    return any(_carries_content(arg, seen) for arg in get_args(annotation))


def test_content_detection_sees_through_pages_and_lists() -> None:
    from web.schemas import LeadOut, OperatorOut, Page
    from web.schemas_console import InboxOut, NotificationsOut

    assert _carries_content(Page[InteractionOut])
    assert _carries_content(list[ConversationOut])
    assert _carries_content(InboxOut)
    assert _carries_content(NotificationsOut)
    assert not _carries_content(LeadOut)
    assert not _carries_content(typing.Optional[OperatorOut])  # noqa: UP045


def test_every_get_route_that_can_return_content_is_in_the_matrix(app: web.Application) -> None:
    served = {doc.path for doc in app[ROUTE_DOCS] if doc.method == "GET"}
    assert served >= EXACT_ROUTES | ADMINS_ONLY_CONTENT, "a route of the matrix is gone"
    for doc in app[ROUTE_DOCS]:
        if doc.method != "GET" or not doc.roles:
            continue  # public pages carry no records
        # A raw response (a file, a page, a socket) may hold anything: it needs a decision.
        if doc.response is None or _carries_content(doc.response):
            assert doc.path in (
                EXACT_ROUTES | ADMINS_ONLY_CONTENT | TEAM_WRITTEN | SUPERVISORS_ONLY_FIGURES
            ), (
                f"GET {doc.path} can return conversation content: add it to the matrix of "
                "tests/test_visibility.py with what each caller may get"
            )
        if doc.path in ADMINS_ONLY_CONTENT:
            assert doc.roles == {Role.ADMIN}, f"GET {doc.path} must be for admins only"
        if doc.path in SUPERVISORS_ONLY_FIGURES:
            assert doc.roles == {Role.SUPERVISOR, Role.ADMIN}, f"GET {doc.path}: supervisors only"


def _fill(path: str, world: World) -> list[str]:
    """The path with every record of its kind in the world (or one id where none exists)."""
    params = re.findall(r"{(\w+)(?::[^}]*)?}", path)
    if not params:
        return [path]
    kinds: dict[str, list[int] | list[str]] = {
        "/api/v1/conversations/": list(world.conversations.values()),
        "/api/v1/interactions/": list(world.interactions.values()),
        "/api/v1/leads/": list(world.leads.values()),
        # The pipeline every database starts with (its board holds the world's leads).
        "/api/v1/pipelines/": [1],
        "/api/v1/contacts/": [world.contact, world.other_contact],
        "/api/v1/offers/": list(world.offers.values()),
        # Nothing of these in the world: one id shows the route answers without content.
        "/api/v1/canned-responses/": [1],
        "/api/v1/channel-accounts/": [1],
        "/api/v1/accounts/": [1],
        "/api/v1/quarantine/": [1],
        "/api/v1/saved-views/": [1],
        "/api/v1/knowledge/articles/": [1],
        "/api/v1/queues/": list(world.queues.values()),
        "/api/v1/operators/": [user.operator.id for user in world.users.values()],
        # An ERP order by its number (none in the embedded ERP here: answers without content).
        "/api/v1/erp/orders/": [10330],
        # Reports: operators get a 403; supervisors see everything anyway.
        "/api/v1/reports/": ["volume", "sales_by_owner"],
    }
    prefix = next((prefix for prefix in kinds if path.startswith(prefix)), None)
    unknown = f"GET {path}: tell tests/test_visibility.py which records fill its path"
    assert prefix is not None, unknown
    assert set(params) <= {"id", "index", "number", "name"}, unknown
    return [
        re.sub(r"{index}", "0", re.sub(r"{(id|number|name)}", str(record), path))
        for record in kinds[prefix]
    ]


async def test_no_get_route_returns_content_outside_the_callers_view(
    app: web.Application, world: World
) -> None:
    routes = [
        doc.path
        for doc in app[ROUTE_DOCS]
        if doc.method == "GET" and doc.roles and doc.path != "/ws"
    ]
    for name, caller in world.callers.items():
        forbidden = ALL_MARKERS - allowed_markers(name)
        for route in routes:
            for path in _fill(route, world):
                response = await caller.get(path, params={"limit": 100} if "{" not in route else {})
                assert response.status < 500, (name, path, await response.text())
                body = (await response.read()).decode("utf-8", "replace")
                leaked = sorted(marker for marker in forbidden if marker in body)
                assert not leaked, f"{name} got {leaked} from GET {path}"


# --- the websocket --------------------------------------------------------------------------


async def receive_until_sentinel(socket: Any) -> list[dict[str, Any]]:
    """Every event up to the next contact.updated (the sentinel every socket receives)."""
    seen: list[dict[str, Any]] = []
    while True:
        # A bound so a broken socket fails the test instead of hanging it; no timing is tested.
        message = await asyncio.wait_for(socket.receive_json(), 10)
        if message["type"] == "contact.updated":
            return seen
        seen.append(message)


async def sentinel(world: World, n: int) -> None:
    response = await world.users["sue"].patch(
        f"/api/v1/contacts/{world.contact}", json={"tags": [f"sentinel-{n}"]}
    )
    await json_of(response, 200)


def about(events: list[dict[str, Any]], world: World, queue: str) -> list[dict[str, Any]]:
    """The events that concern the conversation of `queue` (or its lead)."""
    conversation = world.conversations[queue]
    return [
        event
        for event in events
        if event["ids"].get("conversation") == conversation
        or event["ids"].get("lead") == world.leads[queue]
        or event["ids"].get("interaction") in {world.interactions[f"{queue}.in"]}
    ]


async def activity(world: World, queue: str, n: int) -> None:
    """A new message, a note, a reply, a status change and a lead change in `queue`'s
    conversation, made by whoever may (the supervisor)."""
    sue = world.users["sue"]
    conversation = world.conversations[queue]
    await inbound(world.app, queue, world.queues[queue], n=n, text=f"message {n}")
    await json_of(
        await sue.post(f"/api/v1/conversations/{conversation}/notes", json={"text": f"n{n}"}), 201
    )
    await json_of(
        await sue.post(f"/api/v1/conversations/{conversation}/reply", json={"text": f"r{n}"}), 201
    )
    for status in ("pending", "open"):
        await json_of(
            await sue.post(f"/api/v1/conversations/{conversation}/status", json={"status": status}),
            200,
        )
    stage = "qualified" if n % 2 else "proposal"
    await json_of(
        await sue.patch(f"/api/v1/leads/{world.leads[queue]}", json={"stage": stage}), 200
    )


async def test_a_socket_forwards_only_what_its_caller_may_see(
    world: World, client: TestClient[Any, Any]
) -> None:
    bot_headers = world.callers["bot"].headers
    async with (
        world.app[BUS].subscribe() as published,
        world.users["ann"].client.ws_connect("/ws") as ann,
        world.users["sue"].client.ws_connect("/ws") as sue,
        client.ws_connect("/ws", headers=bot_headers) as bot,
    ):
        for socket in (ann, sue, bot):
            assert (await socket.receive_json())["type"] == "hello"
        await activity(world, "q2", 1)
        await activity(world, "q1", 2)
        await sentinel(world, 1)
        to_ann, to_sue, to_bot = [await receive_until_sentinel(s) for s in (ann, sue, bot)]

        assert about(to_ann, world, "q2") == []
        ann_types = {event["type"] for event in about(to_ann, world, "q1")}
        assert ann_types >= {"interaction.created", "conversation.updated", "lead.updated"}
        sue_types = {event["type"] for event in about(to_sue, world, "q2")}
        assert sue_types >= {"interaction.created", "conversation.updated", "lead.updated"}
        assert len(about(to_sue, world, "q1")) == len(about(to_ann, world, "q1"))
        # A token without an operator sees no conversation, so hears of none.
        assert {event["type"] for event in to_bot} <= {
            kind for kind, audience in EVENT_AUDIENCE.items() if audience is Audience.EVERYONE
        }

    # Every event about a conversation or lead was published with its audience.
    events: list[Event] = [published.get_nowait() for _ in range(published.qsize())]
    placed = [event for event in events if EVENT_AUDIENCE.get(event.type) is Audience.PLACED]
    assert placed
    for event in placed:
        assert {"queues", "operators"} <= set(event.labels), event


async def test_a_socket_follows_queue_membership_and_changes_of_hands(world: World) -> None:
    ada, sue = world.users["ada"], world.users["sue"]
    ann_id, bob_id = world.users["ann"].operator.id, world.users["bob"].operator.id
    two = world.queues["q2"]
    conversation = world.conversations["q2"]
    async with world.users["ann"].client.ws_connect("/ws") as ann:
        assert (await ann.receive_json())["type"] == "hello"
        # Ann joins queue Two: its conversation's events reach her from then on.
        joined = await ada.put(
            f"/api/v1/queues/{two}/members", json={"operator_ids": [bob_id, ann_id]}
        )
        await json_of(joined, 200)
        await activity(world, "q2", 3)
        await sentinel(world, 3)
        heard = {event["type"] for event in about(await receive_until_sentinel(ann), world, "q2")}
        assert heard >= {"interaction.created", "conversation.updated", "lead.updated"}

        # And leaves it: nothing more.
        left = await ada.put(f"/api/v1/queues/{two}/members", json={"operator_ids": [bob_id]})
        await json_of(left, 200)
        await activity(world, "q2", 4)
        await sentinel(world, 4)
        assert about(await receive_until_sentinel(ann), world, "q2") == []

        # Given the conversation, she hears of it; when it goes back to Bob she hears that it
        # left her (its id, nothing more), and then nothing.
        given = await sue.post(
            f"/api/v1/conversations/{conversation}/assign", json={"assignee_id": ann_id}
        )
        await json_of(given, 200)
        taken = await sue.post(
            f"/api/v1/conversations/{conversation}/assign", json={"assignee_id": bob_id}
        )
        await json_of(taken, 200)
        await activity(world, "q2", 5)
        await sentinel(world, 5)
        heard_events = about(await receive_until_sentinel(ann), world, "q2")
        assigned = [event for event in heard_events if event["type"] == "conversation.assigned"]
        assert [event["ids"]["operator"] for event in assigned] == [ann_id, bob_id]
        assert {event["type"] for event in heard_events} == {
            "conversation.assigned",
            "routing.decision",
        }


async def test_a_socket_closes_when_its_operator_is_deactivated(world: World) -> None:
    ann_id = world.users["ann"].operator.id
    async with world.users["ann"].client.ws_connect("/ws") as ann:
        assert (await ann.receive_json())["type"] == "hello"
        response = await world.users["ada"].patch(
            f"/api/v1/operators/{ann_id}", json={"active": False}
        )
        await json_of(response, 200)
        while True:
            message = await asyncio.wait_for(ann.receive(), 10)
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                break
            assert message.type == WSMsgType.TEXT
            assert about([message.json()], world, "q1") == []
    assert ann.closed


async def test_integration_tokens_cannot_open_the_socket(
    world: World, client: TestClient[Any, Any]
) -> None:
    response = await client.get("/ws", headers=world.callers["erp"].headers)
    assert response.status == 403
