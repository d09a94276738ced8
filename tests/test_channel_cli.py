"""`omnicrm channel add|list|set|remove|check`: channel accounts from the command line, with
flags built from each channel's settings model and secrets read from stdin only."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from channels.accounts import declared_accounts
from channels.base import Channel
from channels.registry import ChannelRegistry, default_channels
from core import channels as core_channels
from core.audit import CLI
from core.channel_accounts import sync_config_accounts
from core.channels import ChannelFacts
from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.models import AuditEntry, ChannelAccount, IdentityKind
from core.settings import INSECURE_DEV_SECRET, load_settings
from routing.setup import create_queue
from tests.fake_channel import FakeSms
from tests.mailservers import DovecotServer, SmtpServer
from web.cli import main

pytest_plugins = ["tests.mailservers"]  # the `dovecot` and `smtp_server` fixtures

IMAP_PASSWORD = "imap-Secret-2718"
SMTP_PASSWORD = "smtp-Secret-3141"
# The credentials key of settings that set none, as the CLI runs here.
CIPHER = CredentialCipher(INSECURE_DEV_SECRET)

# The CLI configures the root logger for its process; the test run gets its own back.
pytestmark = pytest.mark.usefixtures("keep_logging")


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Awaitable[Result]]


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    sessions: SessionFactory,
) -> Iterator[Run]:
    """run(*argv, stdin="", channels=None, config=None) -> Result: the CLI on the test's
    (emptied) database, in a thread (it runs its own event loop)."""

    async def invoke(
        *argv: str,
        stdin: str = "",
        channels: Sequence[Channel] | None = None,
        config: Path | None = None,
    ) -> Result:
        capsys.readouterr()
        with monkeypatch.context() as patch:
            for name in ("OMNICRM_CONFIG", "OMNICRM_CREDENTIALS_KEY", "OMNICRM_SECRET_KEY"):
                patch.delenv(name, raising=False)
            patch.setenv("OMNICRM_DATABASE_URL", database_url)
            patch.setenv("OMNICRM_LOG_JSON", "false")
            if config is not None:
                patch.setenv("OMNICRM_CONFIG", str(config))
            patch.setattr("sys.stdin", io.StringIO(stdin))
            code = await asyncio.to_thread(main, list(argv), channels)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    # `main` installs the channels it runs process-wide: put the suite's back afterwards.
    with core_channels.installed(channel.facts for channel in default_channels()):
        yield invoke


ADD = (
    "channel", "add", "email",
    "--name", "support",
    "--address", "support@shop.example",
    "--imap-host", "imap.shop.example",
    "--imap-user", "support@shop.example",
    "--smtp-host", "smtp.shop.example",
)  # fmt: skip


async def accounts(sessions: SessionFactory) -> dict[str, ChannelAccount]:
    async with sessions() as session:
        return {row.name: row for row in await session.scalars(select(ChannelAccount))}


async def account_count(sessions: SessionFactory) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(ChannelAccount)) or 0)


async def support_queue(sessions: SessionFactory) -> int:
    async with sessions() as session, session.begin():
        return (await create_queue(session, CLI, name="Support")).id


async def test_add_reads_each_secret_from_stdin_in_the_order_of_its_flag(
    run: Run, sessions: SessionFactory
) -> None:
    queue_id = await support_queue(sessions)
    result = await run(
        *ADD, "--queue", "Support", "--smtp-port", "587", "--smtp-tls", "starttls",
        "--smtp-user", "relay", "--no-use-idle",
        "--smtp-password-stdin", "--imap-password-stdin",
        stdin=f"{SMTP_PASSWORD}\n{IMAP_PASSWORD}\n",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "email account 'support' added with id" in result.out
    assert "not set" not in result.out
    assert IMAP_PASSWORD not in result.out + result.err
    assert SMTP_PASSWORD not in result.out + result.err
    account = (await accounts(sessions))["support"]
    stored = account.settings
    assert (account.channel, account.queue_id, account.enabled) == ("email", queue_id, True)
    assert CIPHER.decrypt(stored["imap_password"]) == IMAP_PASSWORD
    assert CIPHER.decrypt(stored["smtp_password"]) == SMTP_PASSWORD
    assert IMAP_PASSWORD not in json.dumps(stored)
    assert (stored["smtp_port"], stored["smtp_tls"], stored["smtp_user"]) == (
        587,
        "starttls",
        "relay",
    )
    assert (stored["use_idle"], stored["imap_port"], stored["imap_folder"]) == (False, 993, "INBOX")
    assert not account.from_config
    async with sessions() as session:
        [row] = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "channel_account.create")
        )
    assert row.actor_label == "cli"


async def test_add_without_secrets_says_what_is_not_set(run: Run, sessions: SessionFactory) -> None:
    result = await run(*ADD, "--disabled")
    assert result.code == 0, result.err
    assert "not set: imap_password, smtp_password" in result.out
    assert "--imap-password-stdin --smtp-password-stdin" in result.out
    account = (await accounts(sessions))["support"]
    assert (account.settings["imap_password"], account.settings["smtp_password"]) == ("", "")
    assert account.enabled is False


async def test_bad_input_is_one_line_naming_the_flags_and_stores_nothing(
    run: Run, sessions: SessionFactory
) -> None:
    result = await run(
        *ADD, "--imap-port", "0", "--smtp-port", "70000", "--imap-password-stdin",
        stdin=IMAP_PASSWORD + "\n",
    )  # fmt: skip
    assert result.code == 2
    [line] = result.err.splitlines()
    assert "--imap-port: " in line
    assert "--smtp-port: " in line
    assert IMAP_PASSWORD not in line
    no_folder = await run(*ADD, "--after-import", "move")
    assert no_folder.code == 2
    assert "--move-to-folder: needed when after_import is move" in no_folder.err
    no_address = await run(*ADD[:5], "--imap-host", "h", "--imap-user", "u", "--smtp-host", "h")
    assert no_address.code == 2
    assert "--address: Field required" in no_address.err
    missing_line = await run(*ADD, "--imap-password-stdin", "--smtp-password-stdin", stdin="x\n")
    assert missing_line.code == 2
    assert "--smtp-password-stdin: no line left on stdin" in missing_line.err
    unknown_queue = await run(*ADD, "--queue", "Nowhere")
    assert unknown_queue.code == 1
    assert "no queue named 'Nowhere'" in unknown_queue.err
    # A secret is no flag's value: it is read from stdin only.
    no_value_flag = await run(*ADD, "--imap-password", IMAP_PASSWORD)
    assert no_value_flag.code == 2
    for bad in (["channel", "add", "fax", "--name", "x"], ["channel", "add", "webform"]):
        refused = await run(*bad)
        assert refused.code == 2
        assert "invalid choice" in refused.err
    assert await account_count(sessions) == 0


async def test_set_changes_only_what_is_given_and_remove_disables(
    run: Run, sessions: SessionFactory
) -> None:
    await support_queue(sessions)
    assert (await run(*ADD, "--imap-password-stdin", stdin=IMAP_PASSWORD + "\n")).code == 0
    before = (await accounts(sessions))["support"]

    changed = await run(
        "channel", "set", "email", "support", "--imap-port", "143", "--imap-tls", "starttls",
        "--queue", "Support",
    )  # fmt: skip
    assert changed.code == 0, changed.err
    assert "changed imap_port, imap_tls, queue_id" in changed.out
    after = (await accounts(sessions))["support"]
    assert (after.settings["imap_port"], after.settings["imap_tls"]) == (143, "starttls")
    # The password was not given: it is the same ciphertext as before.
    assert after.settings["imap_password"] == before.settings["imap_password"]
    again = await run("channel", "set", "email", "support", "--imap-port", "143")
    assert "nothing to change" in again.out

    bad = await run("channel", "set", "email", "support", "--after-import", "move")
    assert bad.code == 2
    assert "--move-to-folder" in bad.err
    unknown = await run("channel", "set", "email", "nobody", "--imap-port", "143")
    assert unknown.code == 1
    assert "no email account named 'nobody'" in unknown.err

    removed = await run("channel", "remove", "email", "support")
    assert removed.code == 0, removed.err
    assert "is disabled" in removed.out
    assert (await accounts(sessions))["support"].enabled is False
    enabled = await run("channel", "set", "email", "support", "--enable", "--no-queue")
    assert "changed enabled, queue_id" in enabled.out
    account = (await accounts(sessions))["support"]
    assert (account.enabled, account.queue_id) == (True, None)


async def test_list_shows_accounts_without_secrets(
    run: Run, sessions: SessionFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = await run("channel", "list")
    assert empty.code == 0, empty.err
    assert "no channel accounts" in empty.out
    await support_queue(sessions)
    monkeypatch.setenv("TEST_SALES_PASSWORD", IMAP_PASSWORD)
    config = tmp_path / "omnicrm.toml"
    config.write_text(
        '[[channels]]\nchannel = "email"\nname = "sales"\naddress = "sales@shop.example"\n'
        'imap_host = "mail.shop.example"\nimap_user = "sales"\n'
        'imap_password_env = "TEST_SALES_PASSWORD"\nsmtp_host = "mail.shop.example"\n'
    )
    # The CLI checks the config file's accounts too; the server syncs them (here: by hand).
    assert (await run("channel", "list", config=config)).code == 0
    declared = declared_accounts(
        load_settings(config).channel_accounts, ChannelRegistry(default_channels())
    )
    async with sessions() as session, session.begin():
        await sync_config_accounts(session, declared, cipher=CIPHER)
    added = await run(
        *ADD, "--queue", "Support", "--imap-password-stdin", "--smtp-password-stdin",
        stdin=f"{IMAP_PASSWORD}\n{SMTP_PASSWORD}\n",
    )  # fmt: skip
    assert added.code == 0, added.err

    listed = await run("channel", "list")
    assert listed.code == 0, listed.err
    assert IMAP_PASSWORD not in listed.out
    assert SMTP_PASSWORD not in listed.out
    header, first, second = listed.out.splitlines()
    assert header.split() == [
        "id", "channel", "name", "state", "source", "queue", "secrets", "health",
    ]  # fmt: skip
    assert first.split()[1:8] == [
        "email",
        "sales",
        "enabled",
        "config",
        "-",
        "imap_password",
        "starting",
    ]
    assert second.split()[1:8] == [
        "email", "support", "enabled", "api/cli", "Support", "imap_password,smtp_password",
        "starting",
    ]  # fmt: skip
    only = await run("channel", "list", "email")
    assert only.out == listed.out

    owned = await run("channel", "set", "email", "sales", "--imap-port", "143")
    assert owned.code == 1
    assert "config file" in owned.err


async def test_check_logs_in_to_imap_and_smtp_and_says_what_failed(
    run: Run, sessions: SessionFactory, dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    user = dovecot.add_user("cli-check")
    smtp_server.require_auth("relay", SMTP_PASSWORD)
    assert (
        await run(
            "channel", "add", "email", "--name", "checked", "--address", "s@omnicrm.test",
            "--imap-host", dovecot.host, "--imap-port", str(dovecot.port), "--imap-tls", "none",
            "--imap-user", user.login, "--smtp-host", smtp_server.host,
            "--smtp-port", str(smtp_server.port), "--smtp-tls", "none", "--smtp-user", "relay",
            "--imap-password-stdin", "--smtp-password-stdin",
            stdin=f"{user.password}\n{SMTP_PASSWORD}\n",
        )
    ).code == 0  # fmt: skip
    checked = await run("channel", "check", "email", "checked")
    assert checked.code == 0, checked.err
    assert f"logged in as {user.login}, folder 'INBOX' selected" in checked.out
    assert "SMTP" in checked.out
    assert "logged in as relay" in checked.out

    await run("channel", "set", "email", "checked", "--imap-password-stdin", stdin="wrong\n")
    failed = await run("channel", "check", "email", "checked")
    assert failed.code == 1
    [line] = failed.err.splitlines()
    assert "email account 'checked': check failed: IMAP" in line
    assert "login failed" in line
    assert "wrong" not in line.replace("login failed", "")


# --- flags from any channel's settings model ------------------------------------------------


class RichSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=4, description="the provider's key (secret)")
    from_number: str = Field(json_schema_extra={"cli": "from"}, description="the sender")
    region: Literal["eu", "us"] = "eu"
    retries: int = 3
    sandbox: bool = False
    tags: list[str] = Field(default_factory=list)


class RichChannel(Channel):
    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name="rich", label="Rich", icon="sms", identity_kind=IdentityKind.PHONE
    )
    settings_model: ClassVar[type[BaseModel] | None] = RichSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset({"api_key"})


async def test_any_channels_settings_become_flags(run: Run, sessions: SessionFactory) -> None:
    channels = [*default_channels(), RichChannel(), FakeSms()]
    result = await run(
        "channel", "add", "rich", "--name", "main", "--from", "+15550100", "--region", "us",
        "--retries", "5", "--sandbox", "--tags", "vip", "--tags", "night", "--api-key-stdin",
        stdin="key-Secret-1\n", channels=channels,
    )  # fmt: skip
    assert result.code == 0, result.err
    fake = await run(
        "channel", "add", "fakesms", "--name", "fake", "--sender-number", "+15550199",
        "--token-stdin", stdin="token-Secret-1\n", channels=channels,
    )  # fmt: skip
    assert fake.code == 0, fake.err
    stored = await accounts(sessions)
    rich = stored["main"].settings
    assert {key: value for key, value in rich.items() if key != "api_key"} == {
        "from_number": "+15550100",
        "region": "us",
        "retries": 5,
        "sandbox": True,
        "tags": ["vip", "night"],
    }
    assert CIPHER.decrypt(rich["api_key"]) == "key-Secret-1"
    assert CIPHER.decrypt(stored["fake"].settings["token"]) == "token-Secret-1"
    assert stored["fake"].settings["sender_number"] == "+15550199"

    refused = await run(
        "channel", "add", "rich", "--name", "x", "--from", "+1", "--region", "asia",
        channels=channels,
    )  # fmt: skip
    assert refused.code == 2
    assert "invalid choice: 'asia'" in refused.err
    short = await run(
        "channel", "add", "rich", "--name", "x", "--from", "+1", "--api-key-stdin",
        stdin="abc\n", channels=channels,
    )  # fmt: skip
    assert short.code == 2
    assert "--api-key-stdin: " in short.err
    assert await account_count(sessions) == 2


async def test_a_telegram_bot_is_added_with_its_token_from_stdin_and_checked(
    run: Run, sessions: SessionFactory
) -> None:
    from tests import telegram_standin as tg

    async with tg.running() as standin:
        add = ("channel", "add", "telegram", "--name", "support", "--api-base-url", standin.url)
        wrong = "7000000001:" + "B" * 35
        refused = await run(*add, "--token-stdin", "--mode", "polling", stdin=f"{wrong}\n")
        assert refused.code != 0
        assert refused.err.count("\n") == 1, refused.err
        assert "--token-stdin" in refused.err
        assert "rejected the bot token" in refused.err
        assert wrong not in refused.out + refused.err
        assert await account_count(sessions) == 0

        added = await run(*add, "--token-stdin", "--mode", "polling", stdin=f"{tg.TOKEN}\n")
        assert added.code == 0, added.err
        assert tg.TOKEN not in added.out + added.err
        stored = (await accounts(sessions))["support"]
        assert stored.settings["mode"] == "polling"
        assert stored.settings["bot_username"] == tg.BOT_USERNAME
        assert stored.settings["token"] != tg.TOKEN  # encrypted at rest

        checked = await run("channel", "check", "telegram", "support")
        assert checked.code == 0, checked.err
        assert f"signed in as @{tg.BOT_USERNAME}" in checked.out
        assert "updates by polling" in checked.out
