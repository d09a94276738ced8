"""`omnicrm serve` starts, through its real start-up path, whatever the config file's channel
accounts did since the last start (added, changed, removed), and says so in its log; both
spellings of an email account work (`[[mailboxes]]`, `[[channels]] channel = "email"`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import SessionFactory
from core.models import ChannelAccount
from tests.servers import free_port, omnicrm_server


def mailbox(name: str, imap_port: int, **overrides: Any) -> dict[str, Any]:
    # Nothing listens on the IMAP port: the pollers fail, the server is degraded but up.
    return {
        "name": name,
        "address": f"{name}@shop.example",
        "imap_host": "127.0.0.1",
        "imap_port": imap_port,
        "imap_tls": "none",
        "imap_user": name,
        "imap_password_env": "TEST_MAILBOX_PASSWORD",
        "smtp_host": "127.0.0.1",
        **overrides,
    }


def write_config(path: Path, *mailboxes: dict[str, Any]) -> None:
    """One table per mapping (values as JSON, which TOML reads): [[channels]] for a mapping
    with a channel, [[mailboxes]] for the others."""
    tables = (
        ("[[channels]]\n" if "channel" in m else "[[mailboxes]]\n")
        + "".join(f"{key} = {json.dumps(value)}\n" for key, value in m.items())
        for m in mailboxes
    )
    path.write_text("\n".join(tables))


def synced_lines(log: Path) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [entry for entry in entries if entry["message"] == "config channel accounts synced"]


async def start_and_check(database_url: str, config: Path, log: Path) -> dict[str, Any]:
    """Start a server with `config`; it must answer /healthz; returns the sync's log entry."""
    env = {
        "OMNICRM_CONFIG": str(config),
        "OMNICRM_LOG_LEVEL": "INFO",  # the sync is logged at INFO: the call must run
        "OMNICRM_LOG_JSON": "true",
        "TEST_MAILBOX_PASSWORD": "mailbox-Secret-1",
    }
    async with (
        omnicrm_server(database_url, env, log_path=log) as server,
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/healthz") as response,
    ):
        assert response.status == 200
        assert (await response.json())["status"] in ("ok", "degraded")
    [entry] = synced_lines(log)
    return entry


async def test_serve_starts_after_config_accounts_are_added_changed_and_removed(
    database_url: str, engine: AsyncEngine, sessions: SessionFactory, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "omnicrm.toml"

    write_config(config, mailbox("support", port), mailbox("sales", port))
    first = await start_and_check(database_url, config, tmp_path / "first.log")
    assert (first["created"], first["updated"], first["disabled"]) == (
        ["email:support", "email:sales"],
        [],
        [],
    )

    # One changed, one removed, one added (spelt as a [[channels]] table), all at once.
    write_config(
        config,
        mailbox("support", port, display_name="Shop Support"),
        mailbox("billing", port, channel="email"),
    )
    second = await start_and_check(database_url, config, tmp_path / "second.log")
    assert (second["created"], second["updated"], second["disabled"]) == (
        ["email:billing"],
        ["email:support"],
        ["email:sales"],
    )

    async with sessions() as session:
        stored = {m.name: m for m in await session.scalars(select(ChannelAccount))}
    assert stored["support"].settings["display_name"] == "Shop Support"
    assert (stored["sales"].enabled, stored["billing"].enabled) == (False, True)
    assert all(account.channel == "email" for account in stored.values())
