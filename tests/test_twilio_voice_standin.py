"""The Twilio Voice stand-in (tests/twilio_voice.py) plays Twilio's part for an application of its
own: a small phone menu written with the official TwiML builders, which checks every request's
signature with the official `RequestValidator`, and REST calls made the way a client makes them
(plain HTTP, and the official `twilio` client pointed at the stand-in)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse, ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from tests.twilio_standin import ACCOUNT_SID, AUTH_TOKEN, TwilioStandIn, error
from tests.twilio_voice import (
    HANG_UP,
    PUBLIC,
    Caller,
    Device,
    Leg,
    Sent,
    VoiceSim,
    via_base_url,
    via_client,
)

OUR_NUMBER = "+15005550006"
CUSTOMER = "+4915112345678"
AGENT = "+4930123456"
HOLD_MUSIC = "https://cdn.example.com/hold.mp3"
CALLS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls"


def basic(login: str, password: str) -> dict[str, str]:
    """HTTP basic auth as a header (aiohttp deprecates its BasicAuth objects)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


# --- the application Twilio calls ----------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    params: dict[str, str]
    signed: bool


class PhoneMenu:
    """A tiny Twilio voice application: a menu, a queue, a voicemail box, an agent's line."""

    def __init__(self) -> None:
        self.validator = RequestValidator(AUTH_TOKEN)
        self.seen: list[Seen] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/hooks/{page}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            params = {key: str(value) for key, value in (await request.post()).items()}
            signed = params
        else:
            params, signed = dict(request.query), {}
        signature = request.headers.get("X-Twilio-Signature", "")
        valid = self.validator.validate(f"{PUBLIC}{request.path_qs}", signed, signature)
        self.seen.append(Seen(request.method, request.path, params, bool(valid)))
        if not valid:
            return web.Response(status=403)
        if request.match_info["page"] == "broken":
            return web.Response(status=500, text="Internal Server Error")
        page: Callable[[dict[str, str]], VoiceResponse | None] = getattr(
            self, request.match_info["page"].replace("-", "_")
        )
        twiml = page(params)
        if twiml is None:
            return web.Response(status=204)
        return web.Response(text=str(twiml), content_type="text/xml")

    def voice(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        menu = Gather(
            input="dtmf speech", num_digits=1, action="/hooks/menu", method="GET", timeout=3
        )
        menu.say("Welcome. Press 1 for sales, 2 for voicemail, 3 for the office.", language="en-US")
        response.append(menu)
        response.say("We did not get that. Goodbye.")
        return response

    def menu(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        choice = params.get("Digits") or params.get("SpeechResult", "")
        if choice == "1" or "sales" in choice:
            response.enqueue("sales", action="/hooks/queue-done", wait_url="/hooks/wait")
        elif choice == "2":
            response.say("Leave a message after the beep.")
            response.record(
                action="/hooks/recorded",
                max_length=30,
                finish_on_key="#",
                recording_status_callback="/hooks/recording",
                recording_status_callback_event="in-progress completed",
            )
        elif choice == "3":
            response.dial(AGENT, action="/hooks/dial-done", timeout=20)
        elif choice == "4":
            dial = Dial(action="/hooks/dial-done", timeout=20, caller_id=OUR_NUMBER)
            dial.number(
                AGENT,
                url="/hooks/screen",
                status_callback="/hooks/status",
                status_callback_event="initiated ringing answered completed",
            )
            response.append(dial)
        elif choice == "9":
            response.redirect("/hooks/broken")
        response.hangup()
        return response

    def wait(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.say(f"You are caller number {params['QueuePosition']}.")
        response.play(HOLD_MUSIC)
        response.pause(length=3)
        return response

    def agent(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        dial = Dial(
            action="/hooks/dial-done",
            record="record-from-answer",
            recording_status_callback="/hooks/recording",
            timeout=10,
        )
        dial.queue("sales", url="/hooks/whisper")
        response.append(dial)
        return response

    def whisper(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.say("Connecting you to an agent.")
        return response

    def queue_done(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.say("Thank you for calling.")
        response.hangup()
        return response

    def dial_done(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.hangup()
        return response

    def recorded(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.say("Thanks, goodbye.")
        response.hangup()
        return response

    def screen(self, params: dict[str, str]) -> VoiceResponse:
        """What the agent hears before the caller is put through."""
        response = VoiceResponse()
        accept = Gather(num_digits=1, action="/hooks/screened", timeout=5)
        accept.say("A customer is calling. Press 1 to accept.")
        response.append(accept)
        response.hangup()
        return response

    def screened(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()  # empty: the whisper is over, the two are connected
        if params.get("Digits") != "1":
            response.hangup()
        return response

    def transfer(self, params: dict[str, str]) -> VoiceResponse:
        response = VoiceResponse()
        response.say("You are being transferred.")
        response.pause(length=2)
        return response

    def status(self, params: dict[str, str]) -> None:
        return None

    def recording(self, params: dict[str, str]) -> None:
        return None


@dataclass
class World:
    standin: TwilioStandIn
    sim: VoiceSim
    menu: PhoneMenu
    rest: ClientSession
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def create_call(self, **form: str | list[str]) -> ClientResponse:
        fields = [
            (key, item)
            for key, value in form.items()
            for item in (value if isinstance(value, list) else [value])
        ]
        return await self.rest.post(f"{self.standin.url}{CALLS}.json", data=fields)

    async def agent_call(self, **form: str | list[str]) -> Leg:
        """The application calls an agent whose line dials the sales queue."""
        response = await self.create_call(
            To=AGENT,
            From=OUR_NUMBER,
            Url=f"{PUBLIC}/hooks/agent",
            StatusCallback=f"{PUBLIC}/hooks/status",
            **form,
        )
        assert response.status == 201, await response.text()
        return self.sim.calls[(await response.json())["sid"]]

    async def call_in(self, caller: Caller) -> Leg:
        return await self.sim.incoming(
            f"{PUBLIC}/hooks/voice",
            from_=CUSTOMER,
            to=OUR_NUMBER,
            status_callback=f"{PUBLIC}/hooks/status",
            caller=caller,
        )


@pytest.fixture
async def world() -> AsyncIterator[World]:
    standin = TwilioStandIn()
    # Simulated time passes with real time while a leg waits, so a busy machine stretches
    # the durations the tests bound (a call's DialCallDuration): 30 ms per simulated second
    # keeps a scheduling delay of 150 ms within their margins (the default 10 ms did not
    # under a loaded full suite).
    sim = VoiceSim(standin, time_scale=0.03)
    await standin.start()
    menu = PhoneMenu()
    try:
        async with (
            TestClient(TestServer(menu.app())) as client,
            ClientSession(headers=basic(ACCOUNT_SID, AUTH_TOKEN)) as rest,
        ):
            sim.deliver = via_client(client)
            try:
                yield World(standin, sim, menu, rest)
            finally:
                await sim.close()
            assert not [leg.errors for leg in sim.calls.values() if leg.errors]
    finally:
        await standin.close()
    assert all(seen.signed for seen in menu.seen), [s for s in menu.seen if not s.signed]


def flow(sim: VoiceSim, leg: Leg, *, progress: bool = True) -> list[str]:
    """The kinds of the webhooks about a leg, in order, a run of wait requests as one."""
    kinds: list[str] = []
    for sent in sim.hooks(call=leg):
        if sent.kind == "status" and not progress and sent.params["CallStatus"] not in FINALS:
            continue
        if not (kinds and kinds[-1] == sent.kind == "wait"):
            kinds.append(sent.kind)
    return kinds


FINALS = {"completed", "busy", "failed", "no-answer", "canceled"}


def one(sim: VoiceSim, kind: str, leg: Leg) -> Sent:
    found = sim.hooks(kind, leg)
    assert len(found) == 1, [sent.params for sent in found]
    return found[0]


# --- the tests ------------------------------------------------------------------------------------


async def test_a_caller_queues_an_agent_takes_the_call(world: World) -> None:
    sim = world.sim
    caller = await world.call_in(Caller(inputs=["1"]))
    await caller.wait_state("in-queue")
    await caller.wait_for(lambda leg: len(sim.hooks("wait", leg)) >= 2)

    agent = await world.agent_call(
        StatusCallbackEvent=["initiated", "ringing", "answered", "completed"]
    )
    assert agent.status in ("queued", "initiated", "ringing")
    await agent.wait_state("bridged")
    assert (caller.bridged, caller.other, agent.other) == (True, agent, caller)
    await sim.talk(42)
    await caller.hang_up()
    await agent.wait_state("completed")

    assert flow(sim, caller) == [
        "voice",
        "gather",
        "wait",
        "queue-whisper",
        "enqueue-action",
        "status",
    ]
    assert flow(sim, agent) == [
        "status",
        "status",
        "status",
        "voice",
        "dial-action",
        "recording",
        "status",
    ]
    main = [
        (sent.kind, sent.call_sid)
        for sent in sim.webhooks
        if sent.kind not in ("wait", "status") or sent.params["CallStatus"] in FINALS
    ]
    ends = main[-2:]
    assert main[:-2] == [
        ("voice", caller.sid),
        ("gather", caller.sid),
        ("voice", agent.sid),
        ("queue-whisper", caller.sid),
        ("dial-action", agent.sid),
        ("enqueue-action", caller.sid),
        ("recording", agent.sid),
    ]
    assert sorted(ends) == sorted([("status", caller.sid), ("status", agent.sid)])

    voice = sim.hooks("voice", caller)[0].params
    assert voice["CallStatus"] == "ringing"
    assert (voice["Direction"], voice["From"], voice["To"]) == ("inbound", CUSTOMER, OUR_NUMBER)
    assert (voice["Caller"], voice["Called"], voice["AccountSid"]) == (
        CUSTOMER,
        OUR_NUMBER,
        ACCOUNT_SID,
    )
    assert (voice["FromCountry"], voice["ToCountry"], voice["ApiVersion"]) == (
        "DE",
        "US",
        "2010-04-01",
    )
    gather = sim.hooks("gather", caller)[0]
    assert (gather.method, gather.url.endswith("Digits=1")) == ("GET", True)
    assert gather.params["CallStatus"] == "in-progress"
    wait = sim.hooks("wait", caller)[0].params
    assert (wait["QueuePosition"], wait["CurrentQueueSize"], wait["MaxQueueSize"]) == (
        "1",
        "1",
        "1000",
    )
    assert wait["QueueSid"].startswith("QU")
    assert {"QueueTime", "AvgQueueTime"} <= wait.keys()
    assert caller.heard[:1] == ["Welcome. Press 1 for sales, 2 for voicemail, 3 for the office."]
    assert caller.heard[0].language == "en-US"
    assert caller.heard[1:3] == ["You are caller number 1.", HOLD_MUSIC]
    assert "Connecting you to an agent." in caller.heard

    whisper = one(sim, "queue-whisper", caller).params
    assert (whisper["DequeingCallSid"], whisper["QueueSid"]) == (agent.sid, wait["QueueSid"])
    dialed = one(sim, "dial-action", agent).params
    assert (dialed["DialCallStatus"], dialed["DialCallSid"]) == ("completed", caller.sid)
    assert (dialed["DialBridged"], dialed["DequeueResult"]) == ("true", "bridged")
    assert 42 <= int(dialed["DialCallDuration"]) <= 50
    assert (dialed["Direction"], dialed["QueueSid"]) == ("outbound-api", wait["QueueSid"])
    left = one(sim, "enqueue-action", caller).params
    assert (left["QueueResult"], left["QueueSid"]) == ("bridged", wait["QueueSid"])
    assert left["CallStatus"] == "completed"  # the caller hung up: Twilio's own status
    assert int(left["QueueTime"]) >= 1
    assert "Thank you for calling." not in caller.heard  # its TwiML was for nobody

    recording = one(sim, "recording", agent).params
    assert (recording["RecordingSource"], recording["CallSid"]) == ("DialVerb", agent.sid)
    assert (recording["RecordingStatus"], recording["RecordingChannels"]) == ("completed", "1")
    assert recording["RecordingUrl"] == dialed["RecordingUrl"]
    assert recording["RecordingUrl"].startswith(f"{world.standin.url}/2010-04-01/Accounts/")
    assert 42 <= int(recording["RecordingDuration"]) <= 50

    caller_end = sim.hooks("status", caller)[-1].params
    assert caller_end["CallStatus"] == "completed"
    assert caller_end["CallbackSource"] == "call-progress-events"
    assert caller_end["SequenceNumber"] == "0"
    assert caller_end["Timestamp"].endswith("+0000")
    assert int(caller_end["CallDuration"]) >= 42 + int(left["QueueTime"])
    progress = [sent.params for sent in sim.hooks("status", agent)]
    assert [params["CallStatus"] for params in progress] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert [params["SequenceNumber"] for params in progress] == ["0", "1", "2", "3"]
    assert 42 <= int(progress[-1]["CallDuration"]) <= 52
    assert agent.status == caller.status == "completed"

    download = await world.rest.get(recording["RecordingUrl"] + ".mp3")
    assert (download.status, download.content_type) == (200, "audio/mpeg")
    assert (await download.read()).startswith(b"ID3")
    anonymous = await world.rest.get(recording["RecordingUrl"] + ".mp3", headers=basic("x", "y"))
    assert (anonymous.status, (await anonymous.json())["code"]) == (401, 20003)

    fetched = await world.rest.get(f"{world.standin.url}{CALLS}/{agent.sid}.json")
    resource = await fetched.json()
    assert (resource["status"], resource["direction"], resource["to"]) == (
        "completed",
        "outbound-api",
        AGENT,
    )
    assert int(resource["duration"]) == int(progress[-1]["CallDuration"])
    after = await world.rest.post(
        f"{world.standin.url}{CALLS}/{caller.sid}.json", data={"Url": f"{PUBLIC}/hooks/transfer"}
    )
    assert after.status == 400
    assert (await after.json())["code"] == 21220


async def test_a_caller_who_hangs_up_in_the_queue(world: World) -> None:
    sim = world.sim
    caller = await world.call_in(Caller(inputs=["speech:sales please"]))
    await caller.wait_for(lambda leg: len(sim.hooks("wait", leg)) >= 2)
    assert sim.hooks("gather", caller)[0].params["SpeechResult"] == "sales please"
    await caller.hang_up()

    assert flow(sim, caller) == ["voice", "gather", "wait", "enqueue-action", "status"]
    left = one(sim, "enqueue-action", caller).params
    assert (left["QueueResult"], left["CallStatus"]) == ("hangup", "completed")
    assert int(left["QueueTime"]) >= 5  # a round of the wait document: 1 + 1 + 3 s
    end = one(sim, "status", caller).params
    assert end["CallStatus"] == "completed"
    assert int(end["CallDuration"]) >= 7  # prompt, keys, a round of waiting
    assert not sim.queues["sales"].members

    # an agent who dials the (now empty) queue waits out the Dial timeout
    agent = await world.agent_call()
    await agent.wait_state("completed")
    dialed = one(sim, "dial-action", agent).params
    assert (dialed["DialCallStatus"], dialed["DialBridged"]) == ("no-answer", "false")
    assert not sim.hooks("recording")  # nothing was bridged, nothing recorded
    assert 10 <= agent.duration <= 14


async def test_a_bridged_caller_redirected_through_the_api(world: World) -> None:
    sim = world.sim
    caller = await world.call_in(Caller(inputs=["1"]))
    await caller.wait_state("in-queue")
    agent = await world.agent_call()
    await caller.wait_state("bridged")
    await sim.talk(10)

    response = await world.rest.post(
        f"{world.standin.url}{CALLS}/{caller.sid}.json",
        data={"Url": f"{PUBLIC}/hooks/transfer", "Method": "POST"},
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "in-progress"
    await agent.wait_state("completed")
    await caller.wait_state("completed")

    assert flow(sim, caller) == [
        "voice",
        "gather",
        "wait",
        "queue-whisper",
        "enqueue-action",
        "redirect",
        "status",
    ]
    left = one(sim, "enqueue-action", caller).params
    assert left["QueueResult"] == "redirected-from-bridged"
    assert "Thank you for calling." not in caller.heard  # the redirect wins
    assert caller.heard[-1] == "You are being transferred."
    dialed = one(sim, "dial-action", agent).params
    assert dialed["DialCallStatus"] == "completed"
    assert 10 <= int(dialed["DialCallDuration"]) <= 16
    assert flow(sim, agent)[-3:] == ["dial-action", "recording", "status"]
    order = [sent.kind for sent in sim.webhooks if sent.kind in ("dial-action", "enqueue-action")]
    assert order == ["dial-action", "enqueue-action"]


async def test_a_redirect_while_waiting_in_the_queue(world: World) -> None:
    sim = world.sim
    caller = await world.call_in(Caller(inputs=["1"]))
    await caller.wait_state("in-queue")
    closed = VoiceResponse()
    closed.say("Sorry, we are closed.")
    response = await world.rest.post(
        f"{world.standin.url}{CALLS}/{caller.sid}.json", data={"Twiml": str(closed)}
    )
    assert response.status == 200
    await caller.wait_state("completed")
    assert one(sim, "enqueue-action", caller).params["QueueResult"] == "redirected"
    assert caller.heard[-1] == "Sorry, we are closed."
    assert not sim.queues["sales"].members


async def test_an_agent_who_does_not_answer(world: World) -> None:
    sim = world.sim
    sim.devices[AGENT] = Device(answer="no-answer")
    agent = await world.agent_call(Timeout="15", StatusCallbackEvent=["ringing", "completed"])
    await agent.wait_state("completed")

    statuses = [sent.params for sent in sim.hooks("status", agent)]
    assert [params["CallStatus"] for params in statuses] == ["ringing", "no-answer"]
    assert (statuses[-1]["CallDuration"], statuses[-1]["Direction"]) == ("0", "outbound-api")
    assert not sim.hooks("voice", agent)  # nobody answered: its Url was never asked
    assert agent.status == "no-answer"
    fetched = await (await world.rest.get(f"{world.standin.url}{CALLS}/{agent.sid}.json")).json()
    assert (fetched["status"], fetched["duration"]) == ("no-answer", "0")

    sim.devices["+4930999"] = Device(answer="busy", ring_seconds=2)
    response = await world.create_call(
        To="+4930999",
        From=OUR_NUMBER,
        Url=f"{PUBLIC}/hooks/agent",
        StatusCallback=f"{PUBLIC}/hooks/status",
    )
    busy = sim.calls[(await response.json())["sid"]]
    await busy.wait_state("completed")
    assert [sent.params["CallStatus"] for sent in sim.hooks("status", busy)] == ["busy"]


async def test_dialing_a_number_from_the_menu(world: World) -> None:
    sim = world.sim
    sim.devices[AGENT] = Device(ring_seconds=4)
    caller = await world.call_in(Caller(inputs=["3"]))
    await caller.wait_state("bridged")
    (dialed_leg,) = sim.legs_to(AGENT)
    assert (dialed_leg.direction, dialed_leg.parent) == ("outbound-dial", caller)
    assert dialed_leg.from_ == CUSTOMER  # the caller's number, no callerId given
    await sim.talk(20)
    await dialed_leg.hang_up()
    await caller.wait_state("completed")

    dialed = one(sim, "dial-action", caller).params
    assert (dialed["DialCallStatus"], dialed["DialCallSid"]) == ("completed", dialed_leg.sid)
    assert 20 <= int(dialed["DialCallDuration"]) <= 26
    assert flow(sim, caller) == ["voice", "gather", "dial-action", "status"]
    assert caller.duration >= 20 + 4


async def test_a_screened_call(world: World) -> None:
    sim = world.sim
    sim.devices[AGENT] = Device(ring_seconds=3, caller=Caller(inputs=["1"]))
    caller = await world.call_in(Caller(inputs=["4"]))
    await caller.wait_state("bridged")
    (agent,) = sim.legs_to(AGENT)
    assert (agent.from_, agent.parent) == (OUR_NUMBER, caller)  # the Dial's callerId
    assert agent.heard == ["A customer is calling. Press 1 to accept."]
    await caller.hang_up(after=15)
    await agent.wait_state("completed")

    assert flow(sim, agent) == ["status", "status", "status", "number-whisper", "gather", "status"]
    statuses = [sent.params["CallStatus"] for sent in sim.hooks("status", agent)]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"]
    assert {sent.params["ParentCallSid"] for sent in sim.hooks(call=agent)} == {caller.sid}
    assert {sent.params["Direction"] for sent in sim.hooks(call=agent)} == {"outbound-dial"}
    dialed = one(sim, "dial-action", caller).params
    assert (dialed["DialCallStatus"], dialed["DialBridged"]) == ("completed", "true")
    assert dialed["CallStatus"] == "completed"  # the caller hung up; the TwiML went unused
    assert 15 <= int(dialed["DialCallDuration"]) <= 20

    sim.devices[AGENT] = Device(caller=Caller(inputs=[None]))  # this time nobody accepts
    declined = await world.call_in(Caller(inputs=["4"]))
    await declined.wait_state("completed")
    dialed = one(sim, "dial-action", declined).params
    assert (dialed["DialCallStatus"], dialed["DialBridged"]) == ("completed", "false")
    assert "DialCallDuration" not in dialed
    assert "bridged" not in declined.states


async def test_webhooks_over_http_and_an_application_error(world: World) -> None:
    server = TestServer(world.menu.app())
    await server.start_server()
    try:
        world.sim.deliver = via_base_url(str(server.make_url("")))
        call = await world.call_in(Caller(inputs=["9"]))
        await call.wait_state("completed")
    finally:
        await server.close()
    assert flow(world.sim, call) == ["voice", "gather", "redirect", "status"]
    assert world.sim.hooks("redirect", call)[0].status == 500
    assert [error.code for error in call.errors] == [11200]  # Twilio's HTTP retrieval failure
    assert call.heard[-1].kind == "error"
    assert call.status == "completed"
    call.errors.clear()


async def test_the_record_verb(world: World) -> None:
    sim = world.sim
    caller = await world.call_in(Caller(inputs=["2"], voicemail_seconds=7, finish_key="#"))
    await caller.wait_state("completed")

    assert flow(sim, caller) == [
        "voice",
        "gather",
        "recording",
        "record-action",
        "recording",
        "status",
    ]
    action = one(sim, "record-action", caller).params
    assert (action["Digits"], action["RecordingDuration"]) == ("#", "7")
    assert action["RecordingSid"].startswith("RE")
    started, completed = (sent.params for sent in sim.hooks("recording", caller))
    assert started["RecordingStatus"] == "in-progress"
    assert "RecordingDuration" not in started
    assert completed["RecordingStatus"] == "completed"
    assert (completed["RecordingSource"], completed["RecordingDuration"]) == ("RecordVerb", "7")
    assert completed["RecordingUrl"] == action["RecordingUrl"]
    assert completed["CallSid"] == caller.sid
    assert completed["RecordingStartTime"].endswith("+0000")
    assert caller.heard[-3:] == ["Leave a message after the beep.", "beep", "Thanks, goodbye."]

    url = action["RecordingUrl"]
    wav = await world.rest.get(url + ".wav")
    body = await wav.read()
    assert (wav.content_type, body[:4], body[8:12]) == ("audio/x-wav", b"RIFF", b"WAVE")
    assert 1000 < len(body) < 10000
    plain = await world.rest.get(url)
    assert (plain.content_type, await plain.read()) == ("audio/x-wav", body)
    resource = await (await world.rest.get(url + ".json")).json()
    assert (resource["sid"], resource["call_sid"], resource["duration"]) == (
        action["RecordingSid"],
        caller.sid,
        "7",
    )
    assert (resource["status"], resource["source"]) == ("completed", "RecordVerb")
    unauthenticated = await world.rest.get(url + ".wav", headers=basic(ACCOUNT_SID, "wrong"))
    assert unauthenticated.status == 401
    deleted = await world.rest.delete(url + ".json")
    assert deleted.status == 204
    gone = await world.rest.get(url + ".mp3")
    assert (gone.status, (await gone.json())["code"]) == (404, 20404)

    # a caller who hangs up instead: the action still comes, Digits=hangup, TwiML unused
    quitter = await world.call_in(Caller(inputs=["2"], voicemail_seconds=4))
    await quitter.wait_state("completed")
    action = one(sim, "record-action", quitter).params
    assert (action["Digits"], action["CallStatus"]) == ("hangup", "completed")
    assert action["RecordingDuration"] == "4"
    assert "Thanks, goodbye." not in quitter.heard
    assert flow(sim, quitter)[-1] == "status"


async def test_silence_and_hanging_up_at_the_menu(world: World) -> None:
    sim = world.sim
    silent = await world.call_in(Caller(inputs=[None]))
    await silent.wait_state("completed")
    assert flow(sim, silent) == ["voice", "status"]  # <Gather> fell through
    assert silent.heard[-1] == "We did not get that. Goodbye."
    assert 1 + 3 <= silent.duration <= 6  # the prompt, the 3 s timeout, the goodbye

    gone = await world.call_in(Caller(inputs=[HANG_UP]))
    await gone.wait_state("completed")
    assert flow(sim, gone) == ["voice", "status"]


async def test_rest_errors(world: World) -> None:
    sim = world.sim
    url = f"{PUBLIC}/hooks/agent"
    bad_to = await world.create_call(To="12", From=OUR_NUMBER, Url=url)
    assert bad_to.status == 400
    body = await bad_to.json()
    assert (body["code"], body["status"]) == (21211, 400)
    assert body["more_info"] == "https://www.twilio.com/docs/errors/21211"
    assert (await (await world.create_call(From=OUR_NUMBER, Url=url)).json())["code"] == 21201
    assert (await (await world.create_call(To=AGENT, Url=url)).json())["code"] == 21213
    sip = await world.create_call(To="sip:nobody", From=OUR_NUMBER, Url=url)
    assert (await sip.json())["code"] == 21217
    no_url = await world.create_call(To=AGENT, From=OUR_NUMBER)
    assert (await no_url.json())["code"] == 21205
    for to in ("sip:agent@pbx.example.com", "client:alice"):
        created = await world.create_call(To=to, From=OUR_NUMBER, Url=url)
        assert created.status == 201, await created.text()

    sim.script_calls(error(20429, "Too Many Requests", 429, **{"Retry-After": "2"}))
    limited = await world.create_call(To=AGENT, From=OUR_NUMBER, Url=url)
    assert (limited.status, limited.headers["Retry-After"]) == (429, "2")
    sim.script_calls(error(20500, "Internal Server Error", 503))
    unknown = f"{world.standin.url}{CALLS}/CA{'0' * 32}.json"
    assert (await world.rest.post(unknown, data={"Status": "completed"})).status == 503
    missing = await world.rest.post(unknown, data={"Status": "completed"})
    assert (missing.status, (await missing.json())["code"]) == (404, 20404)
    stranger = await world.rest.post(
        f"{world.standin.url}{CALLS}.json",
        data={"To": AGENT, "From": OUR_NUMBER, "Url": url},
        headers=basic(ACCOUNT_SID, "not the token"),
    )
    assert (stranger.status, (await stranger.json())["code"]) == (401, 20003)

    creates = [call for call in sim.requests if call.path == f"{CALLS}.json"]
    assert creates[0].params == {"To": "12", "From": OUR_NUMBER, "Url": url}
    assert creates[-1].authorized is False


class StandInHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The official client's own HTTP client, sent to the stand-in instead of api.twilio.com."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the library's signature
        allow_redirects: bool = False,
    ) -> Any:
        headers = {**(headers or {}), **(basic(*auth) if auth else {})}  # not aiohttp's BasicAuth
        url = url.replace("https://api.twilio.com", self.base)
        return await super().request(
            method, url, params, data, headers, None, timeout, allow_redirects
        )


async def test_the_official_client(world: World) -> None:
    http = StandInHttpClient(world.standin.url)
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    hello = VoiceResponse()
    hello.say("Hello from the client")
    try:
        call = await client.calls.create_async(
            to=AGENT,
            from_=OUR_NUMBER,
            twiml=str(hello),
            status_callback=f"{PUBLIC}/hooks/status",
        )
        assert call.sid.startswith("CA")
        assert (call.status, call.direction, call.to) == ("queued", "outbound-api", AGENT)
        leg = world.sim.calls[call.sid]
        await leg.wait_state("completed")
        assert leg.heard == ["Hello from the client"]
        fetched = await client.calls(call.sid).fetch_async()
        assert (fetched.status, fetched.duration) == ("completed", "1")
        with pytest.raises(TwilioRestException) as raised:
            await client.calls.create_async(to="12", from_=OUR_NUMBER, url=f"{PUBLIC}/hooks/x")
        assert (raised.value.status, raised.value.code) == (400, 21211)
        with pytest.raises(TwilioRestException) as ended:
            await client.calls(call.sid).update_async(status="completed")
        assert ended.value.code == 21220
    finally:
        await http.close()


async def test_replaying_a_webhook(world: World) -> None:
    sim = world.sim
    silent = await world.call_in(Caller(inputs=[None]))
    await silent.wait_state("completed")
    status = one(sim, "status", silent)
    again = await sim.replay(status)
    assert (again.replayed, again.status, again.params) == (True, 204, status.params)
    assert [seen.path for seen in world.menu.seen][-2:] == ["/hooks/status", "/hooks/status"]
    assert world.menu.seen[-1].params == world.menu.seen[-2].params
