"""Twilio as the registry sees it: one account type, two channels.

- `twilio` holds the accounts (`omnicrm channel add twilio ...`, `/api/v1/channel-accounts`),
  their webhooks (`/hooks/twilio/{account}/message` and `/status`, and the voice webhooks
  `/hooks/twilio/{account}/voice...`), the account check, the media downloads and the call
  controller. It carries no conversations and cannot send itself.
- `voice` carries the calls' conversations (channels/twilio/voice/).
- `sms` and `whatsapp` are the conversation channels: their facts (WhatsApp's 24-hour reply
  window and templates) and their senders, which send through the Twilio accounts.

So one Twilio account serves both channels; an account without `whatsapp_from` serves SMS
only, one with only `whatsapp_from` WhatsApp only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel

from channels.base import (
    BackgroundWork,
    Channel,
    ChannelServices,
    MessageTemplate,
    Telephony,
    WebhookAdapter,
)
from channels.twilio.accounts import PROVIDER, SECRET_FIELDS, sending_account, settings_of
from channels.twilio.client import connect, fetch_account
from channels.twilio.media import TwilioMediaFetcher
from channels.twilio.parse import SMS, WHATSAPP
from channels.twilio.sender import TwilioSender
from channels.twilio.settings import TwilioSettings
from channels.twilio.voice.actions import CallActions, TwilioCallPlacer
from channels.twilio.voice.control import CallController
from channels.twilio.voice.hooks import VOICE_HOOKS
from channels.twilio.voice.store import VOICE
from channels.twilio.webhooks import MessageHook, StatusHook
from core.channel_accounts import AccountView
from core.channels import VOICE as VOICE_KIND
from core.channels import Capability, ChannelFacts
from core.models import IdentityKind
from core.outbox import Sender

WHATSAPP_WINDOW = timedelta(hours=24)


class TwilioChannel(Channel):
    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name=PROVIDER,
        label="Twilio",
        icon="sms",
        identity_kind=None,
        description="the Twilio accounts behind the SMS and WhatsApp channels",
        carries_conversations=False,
    )
    settings_model: ClassVar[type[BaseModel] | None] = TwilioSettings
    secret_fields: ClassVar[frozenset[str]] = SECRET_FIELDS

    def __init__(self) -> None:
        self._webhooks: tuple[WebhookAdapter[Any], ...] = (
            MessageHook(),
            StatusHook(),
            *VOICE_HOOKS,
        )

    def webhooks(self) -> Sequence[WebhookAdapter[Any]]:
        return self._webhooks

    def background(self, services: ChannelServices) -> Sequence[BackgroundWork]:
        return (TwilioMediaFetcher(services).run, CallController(services).run)

    def telephony(self, services: ChannelServices) -> Telephony | None:
        return Telephony(CallActions(services), TwilioCallPlacer(services))

    async def check(self, account: AccountView, services: ChannelServices) -> str:
        settings = settings_of(account)
        if settings is None:
            raise ValueError("the account's settings are incomplete")
        async with connect(settings.account_sid, settings.auth_token, settings.api_base_url) as api:
            found = await fetch_account(api, settings.account_sid)
        if found["status"] not in ("", "active"):
            raise ConnectionError(f"the Twilio account is {found['status']}")
        serving = [
            name
            for name, serves in (
                (SMS, settings.sends_sms),
                (WHATSAPP, settings.sends_whatsapp),
                (VOICE, bool(settings.voice_numbers)),
            )
            if serves
        ]
        name = found["friendly_name"] or settings.account_sid
        return f"signed in to {name}; sends {', '.join(serving)}"


class _TwilioMessaging(Channel):
    """A conversation channel whose messages go through the Twilio accounts."""

    def sender(self, services: ChannelServices) -> Sender | None:
        return TwilioSender(
            self.name, services.sessions, services.cipher, services.settings.public_url
        )


class SmsChannel(_TwilioMessaging):
    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name=SMS,
        label="SMS",
        icon="sms",
        identity_kind=IdentityKind.PHONE,
        sends=frozenset({Capability.TEXT, Capability.MEDIA}),
        description="text messages through Twilio",
    )


class WhatsAppChannel(_TwilioMessaging):
    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name=WHATSAPP,
        label="WhatsApp",
        icon="whatsapp",
        identity_kind=IdentityKind.WHATSAPP,
        sends=frozenset({Capability.TEXT, Capability.MEDIA, Capability.TEMPLATES}),
        reply_window=WHATSAPP_WINDOW,
        description="WhatsApp through Twilio: free text within 24 hours, templates after",
    )

    async def templates(
        self, services: ChannelServices, conversation_id: int | None
    ) -> Sequence[MessageTemplate]:
        async with services.sessions() as session:
            account = await sending_account(session, services.cipher, WHATSAPP, conversation_id)
        if account is None:
            return ()
        return [template.as_message_template() for template in account.settings.templates]


class VoiceChannel(Channel):
    """Phone calls through the Twilio accounts' `voice_numbers` (channels/twilio/voice/): the
    calls' conversations. Their webhooks and REST calls belong to the `twilio` channel;
    an answer in writing goes out by SMS."""

    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name=VOICE,
        label="Phone",
        icon="phone",
        identity_kind=IdentityKind.PHONE,
        capacity_kind=VOICE_KIND,
        answered_by=SMS,
        description="phone calls through Twilio: menus, queues, recordings, callbacks",
    )
