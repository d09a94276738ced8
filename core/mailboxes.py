"""Mailboxes: the email accounts omnicrm reads over IMAP and sends from over SMTP.

They are configured three ways, all through here: the API, the CLI and the config file. The
config file owns the mailboxes it declares (`from_config`): `sync_config_mailboxes` brings the
database in line with it at start-up, and the API may not change them. Passwords are stored
for the pollers and senders, encrypted with the `CredentialCipher` every writer is given
(core/credentials.py), and compared as the passwords they hold, so saving the same password
again changes nothing; they are never audited, logged or returned by the API.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnDefault, func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.credentials import CredentialCipher, Rotation
from core.errors import Conflict, InvalidInput, NotFound
from core.event_types import MAILBOX_CREATED, MAILBOX_DELETED, MAILBOX_UPDATED
from core.events import Event, emit
from core.identity import normalize_email
from core.models import AfterImport, Mailbox, Queue, Role, TlsMode
from core.validation import check_storable

if TYPE_CHECKING:
    from core.settings import MailboxSettings

# Who changes a mailbox when the config file declares it.
CONFIG_FILE = Actor("config-file", Role.ADMIN)

SECRET_FIELDS = frozenset({"imap_password", "smtp_password"})
REQUIRED_FIELDS = ("name", "address", "imap_host", "imap_user", "smtp_host")
MAX_POLL_SECONDS = 24 * 3600
MAX_BACKFILL_DAYS = 3650
# pg_advisory_xact_lock key of the config sync ("omnimbox" in ASCII).
_CONFIG_SYNC_LOCK = 0x6F6D6E696D626F78

_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")
# What an address needs to be usable in a From header and as the domain of our Message-IDs.
_SENDABLE_ADDRESS = re.compile(r"^[^@\s<>,;\"()\\]+@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")

Check = Callable[[Any, str], Any]


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput("must be text", field=field)
    check_storable(value, field)
    return value


def _line(value: Any, field: str, max_length: int, *, required: bool) -> str:
    """One line of printable text, trimmed."""
    text = _text(value, field).strip()
    if required and not text:
        raise InvalidInput("must not be empty", field=field)
    if len(text) > max_length:
        raise InvalidInput(f"must be at most {max_length} characters", field=field)
    if not text.isprintable():
        raise InvalidInput("must be one line of printable text", field=field)
    return text


def check_host(value: Any, field: str) -> str:
    """A host name or an IP address (IPv6 with or without brackets)."""
    host = _text(value, field).strip()
    try:
        return str(ipaddress.ip_address(host.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise InvalidInput("must be a host name or IP address, e.g. mail.example.com", field=field)
    return host.lower().rstrip(".")


def check_port(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidInput("must be a port number from 1 to 65535", field=field)
    return value


def check_tls(value: Any, field: str) -> str:
    return _choice(value, field, TlsMode)


def check_folder(value: Any, field: str) -> str:
    return _line(value, field, 200, required=True)


def _choice(value: Any, field: str, choices: type[TlsMode] | type[AfterImport]) -> str:
    allowed = [str(choice) for choice in choices]
    if value not in allowed:
        raise InvalidInput(f"must be one of {', '.join(allowed)}", field=field)
    return str(value)


def _whole_number(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"must be a whole number from {low} to {high}", field=field)
    return value


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput("must be true or false", field=field)
    return value


def _address(value: Any, field: str) -> str:
    try:
        address = normalize_email(_text(value, field))
    except InvalidInput:
        raise InvalidInput("not a valid email address", field=field) from None
    if not _SENDABLE_ADDRESS.fullmatch(address):
        raise InvalidInput("not an email address omnicrm can send from", field=field)
    return address


def _password(value: Any, field: str) -> str:
    # Not trimmed: spaces can be part of a password. Line breaks would break IMAP LOGIN.
    password = _text(value, field)
    if len(password) > 1000:
        raise InvalidInput("must be at most 1000 characters", field=field)
    if "\r" in password or "\n" in password:
        raise InvalidInput("must not contain line breaks", field=field)
    return password


def _optional_folder(value: Any, field: str) -> str | None:
    if value is None or value == "":
        return None
    return check_folder(value, field)


def _queue_id(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput("must be a queue id", field=field)
    return value


_CHECKS: dict[str, Check] = {
    "name": lambda value, name: _line(value, name, 100, required=True),
    "address": _address,
    "display_name": lambda value, name: _line(value, name, 200, required=False),
    "imap_host": check_host,
    "imap_port": check_port,
    "imap_tls": check_tls,
    "imap_user": lambda value, name: _line(value, name, 320, required=True),
    "imap_password": _password,
    "imap_folder": check_folder,
    "smtp_host": check_host,
    "smtp_port": check_port,
    "smtp_tls": check_tls,
    # Empty: the SMTP server takes mail without AUTH (e.g. a relay on the local network).
    "smtp_user": lambda value, name: _line(value, name, 320, required=False),
    "smtp_password": _password,
    "queue_id": _queue_id,
    "after_import": lambda value, name: _choice(value, name, AfterImport),
    "move_to_folder": _optional_folder,
    "use_idle": _flag,
    "poll_seconds": lambda value, name: _whole_number(value, name, 1, MAX_POLL_SECONDS),
    "backfill_days": lambda value, name: _whole_number(value, name, 0, MAX_BACKFILL_DAYS),
    "active": _flag,
}
SETTINGS = tuple(_CHECKS)


def _model_defaults() -> dict[str, Any]:
    """The column defaults of the settings that have one (the model is the one source)."""
    defaults: dict[str, Any] = {}
    for column in inspect(Mailbox).columns:
        default = column.default
        if column.key in _CHECKS and isinstance(default, ColumnDefault) and default.is_scalar:
            defaults[column.key] = default.arg
        elif column.key in _CHECKS and column.nullable:
            defaults[column.key] = None
    return defaults


DEFAULTS = _model_defaults()


def check_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Each given setting checked and normalized; InvalidInput names every bad one."""
    error = InvalidInput("the mailbox has invalid settings")
    checked: dict[str, Any] = {}
    for name, value in values.items():
        check = _CHECKS.get(name)
        try:
            if check is None:
                raise InvalidInput("not a mailbox setting", field=name)
            checked[name] = check(value, name)
        except InvalidInput as problem:
            error.fields.update(problem.fields or {name: problem.message})
    if error.fields:
        raise error
    return checked


