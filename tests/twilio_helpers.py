"""What the Twilio tests share: the stand-in running, an account pointed at it, webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from channels.twilio.media import TwilioMediaFetcher
from core.db import SessionFactory
from core.models import Interaction, OutboxItem, OutboxStatus, Role
from core.outbox import OutboxWorker
from core.settings import Settings
from tests.conftest import User, UserFactory
from tests.twilio_standin import ACCOUNT_SID, AUTH_TOKEN, Signer, TwilioStandIn
from web.keys import REGISTRY, SERVICES

PUBLIC = "https://crm.example.com"
OUR_NUMBER = "+15005550006"
WHATSAPP_FROM = "whatsapp:+14155238886"


def twilio_settings(database_url: str, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key",
        log_json=False,
        outbox_poll_seconds=0.05,
        attachments_dir=str(tmp_path / "attachments"),
        public_url=PUBLIC,
        **extra,
    )


@asynccontextmanager
async def running_standin() -> AsyncIterator[TwilioStandIn]:
    """The stand-in, serving on a free port until the block ends (tests' `standin` fixture)."""
    twilio = TwilioStandIn()
    await twilio.start()
    try:
        yield twilio
    finally:
        await twilio.close()


def account_settings(standin: TwilioStandIn, **extra: Any) -> dict[str, Any]:
    return {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_numbers": [OUR_NUMBER],
        "whatsapp_from": WHATSAPP_FROM,
        "api_base_url": standin.url,
        **extra,
    }


async def add_account(
    make_user: UserFactory,
    standin: TwilioStandIn,
    name: str = "main",
    queue_id: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    admin = await make_user(Role.ADMIN)
    response = await admin.post(
        "/api/v1/channel-accounts",
        json={
            "channel": "twilio",
            "name": name,
            "settings": account_settings(standin, **extra),
            "queue_id": queue_id,
        },
    )
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def post_signed(
    client: TestClient[Any, Any] | User,
    params: Mapping[str, str],
    *,
    account: str = "main",
    hook: str = "message",
    query: str = "",
    signer: Signer | None = None,
) -> ClientResponse:
    """POST a webhook signed as Twilio signs it for the public address."""
    path = f"/hooks/twilio/{account}/{hook}{query}"
    body, headers = (signer or Signer()).form(f"{PUBLIC}{path}", params)
    response: ClientResponse = await client.post(path, data=body, headers=headers)
    return response


async def count(sessions: SessionFactory, model: Any = Interaction) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def fetcher(app: web.Application) -> TwilioMediaFetcher:
    return TwilioMediaFetcher(app[SERVICES], poll_seconds=0.05)


def worker(app: web.Application, **options: Any) -> OutboxWorker:
    senders = app[REGISTRY].senders(app[SERVICES])
    options.setdefault("retry_base_seconds", 0.01)
    return OutboxWorker(app[SERVICES].sessions, senders, poll_seconds=0.05, **options)


async def outbox_item(sessions: SessionFactory, outbox_id: int) -> OutboxItem:
    async with sessions() as session:
        item = await session.get(OutboxItem, outbox_id)
    assert item is not None
    return item


async def deliver(app: web.Application, outbox_id: int, **options: Any) -> OutboxItem:
    """Run outbox passes until the item leaves the queue for good or a retry is scheduled."""
    run = worker(app, **options)
    sessions = app[SERVICES].sessions
    async with asyncio.timeout(20):
        while True:
            await run.run_once()
            item = await outbox_item(sessions, outbox_id)
            if item.status in (OutboxStatus.SENT, OutboxStatus.FAILED) or item.last_error:
                return item
            await asyncio.sleep(0.01)
