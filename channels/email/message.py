"""Inbound email parsing: pure functions, no network, no database.

Parsing is built on the standard library's `email` package with the modern policy. Real mail is
often broken, so every step that the modern policy can trip over (malformed headers, missing
boundaries, unknown charsets, bad base64) falls back to something a mail client would show,
and notes what it noticed in `ParsedEmail.problems`. A part that cannot be decoded is kept
raw and flagged, never dropped.

Writing mail is `compose.py`; what ties a message to its thread (Message-IDs, References,
subjects), `threads.py`; where a reply's quote begins, `quotes.py`.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import hashlib
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import errors as email_errors
from email.header import decode_header, make_header
from email.headerregistry import (
    AddressHeader,
    BaseHeader,
    DateHeader,
    HeaderRegistry,
    UnstructuredHeader,
)
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import (
    collapse_rfc2231_value,
    getaddresses,
    parsedate_to_datetime,
)

from channels.email.digest import content_digest
from channels.email.quotes import split_quoted_text
from channels.email.threads import (
    COMMENT,
    bounded_references,
    clean_message_id,
    first_message_id,
    message_ids,
)
from core.html import html_to_text
from core.models import utcnow

DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024
# A hostile message can nest parts deeper than Python's recursion limit; deeper parts are
# kept raw as attachments instead of being walked.
MAX_PART_DEPTH = 40
# A message dated this far in the future has a broken clock or a forged date.
MAX_CLOCK_SKEW = timedelta(days=1)
MAX_FILENAME = 255
MAX_REASON = 1000


class _ForgivingHeaders(HeaderRegistry):
    """The modern header classes; a header they cannot parse becomes unstructured text.

    The modern parser raises IndexError, AttributeError, TypeError... on some malformed values
    (also while the feed parser itself reads Content-Type); mail clients show those anyway.
    """

    def __call__(self, name: str, value: str) -> BaseHeader:
        try:
            return super().__call__(name, value)
        except Exception:
            return _UnreadableHeader(name, value)


class _UnreadableHeader(UnstructuredHeader, BaseHeader):
    """A header kept as text because its own class could not parse it."""


_POLICY = email.policy.default.clone(header_factory=_ForgivingHeaders())
_VERBATIM = _POLICY.clone(refold_source="none")


@dataclass(frozen=True, kw_only=True)
class Attachment:
    """One attachment or inline part, as a mail client lists it."""

    filename: str
    content_type: str
    size: int
    # None when the part is larger than the limit (`too_large`): only its metadata is kept.
    content: bytes | None
    # Without angle brackets, as `cid:` URLs in the HTML refer to it.
    content_id: str | None = None
    inline: bool = False
    too_large: bool = False
    # The transfer encoding could not be undone: `content` is the part's body as received.
    undecodable: bool = False


@dataclass(frozen=True, kw_only=True)
class ParsedEmail:
    """What omnicrm needs from one inbound message."""

    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    sender_address: str
    sender_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    subject: str
    date: datetime | None
    # The new text only; the quoted reply and signature are in text_quoted.
    text: str
    text_quoted: str
    text_full: str
    # As received, not sanitized: core.html.sanitize_html and block_remote_content do that.
    html: str | None
    attachments: tuple[Attachment, ...]
    is_auto_reply: bool
    auto_reply_reason: str | None
    is_bounce: bool
    bounce_original_message_id: str | None
    bounce_reason: str | None
    # SHA-256 of the raw bytes: how messages without a Message-ID were keyed before
    # content_digest; still looked up, so mail imported then is recognized.
    content_hash: str
    # What the sender wrote, whatever servers added on the way (channels.email.digest).
    content_digest: str
    problems: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_message(
    raw: bytes, *, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
) -> ParsedEmail:
    """Parse one raw RFC 5322 message; never raises on malformed mail, notes it in `problems`."""
    problems: list[str] = []
    message = _parse_bytes(raw, problems)
    body = _Body(max_attachment_bytes, problems)
    body.walk(message, depth=0)
    html = "\n".join(body.html_parts) if body.html_parts else None
    text_full = "\n".join(part.rstrip("\n") for part in body.text_parts)
    if not text_full.strip() and html is not None:
        text_full = _storable(html_to_text(html), problems, "text")
    text, text_quoted = split_quoted_text(text_full)

    senders = _addresses(message, "from", problems)
    if not senders:
        senders = _addresses(message, "sender", problems)
        if senders:
            problems.append("no From address; used the Sender header")
        else:
            problems.append("no sender address")
    sender_name, sender_address = senders[0] if senders else ("", "")
    subject = _storable(_header_text(message, "subject") or "", problems, "subject")

    auto_reason = _auto_reply_reason(message)
    bounce = _bounce(message, sender_address, text_full)
    for message_part in _all_parts(message):
        problems.extend(_describe_defects(message_part))

    return ParsedEmail(
        message_id=_message_id(message, problems),
        in_reply_to=first_message_id(_header_text(message, "in-reply-to")),
        references=bounded_references(message_ids(_header_text(message, "references"))),
        sender_address=sender_address,
        sender_name=sender_name,
        to=tuple(address for _, address in _addresses(message, "to", problems)),
        cc=tuple(address for _, address in _addresses(message, "cc", problems)),
        reply_to=tuple(address for _, address in _addresses(message, "reply-to", problems)),
        subject=subject,
        date=_date(message, problems),
        text=text,
        text_quoted=text_quoted,
        text_full=text_full,
        html=html,
        attachments=tuple(body.attachments),
        is_auto_reply=auto_reason is not None or bounce.report is not None,
        auto_reply_reason=_printable(auto_reason or bounce.report or "") or None,
        is_bounce=bounce.is_bounce,
        bounce_original_message_id=bounce.original_message_id,
        bounce_reason=_printable(bounce.reason) if bounce.reason else None,
        content_hash=hashlib.sha256(raw).hexdigest(),
        content_digest=content_digest(raw),
        problems=tuple(dict.fromkeys(_printable(problem) for problem in problems)),
    )


def _parse_bytes(raw: bytes, problems: list[str]) -> EmailMessage:
    message = _parse_or_keep_body(raw, problems)
    if any(isinstance(d, email_errors.MissingHeaderBodySeparatorDefect) for d in message.defects):
        # Python ends the header block at the first line that is not a header, so everything
        # after a stray line (or obsolete "Name : value" syntax) would become body text.
        repaired = _repair_header_block(raw, problems)
        if repaired is not None:
            message = _parse_or_keep_body(repaired, problems)
    return message


def _parse_or_keep_body(raw: bytes, problems: list[str]) -> EmailMessage:
    try:
        return email.message_from_bytes(raw, policy=_POLICY)
    except RecursionError:
        # Python's parser recurses once per nesting level; a MIME bomb goes deeper than that.
        problems.append("parts nested too deep to parse; the body is kept as it is")
        return BytesParser(policy=_POLICY).parsebytes(raw, headersonly=True)


_HEADER_BLOCK_END = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")


def _repair_header_block(raw: bytes, problems: list[str]) -> bytes | None:
    """Drop stray lines between headers and accept `Name : value`; lines after the last
    header start the body, as Python would have it."""
    end = _HEADER_BLOCK_END.search(raw)
    head, rest = (raw[: end.start()], raw[end.start() :]) if end else (raw, b"")
    lines = head.splitlines(keepends=True)
    last_header = max((i for i, line in enumerate(lines) if _HEADER_LINE.match(line)), default=-1)
    while last_header + 1 < len(lines) and lines[last_header + 1][:1] in (b" ", b"\t"):
        last_header += 1  # its folded continuation lines
    kept: list[bytes] = []
    for index, line in enumerate(lines[: last_header + 1]):
        header = _HEADER_LINE.match(line)
        if header is not None:
            kept.append(header.group(1) + b":" + line[header.end() :])
        elif line[:1] in (b" ", b"\t") or (index == 0 and line.startswith(b"From ")):
            kept.append(line)  # a folded continuation, or an mbox "From " separator
        else:
            shown = line.strip().decode("ascii", "surrogateescape")[:80]
            problems.append(f"dropped a line in the header block that is not a header: {shown}")
    repaired = b"".join(kept)
    if repaired == b"".join(lines[: last_header + 1]):
        return None
    body_start = b"".join(lines[last_header + 1 :])
    return repaired + (b"\r\n" + body_start if body_start else b"") + rest


def _children(part: EmailMessage) -> list[EmailMessage] | None:
    """The sub-parts of a multipart or message/* part; None for a leaf."""
    if not part.is_multipart():
        return None
    payload = part.get_payload()
    return [child for child in payload if isinstance(child, EmailMessage)]


def _all_parts(message: EmailMessage) -> Iterator[EmailMessage]:
    """Every part down to MAX_PART_DEPTH, without recursion."""
    pending: list[tuple[EmailMessage, int]] = [(message, 0)]
    while pending:
        part, depth = pending.pop()
        yield part
        children = _children(part)
        if children is not None and depth < MAX_PART_DEPTH:
            pending.extend((child, depth + 1) for child in reversed(children))


def _describe_defects(part: EmailMessage) -> list[str]:
    described = []
    for defect in part.defects:
        name, detail = type(defect).__name__, str(defect).strip()
        described.append(f"{name}: {detail}" if detail else name)
    return described


# --- headers


def _raw_header(message: EmailMessage, name: str) -> str | None:
    """The header's value as it was in the message, before the policy parses it."""
    for key, value in message.raw_items():
        if key.lower() == name:
            return str(value)
    return None


def _decode_raw_header(value: str) -> str:
    """Unfold and decode RFC 2047 words the forgiving (compat32) way."""
    unfolded = re.sub(r"\r?\n(?=[ \t])", "", value)
    try:
        decoded = str(make_header(decode_header(unfolded)))
    except (email_errors.MessageError, LookupError, UnicodeError, ValueError):
        decoded = unfolded
    return _fix_surrogates(decoded)


def _header_text(message: EmailMessage, name: str) -> str | None:
    """The header decoded as a mail client shows it, or None if it is missing."""
    value = message.get(name)
    return None if value is None else _fix_surrogates(str(value))


def _addresses(message: EmailMessage, name: str, problems: list[str]) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of an address header, groups flattened."""
    header = message.get(name)
    if header is None:
        return []
    if isinstance(header, AddressHeader):
        pairs = [(address.display_name, address.addr_spec) for address in header.addresses]
    else:
        problems.append(f"unreadable {name} header; read it the old way")
        pairs = getaddresses([str(header)])
    return [
        (_storable(_fix_surrogates(display), problems, name), _fix_surrogates(address).lower())
        for display, address in pairs
        if "@" in address and "\x00" not in address
    ]


def _message_id(message: EmailMessage, problems: list[str]) -> str | None:
    raw = _raw_header(message, "message-id")
    if raw is None:
        return None
    cleaned = clean_message_id(_decode_raw_header(raw))
    if cleaned is None:
        problems.append("unusable Message-ID header; the content digest tells messages apart")
    return cleaned


def _date(message: EmailMessage, problems: list[str]) -> datetime | None:
    header = message.get("date")
    if header is None:
        return None
    value: datetime | None = None
    if isinstance(header, DateHeader):
        value = header.datetime
    else:
        try:
            value = parsedate_to_datetime(str(header))
        except (TypeError, ValueError, IndexError, OverflowError):
            value = None
    if value is None:
        problems.append("unreadable Date header")
        return None
    if value.tzinfo is None:
        # "-0000" means the zone is unknown; UTC is the least wrong reading.
        value = value.replace(tzinfo=UTC)
    if value > utcnow() + MAX_CLOCK_SKEW:
        problems.append(f"Date header is in the future ({value.isoformat()}); ignored")
        return None
    return value


# --- text helpers


def _fix_surrogates(value: str) -> str:
    """Python keeps undecodable 8-bit header bytes as surrogates; decode them as UTF-8 or 1252."""
    if not any("\udc80" <= char <= "\udcff" for char in value):
        return value
    data = value.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _storable(value: str, problems: list[str], what: str) -> str:
    """Without NUL characters or lone surrogates, which databases refuse."""
    if "\x00" in value:
        problems.append(f"NUL characters removed from {what}")
        value = value.replace("\x00", "")
    return value.encode("utf-8", "replace").decode("utf-8")


def _printable(value: str) -> str:
    """Control characters and undecodable bytes escaped, for messages quoting the input."""
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in value)
    return escaped[:MAX_REASON]


def normalize_newlines(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n")


# Labels Python does not know, by the codec mail clients use for them.
_CHARSET_ALIASES = {
    "x-sjis": "cp932",
    "x-gbk": "gb18030",
    "x-euc-jp": "euc_jp",
    "x-mac-roman": "mac-roman",
    "iso-8859-8-i": "iso8859-8",
    "windows-874": "cp874",
}
# Codecs whose superset is what senders really use (as browsers and mail clients decode them).
_CHARSET_SUPERSETS = {
    "iso8859-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
}
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_:.+-]{1,40})""", re.I
)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    try:
        codec = codecs.lookup(_CHARSET_ALIASES.get(label.lower(), label)).name
        "".encode(codec)  # LookupError for codecs that are not for text, such as "base64"
    except (LookupError, UnicodeError, ValueError):  # ValueError: a NUL in the label
        return None
    return _CHARSET_SUPERSETS.get(codec, codec)


def _decode_text(data: bytes, label: str | None, problems: list[str], where: str) -> str:
    """Text in its declared charset; UTF-8 or else Windows-1252 when the label is missing/wrong."""
    codec = _codec(label)
    if label and codec is None:
        problems.append(f"unknown charset {label!r} in {where}; guessed")
    if codec is not None and codec != "ascii":
        try:
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                problems.append(f"{where} has bytes that are not valid {label}; replaced")
                return data.decode(codec, "replace")
        except UnicodeError:  # codecs such as "idna" are for text, but not for a body
            problems.append(f"charset {label!r} cannot decode {where}; guessed")
    # Undeclared 8-bit text (or "us-ascii" with 8-bit bytes) is most often UTF-8.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


# --- body


class _Body:
    """Collects the text, HTML and attachments of a message tree."""

    def __init__(self, max_attachment_bytes: int, problems: list[str]) -> None:
        self.max_attachment_bytes = max_attachment_bytes
        self.problems = problems
        self.text_parts: list[str] = []
        self.html_parts: list[str] = []
        self.attachments: list[Attachment] = []

    def walk(self, part: EmailMessage, depth: int) -> None:
        content_type = _content_type(part)
        if depth > MAX_PART_DEPTH:
            self.problems.append(f"parts nested deeper than {MAX_PART_DEPTH}; kept raw")
            self._attach(part, content_type, raw=True)
            return
        children = _children(part)
        if children is not None and content_type.startswith("multipart/"):
            for child in children:
                self.walk(child, depth + 1)
            return
        if content_type.startswith("multipart/"):
            recovered = _recover_multipart(part, content_type)
            if recovered is not None:
                self.problems.append(f"{content_type} without a usable boundary; recovered it")
                self.walk(recovered, depth + 1)
                return
            self.problems.append(f"{content_type} without parts; shown as text")
            content_type = "text/plain"
        if content_type in ("text/plain", "text/html") and not _is_attachment(part):
            self._add_text(part, content_type)
        else:
            self._attach(part, content_type)

    def _add_text(self, part: EmailMessage, content_type: str) -> None:
        data, _ = _decoded_payload(part)
        label = _param(part, "charset")
        if label is None and content_type == "text/html":
            sniffed = _META_CHARSET.search(data[:2048])
            label = sniffed.group(1).decode("ascii") if sniffed else None
        text = _storable(
            normalize_newlines(_decode_text(data, label, self.problems, content_type)),
            self.problems,
            content_type,
        )
        (self.text_parts if content_type == "text/plain" else self.html_parts).append(text)

    def _attach(self, part: EmailMessage, content_type: str, *, raw: bool = False) -> None:
        if raw:
            content, undecodable = _serialized_body(part), True
        else:
            content, undecodable = _decoded_payload(part)
        filename = _filename(part, content_type, len(self.attachments) + 1, self.problems)
        if undecodable:
            self.problems.append(f"could not decode {filename} ({content_type}); kept raw")
        content_id = _content_id(part)
        disposition = _disposition(part)
        too_large = len(content) > self.max_attachment_bytes
        self.attachments.append(
            Attachment(
                filename=filename,
                content_type=content_type,
                size=len(content),
                content=None if too_large else content,
                content_id=content_id,
                inline=disposition == "inline" or (disposition is None and content_id is not None),
                too_large=too_large,
                undecodable=undecodable,
            )
        )


# Python's RFC 2231 parameter decoding raises on some malformed continuations.
_PARAMETER_ERRORS = (TypeError, ValueError, IndexError, LookupError)


def _content_type(part: EmailMessage) -> str:
    return part.get_content_type()


def _param(part: EmailMessage, name: str, header: str = "content-type") -> str | None:
    try:
        value = part.get_param(name, header=header)
    except _PARAMETER_ERRORS:
        return None
    if isinstance(value, tuple):  # an RFC 2231 (charset, language, value) triple
        value = collapse_rfc2231_value(value)
    return None if value is None else _fix_surrogates(str(value)).strip()


def _disposition(part: EmailMessage) -> str | None:
    return part.get_content_disposition()


def _is_attachment(part: EmailMessage) -> bool:
    return (
        _disposition(part) == "attachment"
        or _param(part, "filename", "content-disposition") is not None
    )


_IDENTITY_ENCODINGS = {"", "7bit", "8bit", "binary"}
_UUENCODINGS = {"x-uuencode", "uuencode", "uue", "x-uue"}
# The encodings Python undoes; for any other it hands back the body as received.
_DECODED_ENCODINGS = {"base64", "quoted-printable"} | _UUENCODINGS


def _decoded_payload(part: EmailMessage) -> tuple[bytes, bool]:
    """The part's content with its transfer encoding undone, and whether that failed."""
    if _children(part) is not None:
        return _serialized_body(part), False
    encoding = _transfer_encoding_of(part)
    defects_before = len(part.defects)
    decoded = part.get_payload(decode=True)
    new_defects = part.defects[defects_before:]
    if not isinstance(decoded, bytes):
        return _raw_payload(part), True
    if encoding not in _DECODED_ENCODINGS | _IDENTITY_ENCODINGS:
        return decoded, True  # Python hands back the raw body for encodings it does not know
    if any(isinstance(d, email_errors.InvalidBase64LengthDefect) for d in new_defects):
        return _raw_payload(part), True
    if encoding in _UUENCODINGS and decoded.strip() and decoded == _raw_payload(part):
        return decoded, True  # Python returns the input unchanged when uudecoding fails
    return decoded, False


def _transfer_encoding_of(part: EmailMessage) -> str:
    return str(part.get("content-transfer-encoding", "")).strip().lower()


def _raw_payload(part: EmailMessage) -> bytes:
    """A leaf part's body as received, with its transfer encoding not undone."""
    if _transfer_encoding_of(part) not in _DECODED_ENCODINGS:
        data = part.get_payload(decode=True)  # no decoding happens for these
        if isinstance(data, bytes):
            return data
    try:
        text = part.get_payload()
    except ValueError:  # Python decodes 8-bit bytes here, with the charset label: a NUL in it
        return b""
    # An encoded body is ASCII; if it held 8-bit bytes, Python has already decoded them.
    return text.encode("utf-8", "surrogateescape") if isinstance(text, str) else b""


def _serialized_body(part: EmailMessage) -> bytes:
    """The body of a part that holds other parts, as it was received (nearly: headers of
    nested parts are regenerated without refolding)."""
    try:
        try:
            data = part.as_bytes(policy=_VERBATIM)
        # The generator decodes broken multipart bodies with 8-bit bytes and then cannot
        # encode them; the text generator can, at the cost of exact bytes.
        except (UnicodeError, LookupError, ValueError):
            data = part.as_string(policy=_VERBATIM).encode("utf-8", "surrogateescape")
    except RecursionError:  # the generator recurses per nesting level, like the parser
        return b""
    end = _HEADER_BLOCK_END.search(data)
    return data[end.end() :] if end else data


_BOUNDARY_LINE = re.compile(rb"^--([0-9A-Za-z'()+_,\-./:=?]{1,70})[ \t]*\r?$", re.M)


def _recover_multipart(part: EmailMessage, content_type: str) -> EmailMessage | None:
    """Reparse a multipart whose boundary is missing, taking it from the first delimiter line."""
    body = _raw_payload(part)
    found = _BOUNDARY_LINE.search(body)
    if found is None:
        return None
    boundary = found.group(1).removesuffix(b"--")
    subtype = content_type if re.fullmatch(r"multipart/[a-z0-9.+-]+", content_type) else ""
    head = f"Content-Type: {subtype or 'multipart/mixed'}; boundary=".encode()
    head += b'"' + boundary + b'"'
    try:
        recovered = email.message_from_bytes(head + b"\r\n\r\n" + body, policy=_POLICY)
    except RecursionError:  # see _parse_bytes
        return None
    return recovered if _children(recovered) else None


_ENCODED_WORD = re.compile(r"=\?[^?]+\?[bqBQ]\?[^?]*\?=")


def _lenient_param(part: EmailMessage, header: str, name: str) -> str | None:
    """A parameter read the way mail clients do: unquoted values run to the next `;`."""
    raw = _raw_header(part, header)
    if raw is None:
        return None
    unfolded = re.sub(r"\r?\n[ \t]*", " ", raw)
    found = re.search(
        rf'(?:^|;)\s*{name}\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', unfolded, flags=re.IGNORECASE
    )
    if found is None:
        return None
    value = found.group(1).strip()
    if value.startswith('"'):
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    if _ENCODED_WORD.search(value):
        return _decode_raw_header(value).strip() or None
    return _fix_surrogates(value) or None


def _filename(part: EmailMessage, content_type: str, index: int, problems: list[str]) -> str:
    try:
        name = part.get_filename()
    except _PARAMETER_ERRORS:
        name = None
    lenient = _lenient_param(part, "content-disposition", "filename") or _lenient_param(
        part, "content-type", "name"
    )
    # Python stops an unquoted value at the first space and cannot read unquoted encoded words.
    if name is None or (lenient is not None and lenient != name and lenient.startswith(name)):
        name = lenient
    if name is None:
        location = _header_text(part, "content-location")
        if location:
            name = location.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    if content_type in ("message/rfc822", "message/global") and not name:
        name = f"{_inner_subject(part) or 'message'}.eml"
    cleaned = _clean_filename(_fix_surrogates(name or ""))
    if cleaned:
        return cleaned
    extension = _EXTENSIONS.get(content_type, ".bin")
    return f"attachment-{index}{extension}"


_EXTENSIONS = {
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/rfc822-headers": ".txt",
    "message/delivery-status": ".txt",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "application/pdf": ".pdf",
}


def _clean_filename(name: str) -> str:
    """The last path component, without control characters, at most MAX_FILENAME long."""
    base = re.split(r"[\\/]", name)[-1]
    printable = "".join(char for char in base if unicodedata.category(char)[0] != "C")
    return printable.strip(" .")[:MAX_FILENAME]


def _inner_subject(part: EmailMessage) -> str:
    children = _children(part)
    return (_header_text(children[0], "subject") or "").strip() if children else ""


def _content_id(part: EmailMessage) -> str | None:
    raw = _raw_header(part, "content-id")
    if raw is None:
        return None
    cleaned = re.sub(r"\s+", "", _decode_raw_header(raw)).strip("<>")
    return cleaned or None


# --- auto-replies and bounces


_BULK_PRECEDENCE = {"bulk", "list", "junk"}


def _auto_reply_reason(message: EmailMessage) -> str | None:
    """Why this message was sent by a machine (RFC 3834 and vendor headers), or None."""

    def header(name: str) -> str:
        return (_header_text(message, name) or "").strip()

    auto_submitted = header("auto-submitted").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    precedence = header("precedence").lower()
    if precedence in _BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Loop"):
        if _raw_header(message, name.lower()) is not None:
            return name
    suppress = {token.lower() for token in re.split(r"[\s,]+", header("x-auto-response-suppress"))}
    if suppress & {"all", "oof"}:
        return "X-Auto-Response-Suppress"
    return_path = _raw_header(message, "return-path")
    if return_path is not None and re.sub(r"\s+", "", COMMENT.sub("", return_path)) == "<>":
        return "empty Return-Path"
    return None


@dataclass(frozen=True)
class _Bounce:
    """What a delivery report or a mailer daemon's message says; empty for ordinary mail."""

    is_bounce: bool = False
    # Set for every machine-made report (also delay warnings and read receipts).
    report: str | None = None
    original_message_id: str | None = None
    reason: str | None = None


_DAEMONS = {"mailer-daemon", "postmaster"}
_DAEMON_NAME = re.compile(r"\b(?:mailer-daemon|postmaster)\b", re.IGNORECASE)
_DELAY_SUBJECT = re.compile(r"delay|warning|still being retried|will retry", re.IGNORECASE)
_SMTP_FAILURE = re.compile(r"\b5\d\d[ -]\S|\b5\.\d{1,3}\.\d{1,3}\b")
_MESSAGE_ID_LINE = re.compile(r"^\s*message-id\s*:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)


def _bounce(message: EmailMessage, sender: str, text: str) -> _Bounce:
    """Recognize RFC 3464 delivery reports and old-style bounces from mailer daemons."""
    # Only the message itself: a customer forwarding a bounce to us is not a bounce.
    if _content_type(message) == "multipart/report":
        report_type = (_param(message, "report-type") or "").lower()
        if report_type == "delivery-status":
            return _delivery_status(message, text)
        return _Bounce(report=f"report ({report_type or 'unknown type'})")
    # Some daemons send from a bare "MAILER-DAEMON" without a domain.
    from_text = _header_text(message, "from") or ""
    if sender.split("@")[0] not in _DAEMONS and (sender or not _DAEMON_NAME.search(from_text)):
        return _Bounce()
    subject = _header_text(message, "subject") or ""
    if _DELAY_SUBJECT.search(subject):
        return _Bounce(report="delivery delay warning")
    original = _included_message_id(message)
    if original is None:
        # Old-style bounces quote the returned message's headers in their text.
        quoted = _MESSAGE_ID_LINE.search(text)
        original = clean_message_id(quoted.group(1)) if quoted else None
    return _Bounce(
        is_bounce=True,
        report="bounce from a mailer daemon",
        original_message_id=original,
        reason=_failure_line(text) or subject[:MAX_REASON] or None,
    )


def _failure_line(text: str) -> str | None:
    """The line of a bounce's text that gives the SMTP failure, else its first line."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    chosen = next((line for line in lines if _SMTP_FAILURE.search(line)), None)
    chosen = chosen or (lines[0] if lines else None)
    return chosen[:MAX_REASON] if chosen else None


def _delivery_status(report: EmailMessage, text: str) -> _Bounce:
    """Read an RFC 3464 delivery status notification: failed, or only delayed/delivered."""
    fields: list[EmailMessage] = []
    for part in _children(report) or []:
        if _content_type(part) == "message/delivery-status":
            fields.extend(_children(part) or [])
    original = None
    failures: list[str] = []
    actions: set[str] = set()
    for block in fields:
        original = original or first_message_id(_header_text(block, "original-message-id"))
        action = (_header_text(block, "action") or "").strip().lower()
        status = (_header_text(block, "status") or "").strip()
        if not action and not status:
            continue  # the per-message block
        actions.add(action or "no action")
        if action == "failed" or (not action and status.startswith("5")):
            failures.append(_failure_reason(block, status))
    original = original or _included_message_id(report)
    if actions and not failures:
        # "delayed", "delivered", "relayed", "expanded": the message is not lost.
        return _Bounce(
            report=f"delivery status ({', '.join(sorted(actions))})",
            original_message_id=original,
        )
    return _Bounce(
        is_bounce=True,
        report="delivery status (failed)",
        original_message_id=original,
        reason="; ".join(failures)[:MAX_REASON] or _failure_line(text),
    )


def _failure_reason(block: EmailMessage, status: str) -> str:
    recipient = (_header_text(block, "final-recipient") or "").strip()
    recipient = recipient.split(";", 1)[-1].strip()
    diagnostic = (_header_text(block, "diagnostic-code") or "").strip()
    diagnostic = re.sub(r"\s+", " ", diagnostic.split(";", 1)[-1]).strip()
    reason = diagnostic or (f"status {status}" if status else "delivery failed")
    return f"{recipient}: {reason}" if recipient else reason


def _included_message_id(message: EmailMessage) -> str | None:
    """The Message-ID of a returned message (message/rfc822) or of its text/rfc822-headers."""
    for part in _all_parts(message):
        content_type = _content_type(part)
        if content_type == "message/rfc822":
            inner = _children(part)
            if inner:
                raw = _raw_header(inner[0], "message-id")
                if raw is not None:
                    return clean_message_id(_decode_raw_header(raw))
        elif content_type == "text/rfc822-headers":
            data, _ = _decoded_payload(part)
            headers = BytesParser(policy=_POLICY).parsebytes(data, headersonly=True)
            raw = _raw_header(headers, "message-id")
            if raw is not None:
                return clean_message_id(_decode_raw_header(raw))
    return None
