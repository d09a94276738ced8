"""The demo's customer email: real RFC 5322 messages, as a mail client would write them, for
the email channel's own parser (`channels.email.inbound.import_message`)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


def message_id(key: str, address: str) -> str:
    """The Message-ID the demo gives message `key` sent from `address`."""
    return f"<demo.{key}@{address.rpartition('@')[2]}>"


def compose(
    *,
    key: str,
    sender: tuple[str, str],
    to: str,
    subject: str,
    text: str,
    when: datetime,
    html: str | None = None,
    answers: Sequence[str] = (),
    attachments: Sequence[Attachment] = (),
) -> bytes:
    """A message from `sender` (name, address) to `to`; `answers` are the Message-IDs it
    replies to, oldest first (In-Reply-To names the last, References all)."""
    name, address = sender
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(name, addr_spec=address)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(when)
    message["Message-ID"] = message_id(key, address)
    if answers:
        message["In-Reply-To"] = answers[-1]
        message["References"] = " ".join(answers)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return message.as_bytes()


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A small one-colour PNG image (the demo's "photos")."""
    row = b"\x00" + bytes(rgb) * width
    pixels = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
