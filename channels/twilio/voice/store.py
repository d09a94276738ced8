"""A call's progress in the database: every webhook's change, in the caller's transaction.

Invariants:
- A call is one `voice_call` row, keyed by the caller leg's CallSid (inbound) or the operator
  leg's (a callback), written at its first webhook; Twilio's retries find it.
- Its interaction (kind `call`) and conversation (routing's work item, one per call:
  `thread_key` `call:<CallSid>`) are made then too, through ingest: the caller is found by
  number like on every channel. While the caller is in the menu the conversation is
  `pending`, so routing leaves it alone; reaching the queue opens it, and routing matches and
  offers it like any work (queue rules see `ivr_choice`).
- The call's queue is its conversation's: the call flow puts the caller in one (`to_queue`,
  `closed`; `voice_call.queue_id` keeps it as where the call came in), routing may move it
  (rules, overflow, transfers); the caller's position and a callback task read it there.
- The interaction's `meta.call` mirrors the row (what the timeline shows) and is rewritten at
  each step; recordings are appended to its attachments and fetched after the commit.
- Operator legs are numbered (`leg`): a webhook about a leg that is not the current one
  changes nothing (a late no-answer of a leg already replaced).
- A call that ends unanswered (hung up in the queue, nobody answered, after hours) opens a
  callback task, once per call (`task_id`); one that an operator answers closes the
  contact's open callback as answered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.media import pending_attachment, queue_fetch
from channels.twilio.voice.parse import CallRequest, Recording
from channels.twilio.voice.settings import VoiceNumber
from core import routing_log
from core.conversations import mark_resolved
from core.event_types import CALL_UPDATED, CONVERSATION_UPDATED
from core.events import Event, emit
from core.identity import Address
from core.ingest import InboundEvent, IngestPolicy, ingest
from core.models import (
    CallState,
    Conversation,
    ConversationStatus,
    Direction,
    IdentityKind,
    Interaction,
    InteractionKind,
    OfferStatus,
    Operator,
    Presence,
    Task,
    TaskOutcome,
    VoiceCall,
)
from core.operators import set_presence
from core.sql import insert_ignoring_conflicts
from core.tasks import MissedCall, close_callbacks, emit_task, open_callback
from core.visibility import Placement, conversation_labels

log = logging.getLogger(__name__)

VOICE: Final = "voice"
ON_CALL: Final = "on a call"
WRAP_UP: Final = "wrap-up after a call"
OUR_REASONS: Final = (ON_CALL, WRAP_UP)
WAITING_STATES: Final = (CallState.QUEUED, CallState.RINGING)
TALKING_STATES: Final = (CallState.CONNECTED, CallState.ON_HOLD)


@dataclass(frozen=True)
class Started:
    call: VoiceCall
    created: bool


def summary(call: VoiceCall) -> dict[str, Any]:
    """What the timeline shows of a call (`interaction.meta.call`)."""
    return {
        "id": call.id,
        "direction": call.direction,
        "from": call.from_number,
        "to": call.to_number,
        "state": call.state,
        "outcome": call.outcome,
        "duration_seconds": call.duration_seconds,
        "wait_seconds": call.wait_seconds,
        "talk_seconds": call.talk_seconds,
        "ivr_choice": call.ivr_choice,
        "operator_id": call.operator_id,
    }


def _address(number: str, call_sid: str) -> Address:
    """A caller's phone identity; a hidden number is a contact of its own call."""
    if number.startswith("+"):
        return Address(IdentityKind.PHONE, number)
    return Address(IdentityKind.EXTERNAL, f"twilio-call:{call_sid}")


