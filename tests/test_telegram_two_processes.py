"""Two `omnicrm serve` processes, one bot: one of them polls getUpdates at a time (the
account's advisory lock), every update is stored once, and the other takes over when the
poller's process stops."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.audit import CLI
from core.channel_accounts import create_account
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.models import Interaction
from tests import telegram_standin as tg
from tests.servers import omnicrm_server
from tests.telegram_standin import TOKEN
from tests.waiting import eventually

# Several server processes share a database only on PostgreSQL.
pytestmark = pytest.mark.postgresql_only


async def stored(sessions: SessionFactory) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(Interaction)
        return int(await session.scalar(query.where(Interaction.channel == "telegram")) or 0)


async def test_two_servers_poll_one_bot_once_and_the_second_takes_over(
    database_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    async with tg.running() as standin:
        async with sessions() as session, session.begin():
            await create_account(
                session,
                CLI,
                channel="telegram",
                name="support",
                settings={"token": TOKEN, "mode": "polling", "api_base_url": standin.url},
                secret_fields=["token"],
                cipher=CredentialCipher("test-secret-key"),
            )
        first = contextlib.AsyncExitStack()
        await first.enter_async_context(omnicrm_server(database_url, log_path=tmp_path / "a.log"))
        try:

            async def polling() -> bool:
                return standin.counts["getUpdates"] > 0

            await eventually(polling, "the first server polling")
            async with omnicrm_server(database_url, log_path=tmp_path / "b.log") as second:
                for n in range(5):
                    standin.push(TOKEN, tg.text_message(5_550_000 + n, f"question {n}"))

                async def five() -> bool:
                    return await stored(sessions) == 5

                await eventually(five, "the five updates stored")
                # The polling server stops: the other one takes the bot over.
                await first.aclose()
                standin.push(TOKEN, tg.text_message(5_550_009, "still there?"))

                async def six() -> bool:
                    return await stored(sessions) == 6

                await eventually(six, "the update after the first server stopped", within=60)

                # Stored, then confirmed to Telegram by the next poll's offset.
                async def confirmed() -> bool:
                    return not standin.pending(TOKEN)

                await eventually(confirmed, "the stored updates confirmed to Telegram")
                assert second.process.returncode is None
        finally:
            await first.aclose()
        polls = standin.attempts("getUpdates")
    # Never two polls at once: Telegram would have ended one with 409 Conflict.
    assert polls
    assert all(call.status != 409 for call in polls), [call.description for call in polls]
