"""Checking an email account's servers: IMAP login and SELECT of its folder, then SMTP EHLO
and AUTH, each with a short timeout and nothing fetched or sent.

`check_account` answers one line saying what worked, or raises `CheckFailed` with one line
saying which server refused what (the admin's `omnicrm channel check` and
`POST /api/v1/channel-accounts/{id}/check` show it as it is).
"""

from __future__ import annotations

import ssl

import aiosmtplib

from channels.email.imap_client import ImapClient, ImapError
from channels.email.settings import EmailSettings, TlsMode

TIMEOUT_SECONDS = 15.0


class CheckFailed(Exception):
    """A server refused the account's settings or credentials; the message says which."""


async def check_account(
    mail: EmailSettings,
    *,
    timeout_seconds: float = TIMEOUT_SECONDS,
    ssl_context: ssl.SSLContext | None = None,
) -> str:
    """What worked, as one line; CheckFailed with what did not (IMAP first)."""
    imap = await check_imap(mail, timeout_seconds=timeout_seconds, ssl_context=ssl_context)
    smtp = await check_smtp(mail, timeout_seconds=timeout_seconds, ssl_context=ssl_context)
    return f"{imap}; {smtp}"


async def check_imap(
    mail: EmailSettings, *, timeout_seconds: float, ssl_context: ssl.SSLContext | None = None
) -> str:
    server = f"IMAP {mail.imap_host}:{mail.imap_port} ({mail.imap_tls})"
    try:
        client = await ImapClient.connect(
            host=mail.imap_host,
            port=mail.imap_port,
            tls=mail.imap_tls,
            user=mail.imap_user,
            password=mail.imap_password,
            command_timeout_seconds=timeout_seconds,
            ssl_context=ssl_context,
        )
    except (ImapError, OSError, TimeoutError) as exc:
        raise CheckFailed(f"{server}: {_reason(exc)}") from None
    try:
        folder = await client.select(mail.imap_folder)
    except ImapError as exc:
        raise CheckFailed(f"{server}: folder {mail.imap_folder!r}: {_reason(exc)}") from None
    finally:
        await client.logout()
    return (
        f"{server}: logged in as {mail.imap_user}, folder {mail.imap_folder!r} selected "
        f"(UIDVALIDITY {folder.uidvalidity})"
    )


async def check_smtp(
    mail: EmailSettings, *, timeout_seconds: float, ssl_context: ssl.SSLContext | None = None
) -> str:
    server = f"SMTP {mail.smtp_host}:{mail.smtp_port} ({mail.smtp_tls})"
    client = aiosmtplib.SMTP(
        hostname=mail.smtp_host,
        port=mail.smtp_port,
        use_tls=mail.smtp_tls is TlsMode.SSL,
        start_tls=mail.smtp_tls is TlsMode.STARTTLS,
        timeout=timeout_seconds,
        tls_context=ssl_context,
        # The default asks DNS for this host's name, which can block the event loop.
        local_hostname=mail.address.rpartition("@")[2],
    )
    try:
        await client.connect()
        await client.ehlo()
        if mail.smtp_user:
            await client.login(mail.smtp_user, mail.smtp_password)
            what = f"logged in as {mail.smtp_user}"
        else:
            what = "connected (no login: smtp_user is empty)"
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise CheckFailed(f"{server}: {_reason(exc)}") from None
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()
    return f"{server}: {what}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
