"""Tasks: follow-ups set on conversations, callbacks of missed calls, who sees and works which
(core/tasks.py, web/routes_tasks.py), their reminders in the notifications, and placing a
callback's call."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.audit import CLI, Actor
from core.db import SessionFactory
from core.errors import Conflict
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import (
    AuditEntry,
    IdentityKind,
    Notification,
    Operator,
    Role,
    Task,
    TaskOutcome,
    utcnow,
)
from core.queues import set_members
from core.settings import Settings
from core.tasks import CallPlacer, MissedCall, close_callbacks, open_callback
from routing.service import RoutingOptions, run_pass
from routing.setup import create_queue
from tests.conftest import User, UserFactory, new_user
from web.app import create_app
from web.keys import CALL_PLACER

pytestmark = pytest.mark.both_databases  # tests/conftest.py

_serial = itertools.count(1)

TASK_KEYS = {
    "id",
    "kind",
    "state",
    "outcome",
    "contact",
    "conversation_id",
    "conversation_channel",
    "lead_id",
    "queue_id",
    "queue_name",
    "owner_id",
    "owner_name",
    "due_at",
    "overdue",
    "note",
    "number",
    "reason",
    "waited_seconds",
    "attempts",
    "voicemail_interaction_id",
    "created_at",
    "done_at",
    "created_by_id",
}


async def json_of(response: Any, status: int) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


def later(**delta: float) -> str:
    return (utcnow() + timedelta(**delta)).isoformat()


async def queue_with(sessions: SessionFactory, name: str, *members: User) -> int:
    async with sessions() as session, session.begin():
        queue = await create_queue(session, CLI, name=name)
        await set_members(session, CLI, queue.id, [member.operator.id for member in members])
    return queue.id


async def conversation_in(
    sessions: SessionFactory, queue_id: int | None, name: str = "Anna Novak"
) -> tuple[int, int]:
    """A customer's email waiting in `queue_id`: (conversation, contact)."""
    serial = next(_serial)
    async with sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id=f"<task-{serial}@example.com>",
                addresses=[Address(IdentityKind.EMAIL, f"customer{serial}@example.com")],
                display_name=name,
                subject="Where is my order?",
                text="Please call me back",
                queue_id=queue_id,
            ),
        )
    return result.conversation_id, result.contact_id


async def missed_call(
    sessions: SessionFactory,
    contact_id: int,
    conversation_id: int | None,
    queue_id: int | None,
    *,
    reason: str = "abandoned",
    waited: int = 45,
) -> Task:
    async with sessions() as session, session.begin():
        return await open_callback(
            session,
            MissedCall(
                contact_id=contact_id,
                conversation_id=conversation_id,
                queue_id=queue_id,
                number="+4930123456",
                reason=reason,
                waited_seconds=waited,
            ),
            utcnow(),
        )


async def task_row(sessions: SessionFactory, task_id: int) -> Task:
    async with sessions() as session:
        task = await session.get(Task, task_id)
    assert task is not None
    return task


async def listed(user: User, **params: Any) -> list[dict[str, Any]]:
    body = await json_of(await user.get("/api/v1/tasks", params=params), 200)
    return list(body["items"])


def ids(items: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for item in items]


@dataclass
class Team:
    ann: User
    bob: User
    carl: User
    sue: User
    queue: int
    other_queue: int
    conversation: int
    contact: int


@pytest.fixture
async def team(make_user: UserFactory, sessions: SessionFactory) -> Team:
    """Ann and Bob work Support, Carl works Sales; Sue supervises. One customer waits in
    Support."""
    ann = await make_user(Role.OPERATOR, email="ann@example.com", name="Ann")
    bob = await make_user(Role.OPERATOR, email="bob@example.com", name="Bob")
    carl = await make_user(Role.OPERATOR, email="carl@example.com", name="Carl")
    sue = await make_user(Role.SUPERVISOR, email="sue@example.com", name="Sue")
    support = await queue_with(sessions, "Support", ann, bob)
    sales = await queue_with(sessions, "Sales", carl)
    conversation, contact = await conversation_in(sessions, support)
    return Team(ann, bob, carl, sue, support, sales, conversation, contact)


