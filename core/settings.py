"""Settings: defaults < TOML config file < OMNICRM_* environment variables."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError as PydanticSettingsError

from core.db import DEFAULT_POOL_SIZE, postgresql_url

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./omnicrm.db"
INSECURE_DEV_SECRET = "dev-insecure-change-me"  # noqa: S105 - a marker that is refused in production mode


class SettingsError(Exception):
    """Settings are invalid; the message is one line fit for a terminal."""


# Keys of a `[[channels]]` table that are the account's own; every other key is a setting of
# the channel's (validated by its settings model when the app or the CLI starts).
_ACCOUNT_KEYS = ("channel", "name", "queue", "enabled")
ENV_SUFFIX = "_env"


class ChannelAccountSettings(BaseModel):
    """One `[[channels]]` table of the config file: an account of a channel, e.g.

        [[channels]]
        channel = "email"
        name = "support"
        queue = "Support"                        # a queue's name: ids differ by installation
        address = "support@shop.example"         # ... and the channel's other settings
        imap_password_env = "SUPPORT_MAIL_PASSWORD"

    Secrets belong in the environment, not the file: `<setting>_env = "VAR"` names the
    variable that holds the setting's value, read at load (a value so read is kept as a
    SecretStr, out of reprs). The channel's own settings are checked by the channel when the
    app or the CLI starts (channels/accounts.py: `declared_accounts`), since core does not
    know channels.
    """

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=100)
    queue: str | None = None
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _gather_settings(cls, data: Any) -> Any:
        """The table is flat: what is not the account's own is the channel's settings."""
        if not isinstance(data, dict):
            return data
        own = {key: value for key, value in data.items() if key in _ACCOUNT_KEYS}
        rest = {key: value for key, value in data.items() if key not in _ACCOUNT_KEYS}
        return {**own, "settings": rest}

    @model_validator(mode="after")
    def _read_environment(self) -> Self:
        settings: dict[str, Any] = {}
        for key, value in self.settings.items():
            if not key.endswith(ENV_SUFFIX):
                settings.setdefault(key, value)
                continue
            field = key.removesuffix(ENV_SUFFIX)
            if field in self.settings:
                raise ValueError(f"{self._what}: give {field} or {key}, not both")
            if not isinstance(value, str) or not os.environ.get(value):
                raise ValueError(
                    f"{self._what}: {key} names {value}, which is not set in the environment"
                )
            settings[field] = SecretStr(os.environ[value])
        self.settings = settings
        return self

    @property
    def _what(self) -> str:
        return f"{self.channel} account {self.name!r}"

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Core cannot tell which settings are secret (an inline one, say): reprs, logs and
        # errors show the names of the settings, never their values.
        yield from (("channel", self.channel), ("name", self.name), ("queue", self.queue))
        yield "enabled", self.enabled
        yield "settings", sorted(self.settings)

    def values(self) -> dict[str, Any]:
        """The channel's settings as given, values read from the environment revealed."""
        return {
            key: value.get_secret_value() if isinstance(value, SecretStr) else value
            for key, value in self.settings.items()
        }


