"""An operator's own choices: the language and time zone the console speaks and shows, and
how it tells them of new work.

Stored as JSON on the operator (`operator.preferences`); read through `Preferences`, which
gives every missing key its default, so an operator created before a preference existed reads
sensibly. `update_preferences` validates the whole result and audits what changed.
"""

from __future__ import annotations

import re
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.errors import InvalidInput, validation_fields
from core.models import Operator

# The languages the console and the customer-facing pages are translated into.
LOCALES: Final = ("en", "ru", "de")
DEFAULT_LOCALE: Final = "en"
# Empty: the time zone of the computer the console runs on.
DEFAULT_TIME_ZONE: Final = ""


class Preferences(BaseModel):
    """What an operator chose; every field has a default."""

    model_config = ConfigDict(extra="forbid")

    locale: str = Field(default=DEFAULT_LOCALE, description="the console's language")
    time_zone: str = Field(
        default=DEFAULT_TIME_ZONE,
        description="IANA time zone dates and times are shown in; empty: the computer's own",
    )
    desktop_notifications: bool = Field(
        default=True, description="offers and @mentions raise a desktop notification"
    )
    sound: bool = Field(default=False, description="a sound with each notification")
    title_count: bool = Field(default=True, description="the tab title counts unseen work")
    voice_device: str = Field(
        default="",
        max_length=200,
        description="the phone calls ring on: +E.164 or sip:user@host; empty: none",
    )

    @field_validator("voice_device")
    @classmethod
    def _device(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        if value.lower().startswith("sip:"):
            if not re.fullmatch(r"sip:[^@\s]+@[A-Za-z0-9.-]+(:\d{1,5})?(;[^\s]*)?", value, re.I):
                raise ValueError("a SIP address looks like sip:anna@pbx.example.com")
            return value
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            raise ValueError("a phone number with its +country code, or sip:user@host") from None
        if not phonenumbers.is_possible_number(number):
            raise ValueError("not a possible phone number")
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in LOCALES:
            raise ValueError(f"must be one of {', '.join(LOCALES)}")
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value == DEFAULT_TIME_ZONE:
            return value
        return known_time_zone(value)


def known_time_zone(value: str) -> str:
    """`value` if it names an IANA time zone (or UTC); else ValueError with what to give."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("not a known IANA time zone, e.g. Europe/Berlin") from exc
    if value not in available_timezones() and value != "UTC":
        raise ValueError("not a known IANA time zone, e.g. Europe/Berlin")
    return value


def preferences_of(operator: Operator) -> Preferences:
    """The operator's preferences; stored values that no longer validate read as defaults."""
    stored = operator.preferences or {}
    try:
        return Preferences.model_validate(stored)
    except ValidationError:
        kept: dict[str, Any] = {}
        for key, value in stored.items():
            try:
                Preferences.model_validate({key: value})
            except ValidationError:
                continue
            kept[key] = value
        return Preferences.model_validate(kept)


async def update_preferences(
    session: AsyncSession, actor: Actor, operator: Operator, changes: dict[str, Any]
) -> Preferences:
    """Apply `changes` (only the keys given) to the operator's preferences; InvalidInput with
    per-field errors, nothing changed, if the result does not validate."""
    current = preferences_of(operator).model_dump()
    try:
        result = Preferences.model_validate({**current, **changes})
    except ValidationError as exc:
        error = InvalidInput("invalid preferences")
        error.fields = validation_fields(exc, "preferences")
        raise error from exc
    changed = {
        key: value for key, value in result.model_dump().items() if current.get(key) != value
    }
    if changed:
        operator.preferences = result.model_dump()
        await audit.record(session, actor, "operator.preferences", "operator", operator.id, changed)
    return result