async def begin_inbound(
    session: AsyncSession,
    account_id: int,
    request: CallRequest,
    queue_id: int | None,
    policy: IngestPolicy,
    now: datetime,
) -> Started:
    """The call's row, interaction and (pending) conversation; idempotent on CallSid."""
    inserted = await session.scalar(
        insert_ignoring_conflicts(session, VoiceCall, ["call_sid"])
        .values(
            account_id=account_id,
            call_sid=request.call_sid,
            direction=Direction.IN,
            from_number=request.from_number,
            to_number=request.to_number,
            queue_id=queue_id,
            state=CallState.IVR,
            menu_path="",
            menu_attempts=0,
            leg=0,
            started_at=now,
            meta={},
            created_at=now,
            updated_at=now,
        )
        .returning(VoiceCall.id)
    )
    call = await session.scalar(
        select(VoiceCall).where(VoiceCall.call_sid == request.call_sid).with_for_update()
    )
    assert call is not None
    if inserted is None:
        return Started(call, False)
    result = await ingest(
        session,
        InboundEvent(
            channel=VOICE,
            external_id=request.call_sid,
            kind=InteractionKind.CALL,
            addresses=[_address(request.from_number, request.call_sid)],
            text=f"Call from {request.from_number} to {request.to_number}",
            thread_key=f"call:{request.call_sid}",
            queue_id=queue_id,
            occurred_at=now,
            meta={"call": summary(call), "twilio": {"account_id": account_id}},
        ),
        policy,
    )
    call.contact_id = result.contact_id
    call.conversation_id = result.conversation_id
    call.interaction_id = result.interaction_id
    conversation = await session.get(Conversation, result.conversation_id)
    if conversation is not None and conversation.status == ConversationStatus.OPEN:
        # Not routing's yet: the caller is still in the menu (see the module docstring).
        conversation.status = ConversationStatus.PENDING
    await changed(session, call)
    return Started(call, True)


async def find_call(
    session: AsyncSession, request: CallRequest, account_id: int
) -> VoiceCall | None:
    """The call a webhook is about: the id in our own address (Twilio signs the address, so
    it is the one we gave), else the CallSid of a number's own webhooks; locked."""
    if request.call_id is None:
        call = await session.scalar(
            select(VoiceCall).where(VoiceCall.call_sid == request.call_sid).with_for_update()
        )
    else:
        call = await session.get(VoiceCall, request.call_id, with_for_update=True)
    if call is None or call.account_id != account_id:
        return None
    return call


async def changed(session: AsyncSession, call: VoiceCall) -> None:
    """Mirror the row into its interaction and tell consoles."""
    await session.flush()
    if call.interaction_id is not None:
        interaction = await session.get(Interaction, call.interaction_id)
        if interaction is not None:
            interaction.meta = {**interaction.meta, "call": summary(call)}
            if call.ivr_choice is not None:
                interaction.meta = {**interaction.meta, "ivr_choice": call.ivr_choice}
    labels = {"state": call.state, "outcome": call.outcome or "", "channel": VOICE}
    ids = {"call": call.id}
    if call.conversation_id is not None:
        ids["conversation"] = call.conversation_id
        conversation = await session.get(Conversation, call.conversation_id)
        if conversation is not None:
            labels.update(conversation_labels(conversation, Placement(None, call.operator_id)))
    if call.operator_id is not None:
        ids["operator"] = call.operator_id
    await emit(session, Event(CALL_UPDATED, ids, labels))


# --- the menu and the queue --------------------------------------------------------------------


async def menu_step(session: AsyncSession, call: VoiceCall, path: str, attempts: int) -> None:
    call.menu_path = path
    call.menu_attempts = attempts
    await session.flush()


async def _flow_queue(
    session: AsyncSession, call: VoiceCall, queue_id: int | None
) -> Conversation | None:
    """The queue the number's call flow sends the caller to (the menu option's, else the
    number's): kept on the call as where it came in, and made its conversation's queue while
    the conversation is still the flow's (pending). From then on the conversation's queue is
    the call's: routing moves it (rules, overflow, transfers), and the caller's position, the
    monitor and a callback read it there."""
    call.queue_id = queue_id
    conversation = await _conversation(session, call)
    if conversation is not None and conversation.status == ConversationStatus.PENDING:
        conversation.queue_id = queue_id
    return conversation


