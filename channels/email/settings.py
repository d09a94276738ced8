"""An email account's settings: the mailbox omnicrm reads over IMAP and sends from over SMTP.

`EmailSettings` is the email channel's settings model (channels/base.py: `Channel.
settings_model`): the API, the CLI (`omnicrm channel add email ...`) and the config file
(`[[channels]] channel = "email"`, or `[[mailboxes]]`) all validate an account with it, so a
setting means the same and is checked the same wherever it is given. The passwords are its
secret fields (`SECRET_FIELDS`): stored encrypted by core/channel_accounts.py, never shown.

Invariants the model keeps:
- host names are lower-case without a trailing dot, IP addresses in their canonical form;
- the From address is one omnicrm can send from and use as the domain of its Message-IDs;
- text settings are one printable line (a password may hold spaces, never a line break);
- `after_import = "move"` names a folder other than the one read (moving into the folder
  being read would import every message again and again).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from core.errors import InvalidInput
from core.identity import normalize_email
from core.validation import check_storable

SECRET_FIELDS: Final = frozenset({"imap_password", "smtp_password"})
MAX_POLL_SECONDS: Final = 24 * 3600
MAX_BACKFILL_DAYS: Final = 3650
MAX_PASSWORD: Final = 1000

_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")
# What an address needs to be usable in a From header and as the domain of our Message-IDs.
_SENDABLE_ADDRESS = re.compile(r"^[^@\s<>,;\"()\\]+@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")


class TlsMode(enum.StrEnum):
    """How a mail connection is secured: implicit TLS, STARTTLS upgrade, or none (tests, LAN)."""

    SSL = "ssl"
    STARTTLS = "starttls"
    NONE = "none"


class AfterImport(enum.StrEnum):
    """What happens to a message on the IMAP server once omnicrm has committed it."""

    LEAVE = "leave"
    MARK_SEEN = "seen"
    MOVE = "move"


def _problem(message: str) -> PydanticCustomError:
    # A custom error keeps the message as written (a ValueError would get "Value error, ").
    return PydanticCustomError("email_setting", message)


def _storable(value: str) -> str:
    try:
        check_storable(value, "value")
    except InvalidInput as exc:
        raise _problem(exc.message) from None
    return value


def _line(value: str, max_length: int, *, required: bool) -> str:
    """One line of printable text, trimmed."""
    text = _storable(value).strip()
    if required and not text:
        raise _problem("must not be empty")
    if len(text) > max_length:
        raise _problem(f"must be at most {max_length} characters")
    if not text.isprintable():
        raise _problem("must be one line of printable text")
    return text


def check_host(value: str) -> str:
    """A host name or an IP address (IPv6 with or without brackets)."""
    host = _storable(value).strip()
    try:
        return str(ipaddress.ip_address(host.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise _problem("must be a host name or IP address, e.g. mail.example.com")
    return host.lower().rstrip(".")


Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
Flag = Annotated[bool, Field(strict=True)]


class EmailSettings(BaseModel):
    """One mailbox: where to read (IMAP), where to send (SMTP), what to do after import."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(description="the From address of replies (and our Message-IDs' domain)")
    display_name: str = Field(default="", description="the From name of replies")
    imap_host: str = Field(description="the IMAP server")
    imap_port: Port = Field(default=993, description="993 for ssl, 143 for starttls")
    imap_tls: TlsMode = Field(
        default=TlsMode.SSL, description="ssl (implicit TLS), starttls, or none"
    )
    imap_user: str = Field(description="the IMAP login")
    imap_password: str = Field(default="", description="the IMAP password (secret)")
    imap_folder: str = Field(default="INBOX", description="the folder omnicrm reads")
    smtp_host: str = Field(description="the SMTP server replies are sent through")
    smtp_port: Port = Field(default=465, description="465 for ssl, 587 for starttls")
    smtp_tls: TlsMode = Field(
        default=TlsMode.SSL, description="ssl (implicit TLS), starttls, or none"
    )
    smtp_user: str = Field(default="", description="the SMTP login; empty: send without AUTH")
    smtp_password: str = Field(default="", description="the SMTP password (secret)")
    after_import: AfterImport = Field(
        default=AfterImport.LEAVE,
        description="what happens on the server to an imported message: leave, seen, move",
    )
    move_to_folder: str | None = Field(
        default=None, validate_default=True, description="where after_import move puts messages"
    )
    use_idle: Flag = Field(default=True, description="wait with IMAP IDLE where supported")
    poll_seconds: int = Field(
        default=60,
        strict=True,
        ge=1,
        le=MAX_POLL_SECONDS,
        description="how often to look for mail without IDLE",
    )
    backfill_days: int = Field(
        default=30,
        strict=True,
        ge=0,
        le=MAX_BACKFILL_DAYS,
        description="how far back the first read of a folder goes",
    )

    @field_validator("address")
    @classmethod
    def _sendable(cls, value: str) -> str:
        try:
            address = normalize_email(_storable(value))
        except InvalidInput:
            raise _problem("not a valid email address") from None
        if not _SENDABLE_ADDRESS.fullmatch(address):
            raise _problem("not an email address omnicrm can send from")
        return address

    @field_validator("display_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _line(value, 200, required=False)

    @field_validator("imap_host", "smtp_host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_host(value)

    @field_validator("imap_user")
    @classmethod
    def _login(cls, value: str) -> str:
        return _line(value, 320, required=True)

    @field_validator("smtp_user")
    @classmethod
    def _optional_login(cls, value: str) -> str:
        return _line(value, 320, required=False)

    @field_validator("imap_password", "smtp_password")
    @classmethod
    def _password(cls, value: str) -> str:
        # Not trimmed: spaces can be part of a password. Line breaks would break IMAP LOGIN.
        _storable(value)
        if len(value) > MAX_PASSWORD:
            raise _problem(f"must be at most {MAX_PASSWORD} characters")
        if "\r" in value or "\n" in value:
            raise _problem("must not contain line breaks")
        return value

    @field_validator("imap_folder")
    @classmethod
    def _folder(cls, value: str) -> str:
        return _line(value, 200, required=True)

    @field_validator("move_to_folder")
    @classmethod
    def _move_target(cls, value: str | None, info: ValidationInfo) -> str | None:
        folder = None if value is None or value == "" else _line(value, 200, required=True)
        if info.data.get("after_import") == AfterImport.MOVE:
            if folder is None:
                raise _problem("needed when after_import is move")
            if folder == info.data.get("imap_folder"):
                raise _problem("must differ from imap_folder")
        return folder
