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
from channels.twilio.voice import store, twiml
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
        return Step(await self.step(session, item, account, settings, services, utcnow()))

    def do_acknowledge(self, outcome: Any, how: str) -> WebhookReply:
        body = outcome.twiml if isinstance(outcome, Step) else twiml.empty()
        return WebhookReply(200, body, "text/xml", how)

    @abstractmethod
    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
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
    session: AsyncSession,
    call: VoiceCall,
    number: VoiceNumber,
    queue_id: int | None,
    choice: str | None,
    item: VoiceInput,
    services: ChannelServices,
    now: datetime,
    response: VoiceResponse,
    say: str = "",
) -> bytes:
    """Into the queue, if it is open; otherwise the after-hours message and voicemail."""
    if not await services.queue_hours(session, queue_id, now):
        call.queue_id = queue_id
        await store.to_voicemail(session, call, "after_hours", now)
        return twiml.voicemail(number, item.hooks, call.id, before=number.after_hours_message)
    await store.to_queue(session, call, queue_id, choice, now)
    return twiml.enqueue(response, number, item.hooks, call.id, say=say)


class IncomingCall(VoiceHook):
    """`voice`: a call comes in to one of the account's numbers."""

    hook: ClassVar[str] = "voice"
    entered_by_admin: ClassVar[bool] = True

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        number = settings.voice_number(item.call.to_number)
        if number is None:
            log.warning(
                "a call to a number without a call flow",
                extra=log_fields(account=account.name, to=item.call.to_number),
            )
            return twiml.hang_up("This number does not take calls.")
        queue_id = default_queue(number, account)
        started = await store.begin_inbound(
            session, account.id, item.call, queue_id, services.policy, now
        )
        call = started.call
        if not started.created:
            return await resume(session, call, number, item.hooks)
        response = twiml.welcome(number)
        if number.menu is not None and await services.queue_hours(session, queue_id, now):
            await store.menu_step(session, call, "", 0)
            return twiml.menu(response, number, number.menu, "", item.hooks, call.id)
        return await _enter_queue(
            session, call, number, queue_id, None, item, services, now, response
        )


class MenuChoice(VoiceHook):
    """`voice-menu`: what the caller pressed or said at a menu (or nothing)."""

    hook: ClassVar[str] = "voice-menu"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        call = await store.find_call(session, item.call, account.id)
        if call is None:
            return twiml.hang_up()
        number = number_of(settings, call)
        path = item.call.query.get("menu", "")
        current = number.menu.at(path) if number.menu is not None else None
        if call.state != CallState.IVR or path != (call.menu_path or "") or current is None:
            return await resume(session, call, number, item.hooks)
        said = gathered(item.fields)
        index = current.match(said.digits, said.speech)
        if index is None:
            attempts = call.menu_attempts + 1
            if attempts >= current.attempts:
                return await _enter_queue(
                    session,
                    call,
                    number,
                    default_queue(number, account),
                    None,
                    item,
                    services,
                    now,
                    VoiceResponse(),
                    say="Let me put you through to the next free agent.",
                )
            await store.menu_step(session, call, path, attempts)
            why = current.invalid_message if said.digits or said.speech else current.timeout_message
            return twiml.menu(VoiceResponse(), number, current, path, item.hooks, call.id, why)
        option = current.options[index]
        if option.menu is not None:
            deeper = f"{path}.{index}" if path else str(index)
            await store.menu_step(session, call, deeper, 0)
            return twiml.menu(VoiceResponse(), number, option.menu, deeper, item.hooks, call.id)
        queue_id = option.queue_id or default_queue(number, account)
        return await _enter_queue(
            session,
            call,
            number,
            queue_id,
            option.fact,
            item,
            services,
            now,
            VoiceResponse(),
            say=option.say,
        )


class QueueWait(VoiceHook):
    """`voice-wait`: the Enqueue's wait URL, requested over and over while the caller waits
    (and while they are on hold)."""

    hook: ClassVar[str] = "voice-wait"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        call = await store.find_call(session, item.call, account.id)
        if call is None:
            return twiml.leave_queue()
        number = number_of(settings, call)
        if call.state == CallState.ON_HOLD:
            return twiml.waiting(number, None, False)
        if call.state == CallState.RINGING:
            return twiml.waiting(number, None, True)
        if call.state != CallState.QUEUED:
            return twiml.waiting(number, None, False)
        waited = store.waited(call, now) or 0
        if waited >= number.max_wait_seconds:
            return twiml.leave_queue()
        return twiml.waiting(number, await store.position(session, call), False)


