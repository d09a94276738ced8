"""Twilio's webhook parameters to what omnicrm stores; pure functions, no I/O.

Inbound messages (`POST .../message`): `MessageSid`, `AccountSid`, `From`, `To`, `Body`,
`ProfileName` (WhatsApp), `NumMedia` with `MediaUrl{n}`/`MediaContentType{n}`, `OptOutType`
(STOP/START/HELP with Advanced Opt-Out). A `From` of `whatsapp:+E164` is the WhatsApp
channel, with the same number as a phone address too, so the SMS and WhatsApp sides of one
person are one contact. Status callbacks (`POST .../status`): `MessageSid`,
`MessageStatus`, `ErrorCode`.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from channels.base import Malformed, Unsupported
from channels.media import pending_attachment
from channels.twilio.numbers import e164
from channels.twilio.settings import WHATSAPP_PREFIX
from core.identity import Address
from core.ingest import InboundEvent
from core.models import IdentityKind, Receipt

SMS: Final = "sms"
WHATSAPP: Final = "whatsapp"
MAX_MEDIA = 10  # Twilio sends at most 10 media items with a message
MAX_SID = 64

# Twilio's MessageStatus values that are receipts; the others (queued, sending, accepted,
# scheduled, canceled...) tell nothing our outbox does not know.
RECEIPTS: Final[dict[str, Receipt]] = {
    "sent": Receipt.SENT,
    "delivered": Receipt.DELIVERED,
    "read": Receipt.READ,
    "undelivered": Receipt.FAILED,
    "failed": Receipt.FAILED,
}

# What operators read for the codes they meet most (Twilio's error dictionary has the rest).
KNOWN_ERRORS: Final[dict[str, str]] = {
    "21211": "invalid 'To' phone number",
    "21408": "permission to send to this region is not enabled",
    "21610": "the recipient unsubscribed (replied STOP)",
    "21614": "the number cannot receive SMS",
    "30003": "unreachable destination handset",
    "30004": "message blocked",
    "30005": "unknown destination handset",
    "30006": "landline or unreachable carrier",
    "30007": "filtered as spam by the carrier",
    "30008": "unknown error from the carrier",
    "63016": "outside the 24-hour WhatsApp window: only a template can be sent",
}
OPTED_OUT: Final = "21610"
OUTSIDE_WINDOW: Final = "63016"


@dataclass(frozen=True)
class Media:
    position: int
    url: str
    content_type: str


@dataclass(frozen=True)
class InboundMessage:
    """One inbound message: the event ingest stores, the media to fetch after it, and an
    opt-out keyword's effect on the sender's number."""

    event: InboundEvent
    media: tuple[Media, ...] = ()
    opt_out: str | None = None  # "STOP" or "START"
    number: str = ""


@dataclass(frozen=True)
class StatusReport:
    """A status callback: the receipt for one of our messages."""

    channel: str
    message_sid: str
    receipt: Receipt
    error_code: str | None
    error_text: str | None
    recipient: str
    outbox_id: int | None = None
    attempt: int | None = None
    raw_status: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def describe_error(code: str | None, message: str | None = None) -> str:
    """An operator's line for a Twilio error code (and Twilio's own message if it gave one)."""
    known = KNOWN_ERRORS.get(code or "")
    if message and known:
        return f"{message} ({known})"
    if message or known:
        return message or known or ""
    return f"Twilio error {code}" if code else ""


def _required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value:
        raise Malformed(f"{name} is missing")
    return value


def _sid(fields: Mapping[str, str]) -> str:
    sid = fields.get("MessageSid") or fields.get("SmsMessageSid") or fields.get("SmsSid") or ""
    sid = sid.strip()
    if not sid or len(sid) > MAX_SID or not sid.isalnum():
        raise Malformed("MessageSid is missing or not a Twilio SID")
    return sid


def _check_account(fields: Mapping[str, str], account_sid: str) -> None:
    sent = fields.get("AccountSid", "").strip()
    if sent and sent != account_sid:
        raise Malformed("AccountSid is not this account's")


def channel_of(address: str) -> tuple[str, str]:
    """The channel and bare number of a Twilio address (`whatsapp:+1...` or `+1...`)."""
    if address.startswith(WHATSAPP_PREFIX):
        return WHATSAPP, address.removeprefix(WHATSAPP_PREFIX)
    return SMS, address


def parse_message(
    fields: Mapping[str, str], *, account_sid: str, account_id: int, queue_id: int | None
) -> InboundMessage | Unsupported:
    """An inbound message webhook's fields to what is stored; Malformed if Twilio would never
    send them, Unsupported for valid input that is no customer message of ours."""
    _check_account(fields, account_sid)
    sid = _sid(fields)
    channel, raw_number = channel_of(_required(fields, "From"))
    try:
        number = e164(raw_number)
    except ValueError:
        # Short codes and alphanumeric senders are no person to answer.
        return Unsupported(f"the sender {raw_number[:40]!r} is not a phone number")
    addresses = [Address(IdentityKind.PHONE, number)]
    if channel == WHATSAPP:
        addresses.insert(0, Address(IdentityKind.WHATSAPP, number))
    media = _media(fields, sid)
    attachments = [
        pending_attachment(_filename(item, index), item.content_type)
        for index, item in enumerate(media)
    ]
    opt_out = fields.get("OptOutType", "").strip().upper()
    meta: dict[str, Any] = {
        "twilio": {
            "account_id": account_id,
            "to": fields.get("To", "")[:60],
            **(
                {"messaging_service_sid": fields["MessagingServiceSid"][:64]}
                if fields.get("MessagingServiceSid")
                else {}
            ),
        }
    }
    if opt_out in ("STOP", "START", "HELP"):
        meta["opt_out_type"] = opt_out
    event = InboundEvent(
        channel=channel,
        external_id=sid,
        addresses=addresses,
        display_name=fields.get("ProfileName", "").strip()[:200],
        text=fields.get("Body", ""),
        attachments=attachments,
        meta=meta,
        queue_id=queue_id,
    )
    return InboundMessage(
        event,
        tuple(media),
        opt_out if opt_out in ("STOP", "START") else None,
        number,
    )


def _media(fields: Mapping[str, str], sid: str) -> list[Media]:
    raw = fields.get("NumMedia", "0").strip() or "0"
    if not raw.isdigit() or int(raw) > MAX_MEDIA:
        raise Malformed(f"NumMedia must be 0 to {MAX_MEDIA}")
    found = []
    for position in range(int(raw)):
        url = _required(fields, f"MediaUrl{position}")
        if not url.startswith(("https://", "http://")):
            raise Malformed(f"MediaUrl{position} is not an http(s) address")
        content_type = fields.get(f"MediaContentType{position}", "").strip()[:200]
        found.append(Media(position, url, content_type or "application/octet-stream"))
    return found


def _filename(media: Media, index: int) -> str:
    extension = mimetypes.guess_extension(media.content_type.split(";")[0].strip()) or ""
    return f"media-{index + 1}{extension}"


def parse_status(
    fields: Mapping[str, str], query: Mapping[str, str], *, account_sid: str
) -> StatusReport | Unsupported:
    """A status callback's fields (and our own `outbox`/`attempt` query parameters)."""
    _check_account(fields, account_sid)
    sid = _sid(fields)
    status = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").strip().lower()
    if not status:
        raise Malformed("MessageStatus is missing")
    receipt = RECEIPTS.get(status)
    if receipt is None:
        return Unsupported(f"status {status[:30]!r} is no receipt")
    channel, _ = channel_of(fields.get("From", "") or fields.get("To", ""))
    code = fields.get("ErrorCode", "").strip() or None
    if code is not None and (len(code) > 10 or not code.isdigit()):
        raise Malformed("ErrorCode must be a number")
    error_text = None
    if receipt == Receipt.FAILED:
        error_text = describe_error(code, fields.get("ErrorMessage", "").strip()[:500] or None)
        error_text = error_text or f"Twilio reported the message {status}"
    return StatusReport(
        channel=channel,
        message_sid=sid,
        receipt=receipt,
        error_code=code,
        error_text=error_text,
        recipient=channel_of(fields.get("To", ""))[1],
        outbox_id=_positive(query.get("outbox")),
        attempt=_positive(query.get("attempt")),
        raw_status=status,
    )


def _positive(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise Malformed("outbox and attempt must be numbers")
    return int(raw)
