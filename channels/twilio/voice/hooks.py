"""Twilio's voice webhooks: each request authenticated, parsed (pure), stored, then answered
with the TwiML of the call's next step (built from the database after the change, so a
request Twilio repeats gets the same answer for the call as it now stands).

`/hooks/twilio/<account>/voice` is the number's "A call comes in" URL and `voice-status` its
"Call status changes" URL (both entered in Twilio's console); every other address is one
omnicrm gives Twilio in its TwiML or REST calls, naming the call (`call=`) and the operator
leg (`leg=`).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession
from twilio.twiml.voice_response import VoiceResponse

from channels.base import (
    ChannelServices,
    Parsed,
    Unsupported,
    WebhookAdapter,
    WebhookReply,
    WebhookRequest,
)
from channels.twilio.accounts import settings_of
from channels.twilio.settings import TwilioSettings
from channels.twilio.voice import callbacks, store, twiml
from channels.twilio.voice.parse import (
    FINAL_STATUSES,
    CallRequest,
    call_request,
    gathered,
    recording,
    seconds,
)
from channels.twilio.voice.settings import VoiceNumber
from channels.twilio.webhooks import fields_of, is_signed, signed_url
from core.channel_accounts import AccountView
from core.logfields import log_fields
from core.models import CallState, Contact, VoiceCall, utcnow

log = logging.getLogger(__name__)

GOODBYE = "Thank you for calling. Goodbye."


@dataclass(frozen=True)
class VoiceInput:
    call: CallRequest
    fields: dict[str, str]
    hooks: twiml.Hooks


@dataclass(frozen=True)
class Turn:
    """One webhook's step of a call: the request and what it may use."""

    session: AsyncSession
    call: CallRequest
    fields: dict[str, str]
    hooks: twiml.Hooks
    account: AccountView
    settings: TwilioSettings
    services: ChannelServices
    now: datetime

    async def found(self) -> VoiceCall | None:
        """The call this request is about (locked), if it is this account's."""
        return await store.find_call(self.session, self.call, self.account.id)

    def number(self, call: VoiceCall) -> VoiceNumber:
        return number_of(self.settings, call)


@dataclass
class Step:
    """What one webhook did: the TwiML to answer."""

    twiml: bytes


class VoiceHook(WebhookAdapter[VoiceInput]):
    """The policy every voice webhook shares: Twilio's signature, the standard parameters,
    the account's settings, and a TwiML answer."""

    hook: ClassVar[str]
    # Omnicrm gives Twilio these addresses in its TwiML and REST calls (but the number's two).
    entered_by_admin: ClassVar[bool] = False
    # Whether the request carries the call's From and To (a recording's callback does not).
    numbers: ClassVar[bool] = True

    def do_authenticate(self, request: WebhookRequest, account: AccountView) -> bool:
        return is_signed(request, account)

    def do_parse(
        self, request: WebhookRequest, account: AccountView
    ) -> Parsed[VoiceInput] | Unsupported:
        fields = fields_of(request)
        url = signed_url(request, account)
        call = call_request(fields, url, str(account.setting("account_sid")), self.numbers)
        return Parsed([VoiceInput(call, fields, twiml.Hooks.from_url(url))])

    async def do_store(
        self,
        session: AsyncSession,
        parsed: Parsed[VoiceInput],
        account: AccountView,
        services: ChannelServices,
    ) -> Any:
        item = parsed.items[0]
        settings = settings_of(account)
        if settings is None:
            return Step(twiml.hang_up("This line is not configured."))
        turn = Turn(
            session, item.call, item.fields, item.hooks, account, settings, services, utcnow()
        )
        return Step(await self.step(turn))

    def do_acknowledge(self, outcome: Any, how: str) -> WebhookReply:
        body = outcome.twiml if isinstance(outcome, Step) else twiml.empty()
        return WebhookReply(200, body, "text/xml", how)

    @abstractmethod
    async def step(self, t: Turn) -> bytes:
        """Change the call and say what Twilio does next."""


def number_of(settings: TwilioSettings, call: VoiceCall) -> VoiceNumber:
    """The flow of the number the call is on (ours: To inbound, From for a callback); a
    number removed from the settings mid-call gets the defaults."""
    ours = call.to_number if call.direction == "in" else call.from_number
    return settings.voice_number(ours) or VoiceNumber(number=ours)


def default_queue(number: VoiceNumber, account: AccountView) -> int | None:
    return number.queue_id or account.queue_id


