"""A Twilio account's settings, as an admin enters them (API, CLI, config file).

One Twilio account serves both channels: SMS from its numbers (or its Messaging Service) and
WhatsApp from its WhatsApp sender. The auth token is the one secret: it signs Twilio's
webhooks and authenticates our calls, and is stored encrypted.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from channels.base import MessageTemplate
from channels.twilio.numbers import e164
from channels.twilio.voice.settings import VoiceNumber

TWILIO_API = "https://api.twilio.com"
WHATSAPP_PREFIX = "whatsapp:"
MAX_TEMPLATES = 100
_PLACEHOLDER = re.compile(r"\{\{\s*(\d{1,2})\s*\}\}")


class Template(BaseModel):
    """A WhatsApp template approved in Twilio's Content API: what operators pick outside the
    24-hour window. `text` is how it reads, with {{1}}, {{2}}… where `variables` go."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    content_sid: str = Field(pattern=r"^HX[0-9a-fA-F]{32}$")
    text: str = Field(default="", max_length=1600)
    variables: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="a label for each placeholder, {{1}} first",
    )

    @model_validator(mode="after")
    def _placeholders_named(self) -> Template:
        used = {int(number) for number in _PLACEHOLDER.findall(self.text)}
        if used and max(used) > len(self.variables):
            raise ValueError(
                f"the text uses {{{{{max(used)}}}}} but only {len(self.variables)} "
                "variables are named"
            )
        return self

    def as_message_template(self) -> MessageTemplate:
        return MessageTemplate(
            self.name, self.text, tuple(self.variables), {"content_sid": self.content_sid}
        )


class TwilioSettings(BaseModel):
    """One Twilio account. SMS goes out from `from_numbers` (the first unless the customer
    wrote to another of them) or the Messaging Service; WhatsApp from `whatsapp_from`."""

    model_config = ConfigDict(extra="forbid")

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: str = Field(min_length=8, max_length=200, description="secret")
    from_numbers: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="SMS sender numbers, +E.164",
        json_schema_extra={"cli": "from"},
    )
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    whatsapp_from: str | None = Field(
        default=None, max_length=40, description="the WhatsApp sender, whatsapp:+E.164"
    )
    public_url: str | None = Field(
        default=None,
        max_length=500,
        description="the address Twilio calls omnicrm at, if not the server's public_url",
    )
    api_base_url: str = Field(
        default=TWILIO_API, max_length=500, description="Twilio's REST API (or a stand-in)"
    )
    templates: list[Template] = Field(default_factory=list, max_length=MAX_TEMPLATES)
    voice_numbers: list[VoiceNumber] = Field(
        default_factory=list,
        max_length=50,
        description=(
            "numbers that take calls (+E.164), each with its call flow; the CLI sets a number"
            " with the default flow, menus come through the API or the config file"
        ),
        json_schema_extra={"cli": "voice-number"},
    )

    @field_validator("from_numbers")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        numbers = [e164(item) for item in value]
        if len(set(numbers)) != len(numbers):
            raise ValueError("a number is listed twice")
        return numbers

    @field_validator("voice_numbers", mode="before")
    @classmethod
    def _plain_numbers(cls, value: object) -> object:
        """A bare number (the CLI's `--voice-number +E.164`) is that number's default flow."""
        if isinstance(value, list):
            return [{"number": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("whatsapp_from")
    @classmethod
    def _whatsapp(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        number = value.strip().removeprefix(WHATSAPP_PREFIX)
        return f"{WHATSAPP_PREFIX}{e164(number)}"

    @field_validator("public_url", "api_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
            raise ValueError("must be an http(s) address without query or fragment")
        return value

    @model_validator(mode="after")
    def _can_send(self) -> TwilioSettings:
        if not (
            self.from_numbers
            or self.messaging_service_sid
            or self.whatsapp_from
            or self.voice_numbers
        ):
            raise ValueError(
                "give at least one sender: from_numbers, messaging_service_sid, whatsapp_from"
                " or voice_numbers"
            )
        numbers = [item.number for item in self.voice_numbers]
        if len(set(numbers)) != len(numbers):
            raise ValueError("a voice number is listed twice")
        names = [template.name for template in self.templates]
        if len(set(names)) != len(names):
            raise ValueError("two templates have the same name")
        return self

    @property
    def sends_sms(self) -> bool:
        return bool(self.from_numbers or self.messaging_service_sid)

    @property
    def sends_whatsapp(self) -> bool:
        return self.whatsapp_from is not None

    def voice_number(self, number: str) -> VoiceNumber | None:
        return next((item for item in self.voice_numbers if item.number == number), None)

    def template(self, name: str) -> Template | None:
        return next((item for item in self.templates if item.name == name), None)
