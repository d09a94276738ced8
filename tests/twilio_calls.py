"""The call model of the Twilio Voice stand-in (`tests/twilio_voice.py` has the REST side and
the transport, `tests/twilio_twiml.py` the TwiML interpreter that drives a leg): the people on
the calls (`Caller`, `Device`) and what they hear (`Heard`), call legs (`Leg`), Twilio's queues,
the bridges between legs, and what interrupts a leg or ends a call.

A `Leg` is one call leg (`CA…`): its state and history, its webhooks (`Leg.request`, status
callbacks) and its waits. What happens to a call from outside (the person hangs up, a REST update
redirects or ends it, an agent's `<Dial><Queue>` takes it from its queue) reaches the leg as an
*interrupt*: raised at its next wait, or when the webhook in flight has been answered, whose
TwiML is then dropped, as Twilio drops it.

Time is the simulator's (`VoiceSim.now`); it passes while a leg waits (`Leg.until`).

Nothing here parses or runs TwiML: the interpreter imports this module, never the other way.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import phonenumbers

from tests.twilio_standin import sid

if TYPE_CHECKING:
    from tests.twilio_voice import Recording, Sent, VoiceSim

API_VERSION = "2010-04-01"
FINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
HANG_UP = "hangup"  # in `Caller.inputs`: the person hangs up at that <Gather>
SPEECH = "speech:"  # in `Caller.inputs`: "speech:sales please" is said, not keyed


def whole(seconds: float) -> int:
    """Simulated seconds as Twilio reports them: a whole number."""
    return max(0, math.floor(seconds + 0.5))


def country_of(address: str) -> str | None:
    if not address.startswith("+"):
        return None
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(address))
    except phonenumbers.NumberParseException:
        return None
    return str(region) if region and region != "ZZ" else None


# --- the people on the calls -----------------------------------------------------------------


@dataclass
class Caller:
    """What the person on a leg does."""

    inputs: list[str | None] = field(default_factory=list)  # one per <Gather>: "12", "speech:…",
    # None (stays silent: the Gather times out), or HANG_UP
    voicemail_seconds: float = 5.0  # how long they speak at a <Record>
    finish_key: str | None = None  # pressed after speaking at a <Record>; None: they hang up
    hang_up_after: float | None = None  # simulated seconds after the call is answered


@dataclass
class Device:
    """The phone (or client, or SIP endpoint) at a destination Twilio calls."""

    answer: bool | str = True  # True (answers), "no-answer" (or False), "busy", "failed"
    ring_seconds: float = 0.0
    caller: Caller = field(default_factory=Caller)  # the person who picks up

    def __post_init__(self) -> None:
        if self.answer not in (True, False, "no-answer", "busy", "failed"):
            raise ValueError(f"Device(answer={self.answer!r})")


class Heard(str):
    """What the person on a leg heard: a `<Say>`'s text or a `<Play>`'s URL (it compares as that
    string), with the kind ("say", "play", "digits", "beep"), language and voice."""

    kind: str
    language: str | None
    voice: str | None

    def __new__(
        cls, value: str, kind: str = "say", language: str | None = None, voice: str | None = None
    ) -> Heard:
        heard = super().__new__(cls, value)
        heard.kind, heard.language, heard.voice = kind, language, voice
        return heard


# --- what interrupts a leg, and what ends a call ---------------------------------------------


@dataclass
class Fetch:
    """A TwiML document to run next: a leg's first one, or a REST redirect's."""

    kind: str
    url: str = ""
    method: str = "POST"
    twiml: str | None = None


@dataclass
class RecordingOptions:
    """What a recording reports, and where (recordingStatusCallback and friends)."""

    callback: str | None = None
    method: str = "POST"
    events: frozenset[str] = frozenset({"completed"})
    channels: int = 1


class Interrupt(Exception):
    """Something outside the TwiML stops what a leg is doing."""


class HungUp(Interrupt):
    """The call is over: the person hung up, `<Hangup>`, a REST `Status=completed`…"""

    def __init__(self, by: str) -> None:
        super().__init__(by)
        self.by = by


class Redirected(Interrupt):
    """A REST update gave the call new TwiML."""

    def __init__(self, target: Fetch) -> None:
        super().__init__(target.url or "Twiml")
        self.target = target


class Dequeued(Interrupt):
    """An agent's `<Dial><Queue>` took this caller from the queue."""

    def __init__(self, bridge: Bridge) -> None:
        super().__init__(bridge.dialer.sid)
        self.bridge = bridge


