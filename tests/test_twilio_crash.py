"""A server killed between the commit and its answer loses nothing when Twilio sends again."""

from __future__ import annotations

import aiohttp
import pytest
from sqlalchemy import func, select
from twilio.twiml.messaging_response import MessagingResponse

from core.audit import CLI
from core.channel_accounts import create_account
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.models import AttachmentFetch, Interaction
from core.settings import Settings
from tests.servers import omnicrm_server
from tests.twilio_helpers import OUR_NUMBER, PUBLIC
from tests.twilio_standin import ACCOUNT_SID, AUTH_TOKEN, Signer, inbound

pytestmark = pytest.mark.slow

PATH = "/hooks/twilio/main/message"


async def counts(sessions: SessionFactory) -> tuple[int, int]:
    async with sessions() as session:
        stored = await session.scalar(select(func.count()).select_from(Interaction))
        fetches = await session.scalar(select(func.count()).select_from(AttachmentFetch))
    return int(stored or 0), int(fetches or 0)


async def test_a_kill_after_the_commit_loses_nothing_on_twilios_retry(
    database_url: str, sessions: SessionFactory
) -> None:
    # The servers' cipher: the one their secret key gives.
    cipher = CredentialCipher.from_settings(
        Settings(database_url=database_url, secret_key="test-secret-key")
    )
    async with sessions() as session, session.begin():
        await create_account(
            session,
            CLI,
            channel="twilio",
            name="main",
            settings={
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_numbers": [OUR_NUMBER],
                "api_base_url": "http://127.0.0.1:9",  # media fetches are not this test's
            },
            secret_fields=["auth_token"],
            cipher=cipher,
        )
    media_url = f"http://127.0.0.1:9/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME1"
    params = inbound("+14155550123", "Are you there?", media=[(media_url, "image/jpeg")])
    # Twilio signs the address it calls; a retry is the same request, byte for byte.
    body, headers = Signer().form(f"{PUBLIC}{PATH}", params)
    env = {"OMNICRM_PUBLIC_URL": PUBLIC}

    async with (
        omnicrm_server(database_url, env, module="tests.run_cli_crash_after_commit") as crashing,
        aiohttp.ClientSession() as twilio,
    ):
        with pytest.raises(aiohttp.ClientError):
            await twilio.post(f"{crashing.url}{PATH}", data=body, headers=headers)
        assert await crashing.process.wait() == -9  # killed before it could answer
    assert await counts(sessions) == (1, 1)  # the message and its pending media are in

    async with omnicrm_server(database_url, env) as server, aiohttp.ClientSession() as twilio:
        for _ in range(2):  # Twilio's retry, and one more for good measure
            response = await twilio.post(f"{server.url}{PATH}", data=body, headers=headers)
            assert response.status == 200
            assert await response.text() == str(MessagingResponse())
    assert await counts(sessions) == (1, 1)