class MailboxSettings(ChannelAccountSettings):
    """One `[[mailboxes]]` table: another spelling of `[[channels]]` with channel "email"
    (kept from before channel accounts; `active` is `enabled` there)."""

    @model_validator(mode="before")
    @classmethod
    def _email(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "channel" in data:
            raise ValueError("a [[mailboxes]] table is an email account: leave out channel")
        data = {**data, "channel": "email"}
        if "active" in data:
            data["enabled"] = data.pop("active")
        return data


class Settings(BaseSettings):
    """Everything an admin can configure, with defaults that serve a demo on a fresh machine."""

    model_config = SettingsConfigDict(env_prefix="OMNICRM_", extra="forbid")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    # Web server processes of `omnicrm serve` (docs/scaling.md); unset: one per CPU core on
    # PostgreSQL, and always one on SQLite (a single-process database).
    workers: int | None = Field(default=None, ge=1, le=256)
    # PostgreSQL connections each process keeps open (half as many again for bursts).
    database_pool_size: int = Field(default=DEFAULT_POOL_SIZE, ge=1, le=1000)
    secret_key: str = INSECURE_DEV_SECRET
    # The key of channel credentials at rest (core/credentials.py); unset: derived from
    # secret_key. Previous keys still decrypt during a rotation (`omnicrm secrets rotate`).
    credentials_key: SecretStr | None = None
    credentials_previous_keys: list[SecretStr] = Field(default_factory=list)
    # Region used to read phone numbers written without a country code (ISO 3166 alpha-2).
    default_region: str = "US"
    # A resolved conversation reopens when the customer writes again within this many days.
    reopen_window_days: float = Field(default=7.0, ge=0)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Web forms: submissions allowed per client IP per minute (shared by the processes).
    form_rate_limit_per_minute: int = Field(default=20, ge=1)
    # How long a customer's status link (/status/{token}, core/status_links.py) works.
    status_link_days: int = Field(default=30, ge=1, le=365)
    session_ttl_hours: float = Field(default=12.0, gt=0)
    # Cookies are marked Secure unless this is off (local HTTP development).
    secure_cookies: bool = False
    # The address people and providers reach this server at (scheme, host, optional port and
    # path prefix), e.g. https://crm.example.com; used for links that leave the server (form
    # embed snippets, webhook addresses) and as the server's own origin. Unset: the request's.
    public_url: str | None = None
    # Extra origins allowed to sign in and open the websocket besides the server's own.
    allowed_origins: list[str] = Field(default_factory=list)
    # Sign-in throttling, shared by every process through the database: failed attempts per
    # account (email) and per client address within the window before further attempts get
    # 429, and the delay before answering the third failure of an account (doubling after).
    login_failures_per_account: int = Field(default=10, ge=1)
    login_failures_per_address: int = Field(default=50, ge=1)
    login_failure_window_seconds: float = Field(default=60.0, gt=0, le=86400)
    login_failure_delay_seconds: float = Field(default=0.5, ge=0, le=10)
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks, e.g.
    # "10.0.0.0/8"); the client is the last address in it that is not one of them.
    trusted_proxies: list[str] = Field(default_factory=list)

    # /metrics answers callers that send this bearer token, and callers from these addresses
    # (IPs or CIDR networks; default: this machine only). The token also shows /healthz's
    # details, which are otherwise for admins.
    metrics_token: SecretStr | None = Field(default=None, min_length=16)
    metrics_allowed_addresses: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    # Retries of a transient failure (core.outbox.RetrySchedule): waits double from the base
    # up to the cap (each at least half its nominal length); the message fails after this
    # many attempts or this long after it was queued, whichever comes first. The defaults
    # ride out an outage of about 3.5 hours or more.
    outbox_max_attempts: int = Field(default=20, ge=1)
    outbox_retry_base_seconds: float = Field(default=30.0, gt=0)
    outbox_retry_cap_seconds: float = Field(default=1800.0, gt=0)
    outbox_give_up_after_seconds: float = Field(default=86400.0, gt=0)
    # An outbox item claimed by a worker that died is retried after this lease runs out.
    outbox_lease_seconds: float = Field(default=60.0, gt=0)
    # Where attachments are kept (content-addressed files), and the largest one stored.
    attachments_dir: str = "./data/attachments"
    max_attachment_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    # Routing: an operator whose console has been closed this long is set away, and offline
    # after the second grace; an operator offline this long has unanswered work requeued.
    away_after_disconnect_seconds: float = Field(default=60.0, ge=5)
    offline_after_disconnect_seconds: float = Field(default=900.0, ge=5)
    requeue_after_offline_seconds: float = Field(default=300.0, ge=0)
    # How long routing waits for enrichers (the ERP bridge) before routing without their facts.
    enricher_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # How long the ERP bridge waits for the ERP's answer to one call (then: the last known
    # answer, marked as of when, or "unavailable").
    erp_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Which suggestion engine answers (core/suggestions/engines.py): auto (the measured best
    # that is installed), lexical, or semantic (needs `pip install 'omnicrm[semantic]'`).
    suggestion_engine: Literal["auto", "lexical", "semantic"] = "auto"
    log_level: str = "INFO"
    # None: JSON lines when stderr is not a terminal (a service manager, a container, a
    # file), plain text on a terminal.
    log_json: bool | None = None
    # `[[channels]]` tables (`[[omnicrm.channels]]` inside an [omnicrm] table): channel
    # accounts synced into the database at start-up, where the API shows them read-only.
    # `[[mailboxes]]` are email accounts spelt as before.
    channels: list[ChannelAccountSettings] = Field(default_factory=list)
    mailboxes: list[MailboxSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _retry_cap_above_base(self) -> Self:
        if self.outbox_retry_cap_seconds < self.outbox_retry_base_seconds:
            raise ValueError("outbox_retry_cap_seconds must be at least outbox_retry_base_seconds")
        return self

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        if value.startswith("postgresql"):
            postgresql_url(value)  # its TLS options, checked here to fail at start-up
        return value

    @field_validator("credentials_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError(
                "must be at least 16 characters; use a long random string, e.g. from "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value

    @field_validator("credentials_previous_keys")
    @classmethod
    def _not_empty(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not key.get_secret_value() for key in value):
            raise ValueError("an empty key cannot have encrypted anything; remove it")
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// address")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return [entry.strip() for entry in value]

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_allowed_addresses")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)"
                ) from None
        return [item.strip() for item in value]

    @property
    def metrics_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(item, strict=False) for item in self.metrics_allowed_addresses]

    @property
    def public_origin(self) -> str | None:
        """scheme://host[:port] of `public_url`, as browsers send it in Origin headers."""
        if self.public_url is None:
            return None
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}; use an ISO 3166 code such as US or DE")
        return region

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    @model_validator(mode="after")
    def _unique_account_names(self) -> Self:
        keys = [f"{account.channel}:{account.name.strip()}" for account in self.channel_accounts]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ValueError(
                f"each account of a channel needs its own name; repeated: {', '.join(repeated)}"
            )
        return self

    @property
    def channel_accounts(self) -> list[ChannelAccountSettings]:
        """The config file's channel accounts: `[[channels]]`, then `[[mailboxes]]`."""
        return [*self.channels, *self.mailboxes]

    @property
    def is_postgresql(self) -> bool:
        return self.database_url.startswith("postgresql")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments win; load_settings passes the config file minus what the
        # environment sets, so the order is: CLI flags > environment > config file > defaults.
        return (init_settings, env_settings)


def load_settings(config_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings from the TOML file (if any) and the environment; raise SettingsError."""
    path = config_path or os.environ.get("OMNICRM_CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        try:
            with Path(path).open("rb") as handle:
                file_values = tomllib.load(handle)
        except FileNotFoundError:
            raise SettingsError(f"config file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
        # A [omnicrm] table is accepted so the file can hold other tools' sections too.
        file_values = file_values.get("omnicrm", file_values)
    from_env = {k[len("OMNICRM_") :].lower() for k in os.environ if k.startswith("OMNICRM_")}
    file_values = {k: v for k, v in file_values.items() if k not in from_env}
    try:
        return Settings(**{**file_values, **overrides})
    except PydanticSettingsError as exc:
        # An environment variable of a list setting that is not JSON.
        raise SettingsError(
            f'invalid settings: {exc} (write a list as JSON, e.g. \'["first", "second"]\')'
        ) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
