"""The TwiML omnicrm answers at each step of a call, built with the `twilio` library's own
builders (`twilio.twiml.voice_response`), never by hand; pure, no I/O.

Every address in these documents is absolute and names our call (`?call=<id>`, and the
operator leg `&leg=<n>`), so a request Twilio makes later says which call and which attempt
it is about whatever its body holds. `Hooks` builds them from the address Twilio called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

from channels.twilio.voice.settings import Menu, VoiceNumber

# The Twilio queue a call waits in: one per call, so routing (not Twilio's FIFO) decides who
# is next, and an operator's <Dial><Queue> bridges exactly the call they accepted.
QUEUE_PREFIX = "omnicrm-call-"
RECORD = "record-from-answer-dual"
# An operator's leg waits in a loop of pauses while their caller is on hold.
HOLD_PAUSE_SECONDS = 10


def queue_name(call_id: int) -> str:
    return f"{QUEUE_PREFIX}{call_id}"


@dataclass(frozen=True)
class Hooks:
    """The addresses of an account's voice webhooks: `base` is `.../hooks/twilio/<account>`."""

    base: str

    @classmethod
    def from_url(cls, url: str) -> Hooks:
        """From the address of any of the account's webhooks (as Twilio called it)."""
        path = url.split("?", 1)[0]
        return cls(path.rsplit("/", 1)[0])

    def url(self, hook: str, call_id: int, **query: str | int) -> str:
        return f"{self.base}/{hook}?{urlencode({'call': call_id, **query})}"


def _say(response: Any, text: str, language: str) -> None:
    """A `<Say>` in `response` (a document or a `<Gather>`), unless there is nothing to say."""
    if text.strip():
        response.say(text, language=language)


def document(response: VoiceResponse) -> bytes:
    return str(response).encode("utf-8")


def hang_up(message: str = "", language: str = "en-US") -> bytes:
    response = VoiceResponse()
    _say(response, message, language)
    response.hangup()
    return document(response)


def empty() -> bytes:
    return document(VoiceResponse())


def welcome(number: VoiceNumber) -> VoiceResponse:
    """The start of a call in business hours: consent, greeting, then the menu (if any)."""
    response = VoiceResponse()
    if number.record_calls:
        _say(response, number.consent_message, number.language)
    _say(response, number.greeting, number.language)
    return response


def menu(
    response: VoiceResponse,
    number: VoiceNumber,
    current: Menu,
    path: str,
    hooks: Hooks,
    call_id: int,
    preface: str = "",
) -> bytes:
    """Ask for a choice; the answer (or its absence) comes back to `voice-menu`."""
    language = number.menu_language(current)
    _say(response, preface, language)
    hints = ", ".join(word for option in current.options for word in option.speech)
    gather = response.gather(
        input="dtmf speech",
        action=hooks.url("voice-menu", call_id, menu=path),
        method="POST",
        num_digits=1,
        timeout=current.timeout_seconds,
        language=language,
        hints=hints or None,
        action_on_empty_result=True,
    )
    gather.say(current.prompt, language=language)
    return document(response)


def enqueue(
    response: VoiceResponse, number: VoiceNumber, hooks: Hooks, call_id: int, say: str = ""
) -> bytes:
    """The caller waits in their own Twilio queue (see QUEUE_PREFIX) with the wait message."""
    _say(response, say, number.language)
    response.enqueue(
        queue_name(call_id),
        action=hooks.url("voice-left-queue", call_id),
        method="POST",
        wait_url=hooks.url("voice-wait", call_id),
        wait_url_method="POST",
    )
    return document(response)


def waiting(number: VoiceNumber, position: int | None, connecting: bool) -> bytes:
    """What a queued caller hears between two requests of the wait URL."""
    response = VoiceResponse()
    if connecting:
        _say(response, "Connecting you now.", number.language)
        response.pause(length=2)
        return document(response)
    if position is not None:
        _say(response, number.wait_message.replace("{position}", str(position)), number.language)
    if number.hold_music_url:
        response.play(number.hold_music_url)
    else:
        response.pause(length=HOLD_PAUSE_SECONDS)
    return document(response)


