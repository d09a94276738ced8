"""Phone calls in a real browser (issue 13): the Twilio stand-in plays Twilio's part in the
calls (tests/twilio_voice.py: signed webhooks, the TwiML omnicrm answers followed, the REST
calls omnicrm makes answered) while the app runs as `omnicrm serve` does, routing engine, call
controller and media fetcher included; the operator acts in the console.

- an incoming call: the customer picks the menu option, the console rings with the caller's
  number and a countdown; Anna accepts, her phone (the one she set under Preferences) is
  called and the caller bridged; the call bar shows it connected; she hangs up there; the
  recording is fetched and plays from the call's entry in the timeline;
- a missed call: the caller hangs up waiting while nobody is available; routing gives Anna the
  callback, live in her Tasks; "Call back" rings her phone, which then dials the customer from
  the company's number; once they have talked, the task is done and leaves the open list.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, expect

from core.models import Role
from tests.browser.conftest import Browsing, sign_in
from tests.conftest import User, UserFactory
from tests.twilio_calls import Caller, Leg
from tests.twilio_helpers import OUR_NUMBER, PUBLIC, add_account
from tests.twilio_standin import TwilioStandIn
from tests.twilio_voice import VoiceSim, via_client
from tests.voice_helpers import CUSTOMER, MENU, Line, hang_up_all
from web.keys import SESSIONS

ANNA_PHONE = "+493011112222"  # the stand-in answers it (its default device)
SLOW = 30_000  # ms: what a step may take on a busy two-core machine
LEG_SECONDS = 30.0  # real seconds a leg of the stand-in may take to reach a state


@pytest.fixture
async def line(
    app: web.Application,
    client: TestClient[Any, Any],
    make_user: UserFactory,
) -> AsyncIterator[Line]:
    """The company's number (as tests/voice_helpers.phone_line makes it: a menu, calls
    recorded, no wrap-up) on the stand-in, whose webhooks reach the test server.

    The public address Twilio calls and signs is the account's own `public_url`: the server's
    would make the console's origin (the test server's) a foreign one, refused at sign-in and
    on the websocket. The app's own sessions: what the test changes, its workers hear of."""
    standin = TwilioStandIn()
    sim = VoiceSim(standin, via_client(client))
    await standin.start()
    try:
        admin = await make_user(Role.ADMIN, email="admin@example.com")
        response = await admin.post(
            "/api/v1/queues", json={"name": "Phone", "config": {"offer_timeout_seconds": 60}}
        )
        assert response.status == 201, await response.text()
        queue_id = (await response.json())["id"]
        number = {"number": OUR_NUMBER, "menu": MENU, "record_calls": True, "wrap_up_seconds": 0}
        account = await add_account(
            make_user, standin, queue_id=queue_id, public_url=PUBLIC, voice_numbers=[number]
        )
        yield Line(app, client, app[SESSIONS], standin, sim, admin, queue_id, account, make_user)
        await hang_up_all(sim)  # no webhook left half done in the app when the test ends
    finally:
        await sim.close()
        await standin.close()


async def anna_of(line: Line) -> User:
    """Anna, an operator of the phone queue with room for a call."""
    anna = await line.make_user("operator", email="anna@example.com", name="Anna Novak")
    room = await line.admin.patch(
        f"/api/v1/operators/{anna.operator.id}", json={"capacity": {"voice": 1, "messaging": 3}}
    )
    assert room.status == 200, await room.text()
    members = await line.admin.put(
        f"/api/v1/queues/{line.queue_id}/members", json={"operator_ids": [anna.operator.id]}
    )
    assert members.status == 200, await members.text()
    line.operators["anna"] = anna
    return anna


async def open_console(browsing: Browsing, presence: str) -> Page:
    """Anna signs in, gives her phone under Preferences and sets her presence."""
    page = await browsing.page()
    await sign_in(page, "anna@example.com")
    await page.locator("#preferences-button").click()
    dialog = page.locator("#preferences-dialog")
    await expect(dialog).to_be_visible()
    await dialog.locator("#preferences-voice-device").fill(ANNA_PHONE)
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    await page.get_by_label("Presence").select_option(presence)
    await expect(page.locator("#presence")).to_have_value(presence)
    return page


def calls_created(line: Line) -> list[Any]:
    """The Calls create requests omnicrm made at the stand-in."""
    return [
        request
        for request in line.sim.requests
        if request.method == "POST" and request.path.endswith("/Calls.json")
    ]


