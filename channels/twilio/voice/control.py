"""The call controller: what omnicrm asks of Twilio during calls on its own, through the
REST API (`rest.py`): ring the operator who accepted a call, follow transfers, settle calls
that ended unheard, end wrap-ups. (What the console asks, hold/resume/hang up and call back,
is `actions.py`.)

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
from datetime import timedelta
from typing import Any, Final, cast

from sqlalchemy import CursorResult, or_, select, update

from channels.base import ChannelServices
from channels.twilio.voice import callbacks, store
from channels.twilio.voice.parse import FINAL_STATUSES
from channels.twilio.voice.rest import CallFailed, call_status, device_of, line_of, redirect, ring
from core.db import transaction
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
    Operator,
    VoiceCall,
    utcnow,
)
from core.workers import wait_for_any

log = logging.getLogger(__name__)

STALE_SECONDS: Final = 120.0
WAKING: Final = frozenset(
    {CONVERSATION_ASSIGNED, CONVERSATION_UPDATED, OFFER_UPDATED, CALL_UPDATED}
)


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
                    await callbacks.callback_over(
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
