"""The website chat as the registry sees it: one account per widget; the widget's HTTP side
is web/routes_webchat.py, its script web/static/widget/. See docs/channels/webchat.md."""

from __future__ import annotations

from html import escape
from typing import ClassVar
from urllib.parse import quote

from pydantic import BaseModel

from channels.base import Channel, ChannelServices
from channels.webchat.parse import CHANNEL
from channels.webchat.service import provider_id
from channels.webchat.settings import WebchatSettings
from core.channel_accounts import AccountView
from core.channels import Capability, ChannelFacts
from core.i18n import N_
from core.models import IdentityKind
from core.outbox import Delivery, PermanentSendError, Sender


class WebchatSender(Sender):
    """An answer is in the database once it is queued, where the widget reads it (live over
    its socket, or when the visitor comes back): sending is saying so."""

    async def do_send(self, delivery: Delivery) -> str:
        interaction_id = delivery.payload.get("interaction_id")
        if not isinstance(interaction_id, int):
            raise PermanentSendError("the answer has no stored message to show")
        return provider_id(interaction_id)


class WebchatChannel(Channel):
    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name=CHANNEL,
        label=N_("Website chat"),  # translated where shown (the console)
        icon="chat",
        identity_kind=IdentityKind.WEB,
        sends=frozenset({Capability.TEXT}),
        description="the chat widget on the company's website",
    )
    settings_model: ClassVar[type[BaseModel] | None] = WebchatSettings

    def sender(self, services: ChannelServices) -> Sender | None:
        return WebchatSender()

    def embed(self, account: str, base_url: str) -> str | None:
        source = f"{base_url.rstrip('/')}/static/widget/widget.js?account={quote(account, safe='')}"
        return f'<script type="module" src="{escape(source)}"></script>'

    async def check(self, account: AccountView, services: ChannelServices) -> str:
        settings = WebchatSettings.model_validate(dict(account.settings))
        return f"shows on {', '.join(settings.allowed_origins)}"
