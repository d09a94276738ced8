"""What omnicrm asks of Twilio during calls, through the REST API: ring the operator who
accepted a call, follow transfers, hold/resume/hang up from the console, call customers back.

`CallController` is a background worker (one per server process; every step is claimed with
a conditional update, so two processes never ring one operator twice): it brings the calls
in line with what routing decided. The database says what should be (a queued call whose
conversation has an assignee should ring that assignee; a connected call whose conversation
was handed on should go back to the queue; a wrap-up that is over should end), the worker
makes the REST calls, and every REST call happens outside a transaction.

Invariants: a call's `leg` only grows; the row is claimed (state and leg checked) before the
REST call and the outcome written against that same leg, so a late answer about an older leg
changes nothing. A REST failure sends the call back to the queue with the reason logged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, cast

import aiohttp
from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from twilio.base.exceptions import TwilioException, TwilioRestException

from channels.base import ChannelServices
from channels.twilio.accounts import PROVIDER, account_by_id, enabled_accounts
from channels.twilio.client import connect
from channels.twilio.parse import describe_error
from channels.twilio.settings import TwilioSettings
from channels.twilio.voice import store
from channels.twilio.voice.parse import FINAL_STATUSES
from channels.twilio.voice.settings import VoiceNumber
from channels.twilio.voice.twiml import Hooks
from core import audit
from core.audit import Actor
from core.calls import CallView, current_call
from core.channel_accounts import AccountView
from core.db import transaction
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.event_types import (
    CALL_UPDATED,
    CONVERSATION_ASSIGNED,
    CONVERSATION_UPDATED,
    OFFER_UPDATED,
)
from core.events import Event
from core.logfields import log_fields
from core.models import (
    CallState,
    Conversation,
    Direction,
    Identity,
    IdentityKind,
    Operator,
    Task,
    VoiceCall,
    utcnow,
)
from core.preferences import preferences_of
from core.tasks import get_task
from core.workers import wait_for_any

log = logging.getLogger(__name__)

# A call no webhook has changed for this long is looked up at Twilio (see _settle_stale).
STALE_SECONDS: Final = 120.0
WAKING: Final = frozenset(
    {CONVERSATION_ASSIGNED, CONVERSATION_UPDATED, OFFER_UPDATED, CALL_UPDATED}
)


class CallFailed(Exception):
    """Twilio refused or could not be reached; the message says which and why."""


# --- REST ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """An account and one of its numbers, and where Twilio reaches our webhooks."""

    account: AccountView
    settings: TwilioSettings
    number: VoiceNumber
    hooks: Hooks


def hooks_for(account: AccountView, services: ChannelServices) -> Hooks:
    base = account.setting("public_url") or services.settings.public_url
    if not base:
        raise CallFailed(
            "omnicrm has no public_url: Twilio could not reach it (set the server's or the"
            " account's public_url)"
        )
    return Hooks(f"{str(base).rstrip('/')}/hooks/{PROVIDER}/{account.name}")


async def line_of(session: AsyncSession, services: ChannelServices, call: VoiceCall) -> Line:
    found = await account_by_id(session, services.cipher, call.account_id or 0)
    if found is None:
        raise CallFailed("the call's Twilio account is gone or cannot be read")
    view, settings = found
    ours = call.to_number if call.direction == Direction.IN else call.from_number
    number = settings.voice_number(ours) or VoiceNumber(number=ours)
    return Line(view, settings, number, hooks_for(view, services))


async def _rest(line: Line, what: str, action: Any) -> Any:
    settings = line.settings
    try:
        async with connect(settings.account_sid, settings.auth_token, settings.api_base_url) as api:
            return await action(api.client)
    except TwilioRestException as exc:
        code = str(exc.code) if exc.code is not None else None
        text = describe_error(code, (exc.msg or "").split(": ", 1)[-1]) or f"HTTP {exc.status}"
        raise CallFailed(f"Twilio refused to {what}: {code or exc.status} {text}") from None
    except (TwilioException, aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise CallFailed(f"Twilio unreachable ({what}): {type(exc).__name__}: {exc}") from None


async def redirect(line: Line, call_sid: str, url: str) -> None:
    """Send a live leg to new TwiML (it leaves its queue or bridge)."""
    await _rest(
        line,
        "redirect the call",
        lambda client: client.calls(call_sid).update_async(url=url, method="POST"),
    )


async def hang_up_leg(line: Line, call_sid: str) -> None:
    await _rest(
        line,
        "hang up",
        lambda client: client.calls(call_sid).update_async(status="completed"),
    )


async def ring(line: Line, to: str, url: str, status_url: str, seconds: int) -> str:
    """Place a call to an operator's device; its CallSid."""
    created = await _rest(
        line,
        "place the call",
        lambda client: client.calls.create_async(
            to=to,
            from_=line.number.number,
            url=url,
            method="POST",
            status_callback=status_url,
            status_callback_method="POST",
            timeout=seconds,
        ),
    )
    return str(created.sid)