def check_consistent(settings: Mapping[str, Any]) -> None:
    """The rules between the settings of a whole mailbox."""
    if settings["after_import"] == AfterImport.MOVE:
        if not settings["move_to_folder"]:
            raise InvalidInput("needed when after_import is move", field="move_to_folder")
        if settings["move_to_folder"] == settings["imap_folder"]:
            # Moving into the folder being read would import every message again and again.
            raise InvalidInput("must differ from imap_folder", field="move_to_folder")


def check_complete(values: Mapping[str, Any]) -> dict[str, Any]:
    """A whole new mailbox: the given settings checked, the rest defaulted."""
    settings = {**DEFAULTS, **check_fields(values)}
    missing = [name for name in REQUIRED_FIELDS if not settings.get(name)]
    if missing:
        error = InvalidInput("the mailbox is missing settings")
        error.fields.update(dict.fromkeys(missing, "this setting is required"))
        raise error
    check_consistent(settings)
    return settings


async def list_mailboxes(session: AsyncSession, *, active_only: bool = False) -> list[Mailbox]:
    """Mailboxes oldest first."""
    query = select(Mailbox).order_by(Mailbox.id)
    if active_only:
        query = query.where(Mailbox.active.is_(True))
    return list(await session.scalars(query))


async def active_mailbox_exists(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(Mailbox.id).where(Mailbox.active.is_(True)).limit(1)))


async def get_mailbox(session: AsyncSession, mailbox_id: int) -> Mailbox:
    mailbox = await session.get(Mailbox, mailbox_id)
    if mailbox is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    return mailbox


async def create_mailbox(
    session: AsyncSession,
    actor: Actor,
    values: Mapping[str, Any],
    *,
    cipher: CredentialCipher,
) -> Mailbox:
    """A new mailbox from settings named as the Mailbox columns (passwords in clear text,
    stored encrypted with `cipher`); 400 names each bad one."""
    return await _create(session, actor, values, cipher, from_config=False)


