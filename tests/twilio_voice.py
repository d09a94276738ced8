"""A stand-in for Twilio *Voice* in the tests: it plays Twilio's part in phone calls.

    standin = TwilioStandIn()
    sim = VoiceSim(standin)              # before standin.start(): it adds the Voice routes
    await standin.start()
    sim.deliver = via_client(client)     # or via_base_url("http://127.0.0.1:…")
    call = await sim.incoming(f"{PUBLIC}/hooks/…", caller=Caller(inputs=["1"]))
    await call.wait_state("in-queue")    # … the application creates calls through REST …
    await sim.talk(30)
    await call.hang_up()
    await sim.close()                    # cancels what still runs, raises what went wrong

It knows nothing of omnicrm: it speaks Twilio's documented wire format.

- Webhooks: form-encoded, signed with `X-Twilio-Signature` (the official `RequestValidator`,
  through `twilio_standin.Signer`) over the *public* absolute URL; a `GET` carries the
  parameters in its query string and is signed over that URL. Every one carries Twilio's
  standard parameters (AccountSid, ApiVersion, CallSid, CallStatus, Called, Caller, Direction,
  From, To, the …City/State/Zip/Country of phone numbers, ParentCallSid on a leg a `<Dial>`
  made) and is recorded in `sim.webhooks` (`Sent`), in the order sent; `replay()` sends one
  again, byte for byte.
- REST (2010-04-01, HTTP basic auth with the account SID and token; 401/20003 otherwise;
  404/20404 for what does not exist), recorded in `sim.requests` (`RestCall`):
  `POST …/Calls.json` (201, the Call resource, status `queued`; 400: 21201 no To, 21213 no
  From, 21211/21212 a To/From that is no E.164 number, `client:` or `sip:` URI, 21217 a bad
  SIP URI, 21205 no or a bad Url/Twiml, 21210 a From not in `sim.our_numbers` when set),
  `GET …/Calls/{CA}.json`, `POST …/Calls/{CA}.json` (`Url`/`Twiml` redirects a live call,
  `Status=completed` ends it, `Status=canceled` ends one not answered yet; 21220 "Call is not
  in-progress. Cannot redirect." for a call that is over), `GET …/Recordings/{RE}` with `.mp3`,
  `.wav` or nothing (audio) or `.json` (the Recording resource), `DELETE …/Recordings/{RE}.json`.
  `script_calls(error(...))` answers the next create/update requests with Twilio's errors.

The TwiML interpreter (`tests/twilio_twiml.py`) runs <Say>, <Play>, <Pause>, <Gather>,
<Record>, <Enqueue>, <Dial> (<Number>, <Client>, <Sip> rung at once; <Queue>), <Redirect>,
<Hangup>, <Reject>, <Leave>. As Twilio's docs say: the order of the webhooks and their
parameters; <Gather>/<Record> acting on the document's own URL without `action`; relative
URLs; <Gather> falling through on silence unless actionOnEmptyResult; <Record>'s action still
requested (Digits=hangup) when the caller hangs up; <Enqueue>'s waitUrl requested again and
again, its action requested at once for <Leave> (`leave`), a hang-up (`hangup`), a REST
redirect (`redirected`, or `redirected-from-bridged` once bridged; that action's TwiML is
dropped, the redirect wins) and after the bridge for a dequeued caller (`bridged`); a
<Dial><Queue> waiting for a caller up to its timeout on an empty queue and failing on a queue
that does not exist; <Dial>'s action when the dialed side ends, and also when the dialer hung
up (its TwiML dropped); status callbacks only for the events asked for (`completed` by
default, and it covers busy/no-answer/failed/canceled), with Timestamp, SequenceNumber,
CallbackSource and CallDuration; recording callbacks (RecordingSource RecordVerb, DialVerb,
OutboundAPI; the CallSid of the dialing leg for <Dial>).

Assumed where the docs are silent (so the application must cope with both): a dialer
redirected through REST gets no <Dial> action; an update of a call that is over answers 21220
whatever it asks; <Dial><Queue> reports DequeueResult/DequeuedCallSid/DequeuedCallQueueTime/
DequeuedCallDuration as Twilio is seen to, and `no-answer` when the queue stayed empty; a dialer
gone before the bridge reports `canceled`; a <Record> that caught nothing requests no action.

Simplified: time is simulated (`time_scale`: a simulated second costs 10 ms by default; it
passes while any leg waits, webhooks take none of it, so durations are plausible, not exact);
a <Say> or a round of <Play> lasts one second, keys one more; a created call is queued for
`queued_seconds` (1) before it rings; speech recognition returns the scripted text with
Confidence 0.9; no machine detection, conferences, <Connect>/<Stream>, fallback URLs, webhook
retries or timeouts, SIP responses; hold music is not fetched; a webhook answered with
anything but TwiML is an application error (11200/11205/12100, `Leg.errors`), which ends the
call after "an application error has occurred".
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import wave
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from aiohttp import BasicAuth, ClientError, ClientSession, web
from aiohttp.test_utils import TestClient
from twilio.request_validator import RequestValidator

from tests.twilio_calls import (
    FINAL,
    HANG_UP,
    AppError,
    Caller,
    Device,
    Fetch,
    Heard,
    HungUp,
    Leg,
    Queue,
    RecordingOptions,
    Redirected,
    whole,
)
from tests.twilio_standin import API, Answer, Signer, TwilioStandIn, error, sid
from tests.twilio_twiml import run_inbound, run_outbound

__all__ = [
    "HANG_UP",
    "PUBLIC",
    "AppError",
    "Caller",
    "Device",
    "Heard",
    "Leg",
    "Queue",
    "Recording",
    "RestCall",
    "Sent",
    "VoiceSim",
    "via_base_url",
    "via_client",
]

PUBLIC = "https://crm.example.com"  # where Twilio reaches the application (tests.twilio_helpers)
E164 = re.compile(r"\+[1-9]\d{6,14}")
SIP_URI = re.compile(r"sip:[^@\s]+@[^@\s]+")
CLIENT = re.compile(r"client:[\w.\-]{1,256}")


# --- what the simulator sent and was asked ----------------------------------------------------


@dataclass
class Sent:
    """A webhook Twilio sent, with the application's answer."""

    url: str  # the signed absolute URL (with the query string of a GET)
    params: dict[str, str]
    status: int  # 0: the application could not be reached; -1: not answered yet
    body: str
    kind: str = ""  # voice, gather, wait, status, recording, dial-action, enqueue-action, …
    method: str = "POST"
    call_sid: str | None = None
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False