async def to_queue(
    session: AsyncSession, call: VoiceCall, queue_id: int | None, choice: str | None, now: datetime
) -> None:
    """The caller waits for an operator: routing may now match and offer the call."""
    if call.state not in (CallState.IVR, CallState.QUEUED):
        return
    call.state = CallState.QUEUED
    call.queued_at = call.queued_at or now
    if choice is not None:
        call.ivr_choice = choice
    conversation = await _flow_queue(session, call, queue_id)
    await changed(session, call)  # the choice reaches the interaction before routing reads it
    if conversation is not None and conversation.status == ConversationStatus.PENDING:
        conversation.status = ConversationStatus.OPEN
        conversation.queue_entered_at = None
        await emit(
            session,
            Event(
                CONVERSATION_UPDATED,
                {"conversation": conversation.id, "contact": conversation.contact_id},
                {
                    "channel": VOICE,
                    "status": ConversationStatus.OPEN,
                    **conversation_labels(conversation),
                },
            ),
        )


async def _conversation(session: AsyncSession, call: VoiceCall) -> Conversation | None:
    if call.conversation_id is None:
        return None
    return await session.get(Conversation, call.conversation_id, with_for_update=True)


async def position(session: AsyncSession, call: VoiceCall) -> int:
    """The caller's place among the calls waiting in their conversation's queue, in routing's
    order: priority first (VIPs' and transferred callers' is higher), then who waited longest
    there (since routing put them in it, else since they reached the queue)."""
    conversation = await session.get(Conversation, call.conversation_id or 0)
    if conversation is None:
        return 1
    since = func.coalesce(Conversation.queue_entered_at, VoiceCall.queued_at)
    mine = conversation.queue_entered_at or call.queued_at or call.started_at
    priority = conversation.priority
    ahead = await session.scalar(
        select(func.count())
        .select_from(VoiceCall)
        .join(Conversation, Conversation.id == VoiceCall.conversation_id)
        .where(
            VoiceCall.state.in_(WAITING_STATES),
            Conversation.queue_id.is_(None)
            if conversation.queue_id is None
            else Conversation.queue_id == conversation.queue_id,
            VoiceCall.id != call.id,
            (Conversation.priority > priority)
            | ((Conversation.priority == priority) & (since < mine)),
        )
    )
    return int(ahead or 0) + 1


def waited(call: VoiceCall, now: datetime) -> int | None:
    if call.queued_at is None:
        return None
    return max(0, int((now - call.queued_at).total_seconds()))


# --- unanswered: voicemail, abandoned, after hours ------------------------------------------


async def closed(
    session: AsyncSession, call: VoiceCall, queue_id: int | None, now: datetime
) -> None:
    """The queue the call flow chose is closed: the caller is offered a voicemail, and the
    callback belongs to that queue."""
    await _flow_queue(session, call, queue_id)
    await to_voicemail(session, call, "after_hours", now)


async def to_voicemail(session: AsyncSession, call: VoiceCall, reason: str, now: datetime) -> None:
    """The caller is offered a voicemail (after hours, or nobody answered in time)."""
    if call.state in (CallState.ENDED, CallState.VOICEMAIL):
        return
    if call.state in WAITING_STATES:
        call.wait_seconds = waited(call, now)
    call.state = CallState.VOICEMAIL
    call.outcome = reason
    await _unassign(session, call, now, f"the caller went to voicemail ({reason})")
    await changed(session, call)


async def recorded(
    session: AsyncSession,
    call: VoiceCall,
    recording: Recording,
    kind: str,
    account_id: int,
    now: datetime,
    number: VoiceNumber,
) -> bool:
    """A finished recording: listed on the call's interaction, fetched after the commit.
    A recording already listed (Twilio repeated its callback) changes nothing."""
    if recording.status != "completed" or call.interaction_id is None:
        return False
    interaction = await session.get(Interaction, call.interaction_id, with_for_update=True)
    if interaction is None:
        return False
    if any(item.get("recording_sid") == recording.sid for item in interaction.attachments):
        return False
    name = "voicemail" if kind == "voicemail" else "recording"
    attachment = {
        **pending_attachment(f"{name}-{recording.sid}.mp3", "audio/mpeg"),
        "recording_sid": recording.sid,
        "duration_seconds": recording.duration_seconds,
        "kind": name,
    }
    interaction.attachments = [*interaction.attachments, attachment]
    await session.flush()
    await queue_fetch(
        session,
        channel=VOICE,
        account_id=account_id,
        interaction_id=interaction.id,
        position=len(interaction.attachments) - 1,
        url=f"{recording.url}.mp3",
    )
    if kind == "voicemail":
        call.outcome = "voicemail"
        await _callback(session, call, "voicemail", now, number, voicemail=True)
    await changed(session, call)
    return True


