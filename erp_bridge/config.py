"""The configured ERP: the `erp_connection` row, read and written, and the adapter built from
it. The one place the CLI (`omnicrm erp set|show|check`) and the admin API
(`/api/v1/erp/connection`) store an ERP's settings.

- At most one ERP is configured (one row, `id` 1); none is the embedded ERP with its default
  settings, so a new installation answers from its own tables.
- Settings are validated by the kind's `settings_model` as the whole connection they make: a
  change of the kind in use is merged with what is stored (a secret left out stays), a
  change to another kind replaces the row's settings.
- Secrets (the kind's `secret_fields`) are stored only encrypted with the `CredentialCipher`
  handed in (as channel accounts' are: "" or `enc:v1:...`) and never shown: views show
  `<field>_set: true|false` instead. Saving the same secret again writes nothing.
- Every change is audited (`erp_connection.set`, naming the fields changed, never a value of
  a secret); a check's outcome is health (`last_check_*`), not configuration, so it is not.
- `build_adapter` decrypts just before building, and passes the kind's `build` an instance of
  its settings model (secrets in clear, in memory only) and an `ErpContext` with the sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.credentials import CredentialCipher, CredentialError, Rotation, is_encrypted
from core.db import SessionFactory
from core.errors import InvalidInput, validation_fields
from core.models import ErpConnection
from erp_bridge import registry
from erp_bridge.base import ErpAdapter, ErpContext, ErpKind, ErpUnavailable

DEFAULT_KIND = "embedded"
ROW_ID = 1


@dataclass(frozen=True)
class ConnectionView:
    """The configured ERP as an admin may see it: secrets only as `<field>_set`."""

    kind: str
    label: str
    settings: dict[str, Any]
    secret_fields: tuple[str, ...]
    enabled: bool
    # False: nothing is stored, this is the embedded ERP by default.
    configured: bool
    updated_at: datetime | None = None
    last_check_at: datetime | None = None
    last_check_result: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def known_kinds(kinds: Mapping[str, ErpKind] | None = None) -> Mapping[str, ErpKind]:
    return registry.kinds() if kinds is None else kinds


def kind_named(name: str, kinds: Mapping[str, ErpKind] | None = None) -> ErpKind:
    """The kind, or 400 on `kind` naming the ones installed."""
    found = known_kinds(kinds)
    if name not in found:
        raise InvalidInput(
            f"no ERP kind {name!r}; installed: {', '.join(sorted(found))}", field="kind"
        )
    return found[name]


async def get_connection(session: AsyncSession) -> ErpConnection | None:
    return await session.get(ErpConnection, ROW_ID, populate_existing=True)


def public_settings(values: Mapping[str, Any], secret_fields: frozenset[str]) -> dict[str, Any]:
    """Settings as they may be shown: each secret replaced by whether it is set."""
    shown = {key: value for key, value in values.items() if key not in secret_fields}
    for name in sorted(secret_fields):
        shown[f"{name}_set"] = bool(values.get(name))
    return shown


def view_of(
    row: ErpConnection | None, kinds: Mapping[str, ErpKind] | None = None
) -> ConnectionView:
    """What `erp show` and `GET /api/v1/erp/connection` show (never a secret)."""
    found = known_kinds(kinds)
    if row is None:
        kind = found.get(DEFAULT_KIND)
        defaults = _dumped(kind.settings_model(), kind.secret_fields) if kind is not None else {}
        return ConnectionView(
            kind=DEFAULT_KIND,
            label=kind.label if kind is not None else DEFAULT_KIND,
            settings=defaults,
            secret_fields=(),
            enabled=True,
            configured=False,
        )
    kind = found.get(row.kind)
    # A kind this omnicrm does not have: every value that looks encrypted counts as secret.
    secrets = (
        kind.secret_fields
        if kind is not None
        else frozenset(
            key
            for key, value in row.settings.items()
            if isinstance(value, str) and value.startswith("enc:")
        )
    )
    return ConnectionView(
        kind=row.kind,
        label=kind.label if kind is not None else f"{row.kind} (not installed)",
        settings=public_settings(row.settings, secrets),
        secret_fields=tuple(sorted(secrets)),
        enabled=row.enabled,
        configured=True,
        updated_at=row.updated_at,
        last_check_at=row.last_check_at,
        last_check_result=row.last_check_result,
    )


def validated_settings(kind: ErpKind, raw: Mapping[str, Any]) -> BaseModel:
    """The kind's settings model over `raw`; 400 naming each field ("settings.url")."""
    try:
        return kind.settings_model.model_validate(dict(raw))
    except ValidationError as exc:
        error = InvalidInput(f"the {kind.name} ERP's settings are invalid")
        error.fields = {
            f"settings.{name}" if name != "settings" else name: message
            for name, message in validation_fields(exc, "settings").items()
        }
        raise error from None


