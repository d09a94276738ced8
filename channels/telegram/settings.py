"""A Telegram bot's settings, as an admin enters them (API, CLI, config file).

One account is one bot (several bots at once are several accounts). The bot token is the
one secret (stored encrypted): it authenticates our calls, and the webhook secret that
Telegram sends back in `X-Telegram-Bot-Api-Secret-Token` is derived from it
(`webhook_secret`), so a request to our webhook proves it comes from Telegram.

`mode`: "polling" (getUpdates; works behind NAT, the default when omnicrm has no public
address), "webhook" (Telegram calls `/hooks/telegram/<account>/update`; needs a public https
address: the account's `public_url` or the server's) or "auto" (webhook when there is a
public address, else polling).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TELEGRAM_API = "https://api.telegram.org"
# What BotFather hands out: "<bot id>:<35 characters>".
TOKEN_PATTERN = r"^[0-9]{3,20}:[A-Za-z0-9_-]{30,60}$"  # noqa: S105 - a pattern
Mode = Literal["auto", "polling", "webhook"]


def webhook_secret(token: str) -> str:
    """The `secret_token` registered with setWebhook, which Telegram sends back on every call:
    an HMAC of the bot token, so it is unguessable without the token, the same in every
    server process and after every restart, stored nowhere, and new when the token is."""
    digest = hmac.new(token.encode(), b"omnicrm telegram webhook", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class TelegramSettings(BaseModel):
    """One bot."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(pattern=TOKEN_PATTERN, description="secret: the bot token from @BotFather")
    mode: Mode = Field(
        default="auto",
        description="polling, webhook, or auto (webhook when omnicrm has a public address)",
    )
    public_url: str | None = Field(
        default=None,
        max_length=500,
        description="the https address Telegram calls omnicrm at, if not the server's",
    )
    api_base_url: str = Field(
        default=TELEGRAM_API,
        max_length=500,
        description="the Bot API server (Telegram's, a local Bot API server, or a stand-in)",
    )
    groups: bool = Field(
        default=False,
        description="take messages from group chats too (by default only private chats)",
    )
    leads_from_start: bool = Field(
        default=False,
        description="a /start with a deep-link payload opens a lead (like a web form)",
    )
    greeting: dict[str, str] = Field(
        default_factory=dict,
        max_length=20,
        description="the answer to /start, by language (en, ru, ...); "
        "empty: the built-in greeting in the customer's language",
        json_schema_extra={"cli": False},
    )
    # What getMe said when the account was added or changed (for t.me links and logs).
    bot_id: int | None = Field(default=None, json_schema_extra={"cli": False})
    bot_username: str | None = Field(default=None, max_length=64, json_schema_extra={"cli": False})

    @field_validator("public_url", "api_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
            raise ValueError("must be an http(s) address without query or fragment")
        return value

    @field_validator("greeting")
    @classmethod
    def _greetings(cls, value: dict[str, str]) -> dict[str, str]:
        cleaned = {}
        for language, text in value.items():
            if not re.match(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$", language):
                raise ValueError(f"{language!r} is not a language code such as en or pt-BR")
            if not text.strip() or len(text) > 4096:
                raise ValueError(f"the {language} greeting must be 1 to 4096 characters")
            cleaned[language] = text.strip()
        return cleaned

    def webhook_wanted(self, server_public_url: str | None) -> bool:
        """Whether this bot takes its updates by webhook (else by polling)."""
        if self.mode == "auto":
            return bool(self.public_url or server_public_url)
        return self.mode == "webhook"
