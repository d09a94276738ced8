"""Phone numbers as Twilio writes them: +E.164."""

from __future__ import annotations

import phonenumbers


def e164(raw: str) -> str:
    """+E.164 for a number written with its country code; ValueError otherwise."""
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{raw!r} is not a phone number with its +country code") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"{raw!r} is not a possible phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