def _dumped(model: BaseModel, secret_fields: frozenset[str]) -> dict[str, Any]:
    """A validated settings model as JSON values, secrets in clear (a SecretStr's too)."""
    values = model.model_dump(mode="json")
    for name in secret_fields:
        value = getattr(model, name, None)
        if isinstance(value, SecretStr):
            values[name] = value.get_secret_value()
    return values


def _stored_in_clear(
    row: ErpConnection, kind: ErpKind, cipher: CredentialCipher, *, lenient: bool
) -> dict[str, Any]:
    """The row's settings with its secrets decrypted. `lenient`: a secret no configured key
    reads counts as unset (so it can be replaced), else CredentialError names it."""
    values = dict(row.settings)
    for name in kind.secret_fields:
        stored = values.get(name)
        if not isinstance(stored, str):
            continue
        try:
            values[name] = cipher.decrypt(stored, f"the {name} of the {row.kind} ERP connection")
        except CredentialError:
            if not lenient:
                raise
            values[name] = ""
    return values


async def set_connection(
    session: AsyncSession,
    actor: Actor,
    cipher: CredentialCipher,
    kind_name: str,
    settings: Mapping[str, Any],
    *,
    enabled: bool | None = None,
    kinds: Mapping[str, ErpKind] | None = None,
) -> tuple[ErpConnection, list[str]]:
    """Configure the ERP of kind `kind_name` with the settings given (merged with the stored
    ones if that kind is in use); the row and what changed ("kind", field names, "enabled").
    400 naming the kind or each bad setting."""
    kind = kind_named(kind_name, kinds)
    row = await get_connection(session)
    same_kind = row is not None and row.kind == kind.name
    current = _stored_in_clear(row, kind, cipher, lenient=True) if row and same_kind else {}
    model = validated_settings(kind, {**current, **settings})
    clear = _dumped(model, kind.secret_fields)
    # What differs from the stored settings; for a kind newly in use, what was given.
    changed = sorted(
        key
        for key in clear
        if (key in current and current[key] != clear[key])
        or (key not in current and (same_kind or key in settings))
    )
    stored = {
        key: (
            cipher.encrypt(value) if key in kind.secret_fields and isinstance(value, str) else value
        )
        for key, value in clear.items()
    }
    if row is not None and same_kind:
        for key in kind.secret_fields:  # the same secret again: keep its ciphertext
            if key not in changed and key in row.settings:
                stored[key] = row.settings[key]
    what: list[str] = []
    if row is None:
        row = ErpConnection(
            id=ROW_ID, kind=kind.name, settings=stored, enabled=enabled is not False
        )
        session.add(row)
        what = ["kind", *changed, *(["enabled"] if enabled is not None else [])]
    else:
        if not same_kind:
            row.kind = kind.name
            row.last_check_at = None
            row.last_check_result = None
            what.append("kind")
        if changed or not same_kind or row.settings != stored:
            row.settings = stored
        what += changed
        if enabled is not None and enabled != row.enabled:
            row.enabled = enabled
            what.append("enabled")
    await session.flush()
    if what:
        shown = {
            key: clear[key] for key in changed if key not in kind.secret_fields and key in clear
        }
        await audit.record(
            session,
            actor,
            "erp_connection.set",
            "erp_connection",
            row.id,
            {"kind": kind.name, "changed": what, "values": shown, "enabled": row.enabled},
        )
    return row, what


