"""A server killed in the middle of a call loses no call record: what was committed stays,
Twilio's repeat finds it, and a call that ended while nobody listened is settled from
Twilio's own record of it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from channels.base import ChannelServices
from channels.twilio.voice.control import CallController
from core.audit import CLI
from core.channel_accounts import create_account
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.events import EventBus
from core.ingest import IngestPolicy
from core.models import Interaction, Task, VoiceCall
from core.settings import Settings
from core.storage import MemoryStore
from routing.setup import create_queue
from tests.servers import omnicrm_server
from tests.twilio_calls import Caller
from tests.twilio_helpers import OUR_NUMBER, PUBLIC
from tests.twilio_standin import ACCOUNT_SID, AUTH_TOKEN, TwilioStandIn
from tests.twilio_voice import VoiceSim, via_base_url
from tests.voice_helpers import CUSTOMER, MENU, STATUS_URL, VOICE_URL

pytestmark = [pytest.mark.slow, pytest.mark.both_databases]


async def test_a_server_killed_mid_call_loses_no_call_record(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = Settings(database_url=database_url, secret_key="test-secret-key", public_url=PUBLIC)
    cipher = CredentialCipher.from_settings(settings)
    standin = TwilioStandIn()
    sim = VoiceSim(standin)
    await standin.start()
    try:
        async with sessions() as session, session.begin():
            queue = await create_queue(session, CLI, name="Phone")
            await create_account(
                session,
                CLI,
                channel="twilio",
                name="main",
                settings={
                    "account_sid": ACCOUNT_SID,
                    "auth_token": AUTH_TOKEN,
                    "api_base_url": standin.url,
                    "voice_numbers": [{"number": OUR_NUMBER, "menu": MENU}],
                },
                secret_fields=["auth_token"],
                cipher=cipher,
                queue_id=queue.id,
            )
        env = {"OMNICRM_PUBLIC_URL": PUBLIC, "OMNICRM_TEST_CRASH_HOOK": "voice-menu"}
        async with omnicrm_server(
            database_url, env, module="tests.run_cli_crash_after_commit"
        ) as crashing:
            sim.deliver = via_base_url(crashing.url)
            leg = await sim.incoming(
                VOICE_URL,
                from_=CUSTOMER,
                to=OUR_NUMBER,
                status_callback=STATUS_URL,
                caller=Caller(inputs=["1"]),
            )
            # The menu answer is committed, then the server dies before answering: Twilio
            # hears an application error and the caller is cut off.
            await leg.wait_state("completed", timeout=30)
            assert await crashing.process.wait() == -9
        choice = sim.hooks("gather")[0]
        assert choice.status == 0
        async with sessions() as session:
            call = (await session.scalars(select(VoiceCall))).one()
            calls = await session.scalar(select(func.count()).select_from(Interaction))
        assert (call.state, call.ivr_choice, calls) == ("queued", "orders", 1)

        async with omnicrm_server(database_url, {"OMNICRM_PUBLIC_URL": PUBLIC}) as server:
            sim.deliver = via_base_url(server.url)
            again = await sim.replay(choice)  # Twilio's repeat of the same request
            assert again.status == 200
            assert "<Enqueue" in again.body
        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(VoiceCall)) == 1
            assert await session.scalar(select(func.count()).select_from(Interaction)) == 1

        # The caller's end was never heard (the server was down): the call controller asks
        # Twilio and settles it as the status callback would have.
        services = ChannelServices(
            sessions=sessions,
            bus=EventBus(),
            store=MemoryStore(),
            policy=IngestPolicy(),
            cipher=cipher,
            settings=settings,
        )
        await CallController(services, stale_seconds=0).run_once()
        asked = [r for r in sim.requests if r.method == "GET" and leg.sid in r.path]
        assert len(asked) == 1
        async with sessions() as session:
            settled = (await session.scalars(select(VoiceCall))).one()
            task = (await session.scalars(select(Task))).one()
        assert (settled.state, settled.outcome) == ("ended", "abandoned")
        assert (task.kind, task.meta["number"]) == ("callback", CUSTOMER)
    finally:
        await sim.close()
        await standin.close()
