"""What the console does with calls, through Twilio's REST API: hold, resume and hang up a
conversation's call (`CallActions`: the operator on the call, or a supervisor), and a task's
"call back" (`TwilioCallPlacer`: the operator's phone rings first, then the customer's).
Each checks who may before anything is sent, and audits what was done."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import ChannelServices
from channels.twilio.accounts import enabled_accounts
from channels.twilio.voice import callbacks, store
from channels.twilio.voice.rest import (
    CallFailed,
    Line,
    device_of,
    hang_up_leg,
    hooks_for,
    line_of,
    redirect,
    ring,
)
from core import audit
from core.audit import Actor
from core.calls import NO_TELEPHONY, CallView, current_call
from core.db import transaction
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.models import (
    CallState,
    Direction,
    Identity,
    IdentityKind,
    Operator,
    Task,
    VoiceCall,
    utcnow,
)
from core.tasks import get_task

log = logging.getLogger(__name__)


def _may_control(actor: Actor, call: VoiceCall) -> None:
    if not actor.is_supervisor and call.operator_id != actor.operator_id:
        raise Forbidden("only the operator on the call (or a supervisor) controls it")


async def _live(session: AsyncSession, actor: Actor, conversation_id: int) -> VoiceCall:
    call = await current_call(session, actor, conversation_id)
    if call is None:
        raise NotFound("this conversation has no call")
    _may_control(actor, call)
    return call


class CallActions:
    """Hold, resume and hang up, for the console (`web/routes_calls.py`)."""

    def __init__(self, services: ChannelServices) -> None:
        self.services = services

    async def view(self, actor: Actor, conversation_id: int) -> CallView | None:
        async with self.services.sessions() as session:
            call = await current_call(session, actor, conversation_id)
            return CallView.of(call, actor) if call is not None else None

    async def hold(self, actor: Actor, conversation_id: int) -> CallView:
        async with transaction(self.services.sessions) as session:
            call = await _live(session, actor, conversation_id)
            if call.state != CallState.CONNECTED or call.direction != Direction.IN:
                raise Conflict(f"the call is {call.state.replace('_', ' ')}: it cannot be held")
            line = await self._line(session, call)
            await store.set_state(session, call, CallState.ON_HOLD)
            caller = call.call_sid
        try:
            await redirect(line, caller, line.hooks.url("voice-hold", call.id))
        except CallFailed as exc:
            async with transaction(self.services.sessions) as session:
                again = await session.get(VoiceCall, call.id, with_for_update=True)
                if again is not None and again.state == CallState.ON_HOLD:
                    await store.set_state(session, again, CallState.CONNECTED)
            raise Conflict(str(exc)) from None
        await self._audit(actor, "call.hold", call.id)
        return await self._view(actor, call.id)

    async def resume(self, actor: Actor, conversation_id: int) -> CallView:
        async with self.services.sessions() as session:
            call = await _live(session, actor, conversation_id)
            if call.state != CallState.ON_HOLD or call.agent_call_sid is None:
                raise Conflict("the call is not on hold")
            line = await self._line(session, call)
        try:
            await redirect(
                line, call.agent_call_sid, line.hooks.url("voice-agent", call.id, leg=call.leg)
            )
        except CallFailed as exc:
            raise Conflict(str(exc)) from None
        await self._audit(actor, "call.resume", call.id)
        return await self._view(actor, call.id)

    async def hang_up(self, actor: Actor, conversation_id: int) -> CallView:
        async with self.services.sessions() as session:
            call = await _live(session, actor, conversation_id)
            if call.state == CallState.ENDED:
                raise Conflict("the call has ended already")
            line = await self._line(session, call)
        try:
            # The caller's leg inbound, the operator's for a callback: both end the call.
            await hang_up_leg(line, call.call_sid)
        except CallFailed as exc:
            raise Conflict(str(exc)) from None
        await self._audit(actor, "call.hang_up", call.id)
        return await self._view(actor, call.id)

    async def _line(self, session: AsyncSession, call: VoiceCall) -> Line:
        try:
            return await line_of(session, self.services, call)
        except CallFailed as exc:
            raise Conflict(str(exc)) from None

    async def _view(self, actor: Actor, call_id: int) -> CallView:
        async with self.services.sessions() as session:
            call = await session.get(VoiceCall, call_id)
            assert call is not None
            return CallView.of(call, actor)

    async def _audit(self, actor: Actor, action: str, call_id: int) -> None:
        async with transaction(self.services.sessions) as session:
            await audit.record(session, actor, action, "voice_call", call_id, {})


class TwilioCallPlacer:
    """ "Call back" on a task: the operator's device rings first, then the customer
    (`core.tasks.CallPlacer`)."""

    def __init__(self, services: ChannelServices) -> None:
        self.services = services

    async def place_callback(self, actor: Actor, task_id: int) -> dict[str, Any]:
        async with transaction(self.services.sessions) as session:
            task = await get_task(session, actor, task_id)
            if task.done_at is not None:
                raise Conflict("the task is closed")
            operator = await session.get(Operator, actor.operator_id or 0)
            if operator is None:
                raise Forbidden("only an operator places calls")
            device = device_of(operator)
            if device is None:
                raise InvalidInput(
                    "set the phone your calls ring on (your preferences: phone for calls)",
                    field="voice_device",
                )
            busy = await session.scalar(
                select(VoiceCall.id).where(
                    VoiceCall.operator_id == operator.id,
                    VoiceCall.state.in_(
                        (*store.TALKING_STATES, CallState.RINGING, CallState.DIALING)
                    ),
                )
            )
            if busy is not None:
                raise Conflict("you are on a call already")
            customer = await _customer_number(session, task)
            line = await self._line(session, task)
            call = await callbacks.begin_callback(
                session,
                account_id=line.account.id,
                placeholder=f"pending-{secrets.token_hex(8)}",
                our_number=line.number.number,
                customer=customer,
                task=task,
                operator_id=operator.id,
                now=utcnow(),
            )
            await audit.record(
                session, actor, "call.callback", "task", task.id, {"call": call.id, "to": customer}
            )
            call_id = call.id
        try:
            sid = await ring(
                line,
                device,
                line.hooks.url("voice-callback", call_id),
                line.hooks.url("voice-status", call_id),
                line.number.ring_seconds,
            )
        except CallFailed as exc:
            async with transaction(self.services.sessions) as session:
                failed = await session.get(VoiceCall, call_id, with_for_update=True)
                if failed is not None:
                    await callbacks.callback_not_placed(session, failed, str(exc), utcnow())
            raise Conflict(str(exc)) from None
        async with transaction(self.services.sessions) as session:
            await session.execute(
                update(VoiceCall).where(VoiceCall.id == call_id).values(call_sid=sid)
            )
        return {"call_id": call_id, "state": CallState.DIALING.value}

    async def _line(self, session: AsyncSession, task: Task) -> Line:
        """The account and number the customer called (their last call), else the first
        account's first number that takes calls."""
        last = await session.scalar(
            select(VoiceCall)
            .where(VoiceCall.contact_id == task.contact_id, VoiceCall.direction == Direction.IN)
            .order_by(VoiceCall.id.desc())
            .limit(1)
        )
        if last is not None:
            try:
                return await line_of(session, self.services, last)
            except CallFailed:
                pass
        for view, settings in await enabled_accounts(session, self.services.cipher):
            if settings.voice_numbers:
                try:
                    return Line(
                        view, settings, settings.voice_numbers[0], hooks_for(view, self.services)
                    )
                except CallFailed as exc:
                    raise Conflict(str(exc)) from None
        raise Conflict(NO_TELEPHONY)


async def _customer_number(session: AsyncSession, task: Task) -> str:
    number = task.meta.get("number")
    if isinstance(number, str) and number.startswith("+"):
        return number
    found = await session.scalar(
        select(Identity.address)
        .where(Identity.contact_id == task.contact_id, Identity.kind == IdentityKind.PHONE)
        .order_by(Identity.id)
        .limit(1)
    )
    if found is None:
        raise InvalidInput("the customer has no phone number to call")
    return str(found)
