"""Credentials at rest: the cipher, the email channel reading encrypted passwords against the
real servers, a key that cannot read them, and `omnicrm secrets rotate`."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, text, update

from channels.email.smtp import EmailSender
from core.credentials import PREFIX, CredentialCipher, CredentialError
from core.db import SessionFactory
from core.events import Event, EventBus, emit
from core.models import ChannelAccount, Interaction, OutboxItem, OutboxStatus, Role
from core.outbox import OutboxWorker, enqueue
from core.settings import Settings, SettingsError, load_settings
from tests.conftest import UserFactory
from tests.mailservers import DovecotServer, MailUser, SmtpServer
from tests.test_email_imap import (
    add_account,
    append,
    mail,
    message_id_of,
    poller_of,
    supervisor_of,
)
from tests.waiting import eventually
from web.cli import main

pytest_plugins = ["tests.mailservers"]  # the `dovecot` and `smtp_server` fixtures

KEY_A = "key A: the credentials key before"
KEY_B = "key B: the credentials key after"
SECRET = "imap-Secret-6022"

# The CLI configures the root logger for its process; the test run gets its own back.
pytestmark = pytest.mark.usefixtures("keep_logging")

# --- the cipher ---------------------------------------------------------------------------


def test_a_credential_is_stored_encrypted_and_reads_back() -> None:
    cipher = CredentialCipher(KEY_A)
    stored = cipher.encrypt(SECRET)
    assert stored.startswith(PREFIX)
    assert SECRET not in stored
    assert cipher.decrypt(stored) == SECRET
    # Authenticated encryption with a fresh IV: the same password never looks the same twice.
    assert cipher.encrypt(SECRET) != stored
    assert cipher.matches(stored, SECRET)
    assert not cipher.matches(stored, SECRET + " ")
    # No password set stays "no password set".
    assert (cipher.encrypt(""), cipher.decrypt("")) == ("", "")
    unicode = "pässwörd ☃ with spaces "
    assert cipher.decrypt(cipher.encrypt(unicode)) == unicode


def test_what_cannot_be_read_is_a_clear_error() -> None:
    stored = CredentialCipher(KEY_A).encrypt(SECRET)
    other = CredentialCipher(KEY_B)
    with pytest.raises(CredentialError) as wrong_key:
        other.decrypt(stored, "the IMAP password of mailbox 'support'")
    message = str(wrong_key.value)
    assert message.startswith("cannot decrypt the IMAP password of mailbox 'support'")
    assert "credentials_previous_keys" in message
    assert "secret_key" in message
    assert "omnicrm secrets rotate" in message

    tampered = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    with pytest.raises(CredentialError, match="cannot decrypt"):
        CredentialCipher(KEY_A).decrypt(tampered)
    with pytest.raises(CredentialError, match="cannot decrypt"):
        CredentialCipher(KEY_A).decrypt(PREFIX + "not a token ☃")
    with pytest.raises(CredentialError, match=r"clear text: run `omnicrm secrets rotate`"):
        CredentialCipher(KEY_A).decrypt(SECRET)


def test_previous_keys_decrypt_and_rotation_moves_values_to_the_current_key() -> None:
    under_a = CredentialCipher(KEY_A).encrypt(SECRET)
    during = CredentialCipher(KEY_B, [KEY_A])
    assert during.decrypt(under_a) == SECRET
    rotated = during.rotated(under_a)
    assert rotated is not None
    assert CredentialCipher(KEY_B).decrypt(rotated) == SECRET
    # Already under the current key, or empty: nothing to do. Clear text: encrypted.
    assert during.rotated(rotated) is None
    assert during.rotated("") is None
    from_clear = during.rotated(SECRET)
    assert from_clear is not None
    assert CredentialCipher(KEY_B).decrypt(from_clear) == SECRET
    with pytest.raises(CredentialError, match="credentials_previous_keys"):
        CredentialCipher(KEY_B).rotated(CredentialCipher("key C: nobody has this").encrypt("x"))


def test_the_credentials_key_is_derived_from_secret_key_unless_set() -> None:
    derived = CredentialCipher.from_settings(Settings(secret_key="the server's secret key"))
    stored = derived.encrypt(SECRET)
    # An old secret_key works as a previous credentials key.
    assert CredentialCipher(KEY_A, ["the server's secret key"]).decrypt(stored) == SECRET
    # A credentials_key of its own: the secret key no longer reads new values.
    own = CredentialCipher.from_settings(
        Settings(secret_key="the server's secret key", credentials_key=KEY_A)
    )
    with pytest.raises(CredentialError):
        derived.decrypt(own.encrypt(SECRET))
    assert CredentialCipher(KEY_A).decrypt(own.encrypt(SECRET)) == SECRET


def test_credentials_settings_from_the_environment_and_their_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("OMNICRM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OMNICRM_CREDENTIALS_KEY", KEY_B)
    monkeypatch.setenv("OMNICRM_CREDENTIALS_PREVIOUS_KEYS", f'["{KEY_A}"]')
    settings = load_settings()
    assert KEY_A not in repr(settings) + str(settings)
    assert (
        CredentialCipher.from_settings(settings).decrypt(CredentialCipher(KEY_A).encrypt(SECRET))
        == SECRET
    )

    monkeypatch.setenv("OMNICRM_CREDENTIALS_KEY", "short")
    with pytest.raises(SettingsError, match=r"credentials_key: .*at least 16 characters"):
        load_settings()
    monkeypatch.setenv("OMNICRM_CREDENTIALS_KEY", KEY_B)
    monkeypatch.setenv("OMNICRM_CREDENTIALS_PREVIOUS_KEYS", '[""]')
    with pytest.raises(SettingsError, match="credentials_previous_keys"):
        load_settings()
    # Not JSON: one line saying how to write a list, not a traceback.
    monkeypatch.setenv("OMNICRM_CREDENTIALS_PREVIOUS_KEYS", KEY_A)
    with pytest.raises(SettingsError, match=r"credentials_previous_keys.*write a list as JSON"):
        load_settings()


def test_selected_keys_of_a_dict_are_encrypted() -> None:
    """For channel settings kept as JSON: the secret keys encrypted, the rest as they were."""
    cipher = CredentialCipher(KEY_A)
    settings = {"account_sid": "AC123", "auth_token": SECRET, "webhook": True, "api_key": ""}
    stored = cipher.encrypt_fields(settings, ["auth_token", "api_key", "missing"])
    assert stored["account_sid"] == "AC123"
    assert stored["webhook"] is True
    assert stored["api_key"] == ""
    assert stored["auth_token"].startswith(PREFIX)
    assert "missing" not in stored
    assert cipher.decrypt_fields(stored, ["auth_token", "api_key"], "channel 'sms'") == settings
    with pytest.raises(CredentialError, match=r"cannot decrypt auth_token of channel 'sms'"):
        CredentialCipher(KEY_B).decrypt_fields(stored, ["auth_token"], "channel 'sms'")


# --- the email channel reads encrypted passwords ---------------------------------------------


async def add_mailbox(
    sessions: SessionFactory, cipher: CredentialCipher, user: MailUser, server: DovecotServer,
    **overrides: Any,
) -> int:  # fmt: skip
    """An email account on the test Dovecot, made as the API and CLI make one, encrypted with
    `cipher`."""
    return await add_account(sessions, server, user, cipher=cipher, **overrides)


async def has_interaction(sessions: SessionFactory, raw: bytes) -> bool:
    async with sessions() as session:
        found = await session.scalar(
            select(Interaction.id).where(Interaction.external_id == message_id_of(raw))
        )
    return found is not None


async def imports_with(
    sessions: SessionFactory,
    cipher: CredentialCipher,
    account_id: int,
    server: DovecotServer,
    user: MailUser,
) -> None:
    """A poller with `cipher` logs in and imports a new message."""
    raw = mail(f"Read with the key at {account_id}")
    await append(server, user, raw)
    poller = await poller_of(sessions, account_id, cipher=cipher)
    task = asyncio.create_task(poller.run())
    try:
        await eventually(lambda: has_interaction(sessions, raw), "the message to be imported")
        assert poller.status.errors == 0
    finally:
        poller.stop()
        await asyncio.wait_for(task, 15)


async def stored_row(sessions: SessionFactory, account_id: int) -> ChannelAccount:
    async with sessions() as session:
        account = await session.get(ChannelAccount, account_id)
    assert account is not None
    return account


async def test_encrypted_passwords_log_in_to_imap_and_smtp(
    sessions: SessionFactory,
    cipher: CredentialCipher,
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
) -> None:
    user = dovecot.add_user("encrypted")
    smtp_server.require_auth("sender@omnicrm.test", "smtp-Secret-3355")
    account_id = await add_mailbox(
        sessions,
        cipher,
        user,
        dovecot,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_tls="none",
        smtp_user="sender@omnicrm.test",
        smtp_password="smtp-Secret-3355",
    )
    row = await stored_row(sessions, account_id)
    assert row.settings["imap_password"].startswith(PREFIX)
    assert row.settings["smtp_password"].startswith(PREFIX)
    await imports_with(sessions, cipher, account_id, dovecot, user)

    async with sessions() as session, session.begin():
        item = await enqueue(
            session,
            channel="email",
            recipient="ann@customer.test",
            payload={"subject": "Hello", "text": "It ships today.", "account_id": account_id},
        )
    worker = OutboxWorker(sessions, {"email": EmailSender(sessions, cipher=cipher)})
    assert await worker.run_once() == 1
    [sent] = await smtp_server.wait_for(1)
    assert sent.login == "sender@omnicrm.test"
    async with sessions() as session:
        delivered = await session.get(OutboxItem, item.id)
    assert delivered is not None
    assert delivered.status == OutboxStatus.SENT


async def test_a_key_that_cannot_read_the_passwords_is_the_mailboxs_error(
    sessions: SessionFactory,
    cipher: CredentialCipher,
    make_user: UserFactory,
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
) -> None:
    """Stored under a key the server is not given: /healthz says so (to an admin) and what to
    do; the poller keeps retrying, the reply waits in the outbox, nothing crashes."""
    admin = await make_user(Role.ADMIN)
    user = dovecot.add_user("wrongkey")
    foreign = CredentialCipher(KEY_A)
    account_id = await add_mailbox(
        sessions,
        foreign,
        user,
        dovecot,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_tls="none",
        smtp_user="sender@omnicrm.test",
        smtp_password="smtp-Secret-3355",
    )
    poller = await poller_of(sessions, account_id, cipher=cipher)
    task = asyncio.create_task(poller.run())
    try:

        async def reported() -> bool:
            return "cannot decrypt" in ((await stored_row(sessions, account_id)).last_error or "")

        await eventually(reported, "the key problem to be recorded")
        response = await admin.get("/healthz")
        health = await response.json()
        assert (response.status, health["status"]) == (200, "degraded")
        check = health["checks"][f"email:{user.login}"]
        assert check.startswith("error since")
        assert f"cannot decrypt the imap_password of email account {user.login!r}" in check
        assert "credentials_previous_keys" in check
        assert not task.done()
        assert poller.status.errors >= 1
    finally:
        poller.stop()
        await asyncio.wait_for(task, 15)

    async with sessions() as session, session.begin():
        await session.execute(update(ChannelAccount).values(last_error=None, last_error_at=None))
        item = await enqueue(
            session,
            channel="email",
            recipient="ann@customer.test",
            payload={"subject": "Hello", "text": "It ships today.", "account_id": account_id},
        )
    worker = OutboxWorker(sessions, {"email": EmailSender(sessions, cipher=cipher)})
    assert await worker.run_once() == 1
    async with sessions() as session:
        waiting = await session.get(OutboxItem, item.id)
    assert waiting is not None
    # Retried later (the admin may fix the keys), not failed, and nothing was sent.
    assert waiting.status == OutboxStatus.SENDING
    assert f"cannot decrypt the smtp_password of email account {user.login!r}" in (
        waiting.last_error or ""
    )
    assert smtp_server.messages == []
    error = (await stored_row(sessions, account_id)).last_error or ""
    assert "cannot decrypt the smtp_password" in error


async def test_the_channel_restarts_a_poller_for_a_new_password_not_a_new_ciphertext(
    sessions: SessionFactory, dovecot: DovecotServer, bus: EventBus
) -> None:
    user = dovecot.add_user("restarts")
    cipher = CredentialCipher(KEY_B, [KEY_A])
    account_id = await add_mailbox(sessions, CredentialCipher(KEY_A), user, dovecot)
    channel = supervisor_of(sessions, bus, cipher)
    await channel.start()

    async def resync_with(password: str) -> None:
        async with sessions() as session, session.begin():
            row = await session.get(ChannelAccount, account_id)
            assert row is not None
            row.settings = {**row.settings, "imap_password": password}
            await emit(session, Event("resync", {}))

    try:
        started = channel.pollers()[account_id]
        # Re-encrypted under the current key (what a rotation does): the same password.
        await resync_with(cipher.encrypt(user.password))
        # The supervisor handles changes in order: once an account created after the resync
        # has its poller, the resync has been handled.
        marker = dovecot.add_user("marker")
        marker_id = await add_mailbox(sessions, cipher, marker, dovecot)

        async def marker_started() -> bool:
            return marker_id in channel.pollers()

        await eventually(marker_started, "the poller of the mailbox created after the resync")
        assert channel.pollers()[account_id] is started

        await resync_with(cipher.encrypt("a new password"))

        async def restarted() -> bool:
            return channel.pollers().get(account_id) not in (None, started)

        await eventually(restarted, "the poller to restart with the new password")
    finally:
        await channel.stop()


# --- omnicrm secrets rotate -------------------------------------------------------------------


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Awaitable[Result]]


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str
) -> Run:
    """run(*argv, **env) -> Result: the CLI on the test's database with OMNICRM_* = env."""

    async def invoke(*argv: str, **env: str) -> Result:
        capsys.readouterr()
        with monkeypatch.context() as patch:
            for name in list(os.environ):
                if name.startswith("OMNICRM_"):
                    patch.delenv(name)
            patch.setenv("OMNICRM_DATABASE_URL", database_url)
            patch.setenv("OMNICRM_LOG_JSON", "false")
            for name, value in env.items():
                patch.setenv(f"OMNICRM_{name.upper()}", value)
            patch.setattr("sys.stdin", io.StringIO(""))
            code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


