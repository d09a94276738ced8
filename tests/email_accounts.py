"""Email accounts for tests that import mail without a mail server: a `channel_account` row of
the email channel, made as the API makes one (settings checked by the channel)."""

from __future__ import annotations

from typing import Any

from channels.email.plugin import EmailChannel
from channels.email.settings import SECRET_FIELDS
from channels.registry import validated_settings
from core.audit import CLI
from core.channel_accounts import AccountView, create_account, view_without_secrets
from core.credentials import CredentialCipher
from core.db import SessionFactory

CIPHER = CredentialCipher("the email tests' credentials key")


def account_view(account_id: int = 7, queue_id: int | None = None) -> AccountView:
    """An account as the email channel's parsers see it, without a database."""
    return AccountView(account_id, "email", "support", {}, queue_id)


async def create_email_account(
    sessions: SessionFactory,
    name: str = "support",
    *,
    queue_id: int | None = None,
    **settings: Any,
) -> AccountView:
    """An email account on servers that are never reached (127.0.0.1, no password)."""
    values = {
        "address": f"{name}@omnicrm.test",
        "imap_host": "127.0.0.1",
        "imap_user": name,
        "smtp_host": "127.0.0.1",
        **settings,
    }
    async with sessions() as session, session.begin():
        row = await create_account(
            session,
            CLI,
            channel="email",
            name=name,
            settings=validated_settings(EmailChannel(), values),
            secret_fields=SECRET_FIELDS,
            cipher=CIPHER,
            queue_id=queue_id,
        )
        return view_without_secrets(row, SECRET_FIELDS)
