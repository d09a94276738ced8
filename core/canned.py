"""Canned responses: prepared answers with placeholders, shared or an operator's own.

Shared responses (no owner) are managed by supervisors and admins and offered to everyone; an
operator's own are theirs alone (nobody else sees or changes them, supervisors included).

Placeholders are written ``{{contact.first_name}}`` (spaces inside the braces are allowed) and
filled by plain string substitution in one pass: no template language runs, and a value that
itself looks like a placeholder (a contact named "{{operator.name}}") stays as it is. Only the
names in PLACEHOLDERS may be used; a known one without a value (a contact without a phone)
renders as an empty string. The ERP's (ERP_PLACEHOLDERS: the order, the invoice) are filled
by the console from the ERP bridge and left as written here. `{{status.link}}` is a link the
customer opens to see the request's state without signing in (core/status_links.py), made by
the caller's `status_link` (web/routes_status.py: it knows the secret key, the public address
and the ERP's order numbers); without one it renders empty.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import phonenumbers
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.changes import UNSET, Unset
from core.conversations import get_conversation
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.models import CannedResponse, Contact, Conversation, Identity, IdentityKind, Operator
from core.suggestions import index as suggestion_index

MAX_TITLE = 200
MAX_SHORTCUT = 50
MAX_BODY = 20_000
# A picker lists them all, so there is a ceiling per owner (and for the shared ones).
MAX_PER_OWNER = 500
SHORTCUT = re.compile(r"[a-z0-9][a-z0-9_-]*")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")

PLACEHOLDERS = (
    "contact.first_name",
    "contact.last_name",
    "contact.name",
    "contact.email",
    "contact.phone",
    "operator.name",
    "operator.first_name",
    "conversation.id",
    "conversation.subject",
    "status.link",
)
# Makes `{{status.link}}` for a conversation (web/routes_status.py: canned_link_maker).
StatusLinkMaker = Callable[[AsyncSession, Conversation], Awaitable[str]]
# Filled by the console from the ERP when the response is inserted (web/static/console/
# order_links.js: the customer's latest order and open invoice); saved and rendered as written.
ERP_PLACEHOLDERS = (
    "order.number",
    "order.status",
    "order.tracking_url",
    "invoice.amount_due",
)


@dataclass(frozen=True, kw_only=True)
class CannedChanges:
    """What a PATCH asks to change; fields left UNSET stay as they are."""

    title: str | Unset = UNSET
    shortcut: str | Unset | None = UNSET
    body: str | Unset = UNSET


def unknown_placeholders(body: str) -> list[str]:
    """The placeholder names in `body` that cannot be filled, in order of appearance."""
    names = (match.group(1) for match in _PLACEHOLDER.finditer(body))
    known = (*PLACEHOLDERS, *ERP_PLACEHOLDERS)
    return list(dict.fromkeys(name for name in names if name not in known))


def fill(body: str, values: dict[str, str]) -> str:
    """Replace each known placeholder by its value (one pass, no evaluation)."""

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        return values.get(name, "") if name in PLACEHOLDERS else match.group(0)

    return _PLACEHOLDER.sub(value_of, body)


def _check_title(title: str) -> str:
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise InvalidInput(f"title must be 1 to {MAX_TITLE} characters", field="title")
    return title


def _check_shortcut(shortcut: str | None) -> str | None:
    if shortcut is None:
        return None
    shortcut = shortcut.strip().lower().removeprefix("/")
    if not shortcut:
        return None
    if len(shortcut) > MAX_SHORTCUT or not SHORTCUT.fullmatch(shortcut):
        raise InvalidInput(
            "shortcut must be letters, digits, - and _ (at most 50), starting with a letter or "
            "digit",
            field="shortcut",
        )
    return shortcut


def _check_body(body: str) -> str:
    if not body.strip():
        raise InvalidInput("body may not be blank", field="body")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"body must be at most {MAX_BODY} characters", field="body")
    unknown = unknown_placeholders(body)
    if unknown:
        listed = ", ".join("{{" + name + "}}" for name in unknown)
        known = ", ".join((*PLACEHOLDERS, *ERP_PLACEHOLDERS))
        raise InvalidInput(f"unknown placeholders: {listed}; known ones: {known}", field="body")
    return body


def _visible(actor: Actor) -> ColumnElement[bool]:
    """Shared responses and the actor's own."""
    if actor.operator_id is None:
        return CannedResponse.owner_id.is_(None)
    return or_(CannedResponse.owner_id.is_(None), CannedResponse.owner_id == actor.operator_id)


async def list_canned(
    session: AsyncSession, actor: Actor, *, text: str = "", limit: int = MAX_PER_OWNER * 2
) -> list[CannedResponse]:
    """Shared responses and the actor's own, by title; `text` filters title and shortcut."""
    query = select(CannedResponse).where(_visible(actor))
    text = text.strip()
    if text:
        query = query.where(
            or_(
                CannedResponse.title.icontains(text, autoescape=True),
                CannedResponse.shortcut.icontains(text.lower().removeprefix("/"), autoescape=True),
            )
        )
    query = query.order_by(CannedResponse.title, CannedResponse.id).limit(limit)
    return list(await session.scalars(query))


async def get_canned(session: AsyncSession, actor: Actor, canned_id: int) -> CannedResponse:
    """A shared response or one of the actor's own; someone else's own is not found."""
    canned = await session.get(CannedResponse, canned_id)
    if canned is None or (canned.owner_id is not None and canned.owner_id != actor.operator_id):
        raise NotFound(f"no canned response {canned_id}")
    return canned