# --- follow-ups ------------------------------------------------------------------------------


async def test_a_follow_up_on_a_conversation_one_may_see(
    team: Team, sessions: SessionFactory
) -> None:
    due = later(hours=2)
    created = await json_of(
        await team.ann.post(
            "/api/v1/tasks",
            json={"conversation_id": team.conversation, "due_at": due, "note": " Ask again "},
        ),
        201,
    )
    assert set(created) == TASK_KEYS
    assert created["kind"] == "follow_up"
    assert (created["state"], created["outcome"], created["overdue"]) == ("open", None, False)
    assert created["contact"] == {"id": team.contact, "name": "Anna Novak"}
    assert (created["conversation_id"], created["conversation_channel"]) == (
        team.conversation,
        "email",
    )
    assert (created["queue_id"], created["queue_name"]) == (team.queue, "Support")
    assert (created["owner_id"], created["owner_name"]) == (team.ann.operator.id, "Ann")
    assert created["created_by_id"] == team.ann.operator.id
    assert datetime.fromisoformat(created["due_at"]) == datetime.fromisoformat(due)
    assert created["note"] == "Ask again"
    # A follow-up is no callback.
    callback_fields = ("number", "reason", "waited_seconds", "attempts", "voicemail_interaction_id")
    assert {created[name] for name in callback_fields} == {None}

    assert ids(await listed(team.ann, scope="mine")) == [created["id"]]
    # Bob works the queue: he sees it among his queues' tasks, not as his.
    assert ids(await listed(team.bob, scope="queues")) == [created["id"]]
    assert await listed(team.bob, scope="mine") == []
    async with sessions() as session:
        audited = await session.scalar(
            select(func.count()).where(
                AuditEntry.action == "task.create", AuditEntry.entity_id == str(created["id"])
            )
        )
    assert audited == 1


async def test_a_follow_up_is_refused_where_it_cannot_be(team: Team) -> None:
    good = {"conversation_id": team.conversation, "due_at": later(hours=1)}
    # Carl works another queue: the conversation does not exist for him.
    refused = await json_of(await team.carl.post("/api/v1/tasks", json=good), 404)
    assert refused["error"]["code"] == "not_found"
    missing = {**good, "conversation_id": team.conversation + 1000}
    await json_of(await team.ann.post("/api/v1/tasks", json=missing), 404)

    past = await json_of(
        await team.ann.post("/api/v1/tasks", json={**good, "due_at": later(hours=-1)}), 400
    )
    assert "due_at" in past["error"]["fields"]
    naive = {**good, "due_at": (utcnow() + timedelta(hours=1)).replace(tzinfo=None).isoformat()}
    assert (
        "due_at"
        in (await json_of(await team.ann.post("/api/v1/tasks", json=naive), 400))["error"]["fields"]
    )
    long_note = await json_of(
        await team.ann.post("/api/v1/tasks", json={**good, "note": "x" * 2001}), 400
    )
    assert "note" in long_note["error"]["fields"]
    # An operator gives a follow-up only to a member of the conversation's queue.
    outsider = {**good, "owner_id": team.carl.operator.id}
    refused_owner = await json_of(await team.ann.post("/api/v1/tasks", json=outsider), 400)
    assert "owner_id" in refused_owner["error"]["fields"]
    for_bob = await json_of(
        await team.ann.post("/api/v1/tasks", json={**good, "owner_id": team.bob.operator.id}), 201
    )
    assert for_bob["owner_id"] == team.bob.operator.id
    assert for_bob["created_by_id"] == team.ann.operator.id
    assert await listed(team.ann, scope="all") == [for_bob]


# --- lists -----------------------------------------------------------------------------------


