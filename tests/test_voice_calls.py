"""Phone calls end to end: the Twilio stand-in plays Twilio's part (signed webhooks in
Twilio's order, the TwiML omnicrm answers followed, the REST calls omnicrm makes answered)
while routing, the call controller and the media fetcher run as they do in the server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from core import clock
from core.clock import ManualClock
from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import (
    Conversation,
    IdentityKind,
    Interaction,
    InteractionKind,
    OutboxItem,
    Presence,
    RoutingDecision,
    Task,
    utcnow,
)
from core.settings import Settings
from tests.conftest import UserFactory
from tests.test_voice_flow import as_the_library_builds
from tests.twilio_calls import HANG_UP, Caller, Device, Leg
from tests.twilio_helpers import OUR_NUMBER, post_signed, twilio_settings
from tests.twilio_standin import inbound
from tests.voice_helpers import CUSTOMER, MENU, Line, next_place, phone_line

pytestmark = pytest.mark.both_databases  # tests/conftest.py

OPERATOR_PHONE = "+493011112222"
SECOND_PHONE = "+493033334444"
OTHER_CUSTOMER = "+4915187654321"
PROMPT = MENU["prompt"]
NESTED = {
    "prompt": "Press 1 for orders, 2 for other languages.",
    "options": [
        {"digit": "1", "label": "Orders"},
        {
            "digit": "2",
            "label": "Languages",
            "menu": {
                "prompt": "Drücken Sie 1 oder sagen Sie Deutsch.",
                "language": "de-DE",
                "options": [
                    {
                        "digit": "1",
                        "speech": ["deutsch"],
                        "choice": "german",
                        "say": "Einen Moment.",
                    }
                ],
            },
        },
    ],
}
MUSIC = "https://cdn.example.com/hold-music.mp3"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return twilio_settings(database_url, tmp_path)


@pytest.fixture
def frozen() -> Iterator[ManualClock]:
    """omnicrm's clock held still, for a test to move (the stand-in's simulated time runs on
    its own: webhooks arrive whenever, and omnicrm sees the time the test says)."""
    manual = ManualClock(utcnow())
    with clock.using(manual):
        yield manual


def said(leg: Leg) -> list[str]:
    """What the person on `leg` heard said (not music, beeps or their own keys)."""
    return [str(text) for text in leg.heard if text.kind == "say"]


@pytest.fixture
async def line(
    app: web.Application,
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    make_user: UserFactory,
) -> AsyncIterator[Line]:
    async with phone_line(
        app, client, sessions, make_user, menu=MENU, record_calls=True, wrap_up_seconds=0
    ) as phone:
        yield phone


async def test_a_call_through_the_menu_to_an_operator_is_answered_recorded_and_kept(
    line: Line,
) -> None:
    anna = await line.operator("anna", OPERATOR_PHONE)
    leg = await line.call(Caller(inputs=["speech:I have a question about my orders"]))
    await leg.wait_state("in-queue")
    heard = list(leg.heard)
    assert heard[0] == "This call may be recorded for quality and training."  # consent first
    assert "For orders press 1 or say orders. For sales press 2." in heard

    call = await line.voice_call()
    assert (call.state, call.ivr_choice, call.from_number) == ("queued", "orders", CUSTOMER)
    await line.route()
    offer = await line.offer_of(anna)
    assert offer["conversation_id"] == call.conversation_id
    await line.accept(anna)
    await line.control()
    # The operator's phone was called from our number, and it dials exactly this caller.
    created = [r for r in line.sim.requests if r.method == "POST" and r.path.endswith("Calls.json")]
    assert len(created) == 1
    assert created[0].params["To"] == OPERATOR_PHONE
    assert created[0].params["From"] == OUR_NUMBER
    await leg.wait_state("bridged")
    operator_leg = line.sim.legs_to(OPERATOR_PHONE)[0]
    assert any("Call from" in text for text in operator_leg.heard)  # the whisper
    assert await line.presence("anna") == (Presence.BUSY, "on a call")
    view = await (await anna.get(f"/api/v1/conversations/{call.conversation_id}/call")).json()
    assert view["call"]["state"] == "connected"
    assert view["call"]["can_control"] is True

    await line.sim.talk(95)
    await leg.hang_up()
    await operator_leg.wait_state("completed")
    # Twilio's last callbacks (the recording's) may trail the hang-up a little.
    recording = await _eventually_recorded(line)
    await line.fetch_media()

    call = await line.voice_call()
    assert call.outcome == "answered"
    assert call.talk_seconds is not None
    # Twilio's count of the bridged talk (simulated time runs with the real clock: a busy
    # machine adds a little)
    assert 90 <= call.talk_seconds <= 110
    assert call.duration_seconds is not None
    assert call.duration_seconds >= call.talk_seconds
    await line.control()  # no wrap-up time: available again, the call's conversation done
    assert await line.presence("anna") == (Presence.AVAILABLE, None)
    async with line.sessions() as session:
        interaction = await session.get(Interaction, call.interaction_id)
        conversation = await session.get(Conversation, call.conversation_id)
    assert interaction is not None
    assert conversation is not None
    assert conversation.status == "resolved"
    assert interaction.meta["call"]["outcome"] == "answered"
    audio = interaction.attachments[0]
    assert audio["content_type"] == "audio/mpeg"
    assert audio["recording_sid"] == recording
    assert audio["pending"] is False
    # The recording plays in the timeline: served to whoever may see the conversation.
    played = await anna.get(f"/api/v1/interactions/{interaction.id}/attachments/0")
    assert played.status == 200
    assert await played.read() == line.sim.recording_audio(recording, "mp3")
    # Every answer omnicrm gave Twilio during the call is TwiML the twilio library builds.
    answered = [sent.body for sent in line.sim.webhooks if sent.status == 200]
    assert len(answered) >= 5  # welcome, menu, queue, waiting music, the operator...
    assert [as_the_library_builds(body) for body in answered] == answered


async def _eventually_recorded(line: Line) -> str:
    for _ in range(400):
        call = await line.voice_call()
        async with line.sessions() as session:
            interaction = await session.get(Interaction, call.interaction_id)
        if interaction is not None and interaction.attachments:
            return str(interaction.attachments[0]["recording_sid"])
        await line.sim.sleep(0.5)
    raise AssertionError("no recording arrived")


async def test_a_caller_who_hangs_up_in_the_queue_gets_a_callback_that_calls_them_back(
    line: Line,
) -> None:
    luis = await line.operator("luis", OPERATOR_PHONE)
    async with line.sessions() as session, session.begin():
        # Luis is on another call: nobody can take this one.
        from core.models import Operator

        operator = await session.get(Operator, luis.operator.id)
        assert operator is not None
        operator.presence = Presence.BUSY
    leg = await line.call(Caller(inputs=["2"]))
    await leg.wait_state("in-queue")
    await line.sim.talk(40)
    await leg.hang_up()
    call = await line.voice_call()
    assert call.outcome == "abandoned"
    tasks = await line.tasks()
    assert len(tasks) == 1
    task = tasks[0]
    assert (task.kind, task.meta["number"], task.meta["reason"]) == (
        "callback",
        CUSTOMER,
        "abandoned",
    )
    assert task.queue_id == line.queue_id

    # Routing gives the callback to a member of the queue; they call back from the task list.
    await line.route()
    listed = await (await luis.get("/api/v1/tasks", params={"scope": "mine"})).json()
    assert [item["id"] for item in listed["items"]] == [task.id]
    async with line.sessions() as session, session.begin():
        from core.models import Operator

        operator = await session.get(Operator, luis.operator.id)
        assert operator is not None
        operator.presence = Presence.AVAILABLE
    # Luis opens the conversation again to work on it; calling back will not close it.
    reopened = await luis.post(
        f"/api/v1/conversations/{task.conversation_id}/status", json={"status": "open"}
    )
    assert reopened.status == 200, await reopened.text()
    placed = await luis.post(f"/api/v1/tasks/{task.id}/call")
    assert placed.status == 202, await placed.text()
    # Luis's phone rings first; when he answers, the customer's rings (from our number).
    operator_leg = line.sim.legs_to(OPERATOR_PHONE)[0]
    await operator_leg.wait_state("bridged")
    customer_leg = line.sim.legs_to(CUSTOMER)[0]
    assert customer_leg.from_ == OUR_NUMBER
    await line.sim.talk(30)
    await customer_leg.hang_up()
    await operator_leg.wait_state("completed")
    done = (await line.tasks())[0]
    assert done.outcome == "called_back"
    assert done.done_at is not None
    await line.control()  # his wrap-up is over: available again, his conversation untouched
    assert await line.presence("luis") == (Presence.AVAILABLE, None)
    async with line.sessions() as session:
        conversation = await session.get(Conversation, task.conversation_id)
    assert conversation is not None
    assert conversation.status == "open"
    async with line.sessions() as session:
        calls = list(
            await session.scalars(
                select(Interaction).where(Interaction.kind == "call").order_by(Interaction.id)
            )
        )
    assert [(item.direction, item.meta["call"]["outcome"]) for item in calls] == [
        ("in", "abandoned"),
        ("out", "answered"),
    ]


@pytest.mark.parametrize(("line_says", "reason"), [("busy", "busy"), ("failed", "failed")])
async def test_a_callback_the_customers_line_refuses_stays_open_and_says_why(
    line: Line, line_says: str, reason: str
) -> None:
    leg = await line.call(Caller(inputs=["1"]))
    await leg.wait_state("in-queue")
    await leg.hang_up()  # nobody was at work
    luis = await line.operator("luis", OPERATOR_PHONE)
    await line.route()  # the callback is his
    [task] = await line.tasks()
    line.sim.devices[CUSTOMER] = Device(answer=line_says)
    placed = await luis.post(f"/api/v1/tasks/{task.id}/call")
    assert placed.status == 202, await placed.text()
    operator_leg = line.sim.legs_to(OPERATOR_PHONE)[0]
    await operator_leg.wait_state("completed")
    assert "The customer did not answer. The task stays open." in operator_leg.heard
    [dialed] = line.sim.hooks("dial-action", operator_leg)
    assert dialed.params["DialCallStatus"] == line_says

    [still] = await line.tasks()
    assert (still.done_at, still.meta["reason"]) == (None, reason)
    assert still.meta["callbacks"][-1]["outcome"] == reason
    listed = await (await luis.get("/api/v1/tasks", params={"scope": "mine"})).json()
    assert [(item["id"], item["reason"]) for item in listed["items"]] == [(task.id, reason)]


async def test_an_operator_whose_phone_does_not_answer_loses_the_call_to_the_next(
    line: Line,
) -> None:
    phones = {"anna": OPERATOR_PHONE, "luis": SECOND_PHONE}
    team = {name: await line.operator(name, phone) for name, phone in phones.items()}
    leg = await line.call(Caller(inputs=["1"]))
    await leg.wait_state("in-queue")
    await line.route()
    first = await _offered_to_either(line, *team.values())
    second = next(name for name in team if name != first)
    # Whoever routing chose first: their phone rings out unanswered.
    line.sim.devices[phones[first]] = Device(answer="no-answer", ring_seconds=20)
    await line.accept(team[first])
    await line.control()
    await line.sim.legs_to(phones[first])[0].wait_state("completed")
    call = await line.voice_call()
    assert call.state == "queued"  # back in the queue, the caller never left it
    assert leg.in_queue
    async with line.sessions() as session:
        missed = await session.scalar(
            select(RoutingDecision).where(
                RoutingDecision.kind == "timed_out",
                RoutingDecision.operator_id == team[first].operator.id,
            )
        )
    assert missed is not None
    assert "did not answer (no-answer)" in missed.reason
    await line.route()
    assert (await (await team[first].get("/api/v1/offers")).json())["items"] == []
    await line.accept(team[second])  # the other one is offered it
    await line.control()
    await leg.wait_state("bridged")
    assert leg.other is not None
    assert leg.other.to == phones[second]


async def _offered_to_either(line: Line, *users: Any) -> str:
    for user in users:
        offers = (await (await user.get("/api/v1/offers")).json())["items"]
        if offers:
            return str(user.operator.name)
    raise AssertionError("nobody was offered the call")


async def test_hold_resume_and_a_transfer_to_another_operator(line: Line) -> None:
    anna = await line.operator("anna", OPERATOR_PHONE)
    leg = await line.call(Caller(inputs=["1"]))
    await line.answered_by(anna, leg)
    call = await line.voice_call()
    path = f"/api/v1/conversations/{call.conversation_id}/call"

    held = await anna.post(f"{path}/hold")
    assert held.status == 200, await held.text()
    await leg.wait_for(lambda caller: caller.in_queue)  # the caller hears the hold message
    assert "Please hold." in leg.heard
    anna_leg = line.sim.legs_to(OPERATOR_PHONE)[0]
    assert not anna_leg.ended  # Anna's line stays open
    assert (await line.voice_call()).state == "on_hold"
    resumed = await anna.post(f"{path}/resume")
    assert resumed.status == 200, await resumed.text()
    await leg.wait_for(lambda caller: caller.bridged and caller.other is anna_leg)
    assert (await line.voice_call()).state == "connected"

    luis = await line.operator("luis", SECOND_PHONE)
    moved = await anna.post(
        f"/api/v1/conversations/{call.conversation_id}/transfer",
        json={"operator_id": luis.operator.id, "note": "Wants a refund"},
    )
    assert moved.status == 200, await moved.text()
    await line.control()  # the caller goes back to the queue
    await anna_leg.wait_state("completed")
    await line.control()  # and Luis's phone rings
    await leg.wait_for(lambda caller: caller.bridged and caller.other is not anna_leg)
    assert leg.other is not None
    assert leg.other.to == SECOND_PHONE
    assert "Please hold while we transfer your call." in leg.heard
    assert await line.presence("anna") == (Presence.AVAILABLE, None)
    assert await line.presence("luis") == (Presence.BUSY, "on a call")

    others = await (await anna.post(f"{path}/hangup")).json()
    assert others["error"]["message"].startswith("only the operator on the call")
    ended = await luis.post(f"{path}/hangup")
    assert ended.status == 200, await ended.text()
    await leg.wait_state("completed")
    final = await line.voice_call()
    assert final.outcome == "answered"
    assert final.operator_id == luis.operator.id
    assert final.meta["transfers"][0]["from"] == anna.operator.id


async def test_what_the_operator_answered_in_writing_during_a_call_becomes_a_suggestion(
    line: Line,
) -> None:
    """The call's end resolves its conversation the way an operator's resolving does: the
    written answers in it become suggestions (here an email thread the customer answered
    while on the phone)."""
    anna = await line.operator("anna", OPERATOR_PHONE)
    max_email = Address(IdentityKind.EMAIL, "max@example.de")
    async with line.sessions() as session, session.begin():
        # Max once sent a web form with his email and phone: one contact.
        await ingest(
            session,
            InboundEvent(
                channel="webform",
                external_id="form-1",
                kind=InteractionKind.FORM,
                addresses=[max_email, Address(IdentityKind.PHONE, CUSTOMER)],
                text="Please call me back.",
            ),
        )
    leg = await line.call(Caller(inputs=["1"]))
    await line.answered_by(anna, leg)
    call = await line.voice_call()
    path = f"/api/v1/conversations/{call.conversation_id}"
    sent = await anna.post(
        f"{path}/reply", json={"text": "Here is your return label.", "channel": "email"}
    )
    assert sent.status == 201, await sent.text()
    outbox_id = (await sent.json())["outbox"]["id"]
    async with line.sessions() as session, session.begin():
        # The email channel sent it under this Message-ID; Max answers it.
        await session.execute(
            update(OutboxItem).where(OutboxItem.id == outbox_id).values(provider_id="<out-1@crm>")
        )
        answered = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id="<in-2@max>",
                addresses=[max_email],
                text="Thanks. How long does the refund take once you have my parcel?",
                reply_to_external_ids=["<out-1@crm>"],
            ),
        )
    assert answered.conversation_id == call.conversation_id
    answer = "The refund reaches your card within five working days of the parcel arriving."
    replied = await anna.post(f"{path}/reply", json={"text": answer, "channel": "email"})
    assert replied.status == 201, await replied.text()

    await line.sim.talk(20)
    await leg.hang_up()
    await line.sim.legs_to(OPERATOR_PHONE)[0].wait_state("completed")
    await line.control()  # no wrap-up time: the call's conversation is done
    async with line.sessions() as session:
        conversation = await session.get(Conversation, call.conversation_id)
        assert conversation is not None
        assert conversation.status == "resolved"
    # Another customer asks much the same: Anna's answer is suggested.
    async with line.sessions() as session, session.begin():
        asked = await ingest(
            session,
            InboundEvent(
                channel="email",
                external_id="<q@kim>",
                addresses=[Address(IdentityKind.EMAIL, "kim@example.com")],
                text="How long does a refund take once you have the parcel?",
                queue_id=line.queue_id,
            ),
        )
    found = await anna.get(f"/api/v1/conversations/{asked.conversation_id}/suggestions")
    assert found.status == 200, await found.text()
    (suggestion,) = (await found.json())["suggestions"]
    assert suggestion["text"] == answer
    assert suggestion["source"]["conversation_id"] == call.conversation_id


async def test_after_hours_the_caller_leaves_a_voicemail_that_the_callback_carries(
    app: web.Application,
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    make_user: UserFactory,
) -> None:
    closed = {"business_hours": {"timezone": "Europe/Berlin", "weekly": {}}}
    async with phone_line(app, client, sessions, make_user, queue_config=closed, menu=MENU) as line:
        leg = await line.call(Caller(voicemail_seconds=12, finish_key="#"))
        await leg.wait_state("completed")
        assert "We are closed now." in leg.heard
        assert not any("press 1" in text for text in leg.heard)  # no menu when closed
        for _ in range(400):
            tasks = await line.tasks()
            if tasks and tasks[0].meta.get("voicemail_interaction_id"):
                break
            await line.sim.sleep(0.5)
        call = await line.voice_call()
        assert call.outcome == "voicemail"
        assert [(task.kind, task.meta["reason"]) for task in tasks] == [("callback", "voicemail")]
        assert tasks[0].meta["voicemail_interaction_id"] == call.interaction_id
        await line.fetch_media()
        async with line.sessions() as session:
            interaction = await session.get(Interaction, call.interaction_id)
        assert interaction is not None
        assert interaction.attachments[0]["kind"] == "voicemail"
        assert interaction.attachments[0]["pending"] is False


async def test_repeated_and_out_of_order_callbacks_change_nothing(line: Line) -> None:
    anna = await line.operator("anna", OPERATOR_PHONE)
    leg = await line.call(Caller(inputs=["1"]))
    await line.answered_by(anna, leg)
    await line.sim.talk(20)
    await leg.hang_up()
    await line.sim.legs_to(OPERATOR_PHONE)[0].wait_state("completed")
    await _eventually_recorded(line)
    before = await line.voice_call()
    async with line.sessions() as session:
        counts = await _counts(session)
    # Twilio repeats every webhook of the call, in reverse order for good measure.
    for sent in reversed(list(line.sim.webhooks)):
        again = await line.sim.replay(sent)
        assert again.status == 200, again.body
    after = await line.voice_call()
    assert (after.state, after.outcome, after.talk_seconds, after.leg) == (
        before.state,
        before.outcome,
        before.talk_seconds,
        before.leg,
    )
    async with line.sessions() as session:
        assert await _counts(session) == counts
    assert await line.tasks() == []


async def _counts(session: Any) -> tuple[int, int, int]:
    from sqlalchemy import func

    from core.models import AttachmentFetch, VoiceCall

    return (
        int(await session.scalar(select(func.count()).select_from(Interaction)) or 0),
        int(await session.scalar(select(func.count()).select_from(VoiceCall)) or 0),
        int(await session.scalar(select(func.count()).select_from(AttachmentFetch)) or 0),
    )


async def test_a_customer_who_calls_again_and_is_answered_closes_their_callback(
    line: Line,
) -> None:
    leg = await line.call(Caller(inputs=["1"]))
    await leg.wait_state("in-queue")
    await leg.hang_up()  # nobody is there: a callback
    assert [task.done_at for task in await line.tasks()] == [None]
    again = await line.call(Caller(inputs=["1"]))
    await again.wait_state("in-queue")
    await again.hang_up()  # missed again: still one callback, two attempts
    tasks = await line.tasks()
    assert len(tasks) == 1
    assert tasks[0].meta["attempts"] == 2
    anna = await line.operator("anna", OPERATOR_PHONE)
    third = await line.call(Caller(inputs=["1"]))
    await line.answered_by(anna, third)
    closed = (await line.tasks())[0]
    assert closed.outcome == "answered"
    assert closed.done_at is not None


async def test_unsigned_or_malformed_voice_webhooks_store_nothing(
    line: Line, client: TestClient[Any, Any]
) -> None:
    from tests.twilio_helpers import post_signed
    from tests.twilio_standin import ACCOUNT_SID

    params = {
        "CallSid": "CA" + "1" * 32,
        "AccountSid": ACCOUNT_SID,
        "From": CUSTOMER,
        "To": OUR_NUMBER,
        "CallStatus": "ringing",
    }
    unsigned = await client.post("/hooks/twilio/main/voice", data=params)
    assert unsigned.status == 403
    broken = await post_signed(client, {**params, "CallSid": "nope"}, hook="voice")
    assert broken.status == 400
    other = await post_signed(client, {**params, "AccountSid": "AC" + "2" * 32}, hook="voice")
    assert other.status == 400
    unknown = await post_signed(client, {**params, "To": "+15005550009"}, hook="voice")
    assert unknown.status == 200
    assert "does not take calls" in await unknown.text()
    async with line.sessions() as session:
        assert await _counts(session) == (0, 0, 0)
        assert await session.scalar(select(Task.id)) is None


async def test_erasing_a_caller_leaves_no_number_in_their_calls_or_callbacks(line: Line) -> None:
    leg = await line.call(Caller(inputs=["1"]))
    await leg.wait_state("in-queue")
    await leg.hang_up()
    call = await line.voice_call()
    erased = await line.admin.delete(
        f"/api/v1/contacts/{call.contact_id}",
        params={"erase": "true", "confirm": str(call.contact_id)},
    )
    assert erased.status == 200, await erased.text()
    after = await line.voice_call()
    assert (after.from_number, after.to_number, after.ivr_choice) == ("", "", None)
    assert after.outcome == "abandoned"  # the monitor's figures stay
    task = (await line.tasks())[0]
    assert task.meta == {}
    assert task.outcome == "cancelled"  # nobody calls an erased person back


async def test_a_menu_choice_a_rule_routes_elsewhere_waits_counts_and_is_called_back_there(
    line: Line,
) -> None:
    orders = await line.queue("Orders")
    rules = {
        "default_queue_id": line.queue_id,
        "rules": [{"ivr_choice": "orders", "queue_id": orders}],
    }
    response = await line.admin.put("/api/v1/routing/queue-rules", json={"rules": rules})
    assert response.status == 200, await response.text()
    sales = await line.call(Caller(inputs=["2"]), from_=OTHER_CUSTOMER)
    await sales.wait_state("in-queue")
    ordering = await line.call(Caller(inputs=["1"]))
    await ordering.wait_state("in-queue")
    await line.route()  # nobody is at work: both wait, the second in Orders by the rule

    await next_place(ordering)  # (one may have been on its way while routing ran)
    assert await next_place(ordering) == "All our agents are busy. You are number 1 in the queue."
    figures = await line.monitor_calls()
    assert (figures[orders]["waiting"], figures[line.queue_id]["waiting"]) == (1, 1)
    await ordering.hang_up()
    await sales.hang_up()
    assert {task.meta["number"]: task.queue_id for task in await line.tasks()} == {
        CUSTOMER: orders,
        OTHER_CUSTOMER: line.queue_id,
    }
    figures = await line.monitor_calls()
    abandoned = (figures[orders]["abandoned_today"], figures[line.queue_id]["abandoned_today"])
    assert abandoned == (1, 1)


async def test_a_call_transferred_to_a_queue_waits_and_counts_there(line: Line) -> None:
    anna = await line.operator("anna", OPERATOR_PHONE)
    billing = await line.queue("Billing")
    leg = await line.call(Caller(inputs=["1"]))
    await line.answered_by(anna, leg)
    call = await line.voice_call()
    moved = await anna.post(
        f"/api/v1/conversations/{call.conversation_id}/transfer", json={"queue_id": billing}
    )
    assert moved.status == 200, await moved.text()
    await line.control()  # the caller waits again, in Billing, where nobody is at work
    assert await next_place(leg) == "All our agents are busy. You are number 1 in the queue."
    assert "Please hold while we transfer your call." in leg.heard
    figures = await line.monitor_calls()
    assert (figures[billing]["waiting"], figures[line.queue_id]["waiting"]) == (1, 0)

    await leg.hang_up()
    [task] = await line.tasks()
    assert (task.queue_id, task.meta["reason"]) == (billing, "abandoned")
    # Counted once, where it is: answered (then transferred), not also abandoned.
    calls = (await line.monitor_calls())[billing]
    assert (calls["answered_today"], calls["abandoned_today"]) == (1, 0)


async def test_a_vip_who_calls_after_another_caller_is_offered_first(line: Line) -> None:
    # Known from an earlier call (hung up in the menu); a supervisor made them a VIP since.
    first = await line.call(Caller(inputs=[HANG_UP]))
    await first.wait_state("completed")
    vip = (await line.voice_call()).contact_id
    marked = await line.admin.patch(f"/api/v1/contacts/{vip}", json={"priority_tier": "vip"})
    assert marked.status == 200, await marked.text()

    regular = await line.call(Caller(inputs=["2"]), from_=OTHER_CUSTOMER)
    await regular.wait_state("in-queue")
    calling = await line.call(Caller(inputs=["1"]))
    await calling.wait_state("in-queue")
    await line.route()  # nobody is at work yet: both wait, the VIP ahead
    for leg in (calling, regular):
        await next_place(leg)  # (one may have been on its way while routing ran)
    assert await next_place(calling) == "All our agents are busy. You are number 1 in the queue."
    assert await next_place(regular) == "All our agents are busy. You are number 2 in the queue."

    anna = await line.operator("anna", OPERATOR_PHONE)
    await line.route()
    offer = await line.offer_of(anna)
    vip_call = await line.voice_call()
    assert vip_call.contact_id == vip
    assert offer["conversation_id"] == vip_call.conversation_id
    await line.accept(anna)
    await line.control()
    await calling.wait_state("bridged")
    assert regular.in_queue


# --- the menu and the queue, as callers hear them ---------------------------------------------


async def test_a_wrong_key_and_silence_are_answered_and_the_menu_asked_again(line: Line) -> None:
    leg = await line.call(Caller(inputs=["9", None, "speech:it is about my orders"]))
    await leg.wait_state("in-queue")
    assert said(leg)[:7] == [
        "This call may be recorded for quality and training.",
        "Thank you for calling.",
        PROMPT,
        "Sorry, that is not one of the choices.",
        PROMPT,
        "Sorry, I did not hear a choice.",
        PROMPT,
    ]
    assert len(line.sim.hooks("gather", leg)) == 3  # each answer came back to omnicrm
    call = await line.voice_call()
    assert (call.state, call.ivr_choice, call.menu_attempts) == ("queued", "orders", 2)

    # Three tries without a choice: the number's queue, without a choice.
    lost = await line.call(Caller(inputs=["9", None, "7"]), from_=OTHER_CUSTOMER)
    place = await next_place(lost)
    heard = said(lost)
    turn = heard.index("Let me put you through to the next free agent.")
    assert heard[turn - 2 : turn] == ["Sorry, I did not hear a choice.", PROMPT]
    assert heard[turn + 1] == place == "All our agents are busy. You are number 2 in the queue."
    call = await line.voice_call()
    assert (call.state, call.ivr_choice, call.queue_id) == ("queued", None, line.queue_id)


async def test_a_nested_menu_speaks_its_own_language_and_its_choice_is_the_routing_fact(
    app: web.Application,
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    make_user: UserFactory,
) -> None:
    async with phone_line(app, client, sessions, make_user, menu=NESTED) as line:
        leg = await line.call(Caller(inputs=["2", "speech:auf Deutsch bitte"]))
        await leg.wait_state("in-queue")
        nested = next(text for text in leg.heard if text == "Drücken Sie 1 oder sagen Sie Deutsch.")
        assert nested.language == "de-DE"
        assert said(leg)[:4] == [
            "Thank you for calling.",
            "Press 1 for orders, 2 for other languages.",
            "Drücken Sie 1 oder sagen Sie Deutsch.",
            "Einen Moment.",
        ]
        gathers = line.sim.hooks("gather", leg)
        assert [sent.params.get("Digits") for sent in gathers] == ["2", None]
        assert gathers[1].params["SpeechResult"] == "auf Deutsch bitte"
        call = await line.voice_call()
        assert (call.state, call.ivr_choice, call.menu_path) == ("queued", "german", "1")
        async with line.sessions() as session:
            interaction = await session.get(Interaction, call.interaction_id)
        assert interaction is not None
        assert interaction.meta["ivr_choice"] == "german"  # what queue rules match


async def test_waiting_callers_hear_the_hold_music_and_their_place(
    app: web.Application,
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    make_user: UserFactory,
) -> None:
    async with phone_line(app, client, sessions, make_user, hold_music_url=MUSIC) as line:
        first = await line.call(Caller())
        await first.wait_state("in-queue")
        second = await line.call(Caller(), from_=OTHER_CUSTOMER)
        await second.wait_state("in-queue")
        assert await next_place(second) == "All our agents are busy. You are number 2 in the queue."
        assert await next_place(first) == "All our agents are busy. You are number 1 in the queue."
        # The music follows the message (the same answer): heard once the caller gets to it.
        await second.wait_for(lambda caller: any(text.kind == "play" for text in caller.heard))
        music = [text for text in second.heard if text.kind == "play"]
        assert set(music) == {MUSIC}  # the number's music, between the messages
        answered = [sent for sent in line.sim.hooks("wait", second) if sent.status == 200]
        assert f"<Play>{MUSIC}</Play>" in answered[-1].body


async def test_a_caller_who_waited_the_longest_allowed_is_offered_a_voicemail(
    app: web.Application,
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    make_user: UserFactory,
    frozen: ManualClock,
) -> None:
    async with phone_line(app, client, sessions, make_user, max_wait_seconds=30) as line:
        leg = await line.call(Caller(voicemail_seconds=8, finish_key="#"))
        await leg.wait_state("in-queue")
        await next_place(leg)
        assert leg.in_queue  # within the limit, whatever the stand-in's own time says
        frozen.advance(31)
        await leg.wait_state("completed")
        assert said(leg)[-3:] == [
            "Sorry, no one is free to take your call.",
            "Please leave a message after the tone, and we will call you back.",
            "Thank you. Goodbye.",
        ]
        left = line.sim.hooks("enqueue-action", leg)
        assert [sent.params["QueueResult"] for sent in left] == ["leave"]
        for _ in range(400):
            tasks = await line.tasks()
            if tasks and tasks[0].meta.get("voicemail_interaction_id"):
                break
            await line.sim.sleep(0.5)
        call = await line.voice_call()
        assert (call.outcome, call.wait_seconds) == ("voicemail", 31)
        [task] = tasks
        assert (task.meta["reason"], task.meta["waited_seconds"]) == ("voicemail", 31)
        assert task.meta["voicemail_interaction_id"] == call.interaction_id


# --- operators --------------------------------------------------------------------------------


async def test_an_operator_stays_busy_until_the_wrap_up_is_over(
    app: web.Application,
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    make_user: UserFactory,
    frozen: ManualClock,
) -> None:
    async with phone_line(app, client, sessions, make_user, wrap_up_seconds=45) as line:
        anna = await line.operator("anna", OPERATOR_PHONE)
        leg = await line.call(Caller())
        await line.answered_by(anna, leg)
        await line.sim.talk(30)
        await leg.hang_up()
        await line.sim.legs_to(OPERATOR_PHONE)[0].wait_state("completed")
        await line.control()
        assert await line.presence("anna") == (Presence.BUSY, "wrap-up after a call")

        # A call meanwhile waits: she is not offered it while she wraps up.
        waiting = await line.call(Caller(), from_=OTHER_CUSTOMER)
        await waiting.wait_state("in-queue")
        await line.route()
        assert (await (await anna.get("/api/v1/offers")).json())["items"] == []
        frozen.advance(44)  # (within a minute: her console still counts as connected)
        await line.control()
        assert await line.presence("anna") == (Presence.BUSY, "wrap-up after a call")
        frozen.advance(2)
        await line.control()
        assert await line.presence("anna") == (Presence.AVAILABLE, None)
        await line.route()
        offer = await line.offer_of(anna)
        assert offer["conversation_id"] == (await line.voice_call()).conversation_id


async def test_an_operator_whose_phone_is_a_sip_address_is_rung_there(line: Line) -> None:
    pbx = "sip:anna@pbx.example.com"
    anna = await line.operator("anna", pbx)
    leg = await line.call(Caller(inputs=["1"]))
    await line.answered_by(anna, leg)
    [created] = [
        r for r in line.sim.requests if r.method == "POST" and r.path.endswith("Calls.json")
    ]
    assert (created.params["To"], created.params["From"]) == (pbx, OUR_NUMBER)
    assert leg.other is line.sim.legs_to(pbx)[0]
    assert (await line.voice_call()).state == "connected"


async def test_a_rejected_offer_of_a_call_goes_to_the_next_operator(line: Line) -> None:
    phones = {"anna": OPERATOR_PHONE, "luis": SECOND_PHONE}
    team = {name: await line.operator(name, phone) for name, phone in phones.items()}
    leg = await line.call(Caller(inputs=["1"]))
    await leg.wait_state("in-queue")
    await line.route()
    first = await _offered_to_either(line, *team.values())
    second = next(name for name in team if name != first)
    offer = await line.offer_of(team[first])
    rejected = await team[first].post(f"/api/v1/offers/{offer['id']}/reject")
    assert rejected.status == 200, await rejected.text()
    await line.control()
    assert line.sim.legs_to(phones[first]) == []  # a rejected offer rings nobody
    assert leg.in_queue
    await line.route()
    assert (await (await team[first].get("/api/v1/offers")).json())["items"] == []
    await line.accept(team[second])
    await line.control()
    await leg.wait_state("bridged")
    assert leg.other is line.sim.legs_to(phones[second])[0]


# --- the caller -------------------------------------------------------------------------------


async def test_a_customer_who_texted_and_then_calls_is_one_contact_with_one_history(
    line: Line,
) -> None:
    texted = await post_signed(line.client, inbound(CUSTOMER, "Is my parcel on its way?"))
    assert texted.status == 200, await texted.text()
    leg = await line.call(Caller(inputs=["1"]))
    await leg.wait_state("in-queue")
    call = await line.voice_call()
    async with line.sessions() as session:
        message = await session.scalar(select(Interaction).where(Interaction.channel == "sms"))
    assert message is not None
    assert call.contact_id == message.contact_id
    timeline = await line.admin.get(f"/api/v1/contacts/{call.contact_id}/timeline")
    assert timeline.status == 200, await timeline.text()
    items = (await timeline.json())["items"]
    assert [(item["channel"], item["kind"]) for item in items] == [
        ("voice", "call"),
        ("sms", "message"),
    ]
