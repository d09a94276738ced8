"""A channel that exists only in the tests: proof that a channel is a folder's worth of
classes and one line in the app's list of channels.

`FakeSms` delivers to phone numbers and keeps what it "sent" in memory. Its accounts have a
`token` (secret: stored encrypted) that signs its webhooks, each a JSON body with
`X-Fake-Signature: <hex HMAC-SHA256 of the body under the token>`:

- `POST /hooks/fakesms/{account}/message`: `{"id", "from", "text"}` (or `{"type": "typing"}`,
  valid but not for us), a customer's message;
- `POST /hooks/fakesms/{account}/status`: `{"id", "status", "error_code"?, "error"?}`, the
  provider's delivery receipt for a message we sent (`id` is what the sender returned).

Tests add it to the app with one line:
`create_app(settings, channels=[*default_channels(), FakeSms()])`. The worked example of
docs/architecture.md ("How to add a channel") is this file.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import (
    Channel,
    ChannelServices,
    Malformed,
    Parsed,
    Unsupported,
    WebhookAdapter,
    WebhookRequest,
)
from core.channel_accounts import AccountView
from core.channels import Capability, ChannelFacts
from core.delivery import record_receipt
from core.errors import InvalidInput
from core.identity import Address, normalize_phone
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind, Receipt, utcnow
from core.outbox import Delivery, Sender

SIGNATURE_HEADER = "X-Fake-Signature"


def sign(token: str, body: bytes) -> str:
    return hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class MemorySender(Sender):
    sent: list[Delivery] = field(default_factory=list)

    async def do_send(self, delivery: Delivery) -> str:
        self.sent.append(delivery)
        return f"fake-{delivery.outbox_id}"


class FakeSmsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=8, max_length=200)
    sender_number: str = Field(default="+15550100", max_length=20)


class FakeMessageHook(WebhookAdapter[InboundEvent]):
    hook: ClassVar[str] = "message"

    def __init__(self) -> None:
        self.parsed = 0  # how many requests reached the parser

    def do_authenticate(self, request: WebhookRequest, account: AccountView) -> bool:
        return authentic(request, account)

    def do_parse(
        self, request: WebhookRequest, account: AccountView
    ) -> Parsed[InboundEvent] | Unsupported:
        self.parsed += 1
        data = request.json()
        if not isinstance(data, dict):
            raise Malformed("the body must be a JSON object")
        if data.get("type") == "typing":
            return Unsupported("typing notifications carry no message")
        try:
            number = normalize_phone(str(data["from"]), "US")
            return Parsed(
                [
                    InboundEvent(
                        channel="fakesms",
                        external_id=str(data["id"]),
                        addresses=[Address(IdentityKind.PHONE, number)],
                        text=str(data["text"]),
                        queue_id=account.queue_id,
                    )
                ]
            )
        except (KeyError, ValueError, InvalidInput) as exc:
            raise Malformed(f"a message needs id, from and text: {exc}") from None

    async def do_store(
        self,
        session: AsyncSession,
        parsed: Parsed[InboundEvent],
        account: AccountView,
        services: ChannelServices,
    ) -> Any:
        return [await ingest(session, event, services.policy) for event in parsed.items]


@dataclass(frozen=True)
class FakeReceipt:
    provider_id: str
    status: Receipt
    error_code: str | None
    error: str | None


def authentic(request: WebhookRequest, account: AccountView) -> bool:
    sent = request.header(SIGNATURE_HEADER) or ""
    return hmac.compare_digest(sent, sign(str(account.setting("token")), request.body))


class FakeStatusHook(WebhookAdapter[FakeReceipt]):
    """Delivery receipts, handed to core's receipt function (every channel calls the same
    one: channel, provider message id, receipt, error code, text, time)."""

    hook: ClassVar[str] = "status"

    def do_authenticate(self, request: WebhookRequest, account: AccountView) -> bool:
        return authentic(request, account)

    def do_parse(self, request: WebhookRequest, account: AccountView) -> Parsed[FakeReceipt]:
        data = request.json()
        if not isinstance(data, dict) or not data.get("id") or not data.get("status"):
            raise Malformed("a receipt needs id and status")
        code, error = data.get("error_code"), data.get("error")
        try:
            status = Receipt(str(data["status"]))
        except ValueError:
            raise Malformed(f"unknown receipt status {data['status']!r}") from None
        return Parsed(
            [
                FakeReceipt(
                    str(data["id"]),
                    status,
                    str(code) if code is not None else None,
                    str(error) if error is not None else None,
                )
            ]
        )

    async def do_store(
        self,
        session: AsyncSession,
        parsed: Parsed[FakeReceipt],
        account: AccountView,
        services: ChannelServices,
    ) -> Any:
        # The one receipt function every channel reports delivery through.
        for receipt in parsed.items:
            await record_receipt(
                session,
                channel="fakesms",
                provider_id=receipt.provider_id,
                receipt=receipt.status,
                error_code=receipt.error_code,
                error_text=receipt.error,
                at=utcnow(),
            )


class FakeSms(Channel):
    facts: ClassVar[ChannelFacts] = ChannelFacts(
        name="fakesms",
        label="Fake SMS",
        icon="sms",
        identity_kind=IdentityKind.PHONE,
        sends=frozenset({Capability.TEXT}),
    )
    settings_model: ClassVar[type[BaseModel] | None] = FakeSmsSettings
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})

    def __init__(self) -> None:
        self.outbox = MemorySender()
        self.message_hook = FakeMessageHook()
        self.status_hook = FakeStatusHook()

    def webhooks(self) -> Sequence[WebhookAdapter[Any]]:
        return (self.message_hook, self.status_hook)

    def sender(self, services: ChannelServices) -> Sender | None:
        return self.outbox

    async def check(self, account: AccountView, services: ChannelServices) -> str:
        if str(account.setting("token")).startswith("bad"):
            raise ConnectionError("the provider refused the token")
        return f"signed in as {account.setting('sender_number')}"