async def clear_connection(session: AsyncSession, actor: Actor) -> bool:
    """Forget the configured ERP: the embedded one answers again. Whether there was one."""
    row = await get_connection(session)
    if row is None:
        return False
    kind = row.kind
    await session.delete(row)
    await session.flush()
    await audit.record(
        session, actor, "erp_connection.clear", "erp_connection", ROW_ID, {"kind": kind}
    )
    return True


async def record_check(session: AsyncSession, *, ok: bool, message: str, at: datetime) -> None:
    """The outcome of a check, on the row (nothing to record for the unconfigured default)."""
    await session.execute(
        update(ErpConnection)
        .where(ErpConnection.id == ROW_ID)
        .values(
            last_check_at=at,
            last_check_result=f"{'ok' if ok else 'failed'}: {message}"[:2000],
            # Health, not configuration: updated_at stays as the last change left it.
            updated_at=ErpConnection.updated_at,
        )
        .execution_options(synchronize_session=False)
    )


async def build_adapter(
    sessions: SessionFactory,
    cipher: CredentialCipher,
    *,
    kinds: Mapping[str, ErpKind] | None = None,
    **policy: Any,
) -> ErpAdapter:
    """The configured ERP's adapter (the embedded one when none is configured), with the
    `ErpAdapter` policy keywords (timeout, ttl, cache, breaker, observer, clock).

    ErpUnavailable when the connection is disabled, its kind is not installed or its stored
    settings no longer validate; CredentialError when no configured key reads a secret."""
    async with sessions() as session:
        row = await get_connection(session)
    found = known_kinds(kinds)
    context = ErpContext(sessions=sessions)
    if row is None:
        kind = found.get(DEFAULT_KIND)
        if kind is None:
            raise ErpUnavailable("the embedded ERP is not installed")
        return kind.build(kind.settings_model(), context, **policy)
    if not row.enabled:
        raise ErpUnavailable(
            f"the {row.kind} ERP connection is disabled (`omnicrm erp set {row.kind} "
            "--enable` turns it on)"
        )
    kind = found.get(row.kind)
    if kind is None:
        raise ErpUnavailable(f"the {row.kind} ERP is not installed in this omnicrm")
    values = _stored_in_clear(row, kind, cipher, lenient=False)
    try:
        model = kind.settings_model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{name}: {message}" for name, message in validation_fields(exc, "settings").items()
        )
        raise ErpUnavailable(
            f"the stored {row.kind} ERP settings are no longer valid ({problems}): set them "
            f"again with `omnicrm erp set {row.kind} ...`"
        ) from None
    return kind.build(model, context, **policy)


async def rotate_credentials(
    session: AsyncSession, actor: Actor, cipher: CredentialCipher, rotation: Rotation
) -> None:
    """Re-encrypt the ERP connection's secrets under the current key (`omnicrm secrets
    rotate`, beside the channel accounts'); a value no configured key reads is listed in
    `rotation.unreadable` and nothing is written (the caller rolls everything back)."""
    row = await session.get(ErpConnection, 1, with_for_update=True)
    if row is None:
        return
    kind = known_kinds().get(row.kind)
    names = (
        kind.secret_fields
        if kind is not None
        else [
            key for key, value in row.settings.items() if isinstance(value, str)
            and is_encrypted(value)
        ]
    )  # fmt: skip
    new = cipher.rotate_fields(row.settings, names, f"the {row.kind} ERP connection", rotation)
    if rotation.unreadable or not new:
        return
    await session.execute(
        update(ErpConnection)
        .where(ErpConnection.id == row.id)
        # The same secrets: not a change of the connection (the adapter in use stays).
        .values(settings={**row.settings, **new}, updated_at=ErpConnection.updated_at)
        .execution_options(synchronize_session=False)
    )
    await audit.record(
        session, actor, "erp.rotate_credentials", "erp_connection", row.id, {"fields": sorted(new)}
    )
