"""The email channel as the registry sees it: its facts, its accounts' settings, its sender,
its poller, the check of an account, and how its quarantine is read and retried.

An email account (a mailbox) is a `channel_account` row of channel "email" whose settings are
`EmailSettings` (channels/email/settings.py), the passwords encrypted. Each enabled account
gets an `ImapPoller` from the generic supervisor (channels/pollers.py); replies go out through
`EmailSender` from the account the customer wrote to.
"""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import ClassVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Channel, ChannelServices, PollingAdapter, PollOptions
from channels.email.check import check_account
from channels.email.imap import ImapOptions, ImapPoller
from channels.email.inbound import import_message
from channels.email.settings import SECRET_FIELDS, EmailSettings
from channels.email.smtp import EmailSender
from core.channel_accounts import AccountView
from core.channels import EMAIL, Capability, ChannelFacts
from core.i18n import N_
from core.models import IdentityKind, QuarantinedMessage
from core.outbox import Sender

# Enough of a message's head to show an admin its sender and subject.
_SUMMARY_BYTES = 64 * 1024


class EmailChannel(Channel):
    """IMAP in, SMTP out. `imap` and `polling` tune the pollers (tests shorten the waits)."""

    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name="email",
        label=N_("Email"),  # translated where shown (the console)
        icon="email",
        identity_kind=IdentityKind.EMAIL,
        capacity_kind=EMAIL,
        sends=frozenset({Capability.TEXT, Capability.HTML}),
        description="IMAP in, SMTP out, threaded by Message-ID",
        subjects=True,
    )
    settings_model: ClassVar[type[BaseModel] | None] = EmailSettings
    secret_fields: ClassVar[frozenset[str]] = SECRET_FIELDS
    quarantine_media_type: ClassVar[str] = "message/rfc822"
    quarantine_extension: ClassVar[str] = "eml"

    def __init__(self, imap: ImapOptions | None = None, polling: PollOptions | None = None) -> None:
        self.imap = imap or ImapOptions()
        self.polling = polling or PollOptions()

    def sender(self, services: ChannelServices) -> Sender | None:
        return EmailSender(services.sessions, cipher=services.cipher)

    def poller(self, account: AccountView, services: ChannelServices) -> PollingAdapter | None:
        return ImapPoller(account, services, self.polling, imap=self.imap)

    async def check(self, account: AccountView, services: ChannelServices) -> str:
        """IMAP login and SELECT of the folder, then SMTP EHLO and AUTH."""
        mail = EmailSettings.model_validate(dict(account.settings))
        return await check_account(mail, ssl_context=self.imap.ssl_context)

    def describe_quarantined(self, raw: bytes) -> tuple[str, str]:
        """From and Subject as the message's head states them (undecoded if broken)."""
        try:
            headers = BytesHeaderParser(policy=default_policy).parsebytes(raw[:_SUMMARY_BYTES])
            sender, subject = (str(headers.get(name, "") or "") for name in ("from", "subject"))
        except Exception:
            # The message is in quarantine because it is broken; listing it must not break.
            return "", ""
        return sender[:500], subject[:500]

    async def retry_quarantined(
        self,
        session: AsyncSession,
        row: QuarantinedMessage,
        account: AccountView,
        services: ChannelServices,
    ) -> None:
        await import_message(
            session,
            account,
            row.reference,
            row.raw,
            services.store,
            services.policy,
            max_attachment_bytes=self.imap.max_attachment_bytes
            or services.settings.max_attachment_bytes,
        )
