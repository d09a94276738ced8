"""Status links: a signed, expiring token that lets a customer see their request's state (and
an order's status) at `/status/{token}` without signing in (web/routes_status.py).

A token is the URL-safe base64 (no padding) of

    version (1 byte, 1) | conversation id (unsigned LEB128) | expiry (unsigned LEB128, Unix
    seconds, UTC) | order number (UTF-8, the rest; none when empty) | MAC (16 bytes)

where MAC is the first 128 bits of HMAC-SHA256 over everything before it, under a key derived
from the server's secret key and this purpose (so the key signs nothing else: visitor tokens
and session cookies have keys of their own). A link for request 42 and order 10330 is about
40 characters. The payload is signed, not encrypted: whoever holds the link can read the ids
in it, which is why the page shows nothing that the link does not already name but the
request's state and the order's status. Rotating `OMNICRM_SECRET_KEY` voids every link.

`read_token` checks, in this order: the shape (malformed), the signature (bad_signature,
compared in constant time), the payload's fields (malformed), the expiry (expired); so
"expired" is said only of a link this server made. Pure: no I/O; the time is the caller's,
by default the process clock (`core.clock`).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.clock import utcnow

VERSION = 1
MAC_BYTES = 16
PURPOSE = "omnicrm status links"
DEFAULT_DAYS = 30
MAX_ORDER_NUMBER = 100
# No token this module makes is longer (1 + 10 + 10 + 4 * MAX_ORDER_NUMBER + 16 bytes).
MAX_TOKEN_CHARS = 600
_MAX_ID = 2**63 - 1
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class Rejected(enum.StrEnum):
    """Why a token is not read (web/routes_status.py shows none of these words)."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"


@dataclass(frozen=True)
class StatusLink:
    """What a token says: the conversation, an order (or none), and until when it holds."""

    conversation_id: int
    order_number: str | None
    expires_at: datetime


def key_from_secret(secret_key: str) -> bytes:
    return hashlib.sha256(f"{PURPOSE}\0{secret_key}".encode()).digest()


def expiry(days: float = DEFAULT_DAYS, now: datetime | None = None) -> datetime:
    """When a link made now expires (whole seconds: what the token keeps)."""
    moment = (now or utcnow()) + timedelta(days=days)
    return moment.astimezone(UTC).replace(microsecond=0)


def check_order_number(order_number: str | None) -> str | None:
    """The order number as a token keeps it (stripped; blank is none); ValueError if it
    cannot be one (too long, control characters)."""
    if order_number is None or not order_number.strip():
        return None
    number = order_number.strip()
    if len(number) > MAX_ORDER_NUMBER or _CONTROL.search(number):
        raise ValueError(
            f"an order number is at most {MAX_ORDER_NUMBER} characters, without control characters"
        )
    return number


def make_token(
    secret_key: str, conversation_id: int, order_number: str | None, expires_at: datetime
) -> str:
    """The token of a link to `conversation_id` (and `order_number`) until `expires_at`."""
    if not 1 <= conversation_id <= _MAX_ID:
        raise ValueError("a conversation id is a positive 64-bit number")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at needs a time zone")
    seconds = int(expires_at.timestamp())
    if seconds < 0:
        raise ValueError("expires_at is before 1970")
    number = check_order_number(order_number)
    body = (
        bytes([VERSION])
        + _varint(conversation_id)
        + _varint(seconds)
        + (number.encode() if number else b"")
    )
    return _b64(body + _mac(key_from_secret(secret_key), body))


def read_token(secret_key: str, token: str, now: datetime | None = None) -> StatusLink | Rejected:
    """What `token` says if this server made it and it has not expired at `now` (the
    process clock's now by default); else why not."""
    if not 0 < len(token) <= MAX_TOKEN_CHARS or not _TOKEN.fullmatch(token):
        return Rejected.MALFORMED
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        return Rejected.MALFORMED
    # One spelling per token: trailing bits that decoding ignores would make twins.
    if _b64(raw) != token or len(raw) < 1 + 2 + MAC_BYTES or raw[0] != VERSION:
        return Rejected.MALFORMED
    body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(key_from_secret(secret_key), body)):
        return Rejected.BAD_SIGNATURE
    link = _payload(body[1:])
    if link is None:
        return Rejected.MALFORMED
    if (now or utcnow()) >= link.expires_at:
        return Rejected.EXPIRED
    return link


def _payload(data: bytes) -> StatusLink | None:
    conversation_id, rest = _read_varint(data)
    if conversation_id is None or not 1 <= conversation_id <= _MAX_ID:
        return None
    seconds, rest = _read_varint(rest)
    if seconds is None:
        return None
    try:
        expires_at = datetime.fromtimestamp(seconds, UTC)
        number = check_order_number(rest.decode()) if rest else None
    except (ValueError, OverflowError, OSError, UnicodeDecodeError):
        return None
    if rest and number != rest.decode():
        return None  # a number this module would have stored otherwise
    return StatusLink(conversation_id, number, expires_at)


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes) -> tuple[int | None, bytes]:
    """A minimal unsigned LEB128 number of at most 10 bytes, and what follows it."""
    value = 0
    for index, byte in enumerate(data[:10]):
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                return None, data  # not minimal: one number, one spelling
            return value, data[index + 1 :]
    return None, data
