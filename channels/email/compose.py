"""Outbound email: the message an outbox item sends, threaded under what it answers.

Pure: no network (sending is `channels/email/smtp.py`). Addresses are checked for what can be
sent without SMTPUTF8; non-ASCII text goes out quoted-printable, so no server on the way needs
8BITMIME.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from channels.email.message import normalize_newlines
from channels.email.threads import (
    DOMAIN,
    bounded_references,
    clean_message_id,
    first_message_id,
    make_message_id,
    message_ids,
)
from core.models import utcnow

# What we can send without SMTPUTF8: a dot-atom local part at a host name.
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def _one_line(value: str) -> str:
    return re.sub(r"[\r\n\x00]+", " ", value).strip()


def _address(addr_spec: str, display_name: str = "") -> Address:
    username, _, domain = addr_spec.strip().rpartition("@")
    try:
        # An internationalized domain goes out in its ASCII (punycode) form.
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_domain = ""
    if not _LOCAL_PART.match(username) or not DOMAIN.match(ascii_domain):
        raise ValueError(f"not an email address we can send to: {addr_spec!r}")
    return Address(display_name=_one_line(display_name), username=username, domain=ascii_domain)


def compose_message(
    *,
    from_address: str,
    from_name: str,
    to: str | Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    message_id_domain: str,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    automatic: bool = False,
    outbox_id: int,
    message_id: str | None = None,
    date: datetime | None = None,
) -> EmailMessage:
    """An outbound message for outbox item `outbox_id`, threaded under `in_reply_to`.

    Pass the `message_id` of an earlier attempt when retrying the same outbox item, so the
    recipient's server can recognize a duplicate. Raises ValueError for unusable addresses.
    """
    recipients = [to] if isinstance(to, str) else list(to)
    if not recipients:
        raise ValueError("a message needs at least one recipient")
    own_id = clean_message_id(message_id) if message_id else None
    if message_id and own_id is None:
        raise ValueError(f"not a usable Message-ID: {message_id!r}")
    message = EmailMessage()
    message["From"] = _address(from_address, from_name)
    message["To"] = [_address(recipient) for recipient in recipients]
    message["Subject"] = _one_line(subject)
    message["Date"] = format_datetime(date or utcnow())
    message["Message-ID"] = own_id or make_message_id(outbox_id, message_id_domain)
    parent = first_message_id(in_reply_to)
    if parent is not None:
        message["In-Reply-To"] = parent
    chain = [mid for ref in references for mid in message_ids(ref)]
    thread = bounded_references([*chain, parent] if parent else chain)
    if thread:
        message["References"] = " ".join(thread)
    if automatic:
        message["Auto-Submitted"] = "auto-replied"
        # Asks Exchange not to answer with its own out-of-office or receipts: no loops.
        message["X-Auto-Response-Suppress"] = "All"
    message["X-Omnicrm-Outbox-Id"] = str(outbox_id)
    text = normalize_newlines(text)
    message.set_content(text, cte=_transfer_encoding(text))
    if html is not None:
        message.add_alternative(html, subtype="html", cte=_transfer_encoding(html))
    return message


def _transfer_encoding(content: str) -> str | None:
    """Quoted-printable for non-ASCII text, so no server on the way needs 8BITMIME."""
    return None if content.isascii() else "quoted-printable"