async def call_status(line: Line, call_sid: str) -> tuple[str, int | None]:
    """A call's status and duration as Twilio has them."""
    found = await _rest(
        line, "look the call up", lambda client: client.calls(call_sid).fetch_async()
    )
    duration = str(found.duration or "")
    return str(found.status or ""), int(duration) if duration.isdigit() else None


def device_of(operator: Operator) -> str | None:
    return preferences_of(operator).voice_device or None


# --- the worker ----------------------------------------------------------------------------------


class CallController:
    """Rings operators who accepted calls, follows transfers, ends wrap-ups (see the module
    docstring). `poll_seconds` bounds how late a missed wake-up is noticed."""

    def __init__(
        self,
        services: ChannelServices,
        *,
        poll_seconds: float = 2.0,
        stale_seconds: float = STALE_SECONDS,
    ) -> None:
        self.services = services
        self.poll_seconds = poll_seconds
        self.stale = timedelta(seconds=stale_seconds)
        self._wake = asyncio.Event()

    def _on_event(self, event: Event) -> None:
        if event.type in WAKING:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        self.services.bus.add_listener(self._on_event)
        while not stop.is_set():
            self._wake.clear()
            try:
                delay = await self.run_once()
            except Exception:
                log.exception("call control pass failed")
                delay = self.poll_seconds
            await wait_for_any(self._wake, stop, seconds=delay)

    async def run_once(self) -> float:
        """One round; the seconds until the next is due at the latest."""
        await self._ring_accepted()
        await self._follow_transfers()
        await self._settle_stale()
        return await self._end_wrap_ups()

    async def _ring_accepted(self) -> None:
        async with self.services.sessions() as session:
            rows = (
                await session.execute(
                    select(VoiceCall.id, VoiceCall.leg, Conversation.assignee_id)
                    .join(Conversation, Conversation.id == VoiceCall.conversation_id)
                    .where(
                        VoiceCall.state == CallState.QUEUED,
                        VoiceCall.direction == Direction.IN,
                        Conversation.assignee_id.is_not(None),
                    )
                    .order_by(VoiceCall.id)
                    .limit(50)
                )
            ).all()
        for call_id, leg, operator_id in rows:
            if operator_id is not None:
                await self._ring(call_id, leg, operator_id)

    async def _ring(self, call_id: int, leg: int, operator_id: int) -> None:
        now = utcnow()
        new_leg = leg + 1
        async with transaction(self.services.sessions) as session:
            claimed = await session.execute(
                update(VoiceCall)
                .where(
                    VoiceCall.id == call_id,
                    VoiceCall.state == CallState.QUEUED,
                    VoiceCall.leg == leg,
                )
                .values(
                    state=CallState.RINGING,
                    leg=new_leg,
                    operator_id=operator_id,
                    agent_call_sid=None,
                    updated_at=now,
                )
            )
            if cast(CursorResult[Any], claimed).rowcount != 1:
                return  # another process rings them, or the call moved on
            call = await session.get(VoiceCall, call_id, populate_existing=True)
            operator = await session.get(Operator, operator_id)
            assert call is not None
            device = device_of(operator) if operator is not None else None
            try:
                line = await line_of(session, self.services, call)
            except CallFailed as exc:
                await store.operator_missed(session, call, new_leg, str(exc), now)
                return
            if device is None:
                await store.operator_missed(
                    session, call, new_leg, "no phone is set for calls in their preferences", now
                )
                return
            await store.mark_ringing(session, call)
        try:
            sid = await ring(
                line,
                device,
                line.hooks.url("voice-agent", call_id, leg=new_leg),
                line.hooks.url("voice-agent-status", call_id, leg=new_leg),
                line.number.ring_seconds,
            )
        except CallFailed as exc:
            log.warning(
                "could not ring an operator",
                extra=log_fields(call=call_id, operator=operator_id, error=str(exc)),
            )
            async with transaction(self.services.sessions) as session:
                call = await session.get(VoiceCall, call_id, with_for_update=True)
                if call is not None:
                    await store.operator_missed(session, call, new_leg, str(exc), utcnow())
            return
        async with transaction(self.services.sessions) as session:
            # The operator may have answered (and their leg named itself) already.
            await session.execute(
                update(VoiceCall)
                .where(
                    VoiceCall.id == call_id,
                    VoiceCall.leg == new_leg,
                    VoiceCall.agent_call_sid.is_(None),
                )
                .values(agent_call_sid=sid)
            )

    async def _follow_transfers(self) -> None:
        async with self.services.sessions() as session:
            ids = list(
                await session.scalars(
                    select(VoiceCall.id)
                    .join(Conversation, Conversation.id == VoiceCall.conversation_id)
                    .where(
                        VoiceCall.state.in_(store.TALKING_STATES),
                        VoiceCall.direction == Direction.IN,
                        or_(
                            Conversation.assignee_id.is_(None),
                            Conversation.assignee_id != VoiceCall.operator_id,
                        ),
                    )
                    .limit(50)
                )
            )
        for call_id in ids:
            async with transaction(self.services.sessions) as session:
                call = await session.get(VoiceCall, call_id, with_for_update=True)
                if call is None or call.state not in store.TALKING_STATES:
                    continue
                try:
                    line = await line_of(session, self.services, call)
                except CallFailed as exc:
                    log.warning(
                        "cannot transfer a call", extra=log_fields(call=call_id, error=str(exc))
                    )
                    continue
                caller = call.call_sid
                await store.requeue_for_transfer(session, call, utcnow())
            try:
                await redirect(line, caller, line.hooks.url("voice-requeue", call_id))
            except CallFailed as exc:
                log.warning(
                    "could not transfer a call", extra=log_fields(call=call_id, error=str(exc))
                )

    async def _settle_stale(self) -> None:
        """Calls we have not heard of for a while: ask Twilio how they are. A call that ended
        while omnicrm could not hear it (a restart, a lost status callback) is settled as
        its status callback would have; one still going is looked at again later."""
        now = utcnow()
        async with self.services.sessions() as session:
            stale = (
                await session.execute(
                    select(VoiceCall.id, VoiceCall.updated_at)
                    .where(
                        VoiceCall.state != CallState.ENDED,
                        VoiceCall.updated_at <= now - self.stale,
                        VoiceCall.call_sid.not_like("pending-%"),
                    )
                    .order_by(VoiceCall.updated_at)
                    .limit(20)
                )
            ).all()
        for call_id, seen in stale:
            async with self.services.sessions() as session:
                call = await session.get(VoiceCall, call_id)
                if call is None:
                    continue
                try:
                    line = await line_of(session, self.services, call)
                except CallFailed:
                    continue
                sid = call.call_sid
            try:
                status, duration = await call_status(line, sid)
            except CallFailed as exc:
                log.warning(
                    "cannot ask Twilio about a call", extra=log_fields(call=call_id, error=str(exc))
                )
                continue
            async with transaction(self.services.sessions) as session:
                call = await session.get(VoiceCall, call_id, with_for_update=True)
                if call is None or call.updated_at != seen or call.state == CallState.ENDED:
                    continue  # a webhook moved it meanwhile
                if status not in FINAL_STATUSES:
                    call.updated_at = utcnow()  # still going: look again later
                    continue
                log.info(
                    "a call ended unheard; settled from Twilio's record",
                    extra=log_fields(call=call_id, status=status),
                )
                if call.direction == Direction.OUT:
                    await store.callback_over(
                        session, call, status, duration, now, line.number.wrap_up_seconds
                    )
                else:
                    await store.ended(session, call, status, duration, now, line.number)

    async def _end_wrap_ups(self) -> float:
        now = utcnow()
        async with self.services.sessions() as session:
            due = list(
                await session.scalars(
                    select(VoiceCall.id).where(
                        VoiceCall.wrapup_until.is_not(None), VoiceCall.wrapup_until <= now
                    )
                )
            )
            upcoming = await session.scalar(
                select(VoiceCall.wrapup_until)
                .where(VoiceCall.wrapup_until > now)
                .order_by(VoiceCall.wrapup_until)
                .limit(1)
            )
        for call_id in due:
            async with transaction(self.services.sessions) as session:
                call = await session.get(VoiceCall, call_id, with_for_update=True)
                if call is not None and call.wrapup_until is not None and call.wrapup_until <= now:
                    await store.wrap_up_over(session, call, now)
        if upcoming is None:
            return self.poll_seconds
        return max(0.05, min(self.poll_seconds, (upcoming - now).total_seconds()))


# --- the console's actions -----------------------------------------------------------------------


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
            call = await store.begin_callback(
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
                    await store.callback_not_placed(session, failed, str(exc), utcnow())
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
        raise Conflict("no telephony: add a Twilio account with a voice number")


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