@dataclass
class RestCall:
    """A REST request the application made."""

    method: str
    path: str
    params: dict[str, str]  # the first value of each form field
    form: list[tuple[str, str]]  # every field, repeated ones too
    authorized: bool


@dataclass
class Recording:
    sid: str
    call_sid: str
    source: str  # RecordVerb, DialVerb, OutboundAPI
    channels: int
    started_at: float
    start_time: str
    callback: str | None = None
    callback_method: str = "POST"
    events: frozenset[str] = frozenset({"completed"})
    status: str = "in-progress"
    duration: int | None = None
    deleted: bool = False


# --- how webhooks reach the application --------------------------------------------------------


class Deliver(Protocol):
    """Sends one webhook; (status, body), status 0 when the application cannot be reached."""

    async def __call__(
        self, url: str, body: bytes, headers: dict[str, str], method: str = "POST"
    ) -> tuple[int, str]: ...


def via_client(client: TestClient[Any, Any], public: str = PUBLIC) -> Deliver:
    """Webhooks to an aiohttp test client of the application: the path of the public URL."""

    async def deliver(
        url: str, body: bytes, headers: dict[str, str], method: str = "POST"
    ) -> tuple[int, str]:
        if url != public and not url.startswith((f"{public}/", f"{public}?")):
            return 0, ""
        response = await client.request(
            method, url[len(public) :] or "/", data=body or None, headers=headers
        )
        return response.status, await response.text()

    return deliver