async def update_mailbox(
    session: AsyncSession,
    actor: Actor,
    mailbox_id: int,
    changes: Mapping[str, Any],
    *,
    cipher: CredentialCipher,
) -> Mailbox:
    """Change the given settings; a password not given stays as it is."""
    mailbox = await get_mailbox(session, mailbox_id)
    _refuse_config_mailbox(mailbox)
    await _apply(session, actor, mailbox, changes, cipher)
    return mailbox


async def deactivate_mailbox(session: AsyncSession, actor: Actor, mailbox_id: int) -> Mailbox:
    """Stop reading and sending with this mailbox; what it imported stays."""
    mailbox = await get_mailbox(session, mailbox_id)
    _refuse_config_mailbox(mailbox)
    await _deactivate(session, actor, mailbox, {})
    return mailbox


@dataclass
class ConfigSync:
    """What `sync_config_mailboxes` changed, by mailbox name."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)


async def sync_config_mailboxes(
    session: AsyncSession, configs: Sequence[MailboxSettings], *, cipher: CredentialCipher
) -> ConfigSync:
    """Make the database hold exactly the config file's mailboxes (by name).

    A mailbox the file declares is created or updated to match it, a setting left out of the
    file meaning its default. One with the same name made through the API is taken over by
    the file. A mailbox the file declared before and no longer does is deactivated and handed
    to the API, so an admin can manage or reactivate it there. A mailbox that matches the file
    is not written (its passwords are compared decrypted), so a restart changes nothing.
    """
    if session.get_bind().dialect.name == "postgresql":
        # Server processes starting together would otherwise both create the same mailbox;
        # on SQLite the write lock taken at BEGIN serializes them already.
        await session.execute(select(func.pg_advisory_xact_lock(_CONFIG_SYNC_LOCK)))
    result = ConfigSync()
    declared: set[str] = set()
    for config in configs:
        values = check_complete(config.mailbox_fields())
        values["queue_id"] = await _queue_named(session, values["name"], config.queue)
        declared.add(values["name"])
        existing = await session.scalar(select(Mailbox).where(Mailbox.name == values["name"]))
        if existing is None:
            await _create(session, CONFIG_FILE, values, cipher, from_config=True)
            result.created.append(values["name"])
        elif await _apply(session, CONFIG_FILE, existing, values, cipher, take_over=True):
            result.updated.append(values["name"])
    removed = await session.scalars(
        select(Mailbox).where(Mailbox.from_config.is_(True), Mailbox.name.not_in(declared))
    )
    for mailbox in list(removed):
        mailbox.from_config = False
        await _deactivate(session, CONFIG_FILE, mailbox, {"reason": "removed from the config file"})
        result.deactivated.append(mailbox.name)
    return result


def _refuse_config_mailbox(mailbox: Mailbox) -> None:
    if mailbox.from_config:
        raise Conflict(
            f"mailbox {mailbox.name!r} is declared in the config file: "
            "change it there and restart omnicrm"
        )


async def _create(
    session: AsyncSession,
    actor: Actor,
    values: Mapping[str, Any],
    cipher: CredentialCipher,
    *,
    from_config: bool,
) -> Mailbox:
    settings = check_complete(values)
    await _check_name_free(session, settings["name"])
    await _check_queue(session, settings["queue_id"])
    mailbox = Mailbox(**cipher.encrypt_fields(settings, SECRET_FIELDS), from_config=from_config)
    session.add(mailbox)
    await session.flush()
    await audit.record(
        session,
        actor,
        "mailbox.create",
        "mailbox",
        mailbox.id,
        {"name": mailbox.name, "address": mailbox.address},
    )
    await emit(session, Event(MAILBOX_CREATED, {"mailbox": mailbox.id}))
    return mailbox


async def _apply(
    session: AsyncSession,
    actor: Actor,
    mailbox: Mailbox,
    values: Mapping[str, Any],
    cipher: CredentialCipher,
    *,
    take_over: bool = False,
) -> list[str]:
    """Set the given settings; `take_over` makes the config file the owner. What changed."""
    checked = check_fields(values)
    check_consistent({**{name: getattr(mailbox, name) for name in SETTINGS}, **checked})
    changed = [name for name, value in checked.items() if not _holds(mailbox, name, value, cipher)]
    if "name" in changed:
        await _check_name_free(session, checked["name"], mailbox.id)
    if "queue_id" in changed:
        await _check_queue(session, checked["queue_id"])
    for name in changed:
        value = checked[name]
        setattr(mailbox, name, cipher.encrypt(value) if name in SECRET_FIELDS else value)
    if take_over and not mailbox.from_config:
        mailbox.from_config = True
        changed.append("from_config")
    if not changed:
        return changed
    await session.flush()
    # The names of what changed, never the values: two of them are passwords.
    await audit.record(
        session, actor, "mailbox.update", "mailbox", mailbox.id, {"changed": sorted(changed)}
    )
    await emit(session, Event(MAILBOX_UPDATED, {"mailbox": mailbox.id}))
    return changed


def _holds(mailbox: Mailbox, name: str, value: Any, cipher: CredentialCipher) -> bool:
    """Whether the mailbox's setting is `value` already; a password is compared with what its
    ciphertext decrypts to (one no configured key reads counts as different, and is replaced)."""
    if name in SECRET_FIELDS:
        return cipher.matches(getattr(mailbox, name), value)
    return bool(getattr(mailbox, name) == value)


async def rotate_credentials(
    session: AsyncSession, actor: Actor, cipher: CredentialCipher
) -> Rotation:
    """Re-encrypt every stored mailbox password under the current key of `cipher`.

    Values under a previous key and clear text are re-encrypted; values under the current key
    stay as they are. If any value can be read with no configured key, nothing is written and
    the result lists them: the caller reports them and rolls back. The rows are locked (FOR
    UPDATE on PostgreSQL) so a concurrent edit waits for the rotation.
    """
    rotation = Rotation()
    rows = await session.execute(
        select(Mailbox.id, Mailbox.name, Mailbox.imap_password, Mailbox.smtp_password)
        .order_by(Mailbox.id)
        .with_for_update()
    )
    planned: list[tuple[int, dict[str, str]]] = []
    for row in rows.all():
        new = cipher.rotate_fields(
            {name: getattr(row, name) for name in SECRET_FIELDS},
            SECRET_FIELDS,
            f"mailbox {row.name!r}",
            rotation,
        )
        if new:
            planned.append((row.id, new))
    if rotation.unreadable:
        return rotation
    for mailbox_id, new in planned:
        await session.execute(
            update(Mailbox)
            .where(Mailbox.id == mailbox_id)
            # The same passwords: not an edit of the mailbox, so updated_at stays.
            .values(**new, updated_at=Mailbox.updated_at)
            .execution_options(synchronize_session=False)
        )
        await audit.record(
            session,
            actor,
            "mailbox.rotate_credentials",
            "mailbox",
            mailbox_id,
            {"fields": sorted(new)},
        )
    return rotation


async def _deactivate(
    session: AsyncSession, actor: Actor, mailbox: Mailbox, details: dict[str, Any]
) -> None:
    if not mailbox.active:
        return
    mailbox.active = False
    await session.flush()
    await audit.record(session, actor, "mailbox.deactivate", "mailbox", mailbox.id, details)
    # "deleted" for the pollers: they stop this mailbox as if it were gone.
    await emit(session, Event(MAILBOX_DELETED, {"mailbox": mailbox.id}))


async def _check_name_free(session: AsyncSession, name: str, mailbox_id: int | None = None) -> None:
    taken_by = await session.scalar(select(Mailbox.id).where(Mailbox.name == name))
    if taken_by is not None and taken_by != mailbox_id:
        raise Conflict(f"a mailbox named {name!r} exists already", field="name")


async def _check_queue(session: AsyncSession, queue_id: int | None) -> None:
    if queue_id is not None and await session.get(Queue, queue_id) is None:
        raise InvalidInput(f"no queue {queue_id}", field="queue_id")


async def _queue_named(session: AsyncSession, mailbox: str, queue: str | None) -> int | None:
    if queue is None:
        return None
    queue_id = await session.scalar(select(Queue.id).where(Queue.name == queue))
    if queue_id is None:
        raise InvalidInput(f"mailbox {mailbox!r}: no queue named {queue!r}", field="queue")
    return queue_id
