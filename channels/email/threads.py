"""What ties an email to its thread: Message-IDs, References and subjects.

Pure functions, shared by reading mail (`channels/email/message.py`) and writing it
(`channels/email/compose.py`). Our own Message-IDs name the outbox item they were made for, so
a reply or a bounce finds its way back to it (`make_message_id`, `parse_outbox_id`).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Sequence

from core.ingest import MAX_EXTERNAL_ID

# References headers grow with every reply; keep the thread root and the most recent ids.
MAX_REFERENCES = 20
COMMENT = re.compile(r"\([^()]*\)")
DOMAIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_OUR_MESSAGE_ID = re.compile(r"^<omnicrm\.(\d{1,18})\.[0-9a-z]{1,64}@[^<>@\s]+>$", re.IGNORECASE)
_ANGLE_ID = re.compile(r"<([^<>]*)>")


def clean_message_id(value: str) -> str | None:
    """`<id>` without comments or whitespace; None when nothing is left or it is absurd."""
    inner = re.sub(r"\s+", "", COMMENT.sub("", value)).strip("<>")
    if not inner or len(inner) + 2 > MAX_EXTERNAL_ID or not inner.isprintable():
        return None
    return f"<{inner}>"


def message_ids(value: str | None) -> list[str]:
    """All ids in an In-Reply-To or References value, in order, without repeats."""
    if not value:
        return []
    without_comments = COMMENT.sub("", value)
    found = _ANGLE_ID.findall(without_comments)
    # Some clients drop the angle brackets; then the ids are separated by whitespace or commas.
    candidates = found or [c for c in re.split(r"[\s,]+", without_comments) if "@" in c]
    ids = (clean_message_id(candidate) for candidate in candidates)
    return list(dict.fromkeys(i for i in ids if i is not None))


def first_message_id(value: str | None) -> str | None:
    ids = message_ids(value)
    return ids[0] if ids else None


def bounded_references(ids: Sequence[str]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(ids))
    if len(unique) > MAX_REFERENCES:
        unique = [unique[0], *unique[-(MAX_REFERENCES - 1) :]]
    return tuple(unique)


def make_message_id(outbox_id: int, domain: str) -> str:
    """A new Message-ID for an outbox item; parse_outbox_id reads the item back from it."""
    if not DOMAIN.match(domain):
        raise ValueError(f"not a usable Message-ID domain: {domain!r}")
    if outbox_id < 0:
        raise ValueError("outbox ids are not negative")
    return f"<omnicrm.{outbox_id}.{secrets.token_hex(8)}@{domain}>"


def parse_outbox_id(message_id: str | None) -> int | None:
    """The outbox item a Message-ID of ours was made for; None for anyone else's."""
    cleaned = clean_message_id(message_id) if message_id else None
    found = _OUR_MESSAGE_ID.match(cleaned) if cleaned else None
    return int(found.group(1)) if found else None


_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:"
    r"(?:re|fwd?|aw|wg|sv|antw|vs|tr|rif|odp|回复|答复|转发)\s*(?:\[\d+\]|\(\d+\))?\s*:"
    r"|\[[^\]]*\]\s*:?"
    r")\s*",
    re.IGNORECASE,
)


def thread_subject(subject: str) -> str:
    """The subject normalized for threading: no Re:/Fwd:/AW:/... prefixes or [list] tags."""
    normalized = unicodedata.normalize("NFKC", subject)
    while True:
        stripped = _SUBJECT_PREFIX.sub("", normalized, count=1)
        if stripped == normalized:
            break
        normalized = stripped
    return re.sub(r"\s+", " ", normalized).strip().casefold()