async def _callback(
    session: AsyncSession,
    call: VoiceCall,
    reason: str,
    now: datetime,
    number: VoiceNumber,
    voicemail: bool = False,
) -> None:
    """The callback task of an unanswered call: opened once per call (a voicemail that
    comes later is added to it); a hidden number cannot be called back."""
    if call.contact_id is None or call.direction != Direction.IN:
        return
    if not call.from_number.startswith("+"):
        return
    if call.task_id is not None:
        if voicemail:
            await _add_voicemail(session, call, now)
        return
    conversation = await session.get(Conversation, call.conversation_id or 0)
    task = await open_callback(
        session,
        MissedCall(
            contact_id=call.contact_id,
            conversation_id=call.conversation_id,
            # The queue the call was in last (routing's rules, overflow and transfers move it).
            queue_id=conversation.queue_id if conversation is not None else None,
            number=call.from_number,
            reason=reason,
            waited_seconds=call.wait_seconds,
            voicemail_interaction_id=call.interaction_id if voicemail else None,
            call_id=call.id,
            due_at=now + timedelta(minutes=number.callback_within_minutes),
        ),
        now,
    )
    call.task_id = task.id


async def _add_voicemail(session: AsyncSession, call: VoiceCall, now: datetime) -> None:
    task = await session.get(Task, call.task_id or 0, with_for_update=True)
    if task is None or task.done_at is not None:
        return
    task.meta = {
        **task.meta,
        "voicemail_interaction_id": call.interaction_id,
        "reason": "voicemail",
    }
    task.updated_at = now
    await session.flush()
    await emit_task(session, task)


async def ended(
    session: AsyncSession,
    call: VoiceCall,
    status: str,
    duration: int | None,
    now: datetime,
    number: VoiceNumber,
) -> None:
    """The caller's leg is over (its status callback): settle how the call went."""
    call.duration_seconds = duration if duration is not None else call.duration_seconds
    if call.ended_at is None:
        call.ended_at = now
    state = call.state
    if state == CallState.ENDED and call.outcome is not None:
        await changed(session, call)
        return
    if state in TALKING_STATES:
        await _finish_talk(session, call, now, number.wrap_up_seconds)
    elif state in WAITING_STATES:
        call.wait_seconds = waited(call, now)
        call.outcome = "abandoned"
        await _unassign(session, call, now, "the caller hung up while waiting")
        await _callback(session, call, "abandoned", now, number)
    elif state == CallState.VOICEMAIL:
        # A voicemail that never came (they hung up before the tone): still a missed call.
        reason = call.outcome if call.outcome in ("after_hours", "no_answer") else "no_answer"
        call.outcome = call.outcome or reason
        await _callback(session, call, reason, now, number)
    elif state == CallState.IVR:
        call.outcome = "ended_in_menu" if status == "completed" else status.replace("-", "_")
    elif state == CallState.DIALING:
        call.outcome = call.outcome or status.replace("-", "_")
    call.state = CallState.ENDED
    if call.outcome is None:
        call.outcome = "answered" if call.answered_at is not None else "missed"
    if call.answered_at is None:
        await _resolve(session, call, now)
    await changed(session, call)