def via_base_url(base: str, public: str = PUBLIC) -> Deliver:
    """Webhooks over real HTTP to the application serving on `base` (a subprocess, say)."""

    async def deliver(
        url: str, body: bytes, headers: dict[str, str], method: str = "POST"
    ) -> tuple[int, str]:
        if url != public and not url.startswith((f"{public}/", f"{public}?")):
            return 0, ""
        async with (
            ClientSession() as session,
            session.request(
                method,
                base.rstrip("/") + (url[len(public) :] or "/"),
                data=body or None,
                headers=headers,
            ) as response,
        ):
            return response.status, await response.text()

    return deliver


# --- the simulator -----------------------------------------------------------------------------


class VoiceSim:
    """Twilio Voice: the REST side on the stand-in's server, the calls, their webhooks."""

    def __init__(
        self,
        standin: TwilioStandIn,
        deliver: Deliver | None = None,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        time_scale: float = 0.01,
    ) -> None:
        if standin.server is not None:
            raise RuntimeError("create the VoiceSim before standin.start(): it adds routes")
        standin.extra_routes.append(self.add_routes)
        self.standin = standin
        self.deliver = deliver
        self.account_sid = account_sid or standin.account_sid
        self.auth_token = auth_token or standin.auth_token
        self.time_scale = time_scale
        self.signer = Signer(self.auth_token)
        self.validator = RequestValidator(self.auth_token)
        self.now = 0.0  # simulated seconds
        self.epoch = datetime.now(UTC)
        self.queued_seconds = 1.0  # a created call waits this long before it is initiated
        self.our_numbers: set[str] | None = None  # when set: the only From numbers allowed
        self.calls: dict[str, Leg] = {}
        self.devices: dict[str, Device] = {}
        self.queues: dict[str, Queue] = {}
        self.recordings: dict[str, Recording] = {}
        self.webhooks: list[Sent] = []
        self.requests: list[RestCall] = []
        self.answers: list[Answer] = []
        self.failures: list[BaseException] = []
        self._tasks: set[asyncio.Task[None]] = set()

    # --- what a test does -------------------------------------------------------------------------

    async def incoming(
        self,
        voice_url: str,
        *,
        from_: str = "+4915112345678",
        to: str = "+15005550006",
        status_callback: str | None = None,
        method: str = "POST",
        status_callback_method: str = "POST",
        caller: Caller | None = None,
    ) -> Leg:
        """Someone calls the number whose voice URL is `voice_url`; the call's leg (its task
        runs on its own)."""
        leg = Leg(
            self,
            direction="inbound",
            from_=from_,
            to=to,
            caller=caller,
            status_callback=status_callback,
            status_callback_method=status_callback_method,
        )
        self.spawn(run_inbound(leg, Fetch("voice", voice_url, method.upper())))
        return leg

    def script_calls(self, *answers: Answer) -> None:
        """The next Calls create/update requests get these answers (`error(...)`), in order."""
        self.answers.extend(answers)

    def legs_to(self, destination: str) -> list[Leg]:
        return [leg for leg in self.calls.values() if leg.to == destination]

    def hooks(self, kind: str | None = None, call: Leg | str | None = None) -> list[Sent]:
        """The webhooks sent, of a kind and about a leg if given."""
        call_sid = call.sid if isinstance(call, Leg) else call
        return [
            sent
            for sent in self.webhooks
            if (kind is None or sent.kind == kind)
            and (call_sid is None or sent.call_sid == call_sid)
        ]

    async def talk(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass (the people talk)."""
        await self.sleep(seconds)

    async def replay(self, sent: Sent) -> Sent:
        """Deliver a webhook again, exactly as it was (a duplicate, or one out of order)."""
        again = replace(sent, params=dict(sent.params), status=-1, body="", replayed=True)
        self.webhooks.append(again)
        again.status, again.body = await self._deliver(
            sent.url, sent.data, dict(sent.headers), sent.method
        )
        return again

    def recording_audio(self, recording_sid: str, kind: str = "wav") -> bytes:
        """The bytes the REST side serves for a recording ("mp3" or "wav")."""
        seed = hashlib.sha256(recording_sid.encode()).digest()
        if kind == "mp3":
            frame = b"\xff\xfb\x90\x64" + seed * 13
            return b"ID3\x03\x00\x00\x00\x00\x00\x00" + frame * 8
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as audio:
            audio.setnchannels(1)
            audio.setsampwidth(1)
            audio.setframerate(8000)
            audio.writeframes(seed * 125)
        return buffer.getvalue()

    async def close(self) -> None:
        """Cancel what still runs; raise what went wrong in a leg meanwhile."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.raise_failures()

    def raise_failures(self) -> None:
        if self.failures:
            raise self.failures[0]

    # --- time, tasks, webhooks --------------------------------------------------------------------

    def advance(self, to: float) -> None:
        self.now = max(self.now, to)

    async def sleep(self, seconds: float) -> None:
        started = self.now
        await asyncio.sleep(seconds * self.time_scale)
        self.advance(started + seconds)

    def timestamp(self, at: float | None = None) -> str:
        """RFC 2822, as Twilio writes dates."""
        moment = self.epoch + timedelta(seconds=self.now if at is None else at)
        return format_datetime(moment)

    def spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._guard(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, work: Any) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the stand-in or a broken test: fail the test
            self.failures.append(exc)

    def device(self, destination: str) -> Device:
        return self.devices.get(destination) or Device()

    def queue(self, name: str) -> Queue:
        if name not in self.queues:
            self.queues[name] = Queue(self, name)
        return self.queues[name]

    async def send(
        self,
        kind: str,
        url: str,
        params: Mapping[str, str],
        method: str = "POST",
        call: Leg | None = None,
    ) -> Sent:
        """Sign and deliver one webhook, as Twilio does; recorded in `webhooks`."""
        method = "GET" if method.upper() == "GET" else "POST"
        if method == "GET":
            target = f"{url}{'&' if '?' in url else '?'}{urlencode(dict(params))}"
            data = b""
            headers = {"X-Twilio-Signature": self.validator.compute_signature(target, {})}
        else:
            target = url
            data, headers = self.signer.form(url, params)
        headers["User-Agent"] = "TwilioProxy/1.1"
        call_sid = call.sid if call is not None else None
        sent = Sent(target, dict(params), -1, "", kind, method, call_sid, data, headers)
        self.webhooks.append(sent)  # in the order they are sent
        sent.status, sent.body = await self._deliver(target, data, headers, method)
        return sent

    async def _deliver(
        self, url: str, data: bytes, headers: dict[str, str], method: str
    ) -> tuple[int, str]:
        if self.deliver is None:
            raise RuntimeError("VoiceSim.deliver is not set: via_client(...) or via_base_url(...)")
        try:
            if method == "GET":
                return await self.deliver(url, data, headers, method="GET")
            return await self.deliver(url, data, headers)
        except (ClientError, OSError, TimeoutError):
            return 0, ""

    # --- recordings -------------------------------------------------------------------------------

    def recording_url(self, recording: Recording) -> str:
        return f"{self.standin.url}{API}/Accounts/{self.account_sid}/Recordings/{recording.sid}"

    async def start_recording(
        self, leg: Leg, source: str, options: RecordingOptions | None = None
    ) -> Recording:
        options = options or RecordingOptions()
        recording = Recording(
            sid("RE"),
            leg.sid,
            source,
            options.channels,
            self.now,
            self.timestamp(),
            options.callback,
            options.method.upper(),
            options.events,
        )
        self.recordings[recording.sid] = recording
        leg.recordings.append(recording)
        if "in-progress" in recording.events:
            await self.report_recording(recording, leg)
        return recording

    def stop_recording(self, recording: Recording, at: float | None = None) -> None:
        if recording.status == "in-progress":
            end = self.now if at is None else at
            recording.duration = whole(end - recording.started_at)
            recording.status = "completed"

    async def absent_recording(self, leg: Leg, source: str, options: RecordingOptions) -> None:
        """A recording that caught nothing: Twilio keeps none, reports `absent` if asked."""
        recording = Recording(
            sid("RE"),
            leg.sid,
            source,
            options.channels,
            self.now,
            self.timestamp(),
            options.callback,
            options.method.upper(),
            options.events,
            status="absent",
            duration=0,
        )
        self.recordings[recording.sid] = recording
        await self.report_recording(recording, leg)

    async def report_recording(self, recording: Recording, leg: Leg) -> None:
        """The recording status callback for the recording's status, if it asked for it."""
        if recording.callback is None or recording.status not in recording.events:
            return
        params = {
            "AccountSid": self.account_sid,
            "CallSid": recording.call_sid,
            "RecordingSid": recording.sid,
            "RecordingUrl": self.recording_url(recording),
            "RecordingStatus": recording.status,
            "RecordingChannels": str(recording.channels),
            "RecordingStartTime": recording.start_time,
            "RecordingSource": recording.source,
        }
        if recording.duration is not None:
            params["RecordingDuration"] = str(recording.duration)
        if recording.status == "absent":
            params["ErrorCode"] = "0"
        await self.send("recording", recording.callback, params, recording.callback_method, leg)

    # --- the REST side ----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        base = f"{API}/Accounts/{{account}}"
        app.router.add_post(f"{base}/Calls.json", self._create_call)
        app.router.add_get(f"{base}/Calls/{{call}}.json", self._fetch_call)
        app.router.add_post(f"{base}/Calls/{{call}}.json", self._update_call)
        app.router.add_get(f"{base}/Recordings/{{recording}}", self._recording)
        app.router.add_delete(f"{base}/Recordings/{{recording}}", self._delete_recording)

    async def _received(self, request: web.Request) -> tuple[dict[str, str], list[tuple[str, str]]]:
        form = await request.post() if request.method == "POST" else None
        pairs = [(key, str(value)) for key, value in form.items()] if form is not None else []
        params: dict[str, str] = {}
        for key, value in pairs:
            params.setdefault(key, value)
        authorized = self._authorized(request)
        self.requests.append(RestCall(request.method, request.path, params, pairs, authorized))
        return params, pairs

    def _authorized(self, request: web.Request) -> bool:
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            return False
        return (auth.login, auth.password) == (self.account_sid, self.auth_token) and (
            request.match_info["account"] == self.account_sid
        )

    async def _scripted(self) -> web.Response | None:
        if not self.answers:
            return None
        answer = self.answers.pop(0)
        if answer.stall_seconds:
            await asyncio.sleep(answer.stall_seconds)
        if 200 <= answer.status < 300:
            return None
        return _answer(answer)

    def _not_found(self, request: web.Request) -> web.Response:
        message = f"The requested resource {request.path} was not found"
        return _answer(error(20404, message, 404))

    async def _create_call(self, request: web.Request) -> web.StreamResponse:
        params, pairs = await self._received(request)
        if not self.requests[-1].authorized:
            return _answer(error(20003, "Authenticate", 401))
        scripted = await self._scripted()
        if scripted is not None:
            return scripted
        to, from_ = params.get("To", "").strip(), params.get("From", "").strip()
        url, twiml = params.get("Url", "").strip(), params.get("Twiml")
        if not to:
            return _answer(error(21201, "No 'To' number is specified"))
        if not from_:
            return _answer(error(21213, "No 'From' number is specified"))
        if to.startswith("sip:") and not SIP_URI.fullmatch(to):
            return _answer(error(21217, f"Phone number is not a valid SIP URI: {to}"))
        if not (E164.fullmatch(to) or SIP_URI.fullmatch(to) or CLIENT.fullmatch(to)):
            return _answer(error(21211, f"Invalid 'To' Phone Number: {to}"))
        if not (E164.fullmatch(from_) or CLIENT.fullmatch(from_)):
            return _answer(error(21212, f"Invalid 'From' Phone Number: {from_}"))
        if self.our_numbers is not None and from_ not in self.our_numbers:
            message = (
                f"The source phone number provided, {from_}, is not yet verified for your account."
            )
            return _answer(error(21210, message))
        if not url and not twiml:
            return _answer(error(21205, "Either a 'Url' or 'Twiml' parameter is required"))
        if url and urlsplit(url).scheme not in ("http", "https"):
            return _answer(error(21205, f"Url is not a valid URL: {url}"))
        events = [
            event
            for key, value in pairs
            if key == "StatusCallbackEvent"
            for event in value.replace(",", " ").split()
        ]
        leg = Leg(
            self,
            direction="outbound-api",
            from_=from_,
            to=to,
            caller=self.device(to).caller,
            status_callback=params.get("StatusCallback") or None,
            status_callback_method=params.get("StatusCallbackMethod", "POST"),
            status_events=events or ("completed",),
        )
        leg.first = (
            Fetch("voice", url, params.get("Method", "POST").upper())
            if url
            else Fetch("voice", twiml=twiml)
        )
        try:
            leg.ring_timeout = float(params.get("Timeout") or 60)
        except ValueError:
            leg.ring_timeout = 60.0
        if params.get("Record", "").lower() == "true":
            recording_events = [
                event
                for key, value in pairs
                if key == "RecordingStatusCallbackEvent"
                for event in value.replace(",", " ").split()
            ]
            leg.call_recording = RecordingOptions(
                params.get("RecordingStatusCallback") or None,
                params.get("RecordingStatusCallbackMethod", "POST").upper(),
                frozenset(recording_events or ["completed"]),
                2 if params.get("RecordingChannels") == "dual" else 1,
            )
        self.spawn(run_outbound(leg, self.queued_seconds))
        return web.json_response(self.call_resource(leg), status=201)

    async def _fetch_call(self, request: web.Request) -> web.StreamResponse:
        await self._received(request)
        if not self.requests[-1].authorized:
            return _answer(error(20003, "Authenticate", 401))
        leg = self.calls.get(request.match_info["call"])
        if leg is None:
            return self._not_found(request)
        return web.json_response(self.call_resource(leg))

    async def _update_call(self, request: web.Request) -> web.StreamResponse:
        params, _ = await self._received(request)
        if not self.requests[-1].authorized:
            return _answer(error(20003, "Authenticate", 401))
        scripted = await self._scripted()
        if scripted is not None:
            return scripted
        leg = self.calls.get(request.match_info["call"])
        if leg is None:
            return self._not_found(request)
        status, url, twiml = params.get("Status"), params.get("Url"), params.get("Twiml")
        if status is not None and status not in ("completed", "canceled"):
            return _answer(error(21200, f"Invalid Status: {status}"))
        if not (status or url or twiml):
            return web.json_response(self.call_resource(leg))
        if leg.status in FINAL:
            return _answer(error(21220, "Call is not in-progress. Cannot redirect."))
        if status == "completed" or (status == "canceled" and leg.answered_at is None):
            leg.interrupt(HungUp("api"))
        elif status is None:
            if url and urlsplit(url).scheme not in ("http", "https"):
                return _answer(error(21205, f"Url is not a valid URL: {url}"))
            target = (
                Fetch("redirect", url, params.get("Method", "POST").upper())
                if url
                else Fetch("redirect", twiml=twiml)
            )
            if leg.first is not None and leg.answered_at is None:
                leg.first = target  # not answered yet: it runs this once answered
            else:
                leg.interrupt(Redirected(target))
        return web.json_response(self.call_resource(leg))

    def call_resource(self, leg: Leg) -> dict[str, Any]:
        """The Call resource, as the 2010-04-01 API returns it."""
        uri = f"{API}/Accounts/{self.account_sid}/Calls/{leg.sid}"
        return {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": None,
            "api_version": "2010-04-01",
            "caller_name": None,
            "date_created": self.timestamp(leg.created_at),
            "date_updated": self.timestamp(),
            "direction": leg.direction,
            "duration": str(leg.duration) if leg.status in FINAL else None,
            "end_time": self.timestamp(leg.ended_at) if leg.ended_at is not None else None,
            "forwarded_from": None,
            "from": leg.from_,
            "from_formatted": leg.from_,
            "group_sid": None,
            "parent_call_sid": leg.parent.sid if leg.parent is not None else None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": leg.sid,
            "start_time": self.timestamp(leg.answered_at) if leg.answered_at is not None else None,
            "status": leg.status,
            "subresource_uris": {
                "notifications": f"{uri}/Notifications.json",
                "recordings": f"{uri}/Recordings.json",
                "payments": f"{uri}/Payments.json",
                "events": f"{uri}/Events.json",
                "siprec": f"{uri}/Siprec.json",
                "streams": f"{uri}/Streams.json",
                "user_defined_message_subscriptions": f"{uri}/UserDefinedMessageSubscriptions.json",
                "user_defined_messages": f"{uri}/UserDefinedMessages.json",
            },
            "to": leg.to,
            "to_formatted": leg.to,
            "trunk_sid": None,
            "uri": f"{uri}.json",
        }

    def recording_resource(self, recording: Recording) -> dict[str, Any]:
        uri = f"{API}/Accounts/{self.account_sid}/Recordings/{recording.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "call_sid": recording.call_sid,
            "conference_sid": None,
            "channels": recording.channels,
            "date_created": recording.start_time,
            "date_updated": self.timestamp(),
            "start_time": recording.start_time,
            "duration": str(recording.duration) if recording.duration is not None else "-1",
            "sid": recording.sid,
            "price": None,
            "price_unit": "USD",
            "status": recording.status,
            "source": recording.source,
            "error_code": None,
            "encryption_details": None,
            "track": "both",
            "media_url": self.recording_url(recording),
            "uri": f"{uri}.json",
            "subresource_uris": {
                "add_on_results": f"{uri}/AddOnResults.json",
                "transcriptions": f"{uri}/Transcriptions.json",
            },
        }

    def _recording_of(self, request: web.Request) -> tuple[Recording | None, str]:
        name, _, extension = request.match_info["recording"].partition(".")
        recording = self.recordings.get(name)
        if recording is None or recording.deleted or extension not in ("", "mp3", "wav", "json"):
            return None, extension
        return recording, extension

    async def _recording(self, request: web.Request) -> web.StreamResponse:
        await self._received(request)
        if not self.requests[-1].authorized:
            return _answer(error(20003, "Authenticate", 401))
        recording, extension = self._recording_of(request)
        if recording is None:
            return self._not_found(request)
        if extension == "json":
            return web.json_response(self.recording_resource(recording))
        if recording.status != "completed":
            return self._not_found(request)
        if extension == "mp3":
            return web.Response(
                body=self.recording_audio(recording.sid, "mp3"), content_type="audio/mpeg"
            )
        return web.Response(
            body=self.recording_audio(recording.sid, "wav"), content_type="audio/x-wav"
        )

    async def _delete_recording(self, request: web.Request) -> web.StreamResponse:
        await self._received(request)
        if not self.requests[-1].authorized:
            return _answer(error(20003, "Authenticate", 401))
        recording, extension = self._recording_of(request)
        if recording is None or extension not in ("", "json"):
            return self._not_found(request)
        recording.deleted = True
        return web.Response(status=204)


def _answer(answer: Answer) -> web.Response:
    return web.json_response(answer.body, status=answer.status, headers=answer.headers)