async def raw_passwords(sessions: SessionFactory) -> dict[str, tuple[str, str]]:
    """Each account's stored IMAP and SMTP password, read as plain SQL reads the table."""
    async with sessions() as session:
        rows = await session.execute(text("SELECT name, settings FROM channel_account ORDER BY id"))
        found = {}
        for name, settings in rows:
            values = json.loads(settings) if isinstance(settings, str) else settings
            found[name] = (values["imap_password"], values["smtp_password"])
        return found


async def test_rotation_moves_every_credential_to_the_new_key(
    run: Run, sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("rotated")
    under_a = CredentialCipher(KEY_A)
    account_id = await add_mailbox(
        sessions, under_a, user, dovecot, smtp_user="relay", smtp_password="smtp-Secret-1"
    )
    await add_mailbox(
        sessions, under_a, dovecot.add_user("second"), dovecot, name="second", address="s@x.test"
    )
    before = await raw_passwords(sessions)

    result = await run(
        "secrets", "rotate", credentials_key=KEY_B, credentials_previous_keys=f'["{KEY_A}"]'
    )
    assert result.code == 0, result.err
    assert "re-encrypted 3 stored credential(s) with the current key (0 already were)" in (
        result.out
    )
    after = await raw_passwords(sessions)
    only_b = CredentialCipher(KEY_B)
    for name in before:
        assert after[name] != before[name]
        assert all(value.startswith(PREFIX) for value in after[name] if value)
    assert only_b.decrypt(after[user.login][0]) == user.password
    assert only_b.decrypt(after[user.login][1]) == "smtp-Secret-1"
    await imports_with(sessions, only_b, account_id, dovecot, user)

    again = await run("secrets", "rotate", credentials_key=KEY_B)
    assert again.code == 0, again.err
    assert "re-encrypted 0 stored credential(s) with the current key (3 already were)" in (
        again.out
    )
    assert await raw_passwords(sessions) == after


async def test_a_value_no_key_reads_stops_the_rotation_and_changes_nothing(
    run: Run, sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    await add_mailbox(sessions, CredentialCipher(KEY_A), dovecot.add_user("fine"), dovecot)
    lost = dovecot.add_user("lost")
    await add_mailbox(sessions, CredentialCipher("key C: long forgotten"), lost, dovecot)
    before = await raw_passwords(sessions)

    result = await run(
        "secrets", "rotate", credentials_key=KEY_B, credentials_previous_keys=f'["{KEY_A}"]'
    )
    assert result.code == 1
    assert f"omnicrm: cannot decrypt email account {lost.login!r}: imap_password" in result.err
    assert "nothing was re-encrypted: 1 stored credential(s) cannot be decrypted" in result.err
    assert "Traceback" not in result.err
    assert await raw_passwords(sessions) == before


async def test_a_changed_secret_key_needs_the_old_one_as_a_previous_credentials_key(
    run: Run, sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("secretkey")
    old = CredentialCipher.from_settings(Settings(secret_key="the old secret key"))
    account_id = await add_mailbox(sessions, old, user, dovecot)

    refused = await run("secrets", "rotate", secret_key="the new secret key")
    assert refused.code == 1
    assert "or secret_key while credentials_key is unset" in refused.err
    assert "credentials_previous_keys" in refused.err

    rotated = await run(
        "secrets",
        "rotate",
        secret_key="the new secret key",
        credentials_previous_keys='["the old secret key"]',
    )
    assert rotated.code == 0, rotated.err
    new = CredentialCipher.from_settings(Settings(secret_key="the new secret key"))
    await imports_with(sessions, new, account_id, dovecot, user)


async def test_rotation_encrypts_a_password_found_in_clear_text(
    run: Run, sessions: SessionFactory, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user("clear")
    account_id = await add_mailbox(sessions, CredentialCipher(KEY_B), user, dovecot)
    async with sessions() as session, session.begin():
        row = await session.get(ChannelAccount, account_id)
        assert row is not None
        row.settings = {**row.settings, "imap_password": user.password}
    result = await run("secrets", "rotate", credentials_key=KEY_B)
    assert result.code == 0, result.err
    assert "re-encrypted 1 stored credential(s)" in result.out
    [(imap, _smtp)] = (await raw_passwords(sessions)).values()
    assert imap.startswith(PREFIX)
    assert user.password not in imap
    await imports_with(sessions, CredentialCipher(KEY_B), account_id, dovecot, user)


@pytest.mark.sqlite_only
async def test_rotation_moves_the_erp_connections_secret_too(
    run: Run, sessions: SessionFactory
) -> None:
    from core.audit import CLI
    from core.models import ErpConnection
    from erp_bridge.config import set_connection

    settings = {
        "url": "https://acme.odoo.example",
        "database": "acme",
        "api_key": "odoo-api-key-1",
    }
    async with sessions() as session, session.begin():
        await set_connection(session, CLI, CredentialCipher(KEY_A), "odoo", settings)
    result = await run(
        "secrets", "rotate", credentials_key=KEY_B, credentials_previous_keys=f'["{KEY_A}"]'
    )
    assert result.code == 0, result.err
    assert "re-encrypted 1 stored credential(s)" in result.out
    async with sessions() as session:
        stored = await session.get(ErpConnection, 1)
    assert stored is not None
    assert CredentialCipher(KEY_B).decrypt(stored.settings["api_key"]) == "odoo-api-key-1"
    # A key that reads nothing: the rotation stops, naming the ERP, and writes nothing.
    refused = await run("secrets", "rotate", credentials_key="key C: a key that reads none of it")
    assert refused.code != 0
    assert "the odoo ERP connection: api_key" in refused.err
    async with sessions() as session:
        again = await session.get(ErpConnection, 1)
    assert again is not None
    assert again.settings == stored.settings