async def test_scopes_mine_queues_overdue_and_all(team: Team, sessions: SessionFactory) -> None:
    async def follow_up(user: User, hours: float, conversation: int | None = None) -> int:
        body = {"conversation_id": conversation or team.conversation, "due_at": later(hours=hours)}
        return int((await json_of(await user.post("/api/v1/tasks", json=body), 201))["id"])

    anns = await follow_up(team.ann, 3)
    bobs = await follow_up(team.bob, 1)
    callback = (await missed_call(sessions, team.contact, team.conversation, team.queue)).id
    sales_conversation, _ = await conversation_in(sessions, team.other_queue, "Luis")
    carls = await follow_up(team.carl, 2, sales_conversation)
    # Ann's becomes overdue.
    async with sessions() as session, session.begin():
        await session.execute(
            update(Task).where(Task.id == anns).values(due_at=utcnow() - timedelta(minutes=5))
        )

    assert ids(await listed(team.ann, scope="mine")) == [anns]
    # Open ones by due time, soonest first: the callback is due at once.
    assert ids(await listed(team.ann, scope="queues")) == [callback, bobs]
    assert ids(await listed(team.bob, scope="queues")) == [anns, callback]
    assert ids(await listed(team.ann, scope="all")) == [anns, callback, bobs]
    assert ids(await listed(team.carl, scope="all")) == [carls]
    # Overdue: Ann's, and the callback (due the moment the call was missed).
    overdue = await listed(team.ann, scope="overdue")
    assert ids(overdue) == [anns, callback]
    assert [item["overdue"] for item in overdue] == [True, True]
    assert [item["overdue"] for item in await listed(team.ann, scope="mine")] == [True]
    assert [item["overdue"] for item in await listed(team.bob, scope="mine")] == [False]
    assert await listed(team.carl, scope="overdue") == []
    # A supervisor sees everyone's, in every scope but their own.
    assert ids(await listed(team.sue, scope="all")) == [anns, callback, bobs, carls]
    assert ids(await listed(team.sue, scope="overdue")) == [anns, callback]
    assert await listed(team.sue, scope="mine") == []

    callback_view = next(
        item for item in await listed(team.bob, scope="queues") if item["id"] == callback
    )
    assert callback_view["kind"] == "callback"
    assert callback_view["owner_id"] is None
    assert (callback_view["number"], callback_view["reason"]) == ("+4930123456", "abandoned")
    assert (callback_view["waited_seconds"], callback_view["attempts"]) == (45, 1)

    # Pages of one, by (due time, id), add up to the whole list.
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"scope": "all", "limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = await json_of(await team.sue.get("/api/v1/tasks", params=params), 200)
        seen.extend(ids(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [anns, callback, bobs, carls]

    bad = await json_of(await team.ann.get("/api/v1/tasks?scope=theirs"), 400)
    assert "scope" in bad["error"]["fields"]
    done_overdue = await team.ann.get("/api/v1/tasks?scope=overdue&state=done")
    assert done_overdue.status == 400


async def test_done_tasks_are_listed_latest_first_and_cannot_be_closed_twice(
    team: Team,
) -> None:
    body = {"conversation_id": team.conversation, "due_at": later(hours=1)}
    first = (await json_of(await team.ann.post("/api/v1/tasks", json=body), 201))["id"]
    second = (await json_of(await team.ann.post("/api/v1/tasks", json=body), 201))["id"]
    done = await json_of(await team.ann.post(f"/api/v1/tasks/{first}/done"), 200)
    assert (done["state"], done["outcome"]) == ("done", "done")
    assert done["done_at"] is not None
    cancelled = await json_of(
        await team.bob.post(f"/api/v1/tasks/{second}/done", json={"outcome": "cancelled"}), 200
    )
    assert cancelled["outcome"] == "cancelled"

    again = await json_of(await team.ann.post(f"/api/v1/tasks/{first}/done"), 409)
    assert again["error"]["code"] == "conflict"
    await json_of(await team.ann.patch(f"/api/v1/tasks/{first}", json={"note": "too late"}), 409)
    assert await listed(team.ann, scope="mine") == []
    assert ids(await listed(team.ann, scope="all", state="done")) == [second, first]
    # People close tasks as done or cancelled; answered and called back are the phone's.
    third = (await json_of(await team.ann.post("/api/v1/tasks", json=body), 201))["id"]
    await json_of(
        await team.ann.post(f"/api/v1/tasks/{third}/done", json={"outcome": "answered"}), 400
    )


async def test_an_operator_outside_the_queue_cannot_see_or_work_a_task(
    team: Team, sessions: SessionFactory
) -> None:
    callback = (await missed_call(sessions, team.contact, team.conversation, team.queue)).id
    follow_up = (
        await json_of(
            await team.ann.post(
                "/api/v1/tasks",
                json={"conversation_id": team.conversation, "due_at": later(hours=1)},
            ),
            201,
        )
    )["id"]
    assert await listed(team.carl, scope="all") == []
    assert await listed(team.carl, scope="queues") == []
    for task_id in (callback, follow_up):
        for response in (
            await team.carl.post(f"/api/v1/tasks/{task_id}/done"),
            await team.carl.patch(f"/api/v1/tasks/{task_id}", json={"note": "mine now"}),
            await team.carl.post(f"/api/v1/tasks/{task_id}/call"),
        ):
            assert (await json_of(response, 404))["error"]["code"] == "not_found"
        assert (await task_row(sessions, task_id)).done_at is None
    # Given to him (a supervisor may), he sees it from then on.
    await json_of(
        await team.sue.patch(f"/api/v1/tasks/{callback}", json={"owner_id": team.carl.operator.id}),
        200,
    )
    assert ids(await listed(team.carl, scope="mine")) == [callback]


async def test_who_may_give_a_task_to_whom(team: Team, sessions: SessionFactory) -> None:
    callback = (await missed_call(sessions, team.contact, team.conversation, team.queue)).id
    # Ann takes the unowned callback, then gives it to Bob, a member of its queue.
    taken = await json_of(
        await team.ann.patch(f"/api/v1/tasks/{callback}", json={"owner_id": team.ann.operator.id}),
        200,
    )
    assert taken["owner_name"] == "Ann"
    not_member = await json_of(
        await team.ann.patch(f"/api/v1/tasks/{callback}", json={"owner_id": team.carl.operator.id}),
        400,
    )
    assert "owner_id" in not_member["error"]["fields"]
    given = await json_of(
        await team.ann.patch(f"/api/v1/tasks/{callback}", json={"owner_id": team.bob.operator.id}),
        200,
    )
    assert given["owner_id"] == team.bob.operator.id
    # Now it is Bob's: Ann may still see it (her queue) but not give it away.
    refused = await json_of(
        await team.ann.patch(f"/api/v1/tasks/{callback}", json={"owner_id": team.ann.operator.id}),
        403,
    )
    assert refused["error"]["code"] == "forbidden"
    # Bob hands it back to the queue.
    back = await json_of(
        await team.bob.patch(f"/api/v1/tasks/{callback}", json={"owner_id": None}), 200
    )
    assert back["owner_id"] is None
    null_due = await team.bob.patch(f"/api/v1/tasks/{callback}", json={"due_at": None})
    assert "due_at" in (await json_of(null_due, 400))["error"]["fields"]
    async with sessions() as session:
        changes = list(
            await session.scalars(
                select(AuditEntry.details).where(
                    AuditEntry.action == "task.update", AuditEntry.entity_id == str(callback)
                )
            )
        )
    assert [change["owner_id"]["to"] for change in changes] == [
        team.ann.operator.id,
        team.bob.operator.id,
        None,
    ]


# --- callbacks -------------------------------------------------------------------------------


async def test_a_second_missed_call_adds_to_the_open_callback_and_an_answer_closes_it(
    team: Team, sessions: SessionFactory
) -> None:
    first = await missed_call(sessions, team.contact, team.conversation, team.queue)
    second = await missed_call(
        sessions, team.contact, team.conversation, team.queue, reason="no_answer", waited=80
    )
    assert second.id == first.id
    async with sessions() as session:
        open_ones = list(
            await session.scalars(
                select(Task).where(Task.contact_id == team.contact, Task.done_at.is_(None))
            )
        )
    assert [task.id for task in open_ones] == [first.id]
    (callback,) = open_ones
    assert callback.meta["attempts"] == 2
    assert [call["reason"] for call in callback.meta["calls"]] == ["abandoned", "no_answer"]
    (shown,) = await listed(team.ann, scope="queues")
    assert (shown["attempts"], shown["reason"], shown["waited_seconds"]) == (2, "no_answer", 80)

    async with sessions() as session, session.begin():
        closed = await close_callbacks(session, team.contact, TaskOutcome.ANSWERED, utcnow())
    assert closed == [first.id]
    done = await task_row(sessions, first.id)
    assert (done.outcome, done.done_at is not None) == ("answered", True)
    assert await listed(team.ann, scope="queues") == []
    # The next missed call opens a new one.
    third = await missed_call(sessions, team.contact, team.conversation, team.queue)
    assert third.id != first.id
    assert third.meta["attempts"] == 1


# --- routing and reminders -------------------------------------------------------------------


async def routing_pass(sessions: SessionFactory, at: datetime | None = None) -> None:
    async with sessions() as session, session.begin():
        await run_pass(session, at or utcnow(), RoutingOptions())


async def test_a_due_callback_gets_an_owner_and_one_reminder_listed_in_notifications(
    team: Team, sessions: SessionFactory
) -> None:
    # Ann has fewer open tasks (none) but is away: Bob, available, gets the callback.
    async with sessions() as session, session.begin():
        await session.execute(
            update(Operator).where(Operator.id == team.ann.operator.id).values(presence="away")
        )
        await session.execute(
            update(Operator).where(Operator.id == team.bob.operator.id).values(presence="available")
        )
    await json_of(
        await team.bob.post(
            "/api/v1/tasks",
            json={"conversation_id": team.conversation, "due_at": later(hours=5)},
        ),
        201,
    )
    callback = await missed_call(sessions, team.contact, team.conversation, team.queue)
    await routing_pass(sessions)
    routed = await task_row(sessions, callback.id)
    assert routed.owner_id == team.bob.operator.id
    assert routed.meta["routing"]["operator_id"] == team.bob.operator.id
    assert "available" in routed.meta["routing"]["reason"]
    assert routed.notified_at is not None

    async with sessions() as session:
        reminders = list(
            await session.scalars(select(Notification).where(Notification.task_id == callback.id))
        )
    assert [(item.operator_id, item.kind) for item in reminders] == [
        (team.bob.operator.id, "task_due")
    ]
    await routing_pass(sessions)
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).where(Notification.task_id == callback.id)
        )
    assert count == 1

    body = await json_of(await team.bob.get("/api/v1/notifications"), 200)
    assert body["unread_count"] == 1
    (note,) = body["items"]
    assert (note["kind"], note["task_id"], note["interaction_id"]) == (
        "task_due",
        callback.id,
        None,
    )
    assert (note["conversation_id"], note["excerpt"]) == (team.conversation, "Anna Novak")
    assert (await json_of(await team.ann.get("/api/v1/notifications"), 200))["items"] == []

    # Done: its reminder is read with it.
    await json_of(await team.bob.post(f"/api/v1/tasks/{callback.id}/done"), 200)
    after = await json_of(await team.bob.get("/api/v1/notifications"), 200)
    assert after["unread_count"] == 0
    assert after["items"][0]["read_at"] is not None