def leave_queue() -> bytes:
    """Out of the queue (waited too long): the Enqueue's action says what next."""
    response = VoiceResponse()
    response.leave()
    return document(response)


def voicemail(number: VoiceNumber, hooks: Hooks, call_id: int, before: str = "") -> bytes:
    """A message, then the caller's voicemail; without voicemail, the message and goodbye."""
    response = VoiceResponse()
    _say(response, before, number.language)
    if not number.voicemail:
        response.hangup()
        return document(response)
    _say(response, number.voicemail_message, number.language)
    response.record(
        action=hooks.url("voice-voicemail", call_id),
        method="POST",
        max_length=number.voicemail_max_seconds,
        play_beep=True,
        finish_on_key="#",
        recording_status_callback=hooks.url("voice-recording", call_id, kind="voicemail"),
        recording_status_callback_method="POST",
        recording_status_callback_event="completed",
    )
    response.say("Thank you. Goodbye.", language=number.language)
    response.hangup()
    return document(response)


def operator_leg(number: VoiceNumber, hooks: Hooks, call_id: int, leg: int, whisper: str) -> bytes:
    """The operator picked up: tell them who calls, then bridge the caller from the queue."""
    response = VoiceResponse()
    _say(response, whisper, number.language)
    dial = response.dial(
        action=hooks.url("voice-agent-end", call_id, leg=leg),
        method="POST",
        record=RECORD if number.record_calls else None,
        recording_status_callback=(
            hooks.url("voice-recording", call_id, kind="call") if number.record_calls else None
        ),
        recording_status_callback_method="POST" if number.record_calls else None,
    )
    dial.queue(queue_name(call_id))
    return document(response)


def operator_on_hold(number: VoiceNumber, hooks: Hooks, call_id: int, leg: int) -> bytes:
    """The operator's leg while their caller is on hold: pauses until they resume."""
    response = VoiceResponse()
    response.pause(length=HOLD_PAUSE_SECONDS)
    response.redirect(hooks.url("voice-agent-hold", call_id, leg=leg), method="POST")
    return document(response)


def on_hold(number: VoiceNumber, hooks: Hooks, call_id: int) -> bytes:
    """The caller on hold: back in their Twilio queue, hearing the hold message."""
    response = VoiceResponse()
    _say(response, number.hold_message, number.language)
    response.enqueue(
        queue_name(call_id),
        action=hooks.url("voice-left-queue", call_id),
        method="POST",
        wait_url=hooks.url("voice-wait", call_id, hold=1),
        wait_url_method="POST",
    )
    return document(response)


def callback_leg(
    number: VoiceNumber, hooks: Hooks, call_id: int, customer: str, announce: str
) -> bytes:
    """A callback: the operator answered their device; now ring the customer."""
    response = VoiceResponse()
    _say(response, announce, number.language)
    dial = response.dial(
        action=hooks.url("voice-callback-end", call_id),
        method="POST",
        caller_id=number.number,
        timeout=30,
        record=RECORD if number.record_calls else None,
        recording_status_callback=(
            hooks.url("voice-recording", call_id, kind="call") if number.record_calls else None
        ),
        recording_status_callback_method="POST" if number.record_calls else None,
    )
    # Requested when the customer answers, before they are connected: the call is connected
    # from then on, and they hear the consent message when calls are recorded.
    dial.number(customer, url=hooks.url("voice-callee", call_id))
    return document(response)


def callee(number: VoiceNumber) -> bytes:
    """What a customer we call hears as they answer: the consent message if calls are
    recorded, else nothing."""
    response = VoiceResponse()
    if number.record_calls:
        _say(response, number.consent_message, number.language)
    return document(response)