async def fetched_in_page(page: Page, selector: str) -> dict[str, Any]:
    """What the browser gets for an <audio>'s source: status, type and bytes."""
    result: dict[str, Any] = await page.evaluate(
        """async (selector) => {
            const audio = document.querySelector(selector);
            const response = await fetch(audio.currentSrc || audio.src);
            const bytes = new Uint8Array(await response.arrayBuffer());
            return {
                url: response.url,
                status: response.status,
                type: response.headers.get("content-type"),
                bytes: Array.from(bytes),
            };
        }""",
        selector,
    )
    return result


async def test_an_incoming_call_is_offered_accepted_hung_up_and_its_recording_plays(
    browsing: Browsing, line: Line
) -> None:
    anna = await anna_of(line)
    page = await open_console(browsing, "available")
    saved = await (await anna.get("/api/v1/auth/me/preferences")).json()
    assert saved["voice_device"] == ANNA_PHONE

    # The customer calls and picks "orders": the console rings.
    leg = await line.call(Caller(inputs=["1"]))
    offer = page.locator('.offer[data-offer-kind="call"][data-offer-id]')
    await expect(offer).to_have_count(1, timeout=SLOW)
    await expect(offer.locator(".offer-kind")).to_have_text("Incoming call")
    await expect(offer).to_contain_text(CUSTOMER)
    await expect(offer.locator(".caller-number")).to_have_text(CUSTOMER)
    await expect(offer.locator(".countdown")).to_have_text(re.compile(r"^\d+ s$"))
    await leg.wait_state("in-queue", LEG_SECONDS)  # the caller waits meanwhile
    await offer.get_by_role("button", name="Accept").click()

    # Her phone is called from our number, picks up, and the caller is bridged.
    await leg.wait_state("bridged", LEG_SECONDS)
    [created] = calls_created(line)
    assert (created.params["To"], created.params["From"]) == (ANNA_PHONE, OUR_NUMBER)
    [anna_leg] = line.sim.legs_to(ANNA_PHONE)
    assert leg.other is anna_leg
    bar = page.locator(".conversation-view .call-bar")
    await expect(bar).to_have_attribute("data-call-state", "connected", timeout=SLOW)
    await expect(bar.locator(".call-state")).to_have_text("Connected")
    await expect(bar.locator(".call-timer")).to_be_visible()
    hang_up = bar.locator('[data-action="hangup"]')
    await expect(hang_up).to_have_text("Hang up")
    await expect(bar.locator('[data-action="hold"]')).to_be_visible()

    await line.sim.talk(95)
    await hang_up.click()  # the console ends the call at Twilio
    await leg.wait_state("completed", LEG_SECONDS)
    await anna_leg.wait_state("completed", LEG_SECONDS)
    await expect(bar).to_have_attribute("data-call-state", "ended", timeout=SLOW)
    await expect(bar.locator('[data-action="hangup"]')).to_have_count(0)
    hung_up = [
        request
        for request in line.sim.requests
        if request.method == "POST" and request.path.endswith(f"/Calls/{leg.sid}.json")
    ]
    assert [request.params.get("Status") for request in hung_up] == ["completed"]

    # The call's entry: answered, with the recording the media fetcher brought in.
    entry = page.locator('.conversation-view .item[data-kind="call"]')
    await expect(entry.locator(".call-summary")).to_have_attribute(
        "data-call-outcome", "answered", timeout=SLOW
    )
    await expect(entry.locator(".call-summary")).to_contain_text("answered")
    audio = entry.locator("audio.attachment-audio[data-interaction-id][data-attachment-index]")
    await expect(audio).to_have_count(1, timeout=SLOW)
    [recording] = [item for item in line.sim.recordings.values() if item.status == "completed"]
    interaction_id = await audio.get_attribute("data-interaction-id")
    index = await audio.get_attribute("data-attachment-index")
    played = await fetched_in_page(
        page, f'audio.attachment-audio[data-interaction-id="{interaction_id}"]'
    )
    assert played["url"].endswith(f"/api/v1/interactions/{interaction_id}/attachments/{index}")
    assert played["status"] == 200
    assert played["type"].startswith("audio/mpeg")
    assert bytes(played["bytes"]) == line.sim.recording_audio(recording.sid, "mp3")
    call = await line.voice_call()
    assert (call.outcome, call.operator_id) == ("answered", anna.operator.id)
    assert browsing.watches[0].console_errors == []


