"""Callbacks: an operator calls a customer back (a task's "call back"), in the database.

The call is placed by `control.TwilioCallPlacer`: its row (keyed by a placeholder until
Twilio names the operator's leg) and its outbound interaction are written first
(`begin_callback`), then the operator's phone rings; when they answer, the customer's rings
(`callback_operator_ready`); the customer answering connects them (`callback_answered`); the
Dial's end settles it (`callback_dialed`): answered, the task is done (`called_back`); not,
the task stays open with the attempt noted, and when Twilio says why the customer was not
reached (their line busy, no answer, the call failed) that is the task's reason now (what the
task list shows). The operator leg's status callback settles a call whose Dial never ended
(`callback_over`: the operator never picked up, or the action was lost).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from channels.twilio.voice import store
from channels.twilio.voice.store import ON_CALL, VOICE, WRAP_UP, summary
from core.models import (
    CallState,
    Direction,
    Interaction,
    InteractionKind,
    Presence,
    Task,
    TaskOutcome,
    VoiceCall,
)
from core.tasks import emit_task

# How a callback's Dial to the customer ended (DialCallStatus), as the reason the task still
# waits: the task list says "the line was busy", "no one answered", "the call failed".
NOT_REACHED = ("busy", "no_answer", "failed")


async def callback_operator_ready(session: AsyncSession, call: VoiceCall, now: datetime) -> None:
    """The operator answered their device for a callback: they are on a call."""
    await store.call_presence(session, call.operator_id, Presence.BUSY, ON_CALL, now)
    call.meta = {**call.meta, "operator_answered_at": now.isoformat()}
    await store.changed(session, call)


async def callback_dialed(
    session: AsyncSession,
    call: VoiceCall,
    status: str,
    talked: int | None,
    now: datetime,
    wrap_up: int,
) -> bool:
    """The Dial to the customer is over. Answered: the task is done (called back); not:
    the task stays open with the attempt noted. True when the customer answered."""
    if call.state not in (CallState.DIALING, CallState.CONNECTED):
        return call.outcome == "answered"
    answered = status == "completed"
    call.state = CallState.ENDED
    call.ended_at = now
    call.outcome = "answered" if answered else (status.replace("-", "_") or "failed")
    if answered:
        call.answered_at = call.answered_at or now
        await store.talk_over(session, call, now, talked)
        call.talk_seconds = call.talk_seconds or 0
    call.wrapup_until = now + timedelta(seconds=wrap_up if answered else 0)
    await store.call_presence(
        session, call.operator_id, Presence.BUSY, WRAP_UP if answered else ON_CALL, now
    )
    reached = call.outcome if call.outcome in NOT_REACHED else None
    await _settle_callback_task(session, call, answered, now, reached)
    await store.changed(session, call)
    return answered


async def callback_answered(session: AsyncSession, call: VoiceCall, now: datetime) -> None:
    """The customer of a callback picked up: operator and customer are connected."""
    if call.state != CallState.DIALING:
        return
    call.state = CallState.CONNECTED
    call.answered_at = now
    call.meta = {**call.meta, "talk_started_at": now.isoformat()}
    await store.changed(session, call)


async def callback_over(
    session: AsyncSession,
    call: VoiceCall,
    status: str,
    duration: int | None,
    now: datetime,
    wrap_up: int,
) -> None:
    """The operator's leg of a callback ended (its status callback). If the operator never
    answered their device, the callback did not happen: the task stays open."""
    call.duration_seconds = duration
    if call.state == CallState.CONNECTED:  # the Dial's action never came: settle from here
        await callback_dialed(session, call, "completed", None, now, wrap_up)
    elif call.state == CallState.DIALING:
        call.state = CallState.ENDED
        call.ended_at = now
        call.outcome = "operator_no_answer" if "operator_answered_at" not in call.meta else "failed"
        call.wrapup_until = now
        await _settle_callback_task(session, call, False, now)
    await store.changed(session, call)


async def _settle_callback_task(
    session: AsyncSession,
    call: VoiceCall,
    answered: bool,
    now: datetime,
    reached: str | None = None,
) -> None:
    """Note the attempt on the task: done when the customer answered; else `reached`, the
    customer's side's answer (one of NOT_REACHED), becomes its reason."""
    task = await session.get(Task, call.task_id or 0, with_for_update=True)
    if task is None or task.done_at is not None:
        return
    tries = [
        *task.meta.get("callbacks", []),
        {
            "call_id": call.id,
            "outcome": call.outcome,
            "at": now.isoformat(),
            "operator_id": call.operator_id,
        },
    ][-20:]
    task.meta = {**task.meta, "callbacks": tries}
    if answered:
        task.done_at = now
        task.outcome = TaskOutcome.CALLED_BACK
    elif reached is not None:
        task.meta = {**task.meta, "reason": reached}
    task.updated_at = now
    await session.flush()
    await emit_task(session, task)


async def begin_callback(
    session: AsyncSession,
    *,
    account_id: int,
    placeholder: str,
    our_number: str,
    customer: str,
    task: Task,
    operator_id: int,
    now: datetime,
) -> VoiceCall:
    """A callback about to be placed: its row (keyed by a placeholder until Twilio names the
    operator's leg) and its outbound interaction in the task's conversation."""
    call = VoiceCall(
        account_id=account_id,
        call_sid=placeholder,
        direction=Direction.OUT,
        from_number=our_number,
        to_number=customer,
        contact_id=task.contact_id,
        conversation_id=task.conversation_id,
        task_id=task.id,
        queue_id=task.queue_id,
        state=CallState.DIALING,
        operator_id=operator_id,
        leg=1,
        menu_attempts=0,
        started_at=now,
        meta={},
    )
    session.add(call)
    await session.flush()
    if task.contact_id is not None:
        interaction = Interaction(
            conversation_id=task.conversation_id,
            contact_id=task.contact_id,
            kind=InteractionKind.CALL,
            direction=Direction.OUT,
            channel=VOICE,
            text=f"Call to {customer}",
            operator_id=operator_id,
            occurred_at=now,
            meta={"call": summary(call)},
        )
        session.add(interaction)
        await session.flush()
        call.interaction_id = interaction.id
    await store.changed(session, call)
    return call


async def callback_not_placed(
    session: AsyncSession, call: VoiceCall, why: str, now: datetime
) -> None:
    call.state = CallState.ENDED
    call.ended_at = now
    call.outcome = "failed"
    call.meta = {**call.meta, "error": why[:500]}
    await _settle_callback_task(session, call, False, now)
    await store.changed(session, call)
