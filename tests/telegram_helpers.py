"""What the Telegram tests share: an app running the Telegram channel against the Bot API
stand-in, accounts pointed at it, and the channel's workers driven by the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from channels.base import PollOptions
from channels.telegram.media import TelegramMediaFetcher
from channels.telegram.plugin import TelegramChannel
from core.models import Role
from core.settings import Settings
from tests.conftest import UserFactory
from tests.telegram_standin import TOKEN, TelegramStandIn
from web.keys import SERVICES

PUBLIC = "https://crm.example.com"
FAST = PollOptions(
    poll_seconds=0.05,
    backoff_base_seconds=0.05,
    backoff_cap_seconds=0.2,
    lock_wait_seconds=0.1,
    success_record_seconds=0.0,
)


def telegram_settings(database_url: str, tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": "test-secret-key",
        "log_json": False,
        "outbox_poll_seconds": 0.05,
        "attachments_dir": str(tmp_path / "attachments"),
        "max_attachment_bytes": 1_000_000,
        **extra,
    }
    return Settings(**values)


def fast_channel() -> TelegramChannel:
    """The channel with short waits: a 1 s long poll, quick backoff."""
    return TelegramChannel(poll_options=FAST, long_poll_seconds=1, webhook_check_seconds=0.2)


async def add_bot(
    make_user: UserFactory,
    standin: TelegramStandIn,
    name: str = "support",
    *,
    token: str = TOKEN,
    expect: int = 201,
    **extra: Any,
) -> dict[str, Any]:
    """Add a Telegram account through the API, as an admin would; its JSON."""
    admin = await make_user(Role.ADMIN)
    response = await admin.post(
        "/api/v1/channel-accounts",
        json={
            "channel": "telegram",
            "name": name,
            "settings": {"token": token, "api_base_url": standin.url, **extra},
        },
    )
    assert response.status == expect, await response.text()
    return dict(await response.json())


def fetcher(app: web.Application) -> TelegramMediaFetcher:
    return TelegramMediaFetcher(app[SERVICES], poll_seconds=0.05)