async def test_a_missed_call_becomes_anna_s_callback_and_call_back_rings_the_customer(
    browsing: Browsing, line: Line
) -> None:
    await anna_of(line)
    page = await open_console(browsing, "busy")  # nobody can take a call
    await page.locator("#tab-tasks").click()
    await page.locator("#task-tab-mine").click()
    await expect(page.locator("#task-list")).to_contain_text("No open tasks.")

    leg: Leg = await line.call(Caller(inputs=["2"]))
    await leg.wait_state("in-queue", LEG_SECONDS)
    await line.sim.talk(40)
    await leg.hang_up()
    call = await line.voice_call()
    assert call.outcome == "abandoned"

    # Routing gives Anna the callback: it shows in her Tasks, live.
    task = page.locator('.task[data-task-id][data-task-kind="callback"]')
    await expect(task).to_have_count(1, timeout=SLOW)
    await expect(task).to_contain_text(CUSTOMER)
    await expect(task.locator(".task-why")).to_contain_text("hung up")
    await expect(task.locator(".task-owner")).to_have_text("for you")
    task_id = await task.get_attribute("data-task-id")
    [stored] = await line.tasks()
    assert (str(stored.id), stored.meta["reason"], stored.meta["number"]) == (
        task_id,
        "abandoned",
        CUSTOMER,
    )

    # Call back: her phone first, from our number; once she answers, it dials the customer
    # from the number they called. The task says the call is on its way, and the task's
    # conversation opens with the call in its bar.
    await task.locator('[data-action="call-back"]').click()
    status = page.locator(f'.task[data-task-id="{task_id}"] .task-status')
    # Her phone rings (the stand-in may answer before the page looks: dialing or connected).
    await expect(status).to_have_attribute(
        "data-call-state", re.compile("^(dialing|connected)$"), timeout=SLOW
    )
    bar = page.locator(".conversation-view .call-bar")
    await expect(bar).to_have_attribute("data-call-direction", "out", timeout=SLOW)
    await expect(bar.locator(".call-party")).to_have_text(f"Call to {CUSTOMER}")
    anna_leg = await _first_leg_to(line, ANNA_PHONE)
    customer_leg = await _first_leg_to(line, CUSTOMER)
    # The customer answers: the call bar and the task say they are connected.
    await customer_leg.wait_state("bridged", LEG_SECONDS)
    await expect(bar).to_have_attribute("data-call-state", "connected", timeout=SLOW)
    await expect(status).to_have_attribute("data-call-state", "connected", timeout=SLOW)
    [created] = calls_created(line)
    assert (created.params["To"], created.params["From"]) == (ANNA_PHONE, OUR_NUMBER)
    assert customer_leg.from_ == OUR_NUMBER
    assert customer_leg.parent is anna_leg
    assert customer_leg.other is anna_leg

    await line.sim.talk(30)
    await customer_leg.hang_up()
    await anna_leg.wait_state("completed", LEG_SECONDS)
    # Done: the task leaves the open list; the conversation has both calls.
    await expect(page.locator(f'.task[data-task-id="{task_id}"]')).to_have_count(0, timeout=SLOW)
    await expect(page.locator("#task-list")).to_contain_text("No open tasks.")
    [done] = await line.tasks()
    assert (done.outcome, done.done_at is not None) == ("called_back", True)
    await expect(bar).to_have_attribute("data-call-state", "ended", timeout=SLOW)
    summaries = page.locator('.conversation-view .item[data-kind="call"] .call-summary')
    await expect(summaries).to_have_count(2, timeout=SLOW)
    for direction, outcome in (("in", "abandoned"), ("out", "answered")):
        entry = summaries.and_(
            page.locator(f'[data-direction="{direction}"][data-call-outcome="{outcome}"]')
        )
        await expect(entry).to_have_count(1)
    assert browsing.watches[0].console_errors == []


async def _first_leg_to(line: Line, destination: str) -> Leg:
    """The first leg the stand-in made to `destination`, once there is one."""
    async with asyncio.timeout(LEG_SECONDS):
        while not line.sim.legs_to(destination):
            line.sim.raise_failures()
            await asyncio.sleep(0.02)
    return line.sim.legs_to(destination)[0]
