"""The email channel as the registry sees it: its facts and its sender.

Mailboxes are still their own table and the pollers their own service
(`channels.email.service`); moving them onto channel accounts and `PollingAdapter` is the
next step of the channel interface.
"""

from __future__ import annotations

from typing import ClassVar

from channels.base import Channel, ChannelServices
from channels.email.smtp import EmailSender
from core.channels import EMAIL, Capability, ChannelFacts
from core.models import IdentityKind
from core.outbox import Sender


class EmailChannel(Channel):
    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name="email",
        label="Email",
        icon="email",
        identity_kind=IdentityKind.EMAIL,
        capacity_kind=EMAIL,
        sends=frozenset({Capability.TEXT, Capability.HTML}),
        description="IMAP in, SMTP out, threaded by Message-ID",
    )

    def sender(self, services: ChannelServices) -> Sender | None:
        return EmailSender(services.sessions, cipher=services.cipher)
