"""What the voice tests share: a phone line (a Twilio account with a number, the stand-in
playing Twilio's part in calls) and operators who take calls on their phones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from channels.twilio.media import TwilioMediaFetcher
from channels.twilio.voice.control import CallController
from core.db import SessionFactory
from core.models import Operator, Presence, Role, Task, VoiceCall, utcnow
from routing.engine import RoutingEngine
from tests.conftest import User, UserFactory
from tests.twilio_calls import Caller, Device, HungUp, Leg
from tests.twilio_helpers import OUR_NUMBER, PUBLIC, add_account
from tests.twilio_standin import TwilioStandIn
from tests.twilio_voice import VoiceSim, via_client
from web.keys import BUS, SERVICES, SESSIONS

VOICE_URL = f"{PUBLIC}/hooks/twilio/main/voice"
STATUS_URL = f"{PUBLIC}/hooks/twilio/main/voice-status"
CUSTOMER = "+4915112345678"
MENU = {
    "prompt": "For orders press 1 or say orders. For sales press 2.",
    "options": [
        {"digit": "1", "speech": ["orders"], "label": "Orders"},
        {"digit": "2", "speech": ["sales"], "label": "Sales"},
    ],
}


@dataclass
class Line:
    """A Twilio account whose number takes calls into one queue, and the simulator."""

    app: web.Application
    client: TestClient[Any, Any]
    sessions: SessionFactory
    standin: TwilioStandIn
    sim: VoiceSim
    admin: User
    queue_id: int
    account: dict[str, Any]
    make_user: UserFactory
    operators: dict[str, User] = field(default_factory=dict)

    async def operator(self, name: str, phone: str | None, device: Device | None = None) -> User:
        """An operator of the queue, available, with room for one call, whose calls ring on
        `phone` (the stand-in's device there answers unless told otherwise)."""
        user = await self.make_user(Role.OPERATOR, email=f"{name}@example.com", name=name)
        async with self.sessions() as session, session.begin():
            operator = await session.get(Operator, user.operator.id)
            assert operator is not None
            operator.capacity = {"voice": 1, "messaging": 3}
            operator.presence = Presence.AVAILABLE
            operator.console_seen_at = utcnow()
            operator.preferences = {"voice_device": phone} if phone else {}
        self.operators[name] = user
        members = [item.operator.id for item in self.operators.values()]
        response = await self.admin.put(
            f"/api/v1/queues/{self.queue_id}/members", json={"operator_ids": members}
        )
        assert response.status == 200, await response.text()
        if phone is not None:
            self.sim.devices[phone] = device or Device()
        return user

    async def queue(self, name: str, **config: Any) -> int:
        """Another queue (the number's calls reach it through routing or transfers)."""
        response = await self.admin.post("/api/v1/queues", json={"name": name, "config": config})
        assert response.status == 201, await response.text()
        return int((await response.json())["id"])

    async def monitor_calls(self) -> dict[int, dict[str, Any]]:
        """The call figures of each queue, as the supervisors' monitor shows them."""
        response = await self.admin.get("/api/v1/monitor")
        assert response.status == 200, await response.text()
        return {queue["id"]: queue["calls"] for queue in (await response.json())["queues"]}

    def call(self, caller: Caller | None = None, from_: str = CUSTOMER) -> Any:
        """A customer calls the number (the leg runs on its own)."""
        return self.sim.incoming(
            VOICE_URL, from_=from_, to=OUR_NUMBER, status_callback=STATUS_URL, caller=caller
        )

    async def route(self) -> None:
        await RoutingEngine(self.app[SESSIONS], self.app[BUS]).run_once()

    async def control(self) -> None:
        await CallController(self.app[SERVICES], poll_seconds=0.05).run_once()

    async def fetch_media(self) -> None:
        await TwilioMediaFetcher(self.app[SERVICES], poll_seconds=0.05).run_once()

    async def offer_of(self, user: User) -> dict[str, Any]:
        response = await user.get("/api/v1/offers")
        offers = (await response.json())["items"]
        assert len(offers) == 1, offers
        return dict(offers[0])

    async def accept(self, user: User) -> dict[str, Any]:
        offer = await self.offer_of(user)
        response = await user.post(f"/api/v1/offers/{offer['id']}/accept")
        assert response.status == 200, await response.text()
        return offer

    async def voice_call(self) -> VoiceCall:
        async with self.sessions() as session:
            return (await session.scalars(select(VoiceCall).order_by(VoiceCall.id.desc()))).first()  # type: ignore[return-value]

    async def tasks(self) -> list[Task]:
        async with self.sessions() as session:
            return list(await session.scalars(select(Task).order_by(Task.id)))

    async def presence(self, name: str) -> tuple[str, str | None]:
        async with self.sessions() as session:
            operator = await session.get(Operator, self.operators[name].operator.id)
            assert operator is not None
            return operator.presence, operator.presence_reason

    async def answered_by(self, user: User, leg: Leg) -> None:
        """Routing offers the waiting call to `user`, who accepts; their phone rings and is
        answered; the caller is bridged."""
        await leg.wait_state("in-queue")
        await self.route()
        await self.accept(user)
        await self.control()
        await leg.wait_state("bridged")


@asynccontextmanager
async def phone_line(
    app: web.Application,
    client: TestClient[Any, Any],
    sessions: SessionFactory,
    make_user: UserFactory,
    *,
    queue_config: dict[str, Any] | None = None,
    **number: Any,
) -> AsyncIterator[Line]:
    """The stand-in with its voice side, an account with one number (`number`: its flow)."""
    standin = TwilioStandIn()
    sim = VoiceSim(standin, via_client(client))
    await standin.start()
    try:
        admin = await make_user(Role.ADMIN, email="admin@example.com")
        config = {"offer_timeout_seconds": 30, **(queue_config or {})}
        response = await admin.post("/api/v1/queues", json={"name": "Phone", "config": config})
        assert response.status == 201, await response.text()
        queue_id = (await response.json())["id"]
        account = await add_account(
            make_user,
            standin,
            queue_id=queue_id,
            voice_numbers=[{"number": OUR_NUMBER, **number}],
        )
        yield Line(app, client, sessions, standin, sim, admin, queue_id, account, make_user)
        await hang_up_all(sim)
    finally:
        await sim.close()
        await standin.close()


async def hang_up_all(sim: VoiceSim) -> None:
    """The people on calls still going hang up, and their last webhooks are answered: no
    request is left half done in the application when the test ends."""
    live = [leg for leg in sim.calls.values() if not leg.finished]
    for leg in live:
        leg.interrupt(HungUp("caller"))
    for leg in live:
        await leg.wait_for(lambda ended: ended.finished)


async def next_place(leg: Leg) -> str:
    """What the caller hears next about their place in the queue (the wait message)."""
    before = len(leg.heard)

    def place(caller: Leg) -> str | None:
        return next((text for text in caller.heard[before:] if "in the queue" in text), None)

    await leg.wait_for(lambda caller: place(caller) is not None)
    return place(leg) or ""