async def _unassign(session: AsyncSession, call: VoiceCall, now: datetime, why: str) -> None:
    """The call no longer waits: its conversation leaves routing (resolved), offers end."""
    await routing_log.lock_routing(session)
    await routing_log.withdraw_offers(
        session, call.conversation_id or 0, now, status=OfferStatus.CANCELLED
    )
    conversation = await _conversation(session, call)
    if conversation is None:
        return
    before = Placement(conversation.queue_id, conversation.assignee_id)
    if conversation.assignee_id is not None and call.answered_at is None:
        conversation.assignee_id = None
    await routing_log.record(
        session,
        kind="none",
        conversation_id=conversation.id,
        queue_id=conversation.queue_id,
        reason=why,
        at=now,
    )
    await _resolve(session, call, now, before)


async def _resolve(
    session: AsyncSession, call: VoiceCall, now: datetime, *before: Placement
) -> None:
    conversation = await _conversation(session, call)
    if conversation is None or conversation.status == ConversationStatus.RESOLVED:
        return
    # As any resolution: what the team wrote in it (an email answered during the call)
    # becomes suggestions.
    await mark_resolved(session, conversation, now)
    await emit(
        session,
        Event(
            CONVERSATION_UPDATED,
            {"conversation": conversation.id, "contact": conversation.contact_id},
            {
                "channel": VOICE,
                "status": ConversationStatus.RESOLVED,
                **conversation_labels(conversation, *before),
            },
        ),
    )


# --- operators -----------------------------------------------------------------------------------


async def operator_answered(
    session: AsyncSession, call: VoiceCall, leg: int | None, leg_sid: str, now: datetime
) -> bool:
    """The operator picked up their device (their leg fetches its TwiML): they are on the
    call. False for a leg that is not the call's current one, or a caller who is gone."""
    if leg != call.leg or call.state not in (CallState.RINGING, CallState.ON_HOLD):
        return False
    resumed = call.state == CallState.ON_HOLD
    if resumed:
        call.meta = {**call.meta, "held": True}
    call.agent_call_sid = leg_sid
    call.state = CallState.CONNECTED
    if call.answered_at is None:
        call.answered_at = now
        call.wait_seconds = waited(call, now)
        conversation = await _conversation(session, call)
        if conversation is not None and conversation.first_response_at is None:
            # Picking up is a call's first response (its SLA target is met now).
            conversation.first_response_at = now
    if not resumed:
        call.meta = {**call.meta, "talk_started_at": now.isoformat()}
        await call_presence(session, call.operator_id, Presence.BUSY, ON_CALL, now)
        if call.contact_id is not None:
            await close_callbacks(session, call.contact_id, TaskOutcome.ANSWERED, now)
    await changed(session, call)
    return True


async def operator_missed(
    session: AsyncSession, call: VoiceCall, leg: int | None, status: str, now: datetime
) -> bool:
    """The operator's device did not answer (no-answer, busy, failed): the call waits again
    and the next operator gets it; the decision log keeps them from getting it straight back."""
    if leg != call.leg or call.state != CallState.RINGING:
        return False
    operator_id = call.operator_id
    call.state = CallState.QUEUED
    call.operator_id = None
    call.agent_call_sid = None
    conversation = await _conversation(session, call)
    if conversation is not None and conversation.assignee_id is not None:
        await routing_log.lock_routing(session)
        held = Placement(conversation.queue_id, conversation.assignee_id)
        conversation.assignee_id = None
        await routing_log.record(
            session,
            kind="timed_out",
            conversation_id=conversation.id,
            queue_id=conversation.queue_id,
            operator_id=operator_id,
            reason=f"operator {operator_id}'s phone did not answer ({status}): back to the queue",
            at=now,
        )
        await routing_log.emit_assignment(session, conversation, held)
    await changed(session, call)
    return True


async def bridge_ended(
    session: AsyncSession,
    call: VoiceCall,
    leg: int | None,
    now: datetime,
    wrap_up: int,
    talked: int | None = None,
) -> CallState:
    """The operator's `<Dial>` is over: the state says why (on hold, transferred: the call
    goes on; connected: the talk is over and the operator's wrap-up starts)."""
    if leg != call.leg:
        return CallState.ENDED
    if call.state == CallState.CONNECTED:
        await _finish_talk(session, call, now, wrap_up, talked)
        await changed(session, call)
    return CallState(call.state)


