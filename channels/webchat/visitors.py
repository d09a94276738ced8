"""Who a website visitor is: an anonymous id in a token the widget keeps (local storage).

A visitor token is `<account id>.<visitor id>.<signature>`: the visitor id is random (128 bits),
the signature an HMAC of both under a key derived from the server's secret, so a visitor can
neither make up another's token nor carry one to another widget. The visitor id is their
identity (`web` kind, address `webchat:<visitor id>`): the chat joins the person's history
like any other address, and their pre-chat email or phone joins the rest.

Pure: no I/O; the key comes from the caller (`key_from_secret`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

ADDRESS_PREFIX = "webchat:"
_VISITOR = re.compile(r"^[A-Za-z0-9_-]{22}$")


def key_from_secret(secret_key: str) -> bytes:
    return hashlib.sha256(f"omnicrm webchat visitors\0{secret_key}".encode()).digest()


@dataclass(frozen=True)
class Visitor:
    account_id: int
    visitor_id: str

    @property
    def address(self) -> str:
        """Their identity's address (kind `web`)."""
        return f"{ADDRESS_PREFIX}{self.visitor_id}"


def new_visitor(account_id: int) -> Visitor:
    return Visitor(account_id, secrets.token_urlsafe(16))


def _signature(key: bytes, account_id: int, visitor_id: str) -> str:
    mac = hmac.new(key, f"{account_id}.{visitor_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def token_of(key: bytes, visitor: Visitor) -> str:
    signature = _signature(key, visitor.account_id, visitor.visitor_id)
    return f"{visitor.account_id}.{visitor.visitor_id}.{signature}"


def read_token(key: bytes, token: str, account_id: int) -> Visitor | None:
    """The visitor of a token of this widget; None if it is not one (forged, another widget's,
    malformed). Constant-time comparison of the signature."""
    parts = token.strip().split(".")
    if len(parts) != 3 or len(token) > 200:
        return None
    account, visitor_id, signature = parts
    if account != str(account_id) or not _VISITOR.match(visitor_id):
        return None
    expected = _signature(key, account_id, visitor_id)
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    return Visitor(account_id, visitor_id)
