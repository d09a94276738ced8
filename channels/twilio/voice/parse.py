"""Twilio's voice webhook parameters, read into what the call flow needs; pure, no I/O.

Every voice webhook carries the call's standard parameters (`CallSid`, `AccountSid`, `From`,
`To`, `CallStatus`, `Direction`); each kind adds its own: `Digits`/`SpeechResult` (a
`<Gather>`'s action), `QueueResult`/`QueueTime` (an `<Enqueue>`'s action), `QueuePosition`
(its wait URL), `DialCallStatus`/`DialCallDuration` (a `<Dial>`'s action), `CallDuration`
(a status callback), `RecordingSid`/`RecordingUrl`/`RecordingStatus`/`RecordingDuration`
(a recording's status callback). Which omnicrm call a request is about is in the address we
gave Twilio (`?call=<id>&leg=<n>`), never taken from the body alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from channels.base import Malformed
from channels.twilio.numbers import e164

_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_RECORDING_SID = re.compile(r"^RE[0-9a-fA-F]{32}$")
# Call statuses that end a call (the others: queued, initiated, ringing, in-progress).
FINAL_STATUSES: Final = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
CALL_STATUSES: Final = FINAL_STATUSES | {"queued", "initiated", "ringing", "in-progress"}
MAX_SPEECH = 500


@dataclass(frozen=True)
class CallRequest:
    """The standard parameters of any voice webhook, and where it says it belongs."""

    call_sid: str
    account_sid: str
    from_number: str
    to_number: str
    status: str
    # From our own address: the omnicrm call id, the operator leg, the menu path, a kind.
    call_id: int | None
    leg: int | None
    query: Mapping[str, str]


@dataclass(frozen=True)
class Input:
    """What a caller pressed or said at a `<Gather>` (both empty on a timeout)."""

    digits: str | None
    speech: str | None


@dataclass(frozen=True)
class Recording:
    sid: str
    url: str
    status: str
    duration_seconds: int | None


def _int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not re.fullmatch(r"-?\d{1,9}", value.strip()):
        raise Malformed(f"{name} is not a whole number")
    return int(value)


def _number(raw: str | None, name: str, required: bool) -> str:
    """A caller or called number: +E.164 when it is one; SIP and client addresses and Twilio's
    placeholders for hidden numbers (anonymous, restricted) kept as they came."""
    if not raw:
        if required:
            raise Malformed(f"{name} is missing")
        return ""
    value = raw.strip()[:40]
    if value.startswith("+"):
        try:
            return e164(value)
        except ValueError:
            return value
    return value


def call_request(
    fields: Mapping[str, str], url: str, account_sid: str, numbers: bool = True
) -> CallRequest:
    """The standard parameters; Malformed if Twilio would never send them so. `numbers`:
    From and To must be there (every call webhook has them; a recording's callback not)."""
    sid = fields.get("CallSid", "")
    if not _CALL_SID.match(sid):
        raise Malformed("CallSid is missing or not a call SID")
    if fields.get("AccountSid") != account_sid:
        raise Malformed("AccountSid is not this account's")
    status = fields.get("CallStatus", "")
    if status and status not in CALL_STATUSES:
        raise Malformed(f"CallStatus {status!r} is not one of Twilio's")
    query = dict(parse_qsl(urlsplit(url).query))
    return CallRequest(
        call_sid=sid,
        account_sid=account_sid,
        from_number=_number(fields.get("From"), "From", numbers),
        to_number=_number(fields.get("To"), "To", numbers),
        status=status,
        call_id=_int(query.get("call"), "call"),
        leg=_int(query.get("leg"), "leg"),
        query=query,
    )


def gathered(fields: Mapping[str, str]) -> Input:
    digits = (fields.get("Digits") or "").strip() or None
    if digits is not None and not re.fullmatch(r"[0-9*#]{1,20}|hangup", digits):
        raise Malformed("Digits holds something a keypad cannot send")
    speech = (fields.get("SpeechResult") or "").strip()[:MAX_SPEECH] or None
    return Input(digits if digits != "hangup" else None, speech)


def seconds(fields: Mapping[str, str], name: str) -> int | None:
    value = _int(fields.get(name), name)
    return None if value is None else max(value, 0)


def recording(fields: Mapping[str, str]) -> Recording:
    sid = fields.get("RecordingSid", "")
    if not _RECORDING_SID.match(sid):
        raise Malformed("RecordingSid is missing or not a recording SID")
    url = fields.get("RecordingUrl", "")
    if not re.match(r"^https?://", url):
        raise Malformed("RecordingUrl is not an address")
    return Recording(
        sid=sid,
        url=url,
        status=fields.get("RecordingStatus", "completed") or "completed",
        duration_seconds=seconds(fields, "RecordingDuration"),
    )
