"""The channel registry: a list of channels becomes everything the application needs.

`web/app.py` builds one from `default_channels()` (or the list it is given) and takes from it:
the senders of the outbox worker, the webhook routes (`/hooks/{channel}/{account}/{hook}`),
the pollers of enabled accounts, health and metrics labels, the channel facts core uses to
validate replies and count capacity (installed process-wide, `core.channels.install`), the
console's channel metadata (`GET /api/v1/channels`), and the settings models of the
channel-account API, CLI and config file. Nothing else names a channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from channels.base import BackgroundWork, Channel, ChannelServices, Telephony, WebhookAdapter
from core import channels as core_channels
from core.channels import ChannelFacts
from core.errors import InvalidInput, NotFound, validation_fields
from core.outbox import Sender


class ChannelRegistry:
    """The channels one application runs, by name."""

    def __init__(self, channels: Iterable[Channel]) -> None:
        self._channels: dict[str, Channel] = {}
        self._webhooks: dict[tuple[str, str], WebhookAdapter[Any]] = {}
        for channel in channels:
            if channel.name in self._channels:
                raise ValueError(f"two channels are named {channel.name!r}")
            self._channels[channel.name] = channel
            for adapter in channel.webhooks():
                key = (channel.name, adapter.hook)
                if key in self._webhooks:
                    raise ValueError(f"channel {channel.name} has two webhooks {adapter.hook!r}")
                self._webhooks[key] = adapter

    @property
    def channels(self) -> Sequence[Channel]:
        return list(self._channels.values())

    def facts(self) -> list[ChannelFacts]:
        return [channel.facts for channel in self._channels.values()]

    def install(self) -> None:
        """Tell core which channels this process runs (replies, capacity, descriptions)."""
        core_channels.install(self.facts())

    def get(self, name: str) -> Channel | None:
        return self._channels.get(name)

    def require(self, name: str, field: str = "channel") -> Channel:
        channel = self._channels.get(name)
        if channel is None:
            known = ", ".join(sorted(self._channels))
            raise InvalidInput(f"no channel {name!r}; channels: {known}", field=field)
        return channel

    def with_accounts(self) -> list[Channel]:
        """The channels whose accounts are configured (they have a settings model)."""
        return [channel for channel in self._channels.values() if channel.settings_model]

    def account_channel(self, name: str, field: str = "channel") -> Channel:
        channel = self.require(name, field)
        if channel.settings_model is None:
            able = ", ".join(sorted(c.name for c in self.with_accounts()))
            raise InvalidInput(
                f"channel {name!r} has no accounts; channels with accounts: {able}", field=field
            )
        return channel

    def webhook(self, channel: str, hook: str) -> WebhookAdapter[Any]:
        adapter = self._webhooks.get((channel, hook))
        if adapter is None:
            raise NotFound(f"no webhook {hook!r} for channel {channel!r}")
        return adapter

    def webhooks(self) -> Mapping[tuple[str, str], WebhookAdapter[Any]]:
        return dict(self._webhooks)

    def senders(self, services: ChannelServices) -> dict[str, Sender]:
        found: dict[str, Sender] = {}
        for channel in self._channels.values():
            sender = channel.sender(services)
            if sender is not None:
                found[channel.name] = sender
        return found

    def telephony(self, services: ChannelServices) -> Telephony | None:
        """The calls of the first channel that carries them (None: no telephony)."""
        for channel in self._channels.values():
            found = channel.telephony(services)
            if found is not None:
                return found
        return None

    def background(self, services: ChannelServices) -> list[BackgroundWork]:
        """The channels' background work, started with the app's background workers."""
        return [
            task for channel in self._channels.values() for task in channel.background(services)
        ]

    def describe(self) -> list[dict[str, Any]]:
        """What the console needs to know of each channel (GET /api/v1/channels)."""
        return [
            {
                "name": facts.name,
                "label": facts.label,
                "icon": facts.icon,
                "description": facts.description,
                "address_kind": facts.identity_kind,
                "capacity_kind": facts.capacity_kind,
                "sends": sorted(facts.sends),
                "can_send": facts.can_send,
                "answered_by": facts.answered_by,
                "reply_window_seconds": (
                    int(facts.reply_window.total_seconds()) if facts.reply_window else None
                ),
                "has_accounts": channel.settings_model is not None,
                "carries_conversations": facts.carries_conversations,
            }
            for channel in self._channels.values()
            for facts in (channel.facts,)
        ]


def validated_settings(channel: Channel, raw: Mapping[str, Any]) -> dict[str, Any]:
    """An account's settings checked by the channel's model, with its defaults filled in;
    400 with the fields at fault. For a change, pass the stored settings merged with it."""
    model: type[BaseModel] | None = channel.settings_model
    if model is None:
        raise InvalidInput(f"channel {channel.name!r} has no accounts", field="channel")
    try:
        return model.model_validate(dict(raw)).model_dump(mode="json")
    except ValidationError as exc:
        error = InvalidInput("the account's settings are invalid")
        error.fields = {
            f"settings.{name}" if name != "settings" else name: message
            for name, message in validation_fields(exc, "settings").items()
        }
        raise error from None


def default_channels() -> list[Channel]:
    """The channels omnicrm runs out of the box."""
    from channels.api import ApiChannel
    from channels.email.plugin import EmailChannel
    from channels.telegram.plugin import TelegramChannel
    from channels.twilio.plugin import SmsChannel, TwilioChannel, VoiceChannel, WhatsAppChannel
    from channels.webchat.plugin import WebchatChannel
    from channels.webform import WebFormChannel

    return [
        EmailChannel(),
        WebFormChannel(),
        ApiChannel(),
        TwilioChannel(),
        SmsChannel(),
        WhatsAppChannel(),
        VoiceChannel(),
        TelegramChannel(),
        WebchatChannel(),
    ]