async def resume(
    session: AsyncSession, call: VoiceCall, number: VoiceNumber, hooks: twiml.Hooks
) -> bytes:
    """The TwiML of the step the call is at (a repeated or late request gets this)."""
    if call.state == CallState.IVR and number.menu is not None:
        current = number.menu.at(call.menu_path or "") or number.menu
        return twiml.menu(VoiceResponse(), number, current, call.menu_path or "", hooks, call.id)
    if call.state == CallState.QUEUED:
        return twiml.enqueue(VoiceResponse(), number, hooks, call.id)
    if call.state == CallState.VOICEMAIL:
        return twiml.voicemail(number, hooks, call.id)
    return twiml.hang_up()


async def _enter_queue(
    t: Turn,
    call: VoiceCall,
    number: VoiceNumber,
    queue_id: int | None,
    choice: str | None,
    response: VoiceResponse,
    say: str = "",
) -> bytes:
    """Into the queue, if it is open; otherwise the after-hours message and voicemail."""
    if not await t.services.queue_hours(t.session, queue_id, t.now):
        await store.closed(t.session, call, queue_id, t.now)
        return twiml.voicemail(number, t.hooks, call.id, before=number.after_hours_message)
    await store.to_queue(t.session, call, queue_id, choice, t.now)
    return twiml.enqueue(response, number, t.hooks, call.id, say=say)


class IncomingCall(VoiceHook):
    """`voice`: a call comes in to one of the account's numbers."""

    hook: ClassVar[str] = "voice"
    entered_by_admin: ClassVar[bool] = True

    async def step(self, t: Turn) -> bytes:
        number = t.settings.voice_number(t.call.to_number)
        if number is None:
            log.warning(
                "a call to a number without a call flow",
                extra=log_fields(account=t.account.name, to=t.call.to_number),
            )
            return twiml.hang_up("This number does not take calls.")
        queue_id = default_queue(number, t.account)
        started = await store.begin_inbound(
            t.session, t.account.id, t.call, queue_id, t.services.policy, t.now
        )
        call = started.call
        if not started.created:
            return await resume(t.session, call, number, t.hooks)
        response = twiml.welcome(number)
        if number.menu is not None and await t.services.queue_hours(t.session, queue_id, t.now):
            await store.menu_step(t.session, call, "", 0)
            return twiml.menu(response, number, number.menu, "", t.hooks, call.id)
        return await _enter_queue(t, call, number, queue_id, None, response)


class MenuChoice(VoiceHook):
    """`voice-menu`: what the caller pressed or said at a menu (or nothing)."""

    hook: ClassVar[str] = "voice-menu"

    async def step(self, t: Turn) -> bytes:
        call = await t.found()
        if call is None:
            return twiml.hang_up()
        number = t.number(call)
        path = t.call.query.get("menu", "")
        current = number.menu.at(path) if number.menu is not None else None
        if call.state != CallState.IVR or path != (call.menu_path or "") or current is None:
            return await resume(t.session, call, number, t.hooks)
        said = gathered(t.fields)
        index = current.match(said.digits, said.speech)
        if index is None:
            attempts = call.menu_attempts + 1
            if attempts >= current.attempts:
                return await _enter_queue(
                    t,
                    call,
                    number,
                    default_queue(number, t.account),
                    None,
                    VoiceResponse(),
                    say="Let me put you through to the next free agent.",
                )
            await store.menu_step(t.session, call, path, attempts)
            why = current.invalid_message if said.digits or said.speech else current.timeout_message
            return twiml.menu(VoiceResponse(), number, current, path, t.hooks, call.id, why)
        option = current.options[index]
        if option.menu is not None:
            deeper = f"{path}.{index}" if path else str(index)
            await store.menu_step(t.session, call, deeper, 0)
            return twiml.menu(VoiceResponse(), number, option.menu, deeper, t.hooks, call.id)
        queue_id = option.queue_id or default_queue(number, t.account)
        return await _enter_queue(
            t, call, number, queue_id, option.fact, VoiceResponse(), say=option.say
        )


class QueueWait(VoiceHook):
    """`voice-wait`: the Enqueue's wait URL, requested over and over while the caller waits
    (and while they are on hold)."""

    hook: ClassVar[str] = "voice-wait"

    async def step(self, t: Turn) -> bytes:
        call = await t.found()
        if call is None:
            return twiml.leave_queue()
        number = t.number(call)
        if call.state == CallState.ON_HOLD:
            return twiml.waiting(number, None, False)
        if call.state == CallState.RINGING:
            return twiml.waiting(number, None, True)
        if call.state != CallState.QUEUED:
            return twiml.waiting(number, None, False)
        waited = store.waited(call, t.now) or 0
        if waited >= number.max_wait_seconds:
            return twiml.leave_queue()
        return twiml.waiting(number, await store.position(t.session, call), False)


