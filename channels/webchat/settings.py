"""A chat widget's settings, as an admin enters them (API, CLI, config file).

One account is one widget (a website, or a part of one with its own queue). `allowed_origins`
are the websites that may show it: the widget's requests from any other origin are refused,
so the snippet copied onto another site does nothing.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
)
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
Prechat = Literal["off", "optional", "required"]


def origin_of(value: str) -> str:
    """`scheme://host[:port]` of a website address; ValueError if it is not one."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not a website origin such as https://shop.example")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{value!r}: give the origin only, without a path")
    default = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


class WebchatSettings(BaseModel):
    """One widget."""

    model_config = ConfigDict(extra="forbid")

    allowed_origins: list[str] = Field(
        min_length=1,
        max_length=50,
        description="the websites that may show the widget, e.g. https://shop.example",
        json_schema_extra={"cli": "origin"},
    )
    title: str = Field(default="", max_length=100, description="the widget's heading")
    greeting: str = Field(
        default="", max_length=500, description="the first line visitors read (empty: built in)"
    )
    prechat: Prechat = Field(
        default="optional",
        description="ask for name and email or phone before the chat: off, optional, required",
    )
    consent_text: str = Field(
        default="",
        max_length=500,
        description="a consent checkbox's text in the pre-chat form (empty: no checkbox)",
    )
    max_attachment_bytes: int = Field(
        default=MAX_ATTACHMENT_BYTES, ge=0, le=50 * 1024 * 1024, description="0: no attachments"
    )
    attachment_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TYPES),
        max_length=50,
        description="the media types visitors may attach",
        json_schema_extra={"cli": "attachment-type"},
    )

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        origins = [origin_of(item) for item in value]
        return list(dict.fromkeys(origins))

    @field_validator("attachment_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.match(r"^[a-z0-9.+-]+/[a-z0-9.+*-]+$", item):
                raise ValueError(f"{item!r} is not a media type such as image/png")
        return value

    def allows(self, origin: str | None) -> bool:
        if not origin:
            return False
        try:
            return origin_of(origin) in self.allowed_origins
        except ValueError:
            return False

    def accepts_type(self, content_type: str) -> bool:
        kind = content_type.split(";")[0].strip().lower()
        return any(
            kind == allowed or (allowed.endswith("/*") and kind.startswith(allowed[:-1]))
            for allowed in self.attachment_types
        )
