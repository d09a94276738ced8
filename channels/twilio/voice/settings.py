"""A Twilio number's call flow, as an admin enters it in the account's `voice_numbers`.

Each number answers with: a consent announcement when calls are recorded, a greeting, then
its menu (if any), then a queue. Outside the queue's business hours the caller hears the
after-hours message and may leave a voicemail. A menu is a tree: each option is a digit
and/or spoken keywords, and leads to a nested menu or to a queue with a choice (the routing
fact `ivr_choice`, which queue rules can match).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from channels.twilio.numbers import e164

MAX_DEPTH = 4
_DIGIT = r"^[0-9*#]$"
# Twilio's <Say> languages are BCP 47 tags such as en-US, de-DE, ru-RU.
_LANGUAGE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
Text = Annotated[str, Field(max_length=1000)]


class MenuOption(BaseModel):
    """One choice of a menu: press `digit` or say one of `speech`; then `menu` (nested) or
    the queue (`queue_id`, else the number's) with `choice` as the routing fact."""

    model_config = ConfigDict(extra="forbid")

    digit: str | None = Field(default=None, pattern=_DIGIT)
    speech: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=10, description="keywords a caller may say instead"
    )
    label: str = Field(default="", max_length=100, description="what operators see")
    choice: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="the ivr_choice routing fact; default: the label in lower case",
    )
    queue_id: int | None = Field(default=None, ge=1)
    say: Text = Field(default="", description="said before the caller joins the queue")
    menu: Menu | None = None

    @model_validator(mode="after")
    def _reachable(self) -> MenuOption:
        if self.digit is None and not self.speech:
            raise ValueError("an option needs a digit or speech keywords")
        if self.menu is not None and (self.queue_id is not None or self.choice is not None):
            raise ValueError("an option leads to a nested menu or to a queue, not both")
        return self

    @property
    def fact(self) -> str | None:
        """The ivr_choice this option sets."""
        if self.choice:
            return self.choice
        label = re.sub(r"[^a-z0-9_.-]+", "_", self.label.strip().lower()).strip("_")
        return label or self.digit


class Menu(BaseModel):
    """A menu: the prompt, said while the caller may press or speak."""

    model_config = ConfigDict(extra="forbid")

    prompt: Text = Field(min_length=1)
    language: str | None = Field(
        default=None, pattern=_LANGUAGE, description="BCP 47, e.g. de-DE; default the number's"
    )
    options: list[MenuOption] = Field(min_length=1, max_length=12)
    timeout_seconds: int = Field(default=5, ge=1, le=30)
    attempts: int = Field(default=3, ge=1, le=5, description="tries before the default queue")
    invalid_message: Text = "Sorry, that is not one of the choices."
    timeout_message: Text = "Sorry, I did not hear a choice."

    @model_validator(mode="after")
    def _distinct(self) -> Menu:
        digits = [option.digit for option in self.options if option.digit is not None]
        if len(set(digits)) != len(digits):
            raise ValueError("two options use the same digit")
        return self

    def depth(self) -> int:
        nested = [option.menu.depth() for option in self.options if option.menu is not None]
        return 1 + max(nested, default=0)

    def at(self, path: str) -> Menu | None:
        """The menu at `path` ("" the top, "0.2" the first option's menu's third option's)."""
        menu: Menu | None = self
        for part in filter(None, path.split(".")):
            if menu is None or not part.isdigit() or int(part) >= len(menu.options):
                return None
            menu = menu.options[int(part)].menu
        return menu

    def match(self, digits: str | None, speech: str | None) -> int | None:
        """The index of the option the caller picked, if any."""
        if digits:
            for index, option in enumerate(self.options):
                if option.digit is not None and option.digit == digits.strip()[:1]:
                    return index
        if speech:
            said = speech.casefold()
            for index, option in enumerate(self.options):
                if any(word.casefold() in said for word in option.speech):
                    return index
        return None


MenuOption.model_rebuild()


class VoiceNumber(BaseModel):
    """One of the account's phone numbers that takes calls, and its call flow."""

    model_config = ConfigDict(extra="forbid")

    number: str = Field(description="+E.164, as Twilio sends it in To")
    queue_id: int | None = Field(
        default=None, ge=1, description="the queue calls wait in; default the account's"
    )
    language: str = Field(default="en-US", pattern=_LANGUAGE)
    greeting: Text = "Thank you for calling."
    menu: Menu | None = None
    record_calls: bool = False
    consent_message: Text = "This call may be recorded for quality and training."
    wait_message: Text = "All our agents are busy. You are number {position} in the queue."
    hold_music_url: str | None = Field(default=None, max_length=500)
    hold_message: Text = "Please hold."
    max_wait_seconds: int = Field(default=600, ge=30, le=3600)
    after_hours_message: Text = "We are closed now."
    voicemail: bool = True
    voicemail_message: Text = "Please leave a message after the tone, and we will call you back."
    voicemail_max_seconds: int = Field(default=120, ge=10, le=600)
    ring_seconds: int = Field(default=20, ge=5, le=60, description="how long an operator rings")
    wrap_up_seconds: int = Field(default=30, ge=0, le=1800)
    callback_within_minutes: int = Field(
        default=30, ge=0, le=10080, description="a missed call's callback is due this soon"
    )

    @field_validator("number")
    @classmethod
    def _e164(cls, value: str) -> str:
        return e164(value)

    @field_validator("hold_music_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s]+$", value.strip()):
            raise ValueError("must be an http(s) address Twilio can fetch")
        return value.strip() if value else None

    @model_validator(mode="after")
    def _shallow(self) -> VoiceNumber:
        if self.menu is not None and self.menu.depth() > MAX_DEPTH:
            raise ValueError(f"menus nest at most {MAX_DEPTH} deep")
        if "{position}" not in self.wait_message and "position" in self.wait_message:
            raise ValueError("write the caller's place in the queue as {position}")
        return self

    def menu_language(self, menu: Menu) -> str:
        return menu.language or self.language