class LeftQueue(VoiceHook):
    """`voice-left-queue`: the Enqueue's action: why the caller left the queue."""

    hook: ClassVar[str] = "voice-left-queue"

    async def step(self, t: Turn) -> bytes:
        call = await t.found()
        if call is None:
            return twiml.hang_up()
        number = t.number(call)
        result = t.fields.get("QueueResult", "")
        if result == "hangup":
            await store.ended(t.session, call, "completed", None, t.now, number)
            return twiml.empty()
        if result == "bridged":
            return twiml.hang_up(GOODBYE, number.language)
        if result.startswith("redirected"):
            # We moved the call ourselves (hold, transfer): it runs the TwiML we sent it.
            return twiml.empty()
        # leave (waited too long), queue-full, error, system-error: nobody will answer.
        if call.state in store.WAITING_STATES:
            await store.to_voicemail(t.session, call, "no_answer", t.now)
            return twiml.voicemail(
                number, t.hooks, call.id, before="Sorry, no one is free to take your call."
            )
        return await resume(t.session, call, number, t.hooks)


class Voicemail(VoiceHook):
    """`voice-voicemail`: the Record's action, after the caller's message."""

    hook: ClassVar[str] = "voice-voicemail"

    async def step(self, t: Turn) -> bytes:
        call = await t.found()
        language = t.number(call).language if call is not None else "en-US"
        return twiml.hang_up("Thank you. Goodbye.", language)


class RecordingReady(VoiceHook):
    """`voice-recording`: a recording's status callback (`kind` voicemail or call). The
    call is the one in our address: a recording of an earlier operator leg still belongs."""

    hook: ClassVar[str] = "voice-recording"
    numbers: ClassVar[bool] = False

    async def step(self, t: Turn) -> bytes:
        found = recording(t.fields)
        call = await t.found()
        if call is None:
            return twiml.empty()
        kind = "voicemail" if t.call.query.get("kind") == "voicemail" else "call"
        number = t.number(call)
        await store.recorded(t.session, call, found, kind, t.account.id, t.now, number)
        return twiml.empty()


class CallStatus(VoiceHook):
    """`voice-status`: the caller's leg changed status (the number's status callback); a
    final status settles the call."""

    hook: ClassVar[str] = "voice-status"
    entered_by_admin: ClassVar[bool] = True

    async def step(self, t: Turn) -> bytes:
        if t.call.status not in FINAL_STATUSES:
            return twiml.empty()
        call = await t.found()
        if call is None:
            return twiml.empty()
        number = t.number(call)
        duration = seconds(t.fields, "CallDuration")
        if call.direction == "out":
            await callbacks.callback_over(
                t.session, call, t.call.status, duration, t.now, number.wrap_up_seconds
            )
        else:
            await store.ended(t.session, call, t.call.status, duration, t.now, number)
        return twiml.empty()


# --- the operator's leg -------------------------------------------------------------------------


class OperatorLeg(VoiceHook):
    """`voice-agent`: the operator answered their device (or is brought back from hold)."""

    hook: ClassVar[str] = "voice-agent"

    async def step(self, t: Turn) -> bytes:
        call = await t.found()
        if call is None:
            return twiml.hang_up("The caller is no longer waiting.")
        number = t.number(call)
        resumed = call.state == CallState.ON_HOLD
        leg = t.call.leg
        if not await store.operator_answered(t.session, call, leg, t.call.call_sid, t.now):
            return twiml.hang_up("The caller is no longer waiting.", number.language)
        whisper = "" if resumed else await _whisper(t.session, call)
        return twiml.operator_leg(number, t.hooks, call.id, call.leg, whisper)


async def _whisper(session: AsyncSession, call: VoiceCall) -> str:
    contact = await session.get(Contact, call.contact_id or 0)
    who = (contact.display_name if contact is not None else "") or call.from_number
    return f"Call from {who}" + (f", {call.ivr_choice}." if call.ivr_choice else ".")


class OperatorLegStatus(VoiceHook):
    """`voice-agent-status`: the operator leg's status callback: a device that did not
    answer sends the call back to the queue."""

    hook: ClassVar[str] = "voice-agent-status"

    async def step(self, t: Turn) -> bytes:
        if t.call.status not in FINAL_STATUSES:
            return twiml.empty()
        call = await t.found()
        if call is None:
            return twiml.empty()
        await store.operator_missed(t.session, call, t.call.leg, t.call.status, t.now)
        return twiml.empty()


