"""What counts as "the same email": a digest of what the sender wrote, not of its delivery.

A message reaches us with headers that servers on the way added (Received, Delivered-To,
Return-Path, X-Original-To, spam and virus verdicts, DKIM/ARC results, an mbox "From " line)
and with the line ends its last server chose. None of that is the message. `content_digest`
hashes the rest: the headers the sender set (`SENDER_HEADERS`) and the body. So the same
message fetched twice, re-delivered after a UIDVALIDITY change, or arriving as a Bcc copy or
through a second mailbox has one digest, and another body or attachment gives another one.

The digest is stored with every email interaction and decides, for mail already imported,
whether a message seen again is new. Its definition is therefore frozen: changing any rule
below makes mail re-delivered after the change look new. A new definition needs a new
prefix (`DIGEST_V1` names this one) and a lookup of the old digests, as
`channels.email.inbound` does for the raw-bytes hash that came before.
"""

from __future__ import annotations

import hashlib
import re

# Domain separation: no other hash the project stores is computed over the same input.
DIGEST_V1 = b"omnicrm email content v1\n"

# Set by the sender's mail program (and, for Date and Message-ID, perhaps by its submission
# server, before any copy exists). Bcc is left out: a Bcc copy may carry it or not.
SENDER_HEADERS = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
    }
)

_HEADER_END = b"\n\n"
_HEADER_LINE = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:(.*)$", re.DOTALL)
_WHITESPACE = re.compile(rb"[ \t]+")


def content_digest(raw: bytes) -> str:
    """SHA-256 (hex) of the sender's headers and the body of raw message `raw`.

    The rules, each of which a stored digest depends on:
    - line ends: CRLF counts as LF (IMAP servers hand out CRLF whatever they were given);
    - a first line "From <sender> <date>" (an mbox separator, written on delivery) is skipped
      (an obsolete-syntax header "From : ..." is not);
    - the header block ends at the first empty line; only SENDER_HEADERS count, by lower-case
      name, their value unfolded with runs of spaces and tabs as one space and trimmed (like
      DKIM's relaxed header canonicalization), ordered by name (repeats keep their order);
      lines that are no header, and other headers, do not count;
    - the body counts byte for byte, except the line ends it finishes with.
    """
    text = raw.replace(b"\r\n", b"\n")
    first_line = text.partition(b"\n")[0]
    if first_line.startswith(b"From ") and not _HEADER_LINE.match(first_line):
        text = text.partition(b"\n")[2]
    if text.startswith(b"\n"):
        head, body = b"", text[1:]
    else:
        head, _, body = text.partition(_HEADER_END)
    headers = sorted(_sender_headers(head), key=lambda header: header[0])
    digest = hashlib.sha256(DIGEST_V1)
    for name, value in headers:
        digest.update(name + b":" + value + b"\n")
    digest.update(b"\n")
    digest.update(body.rstrip(b"\n"))
    return digest.hexdigest()


def _sender_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-case name, normalized value) of the sender's headers, in message order."""
    headers: list[tuple[bytes, list[bytes]]] = []
    current: list[bytes] | None = None
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)
            continue
        found = _HEADER_LINE.match(line)
        if found is None:
            current = None  # not a header: ignored, like a continuation of it
            continue
        name = found.group(1).lower()
        current = [found.group(2)] if name.decode("ascii") in SENDER_HEADERS else None
        if current is not None:
            headers.append((name, current))
    return [
        (name, _WHITESPACE.sub(b" ", b" ".join(parts)).strip(b" \t")) for name, parts in headers
    ]
