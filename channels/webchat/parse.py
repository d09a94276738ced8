"""What a website visitor sends, checked and turned into what omnicrm stores; pure functions.

- A message (`visitor_message`): the widget's `client_id` (random per message, made by the
  widget before the first attempt) keys it, so a message sent again after a lost answer or a
  reconnect is stored once. Each visitor's chat is a conversation of its own
  (`thread_key` = their address), so a visitor only ever reads what was said in their chats,
  whichever contact their pre-chat details join.
- The pre-chat form (`prechat`): name, email, phone and consent, each error beside its field.

Messages a visitor reads are message ids (`N_`), translated into their language where they
are shown (web/routes_webchat.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from channels.webchat.settings import WebchatSettings
from channels.webchat.visitors import Visitor
from core.errors import InvalidInput
from core.i18n import N_
from core.identity import Address, normalize_email, normalize_phone
from core.ingest import InboundEvent
from core.models import IdentityKind

CHANNEL: Final = "webchat"
MAX_TEXT: Final = 5000
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def external_id(visitor: Visitor, client_id: str) -> str:
    return f"{visitor.visitor_id}:{client_id}"


def check_client_id(client_id: str) -> str:
    if not _CLIENT_ID.match(client_id):
        raise InvalidInput(N_("8 to 64 letters, digits, - or _"), field="client_id")
    return client_id


def visitor_message(
    visitor: Visitor,
    *,
    client_id: str,
    text: str,
    attachments: list[dict[str, Any]] | None = None,
    language: str | None = None,
    page: str | None = None,
    queue_id: int | None = None,
) -> InboundEvent:
    """A visitor's message as an event for ingest; InvalidInput naming the field at fault."""
    check_client_id(client_id)
    text = text.strip()
    if not text and not attachments:
        raise InvalidInput(N_("write a message"), field="text")
    if len(text) > MAX_TEXT:
        raise InvalidInput(N_("the message is too long"), field="text")
    return InboundEvent(
        channel=CHANNEL,
        external_id=external_id(visitor, client_id),
        addresses=[Address(IdentityKind.WEB, visitor.address)],
        text=text,
        attachments=list(attachments or []),
        meta={
            "webchat": {
                "account_id": visitor.account_id,
                "visitor": visitor.visitor_id,
                "client_id": client_id,
                **({"page": page[:500]} if page else {}),
            }
        },
        thread_key=visitor.address,
        labels={"visitor": visitor.visitor_id},
        queue_id=queue_id,
        language=language[:16] if language else None,
    )


@dataclass(frozen=True)
class Prechat:
    """The pre-chat form, checked: the name, and the addresses it gives (normalized)."""

    name: str
    addresses: list[Address] = field(default_factory=list)
    consent: bool = False


def prechat(
    settings: WebchatSettings,
    *,
    name: str,
    email: str,
    phone: str,
    consent: bool,
    default_region: str | None,
    offline: bool = False,
) -> Prechat:
    """Check the form; InvalidInput with every field's error at once. Offline (nobody to chat
    with now) an email or phone is required: the answer goes there."""
    errors: dict[str, str] = {}
    name = " ".join(name.split())
    if len(name) > 200:
        errors["name"] = N_("at most 200 characters")
    addresses: list[Address] = []
    if email.strip():
        try:
            addresses.append(Address(IdentityKind.EMAIL, normalize_email(email)))
        except InvalidInput:
            errors["email"] = N_("this is not an email address")
    if phone.strip():
        try:
            addresses.append(Address(IdentityKind.PHONE, normalize_phone(phone, default_region)))
        except InvalidInput:
            errors["phone"] = N_("this is not a phone number")
    wanted = offline or settings.prechat == "required"
    if wanted and not addresses and "email" not in errors and "phone" not in errors:
        errors["email"] = N_("give an email address or a phone number, so we can answer you")
    if settings.prechat == "required" and not name and "name" not in errors:
        errors["name"] = N_("tell us your name")
    if settings.consent_text and not consent:
        errors["consent"] = N_("please agree, so we may keep your details")
    if errors:
        error = InvalidInput(N_("the form has errors"))
        error.fields = errors
        raise error
    return Prechat(name, addresses, consent)