class OperatorLegEnded(VoiceHook):
    """`voice-agent-end`: the operator's Dial is over: on hold (they wait), or the talk is."""

    hook: ClassVar[str] = "voice-agent-end"

    async def step(self, t: Turn) -> bytes:
        call = await t.found()
        if call is None:
            return twiml.hang_up()
        number = t.number(call)
        state = await store.bridge_ended(
            t.session,
            call,
            t.call.leg,
            t.now,
            number.wrap_up_seconds,
            seconds(t.fields, "DialCallDuration"),
        )
        if state == CallState.ON_HOLD:
            return twiml.operator_on_hold(number, t.hooks, call.id, call.leg)
        return twiml.hang_up()


class OperatorOnHold(VoiceHook):
    """`voice-agent-hold`: the operator's loop while their caller is on hold."""

    hook: ClassVar[str] = "voice-agent-hold"

    async def step(self, t: Turn) -> bytes:
        call = await t.found()
        if call is None or call.state != CallState.ON_HOLD or t.call.leg != call.leg:
            return twiml.hang_up()
        return twiml.operator_on_hold(t.number(call), t.hooks, call.id, call.leg)


class CallerOnHold(VoiceHook):
    """`voice-hold`: where the caller's leg is sent when the operator holds the call."""

    hook: ClassVar[str] = "voice-hold"

    async def step(self, t: Turn) -> bytes:
        call = await t.found()
        if call is None:
            return twiml.hang_up()
        number = t.number(call)
        if call.state != CallState.ON_HOLD:
            return await resume(t.session, call, number, t.hooks)
        return twiml.on_hold(number, t.hooks, call.id)


class CallerTransferred(VoiceHook):
    """`voice-requeue`: where the caller's leg is sent when the call is handed on."""

    hook: ClassVar[str] = "voice-requeue"

    async def step(self, t: Turn) -> bytes:
        call = await t.found()
        if call is None:
            return twiml.hang_up()
        number = t.number(call)
        if call.state not in store.WAITING_STATES:
            return await resume(t.session, call, number, t.hooks)
        return twiml.enqueue(
            VoiceResponse(),
            number,
            t.hooks,
            call.id,
            say="Please hold while we transfer your call.",
        )


# --- callbacks: an operator calls a customer back ----------------------------------------------


class CallbackOperatorLeg(VoiceHook):
    """`voice-callback`: the operator answered their device; ring the customer."""

    hook: ClassVar[str] = "voice-callback"

    async def step(self, t: Turn) -> bytes:
        call = await t.found()
        if call is None or call.state != CallState.DIALING:
            return twiml.hang_up()
        number = t.number(call)
        await callbacks.callback_operator_ready(t.session, call, t.now)
        contact = await t.session.get(Contact, call.contact_id or 0)
        who = (contact.display_name if contact is not None else "") or call.to_number
        return twiml.callback_leg(number, t.hooks, call.id, call.to_number, f"Calling {who}.")


class CallbackAnswered(VoiceHook):
    """`voice-callee`: the customer of a callback answered (the Dial's whisper URL): the two
    are connected now."""

    hook: ClassVar[str] = "voice-callee"

    async def step(self, t: Turn) -> bytes:
        call = await t.found()
        if call is None:
            return twiml.empty()
        await callbacks.callback_answered(t.session, call, t.now)
        return twiml.callee(t.number(call))


class CallbackDialed(VoiceHook):
    """`voice-callback-end`: the Dial to the customer is over: answered, or not."""

    hook: ClassVar[str] = "voice-callback-end"

    async def step(self, t: Turn) -> bytes:
        call = await t.found()
        if call is None:
            return twiml.hang_up()
        number = t.number(call)
        status = t.fields.get("DialCallStatus", "")
        talked = seconds(t.fields, "DialCallDuration")
        answered = await callbacks.callback_dialed(
            t.session, call, status, talked, t.now, number.wrap_up_seconds
        )
        if answered:
            return twiml.hang_up()
        return twiml.hang_up("The customer did not answer. The task stays open.", number.language)


VOICE_HOOKS: tuple[VoiceHook, ...] = (
    IncomingCall(),
    MenuChoice(),
    QueueWait(),
    LeftQueue(),
    Voicemail(),
    RecordingReady(),
    CallStatus(),
    OperatorLeg(),
    OperatorLegStatus(),
    OperatorLegEnded(),
    OperatorOnHold(),
    CallerOnHold(),
    CallerTransferred(),
    CallbackOperatorLeg(),
    CallbackAnswered(),
    CallbackDialed(),
)