async def _finish_talk(
    session: AsyncSession,
    call: VoiceCall,
    now: datetime,
    wrap_up: int,
    talked: int | None = None,
) -> None:
    """The talk is over (whichever of the operator's Dial action and the caller's status
    callback comes first): the operator wraps up for `wrap_up` seconds. `talked` is
    Twilio's count of the last stretch (the Dial's duration), else our clock's."""
    await talk_over(session, call, now, talked)
    call.wrapup_until = now + timedelta(seconds=wrap_up)
    call.state = CallState.ENDED
    call.outcome = call.outcome or "answered"
    await call_presence(session, call.operator_id, Presence.BUSY, WRAP_UP, now)


async def talk_over(
    session: AsyncSession, call: VoiceCall, now: datetime, talked: int | None = None
) -> None:
    started = call.meta.get("talk_started_at")
    if isinstance(started, str):
        if talked is None or call.meta.get("held"):
            # Since the talk began (a hold in between: Twilio's count is of the last bridge).
            talked = int((now - datetime.fromisoformat(started)).total_seconds())
        call.talk_seconds = (call.talk_seconds or 0) + max(talked, 0)
        call.meta = {
            key: value for key, value in call.meta.items() if key not in ("talk_started_at", "held")
        }


async def call_presence(
    session: AsyncSession, operator_id: int | None, presence: Presence, reason: str, now: datetime
) -> None:
    if operator_id is None:
        return
    operator = await session.get(Operator, operator_id)
    if operator is None:
        return
    # An operator who chose away or offline meanwhile keeps their choice.
    if operator.presence == Presence.AVAILABLE or operator.presence_reason in OUR_REASONS:
        await set_presence(session, operator, presence, reason or None, at=now)


async def wrap_up_over(session: AsyncSession, call: VoiceCall, now: datetime) -> None:
    """The operator's wrap-up ends: available again (unless they chose otherwise), and an
    inbound call's conversation is done."""
    call.wrapup_until = None
    operator = await session.get(Operator, call.operator_id or 0)
    if operator is not None and operator.presence_reason in OUR_REASONS:
        busy_elsewhere = await session.scalar(
            select(func.count())
            .select_from(VoiceCall)
            .where(
                VoiceCall.operator_id == operator.id,
                VoiceCall.id != call.id,
                VoiceCall.state.in_((*TALKING_STATES, CallState.RINGING, CallState.DIALING)),
            )
        )
        if not busy_elsewhere:
            await set_presence(session, operator, Presence.AVAILABLE, None, at=now)
    if call.direction == Direction.IN:
        # An inbound call's conversation is the call's own; a callback's is the task's, which
        # the operator may well keep working on.
        await _resolve(session, call, now)
    await session.flush()


async def requeue_for_transfer(session: AsyncSession, call: VoiceCall, now: datetime) -> None:
    """The conversation was handed on while connected: the caller waits again (with
    priority), the operator who had them wraps up."""
    if call.state not in TALKING_STATES:
        return
    await talk_over(session, call, now)
    # The one who handed the caller on is free at once (their wrap-up is the transfer note).
    await call_presence(session, call.operator_id, Presence.AVAILABLE, "", now)
    transfers = [*call.meta.get("transfers", []), {"from": call.operator_id, "at": now.isoformat()}]
    call.meta = {**call.meta, "transfers": transfers}
    call.state = CallState.QUEUED
    call.operator_id = None
    call.agent_call_sid = None
    conversation = await _conversation(session, call)
    if conversation is not None:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(priority=min(conversation.priority + 10, 100))
        )
    await changed(session, call)


async def mark_ringing(session: AsyncSession, call: VoiceCall) -> None:
    await changed(session, call)


async def set_state(session: AsyncSession, call: VoiceCall, state: CallState) -> None:
    call.state = state
    await changed(session, call)