class LeftQueue(VoiceHook):
    """`voice-left-queue`: the Enqueue's action: why the caller left the queue."""

    hook: ClassVar[str] = "voice-left-queue"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        call = await store.find_call(session, item.call, account.id)
        if call is None:
            return twiml.hang_up()
        number = number_of(settings, call)
        result = item.fields.get("QueueResult", "")
        if result == "hangup":
            await store.ended(session, call, "completed", None, now, number)
            return twiml.empty()
        if result == "bridged":
            return twiml.hang_up(GOODBYE, number.language)
        if result.startswith("redirected"):
            # We moved the call ourselves (hold, transfer): it runs the TwiML we sent it.
            return twiml.empty()
        # leave (waited too long), queue-full, error, system-error: nobody will answer.
        if call.state in store.WAITING_STATES:
            await store.to_voicemail(session, call, "no_answer", now)
            return twiml.voicemail(
                number, item.hooks, call.id, before="Sorry, no one is free to take your call."
            )
        return await resume(session, call, number, item.hooks)


class Voicemail(VoiceHook):
    """`voice-voicemail`: the Record's action, after the caller's message."""

    hook: ClassVar[str] = "voice-voicemail"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        call = await store.find_call(session, item.call, account.id)
        language = number_of(settings, call).language if call is not None else "en-US"
        return twiml.hang_up("Thank you. Goodbye.", language)


class RecordingReady(VoiceHook):
    """`voice-recording`: a recording's status callback (`kind` voicemail or call). The
    call is the one in our address: a recording of an earlier operator leg still belongs."""

    hook: ClassVar[str] = "voice-recording"
    numbers: ClassVar[bool] = False

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        found = recording(item.fields)
        call = await store.find_call(session, item.call, account.id)
        if call is None:
            return twiml.empty()
        kind = "voicemail" if item.call.query.get("kind") == "voicemail" else "call"
        number = number_of(settings, call)
        await store.recorded(session, call, found, kind, account.id, now, number)
        return twiml.empty()


class CallStatus(VoiceHook):
    """`voice-status`: the caller's leg changed status (the number's status callback); a
    final status settles the call."""

    hook: ClassVar[str] = "voice-status"
    entered_by_admin: ClassVar[bool] = True

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        if item.call.status not in FINAL_STATUSES:
            return twiml.empty()
        call = await store.find_call(session, item.call, account.id)
        if call is None:
            return twiml.empty()
        number = number_of(settings, call)
        duration = seconds(item.fields, "CallDuration")
        if call.direction == "out":
            await store.callback_over(
                session, call, item.call.status, duration, now, number.wrap_up_seconds
            )
        else:
            await store.ended(session, call, item.call.status, duration, now, number)
        return twiml.empty()


# --- the operator's leg -------------------------------------------------------------------------


class OperatorLeg(VoiceHook):
    """`voice-agent`: the operator answered their device (or is brought back from hold)."""

    hook: ClassVar[str] = "voice-agent"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        call = await store.find_call(session, item.call, account.id)
        if call is None:
            return twiml.hang_up("The caller is no longer waiting.")
        number = number_of(settings, call)
        resumed = call.state == CallState.ON_HOLD
        leg = item.call.leg
        if not await store.operator_answered(session, call, leg, item.call.call_sid, now):
            return twiml.hang_up("The caller is no longer waiting.", number.language)
        whisper = "" if resumed else await _whisper(session, call)
        return twiml.operator_leg(number, item.hooks, call.id, call.leg, whisper)


async def _whisper(session: AsyncSession, call: VoiceCall) -> str:
    contact = await session.get(Contact, call.contact_id or 0)
    who = (contact.display_name if contact is not None else "") or call.from_number
    return f"Call from {who}" + (f", {call.ivr_choice}." if call.ivr_choice else ".")