def _check_may_manage(actor: Actor, canned_owner: int | None) -> None:
    if canned_owner is None and not actor.is_supervisor:
        raise Forbidden("only supervisors and admins manage shared canned responses")


async def _check_free(
    session: AsyncSession, owner_id: int | None, shortcut: str | None, canned_id: int | None
) -> None:
    if shortcut is None:
        return
    owner = (
        CannedResponse.owner_id.is_(None)
        if owner_id is None
        else CannedResponse.owner_id == owner_id
    )
    taken_by = await session.scalar(
        select(CannedResponse.id).where(owner, CannedResponse.shortcut == shortcut)
    )
    if taken_by is not None and taken_by != canned_id:
        scope = "shared canned responses" if owner_id is None else "your canned responses"
        raise Conflict(f"the shortcut {shortcut!r} is taken among {scope}", field="shortcut")


async def create_canned(
    session: AsyncSession,
    actor: Actor,
    *,
    title: str,
    body: str,
    shortcut: str | None = None,
    shared: bool = False,
) -> CannedResponse:
    owner_id: int | None = None
    if shared:
        _check_may_manage(actor, None)
    else:
        if actor.operator_id is None:
            raise InvalidInput("only a signed-in operator has canned responses of their own")
        owner_id = actor.operator_id
    canned = CannedResponse(
        title=_check_title(title),
        shortcut=_check_shortcut(shortcut),
        body=_check_body(body),
        owner_id=owner_id,
    )
    await _check_free(session, owner_id, canned.shortcut, None)
    owner = (
        CannedResponse.owner_id.is_(None)
        if owner_id is None
        else CannedResponse.owner_id == owner_id
    )
    count = await session.scalar(select(func.count()).select_from(CannedResponse).where(owner))
    if (count or 0) >= MAX_PER_OWNER:
        raise Conflict(f"there may be at most {MAX_PER_OWNER} of these canned responses")
    session.add(canned)
    await session.flush()
    await suggestion_index.index_canned(session, canned)
    await audit.record(
        session,
        actor,
        "canned.create",
        "canned_response",
        canned.id,
        {"title": canned.title, "shared": owner_id is None},
    )
    return canned


async def update_canned(
    session: AsyncSession, actor: Actor, canned_id: int, changes: CannedChanges
) -> CannedResponse:
    canned = await get_canned(session, actor, canned_id)
    _check_may_manage(actor, canned.owner_id)
    wanted: dict[str, object] = {}
    if not isinstance(changes.title, Unset):
        wanted["title"] = _check_title(changes.title)
    if not isinstance(changes.shortcut, Unset):
        wanted["shortcut"] = _check_shortcut(changes.shortcut)
        await _check_free(session, canned.owner_id, _check_shortcut(changes.shortcut), canned.id)
    if not isinstance(changes.body, Unset):
        wanted["body"] = _check_body(changes.body)
    changed = [name for name, value in wanted.items() if getattr(canned, name) != value]
    if not changed:
        return canned
    for name in changed:
        setattr(canned, name, wanted[name])
    await session.flush()
    await suggestion_index.index_canned(session, canned)
    await audit.record(
        session, actor, "canned.update", "canned_response", canned.id, {"fields": changed}
    )
    return canned


async def delete_canned(session: AsyncSession, actor: Actor, canned_id: int) -> None:
    canned = await get_canned(session, actor, canned_id)
    _check_may_manage(actor, canned.owner_id)
    await session.delete(canned)
    await session.flush()
    await suggestion_index.forget_canned(session, canned_id)
    await audit.record(
        session, actor, "canned.delete", "canned_response", canned_id, {"title": canned.title}
    )


async def render(
    session: AsyncSession,
    actor: Actor,
    conversation_id: int,
    canned_id: int,
    *,
    status_link: StatusLinkMaker | None = None,
) -> str:
    """The canned response's body filled for this conversation, its contact and the actor;
    `status_link` makes `{{status.link}}` (asked only when the body uses it)."""
    conversation = await get_conversation(session, actor, conversation_id)
    canned = await get_canned(session, actor, canned_id)
    values = await placeholder_values(session, actor, conversation)
    used = {match.group(1) for match in _PLACEHOLDER.finditer(canned.body)}
    if status_link is not None and "status.link" in used:
        values["status.link"] = await status_link(session, conversation)
    return fill(canned.body, values)


async def placeholder_values(
    session: AsyncSession, actor: Actor, conversation: Conversation
) -> dict[str, str]:
    contact = await session.get(Contact, conversation.contact_id)
    name = contact.display_name.strip() if contact is not None else ""
    first, _, rest = name.partition(" ")
    operator = (
        await session.get(Operator, actor.operator_id) if actor.operator_id is not None else None
    )
    operator_name = operator.name.strip() if operator is not None else ""
    return {
        "contact.name": name,
        "contact.first_name": first,
        "contact.last_name": rest.strip(),
        "contact.email": await _first_address(session, conversation.contact_id, IdentityKind.EMAIL),
        "contact.phone": _readable_phone(
            await _first_address(session, conversation.contact_id, IdentityKind.PHONE)
        ),
        "operator.name": operator_name,
        "operator.first_name": operator_name.partition(" ")[0],
        "conversation.id": str(conversation.id),
        "conversation.subject": conversation.subject,
    }


async def _first_address(session: AsyncSession, contact_id: int, kind: IdentityKind) -> str:
    address = await session.scalar(
        select(Identity.address)
        .where(Identity.contact_id == contact_id, Identity.kind == kind)
        .order_by(Identity.id)
        .limit(1)
    )
    return address or ""


def _readable_phone(e164: str) -> str:
    """+4940329011 as +49 40 329011; anything unparsable as stored."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
