"""Twilio's webhooks: inbound messages and status callbacks.

Both authenticate with the official library's `RequestValidator` over the address Twilio
called (the account's `public_url`, else the server's: `WebhookRequest.url`), before
anything is parsed: form-encoded bodies with their parameters, JSON bodies by the
`bodySHA256` in the signed address. The message hook is idempotent on MessageSid (ingest's
unique key) and answers an empty TwiML `<Response/>` after the commit; the status hook
applies receipts by rank (core.delivery), so repeats and out-of-order callbacks change
nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from multidict import MultiDict
from sqlalchemy.ext.asyncio import AsyncSession
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from channels.base import (
    ChannelServices,
    Malformed,
    Parsed,
    Unsupported,
    WebhookAdapter,
    WebhookReply,
    WebhookRequest,
)
from channels.media import queue_fetch
from channels.twilio.parse import (
    OPTED_OUT,
    InboundMessage,
    StatusReport,
    parse_message,
    parse_status,
)
from core.channel_accounts import AccountView
from core.delivery import record_receipt
from core.identity import normalize_phone
from core.ingest import ingest
from core.models import IdentityKind
from core.reply_rules import set_opt_out

SIGNATURE_HEADER = "X-Twilio-Signature"
# "Nothing to send back", built like every TwiML omnicrm answers: with the library's builders.
EMPTY_TWIML = str(MessagingResponse()).encode("utf-8")


def signed_url(request: WebhookRequest, account: AccountView) -> str:
    """The address Twilio signed: the account's own public_url replaces the server's."""
    override = account.setting("public_url")
    if not override:
        return request.url
    _, _, rest = request.url.partition("/hooks/")
    return f"{str(override).rstrip('/')}/hooks/{rest}"


def is_signed(request: WebhookRequest, account: AccountView) -> bool:
    """Whether `X-Twilio-Signature` is the account's auth token's signature of the request."""
    signature = request.header(SIGNATURE_HEADER)
    token = account.setting("auth_token")
    if not signature or not token:
        return False
    url = signed_url(request, account)
    validator = RequestValidator(str(token))
    query = dict(parse_qsl(urlsplit(url).query))
    if "bodySHA256" in query:
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return bool(validator.validate(url, body, signature))
    try:
        params: MultiDict[str] = MultiDict(
            parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        )
    except (UnicodeDecodeError, ValueError):
        return False
    return bool(validator.validate(url, params, signature))


def fields_of(request: WebhookRequest) -> dict[str, str]:
    """The webhook's parameters: form-encoded, or a JSON object (the bodySHA256 variant)."""
    content_type = (request.header("Content-Type") or "").lower()
    if "json" in content_type:
        data = request.json()
        if not isinstance(data, dict):
            raise Malformed("the JSON body must be an object")
        return {str(key): str(value) for key, value in data.items() if value is not None}
    return request.form()


def _twiml(how: str) -> WebhookReply:
    return WebhookReply(200, EMPTY_TWIML, "text/xml", how)


class MessageHook(WebhookAdapter[InboundMessage]):
    """`POST /hooks/twilio/{account}/message`: the "A message comes in" webhook."""

    hook: ClassVar[str] = "message"

    def do_authenticate(self, request: WebhookRequest, account: AccountView) -> bool:
        return is_signed(request, account)

    def do_parse(
        self, request: WebhookRequest, account: AccountView
    ) -> Parsed[InboundMessage] | Unsupported:
        parsed = parse_message(
            fields_of(request),
            account_sid=str(account.setting("account_sid")),
            account_id=account.id,
            queue_id=account.queue_id,
        )
        return parsed if isinstance(parsed, Unsupported) else Parsed([parsed])

    async def do_store(
        self,
        session: AsyncSession,
        parsed: Parsed[InboundMessage],
        account: AccountView,
        services: ChannelServices,
    ) -> Any:
        results = []
        for message in parsed.items:
            result = await ingest(session, message.event, services.policy)
            results.append(result)
            if not result.created:
                continue  # Twilio's retry of a message we have: nothing more to do
            for media in message.media:
                await queue_fetch(
                    session,
                    channel=message.event.channel,
                    account_id=account.id,
                    interaction_id=result.interaction_id,
                    position=media.position,
                    url=media.url,
                )
            if message.opt_out is not None:
                number = normalize_phone(message.number, services.policy.default_region)
                reason = "replied STOP" if message.opt_out == "STOP" else None
                for kind in (IdentityKind.PHONE, IdentityKind.WHATSAPP):
                    await set_opt_out(session, kind, number, reason)
        return results

    def do_acknowledge(self, outcome: Any, how: str) -> WebhookReply:
        return _twiml(how)


class StatusHook(WebhookAdapter[StatusReport]):
    """`POST /hooks/twilio/{account}/status`: the status callback of every message we send
    (its address names our outbox item and attempt)."""

    hook: ClassVar[str] = "status"

    def do_authenticate(self, request: WebhookRequest, account: AccountView) -> bool:
        return is_signed(request, account)

    def do_parse(
        self, request: WebhookRequest, account: AccountView
    ) -> Parsed[StatusReport] | Unsupported:
        query = dict(parse_qsl(urlsplit(request.url).query))
        parsed = parse_status(
            fields_of(request), query, account_sid=str(account.setting("account_sid"))
        )
        return parsed if isinstance(parsed, Unsupported) else Parsed([parsed])

    async def do_store(
        self,
        session: AsyncSession,
        parsed: Parsed[StatusReport],
        account: AccountView,
        services: ChannelServices,
    ) -> Any:
        changed = []
        for report in parsed.items:
            applied = await record_receipt(
                session,
                channel=report.channel,
                provider_id=report.message_sid,
                receipt=report.receipt,
                error_code=report.error_code,
                error_text=report.error_text,
                outbox_id=report.outbox_id,
                attempt=report.attempt,
            )
            changed.append(applied)
            if applied and report.error_code == OPTED_OUT and report.recipient:
                kind = IdentityKind.WHATSAPP if report.channel == "whatsapp" else IdentityKind.PHONE
                await set_opt_out(session, kind, report.recipient, "Twilio 21610: unsubscribed")
        return changed

    def do_acknowledge(self, outcome: Any, how: str) -> WebhookReply:
        return _twiml(how)
