"""`omnicrm channel add twilio ...`: the generic channel commands derive their flags from the
Twilio settings' field names; the secret comes from stdin and is stored encrypted."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from core.credentials import CredentialCipher
from core.db import make_engine, make_session_factory
from core.models import ChannelAccount
from core.settings import Settings
from tests.twilio_standin import ACCOUNT_SID, AUTH_TOKEN
from web.cli import main

pytestmark = pytest.mark.usefixtures("keep_logging")


def test_channel_add_twilio_takes_the_token_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("OMNICRM_"):
            monkeypatch.delenv(name)
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("OMNICRM_DATABASE_URL", url)
    monkeypatch.setenv("OMNICRM_SECRET_KEY", "cli-secret-key")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{AUTH_TOKEN}\n"))
    code = main(
        [
            "channel",
            "add",
            "twilio",
            "--name",
            "main",
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token-stdin",
            "--from",
            "+15005550006",
            "--whatsapp-from",
            "whatsapp:+14155238886",
            "--voice-number",
            "+1 500 555 0006",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert AUTH_TOKEN not in captured.out + captured.err

    async def stored() -> ChannelAccount | None:
        engine = make_engine(url)
        try:
            async with make_session_factory(engine)() as session:
                return await session.scalar(select(ChannelAccount))
        finally:
            await engine.dispose()

    account = asyncio.run(stored())
    assert account is not None
    assert (account.channel, account.name) == ("twilio", "main")
    assert account.settings["from_numbers"] == ["+15005550006"]
    assert account.settings["whatsapp_from"] == "whatsapp:+14155238886"
    # The number takes calls with the default flow (menus come through the API or the file).
    [voice] = account.settings["voice_numbers"]
    assert (voice["number"], voice["menu"], voice["voicemail"]) == ("+15005550006", None, True)
    assert account.settings["auth_token"] != AUTH_TOKEN  # encrypted at rest
    cipher = CredentialCipher.from_settings(Settings(database_url=url, secret_key="cli-secret-key"))
    assert cipher.decrypt(account.settings["auth_token"]) == AUTH_TOKEN