async def test_a_follow_up_reminds_again_when_its_due_time_moves(
    team: Team, sessions: SessionFactory
) -> None:
    created = await json_of(
        await team.ann.post(
            "/api/v1/tasks",
            json={
                "conversation_id": team.conversation,
                "due_at": later(minutes=30),
                "note": "Check the refund",
            },
        ),
        201,
    )
    await routing_pass(sessions)
    assert (await json_of(await team.ann.get("/api/v1/notifications"), 200))["items"] == []
    await routing_pass(sessions, utcnow() + timedelta(minutes=31))
    (reminder,) = (await json_of(await team.ann.get("/api/v1/notifications"), 200))["items"]
    assert reminder["excerpt"] == "Check the refund"
    await json_of(await team.ann.post(f"/api/v1/notifications/{reminder['id']}/read"), 200)

    await json_of(
        await team.ann.patch(f"/api/v1/tasks/{created['id']}", json={"due_at": later(hours=1)}),
        200,
    )
    assert (await task_row(sessions, created["id"])).notified_at is None
    await routing_pass(sessions, utcnow() + timedelta(hours=2))
    body = await json_of(await team.ann.get("/api/v1/notifications"), 200)
    assert body["unread_count"] == 1
    assert [item["task_id"] for item in body["items"]] == [created["id"]]