class OperatorLegStatus(VoiceHook):
    """`voice-agent-status`: the operator leg's status callback: a device that did not
    answer sends the call back to the queue."""

    hook: ClassVar[str] = "voice-agent-status"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        if item.call.status not in FINAL_STATUSES:
            return twiml.empty()
        call = await store.find_call(session, item.call, account.id)
        if call is None:
            return twiml.empty()
        await store.operator_missed(session, call, item.call.leg, item.call.status, now)
        return twiml.empty()


class OperatorLegEnded(VoiceHook):
    """`voice-agent-end`: the operator's Dial is over: on hold (they wait), or the talk is."""

    hook: ClassVar[str] = "voice-agent-end"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        call = await store.find_call(session, item.call, account.id)
        if call is None:
            return twiml.hang_up()
        number = number_of(settings, call)
        state = await store.bridge_ended(
            session,
            call,
            item.call.leg,
            now,
            number.wrap_up_seconds,
            seconds(item.fields, "DialCallDuration"),
        )
        if state == CallState.ON_HOLD:
            return twiml.operator_on_hold(number, item.hooks, call.id, call.leg)
        return twiml.hang_up()


class OperatorOnHold(VoiceHook):
    """`voice-agent-hold`: the operator's loop while their caller is on hold."""

    hook: ClassVar[str] = "voice-agent-hold"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        call = await store.find_call(session, item.call, account.id)
        if call is None or call.state != CallState.ON_HOLD or item.call.leg != call.leg:
            return twiml.hang_up()
        return twiml.operator_on_hold(number_of(settings, call), item.hooks, call.id, call.leg)


class CallerOnHold(VoiceHook):
    """`voice-hold`: where the caller's leg is sent when the operator holds the call."""

    hook: ClassVar[str] = "voice-hold"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        call = await store.find_call(session, item.call, account.id)
        if call is None:
            return twiml.hang_up()
        number = number_of(settings, call)
        if call.state != CallState.ON_HOLD:
            return await resume(session, call, number, item.hooks)
        return twiml.on_hold(number, item.hooks, call.id)


class CallerTransferred(VoiceHook):
    """`voice-requeue`: where the caller's leg is sent when the call is handed on."""

    hook: ClassVar[str] = "voice-requeue"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        call = await store.find_call(session, item.call, account.id)
        if call is None:
            return twiml.hang_up()
        number = number_of(settings, call)
        if call.state not in store.WAITING_STATES:
            return await resume(session, call, number, item.hooks)
        return twiml.enqueue(
            VoiceResponse(),
            number,
            item.hooks,
            call.id,
            say="Please hold while we transfer your call.",
        )


# --- callbacks: an operator calls a customer back ----------------------------------------------


class CallbackOperatorLeg(VoiceHook):
    """`voice-callback`: the operator answered their device; ring the customer."""

    hook: ClassVar[str] = "voice-callback"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        call = await store.find_call(session, item.call, account.id)
        if call is None or call.state != CallState.DIALING:
            return twiml.hang_up()
        number = number_of(settings, call)
        await store.callback_operator_ready(session, call, now)
        contact = await session.get(Contact, call.contact_id or 0)
        who = (contact.display_name if contact is not None else "") or call.to_number
        return twiml.callback_leg(number, item.hooks, call.id, call.to_number, f"Calling {who}.")


class CallbackConsent(VoiceHook):
    """`voice-consent`: said to the customer of a recorded callback as they answer."""

    hook: ClassVar[str] = "voice-consent"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        call = await store.find_call(session, item.call, account.id)
        if call is None:
            return twiml.empty()
        return twiml.consent(number_of(settings, call))


class CallbackDialed(VoiceHook):
    """`voice-callback-end`: the Dial to the customer is over: answered, or not."""

    hook: ClassVar[str] = "voice-callback-end"

    async def step(
        self,
        session: AsyncSession,
        item: VoiceInput,
        account: AccountView,
        settings: TwilioSettings,
        services: ChannelServices,
        now: datetime,
    ) -> bytes:
        call = await store.find_call(session, item.call, account.id)
        if call is None:
            return twiml.hang_up()
        number = number_of(settings, call)
        status = item.fields.get("DialCallStatus", "")
        talked = seconds(item.fields, "DialCallDuration")
        answered = await store.callback_dialed(
            session, call, status, talked, now, number.wrap_up_seconds
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
    CallbackConsent(),
    CallbackDialed(),
)
