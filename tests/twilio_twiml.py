"""The TwiML interpreter of the Twilio Voice stand-in (`tests/twilio_calls.py` has the call
model it drives, `tests/twilio_voice.py` the REST side and the transport): parsing TwiML
documents, running a call's documents (`run_inbound`, `run_outbound`) and the verbs, <Say>,
<Play>, <Pause>, <Gather>, <Record>, <Redirect>, <Hangup>, <Reject>, <Leave>, <Enqueue> and
<Dial>.

A leg's task fetches TwiML and executes the verbs one after the other, as Twilio does; an
interrupt (`tests/twilio_calls.py`) stops it at its next wait.

Time is the simulator's (`VoiceSim.now`): a `<Say>` and each round of a `<Play>` take one
simulated second, pressing keys at a `<Gather>` one more; `<Pause>`, ringing, silence and
speaking take the seconds they say.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from tests.twilio_calls import (
    HANG_UP,
    SPEECH,
    AppError,
    Bridge,
    Dequeued,
    Fetch,
    Heard,
    HungUp,
    Interrupt,
    Leg,
    Queue,
    RecordingOptions,
    Redirected,
    Ringing,
    Unsupported,
    whole,
)

if TYPE_CHECKING:
    from tests.twilio_voice import Recording, Sent

SAY_SECONDS = 1.0  # a <Say>, or one round of a <Play>
INPUT_SECONDS = 1.0  # pressing keys or saying something at a <Gather>
APPLICATION_ERROR = "We are sorry, an application error has occurred. Goodbye."
DEFAULT_HOLD_MUSIC = "https://s3.amazonaws.com/com.twilio.sounds.music/index.xml"


class LeftQueue(Exception):
    """`<Leave>` in a wait document."""


# --- TwiML documents -------------------------------------------------------------------------


@dataclass
class Document:
    url: str  # where it came from ("" for inline TwiML)
    root: ET.Element

    def resolve(self, target: str | None) -> str:
        """A URL attribute made absolute against the document's URL; the document's own URL
        when the attribute is missing (Twilio's default for <Gather> and <Record>)."""
        if target is None or not target.strip():
            return self.url
        return urljoin(self.url, target.strip())


def parse(text: str, url: str) -> Document:
    try:
        root = ET.fromstring(text)  # noqa: S314 - the application under test wrote it
    except ET.ParseError as exc:
        raise AppError(12100, f"Document parse failure: {exc}") from None
    if root.tag != "Response":
        raise AppError(12100, f"Document parse failure: the root is <{root.tag}>")
    return Document(url, root)


def inner_text(element: ET.Element) -> str:
    return "".join(element.itertext()).strip()


def number(element: ET.Element, name: str, default: float) -> float:
    value = element.get(name)
    if value is None or not value.strip():
        return default
    try:
        return float(value)
    except ValueError:
        raise AppError(12200, f"<{element.tag} {name}={value!r}> is not a number") from None


def method_of(element: ET.Element, name: str = "method") -> str:
    return (element.get(name) or "POST").upper()


def events_of(value: str | None, default: str = "completed") -> frozenset[str]:
    return frozenset((value or default).replace(",", " ").split())


def recording_options(
    document: Document, element: ET.Element, channels: int = 1
) -> RecordingOptions:
    """What a verb's recordingStatusCallback attributes ask of its recording."""
    callback = element.get("recordingStatusCallback")
    return RecordingOptions(
        document.resolve(callback) if callback else None,
        method_of(element, "recordingStatusCallbackMethod"),
        events_of(element.get("recordingStatusCallbackEvent")),
        channels,
    )


def document_of(leg: Leg, sent: Sent) -> Document:
    """The TwiML a webhook answered, unless the call moved on meanwhile (then it raises)."""
    leg.check()
    if sent.status == 0:
        raise AppError(11205, f"HTTP connection failure: {sent.url}")
    if not 200 <= sent.status < 300:
        raise AppError(11200, f"HTTP retrieval failure: {sent.status} from {sent.url}")
    return parse(sent.body, sent.url)


async def fetch_document(
    leg: Leg, kind: str, url: str, method: str = "POST", extra: dict[str, str] | None = None
) -> Document:
    """A webhook about the leg, and the TwiML it answered."""
    return document_of(leg, await leg.request(kind, url, method, extra))


# --- running a call --------------------------------------------------------------------------


async def run_inbound(leg: Leg, voice: Fetch) -> None:
    """An incoming call: Twilio asks the number's voice URL (CallStatus ringing), answers with
    the first verb but <Reject>, and runs the TwiML."""
    leg.set_status("ringing")
    await run_call(leg, voice)


async def run_outbound(leg: Leg, queued_seconds: float) -> None:
    """A call created through the REST API: queued, initiated, ringing, then answered (its Url
    runs) or not (busy, no-answer, failed)."""
    try:
        await leg.sleep(queued_seconds)
        outcome = await ring(leg, leg.ring_timeout)
    except HungUp:
        outcome = "canceled"
    if outcome != "answered":
        leg.final_status = outcome
        await leg.finish()
        return
    leg.answer()
    if leg.call_recording is not None:
        await leg.sim.start_recording(leg, "OutboundAPI", leg.call_recording)
    await leg.progress("answered")
    assert leg.first is not None
    await run_call(leg, leg.first)


async def ring(leg: Leg, limit: float) -> str:
    """Ring the leg's destination as `sim.devices` scripts it: "answered", or the status the
    call ends with."""
    device = leg.sim.device(leg.to)
    await leg.progress("initiated")
    if device.answer == "failed":
        return "failed"
    leg.set_status("ringing")
    await leg.progress("ringing")
    if device.answer is True and device.ring_seconds < limit:
        await leg.sleep(device.ring_seconds)
        return "answered"
    if device.answer == "busy":
        await leg.sleep(min(device.ring_seconds, limit))
        return "busy"
    await leg.sleep(limit)
    return "no-answer"


async def run_call(leg: Leg, first: Fetch | Document) -> None:
    """Run documents until the call ends (a hang-up, <Hangup>, the end of a document, an
    application error), then end it."""
    step: Fetch | Document | None = first
    try:
        while step is not None:
            try:
                step = (
                    await follow(leg, step) if isinstance(step, Fetch) else await execute(leg, step)
                )
            except Redirected as redirect:
                leg.set_state("in-progress")
                step = redirect.target
    except HungUp:
        pass
    except AppError as exc:
        leg.errors.append(exc)
        if isinstance(exc, Unsupported):
            leg.sim.failures.append(exc)
        if leg.answered_at is None:
            leg.answer()  # Twilio picks up to say so
        leg.heard.append(Heard(APPLICATION_ERROR, "error"))
    await leg.finish()


async def follow(leg: Leg, target: Fetch) -> Document:
    if target.twiml is not None:
        leg.check()
        return parse(target.twiml, "")
    return await fetch_document(leg, target.kind, target.url, target.method)


async def run_documents(leg: Leg, document: Document, context: str) -> None:
    """Run a document and the ones its verbs lead to, in a context (a wait or whisper URL)."""
    step: Document | None = document
    while step is not None:
        step = await execute(leg, step, context)


ALLOWED = {
    "call": {"Say", "Play", "Pause", "Gather", "Record", "Enqueue", "Dial", "Redirect", "Hangup"}
    | {"Reject"},
    "wait": {"Say", "Play", "Pause", "Gather", "Redirect", "Hangup", "Leave"},
    "queue-whisper": {"Say", "Play", "Pause", "Redirect"},
    "number-whisper": {"Say", "Play", "Pause", "Gather", "Record", "Redirect", "Hangup"},
}
NOT_EMULATED = {"Connect", "Start", "Stop", "Pay", "Prompt", "Refer", "Sms", "Echo", "Queue"}


async def execute(leg: Leg, document: Document, context: str = "call") -> Document | None:
    """Execute a document's verbs in order; the next document one of them leads to, or None at
    the end (which, in a call's own document, hangs up)."""
    for element in document.root:
        verb = VERBS.get(element.tag)
        if verb is None:
            if element.tag in NOT_EMULATED:
                raise Unsupported(f"the stand-in does not emulate <{element.tag}>")
            raise AppError(12200, f"Schema validation warning: unknown verb <{element.tag}>")
        if element.tag not in ALLOWED[context]:
            raise AppError(12200, f"<{element.tag}> is not allowed in a {context} document")
        if leg.answered_at is None and element.tag != "Reject":
            leg.answer()
        following: Document | None = await verb(leg, document, element, context)
        if following is not None:
            return following
    return None


# --- verbs -----------------------------------------------------------------------------------


def context_params(leg: Leg, context: str) -> dict[str, str]:
    """What requests from a wait document add: the queue's parameters."""
    if context == "wait" and leg.queue is not None:
        return leg.queue.wait_params(leg)
    return {}


async def say(leg: Leg, document: Document, element: ET.Element, context: str) -> None:
    for _ in range(max(1, int(number(element, "loop", 1)))):
        leg.heard.append(
            Heard(inner_text(element), "say", element.get("language"), element.get("voice"))
        )
        await leg.sleep(SAY_SECONDS)


async def play(leg: Leg, document: Document, element: ET.Element, context: str) -> None:
    digits = element.get("digits")
    if digits:
        leg.heard.append(Heard(digits, "digits"))
        await leg.sleep(SAY_SECONDS)
        return
    url = document.resolve(inner_text(element))
    loop = int(number(element, "loop", 1))  # 0: until something interrupts it
    played = 0
    while loop == 0 or played < loop:
        leg.heard.append(Heard(url, "play"))
        await leg.sleep(SAY_SECONDS)
        played += 1


async def pause(leg: Leg, document: Document, element: ET.Element, context: str) -> None:
    await leg.sleep(number(element, "length", 1))


async def gather(
    leg: Leg, document: Document, element: ET.Element, context: str
) -> Document | None:
    inputs = set((element.get("input") or "dtmf").split())
    finish_on_key = element.get("finishOnKey", "#")
    num_digits = int(number(element, "numDigits", 0))
    for nested in element:
        if nested.tag not in ("Say", "Play", "Pause"):
            raise AppError(12200, f"<{nested.tag}> is not allowed in <Gather>")
        await VERBS[nested.tag](leg, document, nested, context)
    entry = leg.next_input()
    if entry == HANG_UP:
        leg.interrupt(HungUp("caller"))
        leg.check()
    result: dict[str, str] = {}
    if entry is not None and entry.startswith(SPEECH) and "speech" in inputs:
        result = {"SpeechResult": entry.removeprefix(SPEECH), "Confidence": "0.9"}
    elif entry is not None and not entry.startswith(SPEECH) and "dtmf" in inputs:
        digits = entry
        if finish_on_key and finish_on_key in digits:
            digits = digits[: digits.index(finish_on_key)]
        if num_digits:
            digits = digits[:num_digits]
        if digits:
            result = {"Digits": digits}
    if result:
        await leg.sleep(INPUT_SECONDS)
    else:
        await leg.sleep(number(element, "timeout", 5))
        if element.get("actionOnEmptyResult", "false").lower() != "true":
            return None  # falls through to the next verb
    result.update(context_params(leg, context))
    return await fetch_document(
        leg, "gather", document.resolve(element.get("action")), method_of(element), result
    )


async def record(
    leg: Leg, document: Document, element: ET.Element, context: str
) -> Document | None:
    sim = leg.sim
    max_length = number(element, "maxLength", 3600) or 3600
    silence = number(element, "timeout", 5)
    finish_on_key = element.get("finishOnKey", "1234567890*#")
    options = recording_options(document, element)
    if element.get("playBeep", "true").lower() != "false":
        leg.heard.append(Heard("beep", "beep"))
    speaking = min(leg.caller.voicemail_seconds, max_length)
    if speaking <= 0:  # nothing said: no recording, Twilio goes on with the next verb
        await leg.sleep(silence or max_length)
        await sim.absent_recording(leg, "RecordVerb", options)
        return None
    recording = await sim.start_recording(leg, "RecordVerb", options)
    cut = leg.caller.voicemail_seconds > max_length  # maxLength ends it, no key
    digits: str | None = None
    hung_up: HungUp | None = None
    try:
        try:
            await leg.sleep(speaking)
        except HungUp as exc:
            hung_up = exc
        if hung_up is None and not cut:
            key = leg.caller.finish_key
            if key is None:  # they said their piece and hang up
                leg.interrupt(HungUp("caller"))
                hung_up = HungUp("caller")
            elif key in finish_on_key:
                digits = key
        sim.stop_recording(recording)
        if hung_up is None and digits is None and not cut:
            try:
                await leg.sleep(silence)  # they stopped talking; it ends on silence
            except HungUp as exc:
                hung_up = exc
    except Redirected:  # a REST redirect: the recording stops, no action
        sim.stop_recording(recording)
        await sim.report_recording(recording, leg)
        raise
    params = {
        "RecordingUrl": sim.recording_url(recording),
        "RecordingSid": recording.sid,
        "RecordingDuration": str(recording.duration),
    }
    if hung_up is not None:
        params["Digits"] = "hangup"
    elif digits is not None:
        params["Digits"] = digits
    action = document.resolve(element.get("action"))
    sent = await leg.request("record-action", action, method_of(element), params)
    await sim.report_recording(recording, leg)
    if hung_up is not None:
        raise hung_up
    return document_of(leg, sent)


async def redirect(leg: Leg, document: Document, element: ET.Element, context: str) -> Document:
    url = document.resolve(inner_text(element))
    return await fetch_document(
        leg, "redirect", url, method_of(element), context_params(leg, context)
    )


async def hangup(leg: Leg, document: Document, element: ET.Element, context: str) -> None:
    leg.interrupt(HungUp("twiml"))
    leg.check()


async def reject(leg: Leg, document: Document, element: ET.Element, context: str) -> None:
    if leg.answered_at is None:  # not answered: the call ends busy or unanswered
        leg.final_status = "busy" if element.get("reason") == "busy" else "no-answer"
    leg.interrupt(HungUp("reject"))
    leg.check()


async def leave(leg: Leg, document: Document, element: ET.Element, context: str) -> None:
    raise LeftQueue()


# --- <Enqueue>: the caller's side of a queue -------------------------------------------------


async def enqueue(
    leg: Leg, document: Document, element: ET.Element, context: str
) -> Document | None:
    action = document.resolve(element.get("action")) if element.get("action") else None
    method = method_of(element)
    wait_url = element.get("waitUrl")
    wait = None
    if wait_url is not None:
        wait = Fetch("wait", document.resolve(wait_url) if wait_url.strip() else "")
        wait.method = method_of(element, "waitUrlMethod")
    queue = leg.sim.queue((element.text or "").strip())
    if len(queue.members) >= queue.max_size:
        return await queue_over(leg, action, method, {"QueueResult": "queue-full"}, None, None)
    queue.join(leg)
    leg.waiting_in_queue = True
    result = "error"
    stop: Interrupt | None = None
    bridge: Bridge | None = None
    while True:
        try:
            await wait_in_queue(leg, queue, wait)
        except Dequeued as dequeued:
            bridge = dequeued.bridge
        except LeftQueue:
            result = "leave"
        except AppError as exc:
            leg.errors.append(exc)
            result = "error"
        except (Redirected, HungUp) as exc:
            result, stop = ("hangup" if isinstance(exc, HungUp) else "redirected"), exc
        if bridge is None:
            queue_time = queue.leave(leg)
            break
        outcome = await be_dequeued(leg, bridge)
        if outcome is not None:
            (result, stop), queue_time = outcome, bridge.queue_time
            if bridge.connected_at is None:
                bridge = None  # gone before the bridge: nothing for the agent's side to wait on
            break
        queue.join(leg, front=True)  # the agent went away before the bridge: back to the head
        bridge = None
    leg.waiting_in_queue = False
    params = {"QueueResult": result, "QueueSid": queue.sid, "QueueTime": str(whole(queue_time))}
    return await queue_over(leg, action, method, params, bridge, stop)


async def wait_in_queue(leg: Leg, queue: Queue, wait: Fetch | None) -> None:
    """Hold music until something ends the wait (always an exception)."""
    if wait is None:
        leg.heard.append(Heard(DEFAULT_HOLD_MUSIC, "play"))
    while wait is None or not wait.url:
        await leg.until()
    while True:
        started = leg.sim.now
        document = await fetch_document(leg, "wait", wait.url, wait.method, queue.wait_params(leg))
        await run_documents(leg, document, "wait")
        if leg.sim.now - started < 1:
            await leg.sleep(1)  # never spin


async def be_dequeued(leg: Leg, bridge: Bridge) -> tuple[str, Interrupt | None] | None:
    """The caller's half of being taken from the queue: the whisper, the conversation and its
    end; None when the agent went away before the two were connected."""
    stop: Interrupt | None = None
    try:
        if bridge.whisper is not None and bridge.queue is not None:
            extra = {
                "QueueSid": bridge.queue.sid,
                "QueueTime": str(whole(bridge.queue_time)),
                "DequeingCallSid": bridge.dialer.sid,
            }
            try:
                whisper = await fetch_document(
                    leg, "queue-whisper", bridge.whisper.url, bridge.whisper.method, extra
                )
                await run_documents(leg, whisper, "queue-whisper")
            except AppError as exc:
                leg.errors.append(exc)
        if not bridge.connect():
            return None
        await leg.until(bridge.ended)
    except (HungUp, Redirected) as exc:
        stop = exc
        how = "hangup" if isinstance(exc, HungUp) else "redirect"
        connected = bridge.connected_at is not None
        bridge.end(leg, how)
        if not connected:
            return ("hangup" if how == "hangup" else "redirected"), stop
    await bridge.dial_reported  # the agent's <Dial> action goes first
    return ("redirected-from-bridged" if isinstance(stop, Redirected) else "bridged"), stop


async def queue_over(
    leg: Leg,
    action: str | None,
    method: str,
    params: dict[str, str],
    bridge: Bridge | None,
    stop: Interrupt | None,
) -> Document | None:
    """The end of an <Enqueue>: its action (whose TwiML is dropped when the call hung up or was
    redirected), then the call goes on."""
    try:
        sent = await leg.request("enqueue-action", action, method, params) if action else None
    finally:
        if bridge is not None and not bridge.other_reported.done():
            bridge.other_reported.set_result(None)
    if bridge is not None:
        await bridge.settled  # the Dial's recording is reported before either side goes on
    if stop is not None:
        raise stop
    leg.set_state("in-progress")
    return document_of(leg, sent) if sent is not None else None


# --- <Dial> ----------------------------------------------------------------------------------


@dataclass
class DialSpec:
    action: str | None
    method: str
    timeout: float
    caller_id: str | None
    record: str  # "", "answer" or "ringing"
    recording: RecordingOptions


async def dial(leg: Leg, document: Document, element: ET.Element, context: str) -> Document | None:
    record = (element.get("record") or "do-not-record").lower()
    if record == "true":
        record = "record-from-answer"
    spec = DialSpec(
        action=document.resolve(element.get("action")) if element.get("action") else None,
        method=method_of(element),
        timeout=number(element, "timeout", 30),
        caller_id=element.get("callerId"),
        record=record.removeprefix("record-from-").removesuffix("-dual")
        if record.startswith("record-from-")
        else "",
        recording=recording_options(document, element, 2 if record.endswith("-dual") else 1),
    )
    nouns = [child for child in element if child.tag in ("Number", "Client", "Sip", "Queue")]
    if any(child.tag == "Conference" for child in element):
        raise Unsupported("the stand-in does not emulate <Dial><Conference>")
    if not nouns and (element.text or "").strip():
        bare = ET.Element("Number")
        bare.text = (element.text or "").strip()
        nouns = [bare]
    if not nouns:
        raise AppError(12200, "<Dial> without anything to dial")
    queues = [noun for noun in nouns if noun.tag == "Queue"]
    if queues:
        return await dial_queue(leg, document, spec, queues[0])
    return await dial_numbers(leg, document, spec, nouns)


async def dial_queue(
    leg: Leg, document: Document, spec: DialSpec, noun: ET.Element
) -> Document | None:
    """`<Dial><Queue>`: take the caller at the head of the queue (waiting up to the timeout if
    it is empty) and talk until one side hangs up."""
    sim = leg.sim
    queue = sim.queues.get(inner_text(noun))
    if queue is None:  # "If the queue does not exist, Dial will post an error status"
        return await dial_over(leg, spec, {"DialCallStatus": "failed", "DialBridged": "false"})
    whisper = None
    if noun.get("url"):
        whisper = Fetch("queue-whisper", document.resolve(noun.get("url")), method_of(noun))
    leg.set_state("dialing")
    recording = await start_dial_recording(leg, spec) if spec.record == "ringing" else None
    deadline = sim.now + spec.timeout
    bridge: Bridge | None = None
    candidate: Bridge | None = None
    stop: Interrupt | None = None
    try:
        while bridge is None:
            if not queue.members:
                remaining = deadline - sim.now
                if remaining <= 0 or not await leg.until(queue.arrival(), remaining):
                    break
                continue
            member = queue.members[0]
            candidate = Bridge(
                leg, member, queue=queue, queue_time=queue.leave(member), whisper=whisper
            )
            member.interrupt(Dequeued(candidate))
            await leg.until(candidate.connected)
            if candidate.connected.result():
                bridge = candidate
            # else: that caller went away first; the next one
        if bridge is not None:
            if spec.record == "answer":
                recording = await start_dial_recording(leg, spec)
            await leg.until(bridge.ended)
    except (HungUp, Redirected) as exc:
        stop = exc
        if candidate is not None:
            candidate.end(leg, "hangup" if isinstance(exc, HungUp) else "redirect")
            bridge = candidate if candidate.connected_at is not None else None
    if bridge is None:
        status = "canceled" if stop is not None else "no-answer"
        params = {"DialCallStatus": status, "DialBridged": "false", "QueueSid": queue.sid}
        return await dial_over(leg, spec, params, recording, stop=stop)
    member = bridge.other
    params = {
        "DialCallStatus": "completed",
        "DialCallSid": member.sid,
        "DialCallDuration": str(bridge.talk),
        "DialBridged": "true",
        "QueueSid": queue.sid,
        "DequeueResult": "bridged",
        "DequeuedCallSid": member.sid,
        "DequeuedCallQueueTime": str(whole(bridge.queue_time)),
        "DequeuedCallDuration": str(bridge.talk),
    }
    return await dial_over(leg, spec, params, recording, bridge, stop)


async def dial_numbers(
    leg: Leg, document: Document, spec: DialSpec, nouns: list[ET.Element]
) -> Document | None:
    """`<Dial>` to numbers, clients or SIP endpoints: ring them all, bridge the first to answer."""
    sim = leg.sim
    leg.set_state("dialing")
    recording = await start_dial_recording(leg, spec) if spec.record == "ringing" else None
    legs: list[Leg] = []
    for noun in nouns:
        to = inner_text(noun)
        if noun.tag == "Client" and not to.startswith("client:"):
            to = f"client:{to}"
        callback = noun.get("statusCallback")
        dialed = Leg(
            sim,
            direction="outbound-dial",
            from_=spec.caller_id or leg.from_,
            to=to,
            caller=sim.device(to).caller,
            parent=leg,
            status_callback=document.resolve(callback) if callback else None,
            status_callback_method=method_of(noun, "statusCallbackMethod"),
            status_events=events_of(noun.get("statusCallbackEvent")),
        )
        dialed.set_status("initiated")
        legs.append(dialed)
    ringing = Ringing(leg, legs)
    for dialed, noun in zip(legs, nouns, strict=True):
        whisper = None
        if noun.get("url"):
            whisper = Fetch("number-whisper", document.resolve(noun.get("url")), method_of(noun))
        sim.spawn(run_dialed(dialed, ringing, spec.timeout, whisper))
    bridge: Bridge | None = None
    stop: Interrupt | None = None
    try:
        await leg.until(ringing.result)
        bridge = ringing.result.result()
        if bridge is not None:
            if spec.record == "answer":
                recording = await start_dial_recording(leg, spec)
            await leg.until(bridge.ended)
    except (HungUp, Redirected) as exc:
        stop = exc
        bridge = ringing.stop()
        if bridge is not None:
            bridge.end(leg, "hangup" if isinstance(exc, HungUp) else "redirect")
        for dialed in legs:
            if dialed.answered_at is None:
                dialed.interrupt(HungUp("canceled"))
    if bridge is None:
        status = "canceled" if stop is not None else ringing.outcome()
        params = {"DialCallStatus": status, "DialCallSid": legs[0].sid, "DialBridged": "false"}
        return await dial_over(leg, spec, params, recording, stop=stop)
    params = {"DialCallStatus": "completed", "DialCallSid": bridge.other.sid, "DialBridged": "true"}
    if not (bridge.ended_by is bridge.other and bridge.how == "redirect"):
        params["DialCallDuration"] = str(bridge.talk)  # not sent when the dialed leg was redirected
    return await dial_over(leg, spec, params, recording, bridge, stop)


async def run_dialed(leg: Leg, ringing: Ringing, limit: float, whisper: Fetch | None) -> None:
    """A leg a <Dial> rings: it rings; answered, it hears its whisper (the <Number url>), then
    talks until the bridge ends."""
    try:
        outcome = await ring(leg, limit)
    except HungUp:
        outcome = "canceled"
    if outcome != "answered":
        leg.final_status = outcome
        ringing.gave_up(leg, outcome)
        await leg.finish()
        return
    leg.answer()
    await leg.progress("answered")
    bridge: Bridge | None = None
    try:
        if whisper is not None:
            document = await fetch_document(leg, "number-whisper", whisper.url, whisper.method)
            await run_documents(leg, document, "number-whisper")
        bridge = ringing.won(leg)
        if bridge is None:  # someone else answered first, or the caller went away
            leg.interrupt(HungUp("canceled"))
            leg.check()
        else:
            await leg.until(bridge.ended)
            leg.interrupt(HungUp("bridge"))  # the dialing side ended it
    except HungUp:
        if bridge is not None:
            bridge.end(leg, "hangup")
    except Redirected as exc:
        if bridge is not None:
            bridge.end(leg, "redirect")
        ringing.gave_up(leg, "completed")
        await run_call(leg, exc.target)  # the leg goes its own way
        return
    except AppError as exc:
        leg.errors.append(exc)
        if bridge is not None:
            bridge.end(leg, "hangup")
    ringing.gave_up(leg, "completed")
    await leg.finish()


async def start_dial_recording(leg: Leg, spec: DialSpec) -> Recording:
    return await leg.sim.start_recording(leg, "DialVerb", spec.recording)


async def dial_over(
    leg: Leg,
    spec: DialSpec,
    params: dict[str, str],
    recording: Recording | None = None,
    bridge: Bridge | None = None,
    stop: Interrupt | None = None,
) -> Document | None:
    """The end of a <Dial>: its action (not when the dialer was redirected; its TwiML dropped
    when the dialer hung up), then the queued caller's Enqueue action, then the recording."""
    sim = leg.sim
    if recording is not None:
        sim.stop_recording(recording, bridge.ended_at if bridge is not None else None)
        params["RecordingUrl"] = sim.recording_url(recording)
    sent = None
    try:
        if spec.action and not isinstance(stop, Redirected):
            sent = await leg.request("dial-action", spec.action, spec.method, params)
    finally:
        if bridge is not None and not bridge.dial_reported.done():
            bridge.dial_reported.set_result(None)
    try:
        if bridge is not None and bridge.queue is not None:
            await bridge.other_reported
        if recording is not None:
            await sim.report_recording(recording, leg)
    finally:
        if bridge is not None and not bridge.settled.done():
            bridge.settled.set_result(None)
    if stop is not None:
        raise stop
    leg.set_state("in-progress")
    return document_of(leg, sent) if sent is not None else None


VERBS: dict[str, Any] = {
    "Say": say,
    "Play": play,
    "Pause": pause,
    "Gather": gather,
    "Record": record,
    "Redirect": redirect,
    "Hangup": hangup,
    "Reject": reject,
    "Leave": leave,
    "Enqueue": enqueue,
    "Dial": dial,
}