# --- placing a callback's call ---------------------------------------------------------------


# The route, not the database, decides these: one backend is enough.


@dataclass
class FakePlacer:
    """A telephony that places a call the first time and is busy after."""

    calls: list[tuple[int | None, int]]

    async def place_callback(self, actor: Actor, task_id: int) -> dict[str, Any]:
        self.calls.append((actor.operator_id, task_id))
        if len(self.calls) > 1:
            raise Conflict("you are on a call already")
        return {"call_id": 77, "state": "dialing"}


ServerWith = Callable[[CallPlacer | None], Awaitable[TestServer]]


@pytest.fixture
def server_with(
    settings: Settings,
    engine: AsyncEngine,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> ServerWith:
    """server_with(placer): a server whose telephony is `placer` (None: none at all)."""

    async def start(placer: CallPlacer | None) -> TestServer:
        app = create_app(settings, background_workers=False)

        async def install(app: web.Application) -> None:
            # After the app's own start-up, which installs the channels' telephony.
            app[CALL_PLACER] = placer

        app.on_startup.append(install)
        return await aiohttp_server(app)

    return start


async def two_operators_and_a_callback(
    server: TestServer,
    sessions: SessionFactory,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> tuple[User, User, int]:
    """Ann works the callback's queue, Carl does not."""
    ann = await new_user(server, sessions, aiohttp_client, Role.OPERATOR, "ann@example.com")
    carl = await new_user(server, sessions, aiohttp_client, Role.OPERATOR, "carl@example.com")
    queue = await queue_with(sessions, "Support", ann)
    conversation, contact = await conversation_in(sessions, queue)
    callback = (await missed_call(sessions, contact, conversation, queue)).id
    return ann, carl, callback


@pytest.mark.sqlite_only
async def test_calling_back_without_telephony_is_a_conflict(
    server_with: ServerWith,
    sessions: SessionFactory,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    server = await server_with(None)
    ann, carl, callback = await two_operators_and_a_callback(server, sessions, aiohttp_client)
    body = await json_of(await ann.post(f"/api/v1/tasks/{callback}/call"), 409)
    assert body["error"]["code"] == "conflict"
    assert body["error"]["message"] == "no telephony: add a Twilio account with a voice number"
    # Who may not see the task learns nothing more.
    await json_of(await carl.post(f"/api/v1/tasks/{callback}/call"), 404)


@pytest.mark.sqlite_only
async def test_calling_back_asks_the_placer_after_checking_who_may(
    server_with: ServerWith,
    sessions: SessionFactory,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    placer = FakePlacer([])
    server = await server_with(placer)
    ann, carl, callback = await two_operators_and_a_callback(server, sessions, aiohttp_client)

    await json_of(await carl.post(f"/api/v1/tasks/{callback}/call"), 404)
    await json_of(await ann.post(f"/api/v1/tasks/{callback + 1000}/call"), 404)
    assert placer.calls == []
    placed = await json_of(await ann.post(f"/api/v1/tasks/{callback}/call"), 202)
    assert placed == {"call_id": 77, "state": "dialing"}
    assert placer.calls == [(ann.operator.id, callback)]
    busy = await json_of(await ann.post(f"/api/v1/tasks/{callback}/call"), 409)
    assert busy["error"]["message"] == "you are on a call already"


@pytest.mark.sqlite_only
async def test_tokens_have_no_tasks(
    team: Team, client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    from core.auth import create_token

    await missed_call(sessions, team.contact, team.conversation, team.queue)
    async with sessions() as session, session.begin():
        _, erp = await create_token(session, CLI, "erp")
        _, bot = await create_token(session, CLI, "bot", Role.OPERATOR)
    refused = await client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {erp}"})
    assert refused.status == 403
    for scope in ("mine", "queues", "overdue", "all"):
        bot_list = await client.get(
            "/api/v1/tasks", params={"scope": scope}, headers={"Authorization": f"Bearer {bot}"}
        )
        assert (await json_of(bot_list, 200))["items"] == [], scope