class AppError(Exception):
    """Twilio's "application error": the TwiML could not be fetched or run; it ends the call."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Unsupported(AppError):
    """TwiML the stand-in does not emulate; it ends the call and fails the test (`sim.close`)."""

    def __init__(self, message: str) -> None:
        super().__init__(12200, message)


# --- queues and bridges ----------------------------------------------------------------------


class Queue:
    """A Twilio queue (`QU…`), created by the first `<Enqueue>` naming it; first in, first out."""

    def __init__(self, sim: VoiceSim, name: str) -> None:
        self.sim = sim
        self.sid = sid("QU")
        self.name = name
        self.members: list[Leg] = []
        self.joined: dict[str, float] = {}
        self.max_size = 1000
        self._arrival: asyncio.Future[None] | None = None

    def join(self, leg: Leg, front: bool = False) -> None:
        self.members.insert(0 if front else len(self.members), leg)
        self.joined.setdefault(leg.sid, self.sim.now)
        leg.queue = self
        leg.set_state("in-queue")
        if self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)

    def leave(self, leg: Leg) -> float:
        """Take a leg out of the queue; the simulated seconds it spent there."""
        if leg in self.members:
            self.members.remove(leg)
        if leg.queue is self:
            leg.queue = None
        return self.sim.now - self.joined.pop(leg.sid, self.sim.now)

    def arrival(self) -> asyncio.Future[None]:
        """Done when the next caller joins."""
        if self._arrival is None or self._arrival.done():
            self._arrival = asyncio.get_running_loop().create_future()
        return self._arrival

    def wait_params(self, leg: Leg) -> dict[str, str]:
        """What Twilio adds to a waitUrl request."""
        now = self.sim.now
        waits = [now - self.joined[member.sid] for member in self.members]
        position = self.members.index(leg) + 1 if leg in self.members else 0
        return {
            "QueuePosition": str(position),
            "QueueSid": self.sid,
            "QueueTime": str(whole(now - self.joined.get(leg.sid, now))),
            "AvgQueueTime": str(whole(sum(waits) / len(waits))) if waits else "0",
            "CurrentQueueSize": str(len(self.members)),
            "MaxQueueSize": str(self.max_size),
        }


class Bridge:
    """Two legs talking: the one whose `<Dial>` made it (`dialer`) and the other one (a caller
    taken from a queue, or the leg the `<Dial>` rang)."""

    def __init__(
        self,
        dialer: Leg,
        other: Leg,
        *,
        queue: Queue | None = None,
        queue_time: float = 0.0,
        whisper: Fetch | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.dialer = dialer
        self.other = other
        self.queue = queue
        self.queue_time = queue_time
        self.whisper = whisper
        self.connected: asyncio.Future[bool] = loop.create_future()
        self.ended: asyncio.Future[str] = loop.create_future()
        self.dial_reported: asyncio.Future[None] = loop.create_future()  # the Dial action went
        self.other_reported: asyncio.Future[None] = loop.create_future()  # the Enqueue action
        self.settled: asyncio.Future[None] = loop.create_future()  # and the recording callback
        self.connected_at: float | None = None
        self.ended_at: float | None = None
        self.ended_by: Leg | None = None
        self.how = ""

    def connect(self) -> bool:
        """The two legs start talking; False when one of them went away first."""
        if self.connected.done():
            return self.connected.result()
        if self.ended.done():
            self.connected.set_result(False)
            return False
        self.connected_at = self.dialer.sim.now
        for leg in (self.dialer, self.other):
            leg.bridge = self
            leg.set_state("bridged")
        self.connected.set_result(True)
        return True

    def end(self, by: Leg, how: str) -> None:
        if self.ended.done():
            return
        self.ended_at = self.dialer.sim.now
        self.ended_by = by
        self.how = how
        for leg in (self.dialer, self.other):
            if leg.bridge is self:
                leg.bridge = None
        self.ended.set_result(how)
        if not self.connected.done():
            self.connected.set_result(False)

    @property
    def talk(self) -> int:
        """The simulated seconds the two legs talked."""
        if self.connected_at is None:
            return 0
        end = self.ended_at if self.ended_at is not None else self.dialer.sim.now
        return whole(end - self.connected_at)


class Ringing:
    """The legs one `<Dial>` rings at once: the first to answer (and get through its whisper)
    is bridged, the others are canceled."""

    def __init__(self, dialer: Leg, legs: list[Leg]) -> None:
        self.dialer = dialer
        self.legs = legs
        self.pending = {leg.sid for leg in legs}
        self.outcomes: dict[str, str] = {}
        self.result: asyncio.Future[Bridge | None] = asyncio.get_running_loop().create_future()

    def won(self, leg: Leg) -> Bridge | None:
        if self.result.done():
            return None
        bridge = Bridge(self.dialer, leg)
        bridge.connect()
        self.result.set_result(bridge)
        for other in self.legs:
            if other is not leg and other.answered_at is None:
                other.interrupt(HungUp("canceled"))
        return bridge

    def gave_up(self, leg: Leg, outcome: str) -> None:
        self.outcomes[leg.sid] = outcome
        self.pending.discard(leg.sid)
        if not self.pending and not self.result.done():
            self.result.set_result(None)

    def stop(self) -> Bridge | None:
        """The dialer stops waiting; the bridge, if one was made."""
        if not self.result.done():
            self.result.set_result(None)
        return self.result.result()

    def outcome(self) -> str:
        """DialCallStatus when nobody was bridged."""
        outcomes = set(self.outcomes.values())
        if "completed" in outcomes:
            return "completed"
        for status in ("busy", "failed", "canceled"):
            if outcomes == {status}:
                return status
        return "no-answer"


# --- a call leg ------------------------------------------------------------------------------


class Leg:
    """One call leg (`CA…`) as Twilio runs it; `VoiceSim.calls` has them all.

    `status` is Twilio's CallStatus; `state` is finer ("in-queue", "dialing", "bridged" too) and
    `states` its history."""

    def __init__(
        self,
        sim: VoiceSim,
        *,
        direction: str,
        from_: str,
        to: str,
        caller: Caller | None = None,
        parent: Leg | None = None,
        status_callback: str | None = None,
        status_callback_method: str = "POST",
        status_events: Iterable[str] = ("completed",),
    ) -> None:
        self.sim = sim
        self.sid = sid("CA")
        self.direction = direction
        self.from_ = from_
        self.to = to
        self.caller = caller or Caller()
        self.parent = parent
        self.status_callback = status_callback
        self.status_callback_method = status_callback_method.upper()
        self.status_events = frozenset(status_events)
        self.status = "queued"
        self.state = "queued"
        self.states = ["queued"]
        self.heard: list[Heard] = []
        self.errors: list[AppError] = []
        self.recordings: list[Recording] = []
        self.created_at = sim.now
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.final_status: str | None = None  # busy / no-answer / failed / canceled
        self.finished = False  # ended, its last webhooks sent
        self.queue: Queue | None = None
        self.waiting_in_queue = False  # inside an <Enqueue>, until taken or gone
        self.bridge: Bridge | None = None
        self.first: Fetch | None = None  # what an outbound leg runs once answered
        self.ring_timeout = 60.0
        self.call_recording: RecordingOptions | None = None  # Calls create with Record=true
        self._inputs = list(self.caller.inputs)
        self._sequence = 0
        self._hung_up: str | None = None
        self._interrupts: list[Interrupt] = []
        self._poked = asyncio.Event()
        sim.calls[self.sid] = self

    def __repr__(self) -> str:
        return f"<Leg {self.sid} {self.direction} {self.from_}->{self.to} {self.state}>"

    # --- what a test looks at and does ---------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.finished

    @property
    def in_queue(self) -> bool:
        return self.queue is not None

    @property
    def bridged(self) -> bool:
        return self.bridge is not None and self.bridge.connected_at is not None

    @property
    def other(self) -> Leg | None:
        """The leg this one talks to."""
        if self.bridge is None:
            return None
        return self.bridge.other if self.bridge.dialer is self else self.bridge.dialer

    @property
    def duration(self) -> int:
        """CallDuration: simulated seconds from the answer to the end (or now)."""
        if self.answered_at is None:
            return 0
        end = self.ended_at if self.ended_at is not None else self.sim.now
        return whole(end - self.answered_at)

    async def hang_up(self, after: float = 0.0) -> None:
        """The person on this leg hangs up, `after` simulated seconds from now; returns once the
        call has ended and sent its last webhooks."""
        if after > 0:
            await self.sim.sleep(after)
        self.interrupt(HungUp("caller"))
        await self.wait_for(lambda leg: leg.finished)

    async def wait_for(
        self,
        predicate: Callable[[Leg], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - real seconds, named as the tests expect
    ) -> Leg:
        """Wait (real seconds) until `predicate(leg)` holds; AssertionError after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            self.sim.raise_failures()
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting on {self!r}, states {self.states}")
            await asyncio.sleep(0.005)
        return self

    async def wait_state(self, state: str, timeout: float = 10.0) -> Leg:  # noqa: ASYNC109 - idem
        """Wait until the leg has been in `state` ("in-queue", "bridged", "dialing", a
        CallStatus…); "completed" waits for the end, whatever the final status."""
        if state == "completed":
            return await self.wait_for(lambda leg: leg.finished, timeout)
        return await self.wait_for(lambda leg: state in leg.states, timeout)

    # --- the leg's own machinery ----------------------------------------------------------------

    def set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.states.append(state)

    def set_status(self, status: str) -> None:
        self.status = status
        self.set_state(status)

    def interrupt(self, event: Interrupt) -> None:
        """Something happens to the call; the leg's task sees it at its next wait."""
        if self._hung_up is not None:
            if isinstance(event, Dequeued):  # too late: the agent takes the next caller
                event.bridge.end(self, "hangup")
            return
        if isinstance(event, HungUp):
            self._hung_up = event.by
            self.ended_at = self.sim.now
            self.status = self.final_status or (
                "completed" if self.answered_at is not None else "canceled"
            )
        else:
            self._interrupts.append(event)
        self._poked.set()

    def check(self) -> None:
        """Raise what has happened to the call meanwhile (a hang-up first)."""
        if self._hung_up is not None:
            raise HungUp(self._hung_up)
        while self._interrupts:
            event = self._interrupts.pop(0)
            if isinstance(event, Dequeued) and not self.waiting_in_queue:
                event.bridge.end(self, "redirect")  # it left the queue meanwhile
                continue
            if not self._interrupts:
                self._poked.clear()
            raise event
        self._poked.clear()

    async def until(
        self, waiting: asyncio.Future[Any] | None = None, seconds: float | None = None
    ) -> bool:
        """Wait for `waiting` (True), `seconds` of simulated time (False), or forever; an
        interrupt meanwhile raises. Simulated time passes while anyone waits."""
        self.check()
        loop = asyncio.get_running_loop()
        started, real_start = self.sim.now, loop.time()
        scale = self.sim.time_scale
        deadline = None if seconds is None else real_start + seconds * scale
        while True:
            poke = asyncio.ensure_future(self._poked.wait())
            watched: set[asyncio.Future[Any]] = {poke}
            if waiting is not None:
                watched.add(waiting)
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                await asyncio.wait(watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                poke.cancel()
            if self._poked.is_set() or (waiting is not None and waiting.done()):
                self.sim.advance(started + (loop.time() - real_start) / scale)
                self.check()
                if waiting is not None and waiting.done():
                    return True
                continue
            if deadline is not None and loop.time() >= deadline:
                self.sim.advance(started + (seconds or 0.0))
                return False

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await self.until(None, seconds)
        else:
            self.check()

    def answer(self) -> None:
        self.answered_at = self.sim.now
        self.set_status("in-progress")
        if self.caller.hang_up_after is not None:
            self.sim.spawn(self._hang_up_later(self.caller.hang_up_after))

    async def _hang_up_later(self, seconds: float) -> None:
        await self.sim.sleep(seconds)
        self.interrupt(HungUp("caller"))

    def next_input(self) -> str | None:
        return self._inputs.pop(0) if self._inputs else None

    def params(self) -> dict[str, str]:
        """Twilio's standard request parameters for this leg, as of now."""
        params = {
            "AccountSid": self.sim.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": self.sid,
            "CallStatus": self.status,
            "Called": self.to,
            "Caller": self.from_,
            "Direction": self.direction,
            "From": self.from_,
            "To": self.to,
        }
        if self.parent is not None:
            params["ParentCallSid"] = self.parent.sid
        for prefix, address in (
            ("From", self.from_),
            ("Caller", self.from_),
            ("To", self.to),
            ("Called", self.to),
        ):
            country = country_of(address)
            if country is not None:
                for part, value in (("City", ""), ("State", ""), ("Zip", ""), ("Country", country)):
                    params[f"{prefix}{part}"] = value
        return params

    async def request(
        self, kind: str, url: str, method: str = "POST", extra: dict[str, str] | None = None
    ) -> Sent:
        """A webhook about this leg: the standard parameters and `extra`."""
        params = {**self.params(), **(extra or {})}
        return await self.sim.send(kind, url, params, method, call=self)

    async def progress(self, event: str) -> None:
        """The status callback for a call progress event, if the leg has one and asked for it."""
        if self.status_callback is None or event not in self.status_events:
            return
        statuses = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress"}
        params = {
            **self.params(),
            "CallStatus": statuses.get(event, self.status),
            "Timestamp": self.sim.timestamp(),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(self._sequence),
        }
        self._sequence += 1
        if event == "completed":
            params["CallDuration"] = str(self.duration)
            params["Duration"] = str(math.ceil(self.duration / 60))
            for recording in self.recordings:
                if recording.source == "OutboundAPI":
                    params.update(
                        {
                            "RecordingUrl": self.sim.recording_url(recording),
                            "RecordingSid": recording.sid,
                            "RecordingDuration": str(recording.duration or 0),
                        }
                    )
        await self.sim.send(
            "status", self.status_callback, params, self.status_callback_method, call=self
        )

    async def finish(self) -> None:
        """The call is over: its final status, its status callback, its own recording."""
        if self.finished:
            return
        if self._hung_up is None:
            self.interrupt(HungUp("ended"))
        self.status = self.final_status or (
            "completed" if self.answered_at is not None else "canceled"
        )
        if self.queue is not None:
            self.queue.leave(self)
        for event in self._interrupts:
            if isinstance(event, Dequeued):
                event.bridge.end(self, "hangup")
        self._interrupts.clear()
        self.set_state(self.status)
        whole_call = [rec for rec in self.recordings if rec.source == "OutboundAPI"]
        for recording in whole_call:
            self.sim.stop_recording(recording, self.ended_at)
        await self.progress("completed")
        for recording in whole_call:
            await self.sim.report_recording(recording, self)
        self.finished = True
