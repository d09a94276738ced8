"""Merge suggestions: other contacts that look like the same person, each with the reason.

Three plain signals, each one explainable in a sentence (the "because" texts):

- the same full name: two words or more, compared ignoring case and extra spaces
  ("Anna Novak" and "anna  novak"; on SQLite only ASCII letters compare case-blind);
- the same email name with a variant domain: equal local parts (a "+tag" ignored) at the same
  domain, at googlemail.com and gmail.com, or at domains that differ only in their ending
  (anna@nordwind.de and anna@nordwind.com). Role addresses (info@, sales@, ...) are left out:
  many people write from them;
- the same phone number in another country format: the same national number under another
  country code (a number saved without "+49" and read as American), or one number known as
  a phone number of one contact and a WhatsApp number of the other.

Merged contacts (tombstones) are never suggested. A suggestion is a hint for a person: the
merge itself is `core.contacts.merge_contacts`, for supervisors.

A suggestion holds contact records and reasons built from names and addresses, never anything
of a conversation: contacts are readable by every signed-in caller (`core.visibility`), what
people wrote is not, and nothing here reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from core.contacts import get_contact
from core.errors import Conflict
from core.models import Contact, Identity, IdentityKind

MAX_SUGGESTIONS = 20
# Each signal looks at no more than this many candidate identities or contacts.
MAX_CANDIDATES = 200
MIN_NAME_CHARS = 5
MIN_NATIONAL_DIGITS = 7
ROLE_MAILBOXES = frozenset(
    {
        "admin",
        "billing",
        "contact",
        "hello",
        "help",
        "info",
        "mail",
        "no-reply",
        "noreply",
        "office",
        "orders",
        "sales",
        "service",
        "support",
        "team",
    }
)
# Domains that are one mailbox under two names.
DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}
# Second-level endings, so that nordwind.co.uk and nordwind.de share the name "nordwind".
_TWO_PART_ENDINGS = frozenset(
    {
        "ac.uk",
        "co.jp",
        "co.nz",
        "co.uk",
        "co.za",
        "com.ar",
        "com.au",
        "com.br",
        "com.cn",
        "com.mx",
        "com.tr",
        "gov.uk",
        "org.uk",
    }
)
_PHONE_KINDS = (IdentityKind.PHONE, IdentityKind.WHATSAPP)


@dataclass
class Suggestion:
    contact: Contact
    because: list[str] = field(default_factory=list)


def normalized_name(name: str) -> str:
    return " ".join(name.casefold().split())


def domain_name(domain: str) -> str:
    """The part of a domain that names the organisation: nordwind for mail.nordwind.co.uk."""
    labels = domain.split(".")
    ending = 2 if ".".join(labels[-2:]) in _TWO_PART_ENDINGS and len(labels) > 2 else 1
    return labels[-ending - 1] if len(labels) > ending else domain


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def merge_suggestions(
    session: AsyncSession, contact_id: int, *, limit: int = MAX_SUGGESTIONS
) -> list[Suggestion]:
    """Live contacts that look like the same person as `contact_id`, the best-supported first."""
    contact = await get_contact(session, contact_id)
    if contact.merged_into_id is not None:
        raise Conflict(
            f"contact {contact_id} was merged into contact {contact.merged_into_id}; use that one"
        )
    found: dict[int, list[str]] = {}

    def suggest(other_id: int, reason: str) -> None:
        if other_id != contact.id and reason not in found.setdefault(other_id, []):
            found[other_id].append(reason)

    for other_id, reason in await _same_name(session, contact):
        suggest(other_id, reason)
    for identity in contact.identities:
        if identity.kind == IdentityKind.EMAIL:
            for other_id, reason in await _email_variants(session, contact.id, identity.address):
                suggest(other_id, reason)
        elif identity.kind in _PHONE_KINDS:
            for other_id, reason in await _phone_variants(session, contact.id, identity):
                suggest(other_id, reason)
    if not found:
        return []
    others = {
        other.id: other
        for other in await session.scalars(
            select(Contact)
            .where(
                Contact.id.in_(found),
                Contact.merged_into_id.is_(None),
                Contact.erased_at.is_(None),
            )
            .options(selectinload(Contact.identities))
        )
    }
    suggestions = [
        Suggestion(others[other_id], reasons)
        for other_id, reasons in found.items()
        if other_id in others
    ]
    suggestions.sort(key=lambda item: (-len(item.because), item.contact.id))
    return suggestions[:limit]


def _squeezed(text: Any) -> Any:
    """Runs of up to four spaces as one (names are rarely spaced out further)."""
    return func.replace(func.replace(text, "  ", " "), "  ", " ")


async def _same_name(session: AsyncSession, contact: Contact) -> list[tuple[int, str]]:
    wanted = normalized_name(contact.display_name)
    if len(wanted) < MIN_NAME_CHARS or " " not in wanted:
        return []
    trimmed = " ".join(contact.display_name.split())
    rows = await session.execute(
        select(Contact.id, Contact.display_name)
        .where(
            Contact.id != contact.id,
            Contact.merged_into_id.is_(None),
            or_(
                _squeezed(func.lower(func.trim(Contact.display_name))) == trimmed.lower(),
                Contact.display_name == trimmed,
            ),
        )
        .limit(MAX_CANDIDATES)
    )
    return [
        (other_id, f"same name: {' '.join(name.split())}")
        for other_id, name in rows
        if normalized_name(name) == wanted
    ]


async def _email_variants(
    session: AsyncSession, contact_id: int, address: str
) -> list[tuple[int, str]]:
    name = address.rpartition("@")[0].partition("+")[0]
    if not name or name in ROLE_MAILBOXES:
        return []
    escaped = _escape_like(name)
    rows = await session.execute(
        select(Identity.contact_id, Identity.address)
        .where(
            Identity.kind == IdentityKind.EMAIL,
            Identity.contact_id != contact_id,
            or_(
                Identity.address.like(f"{escaped}@%", escape="\\"),
                Identity.address.like(f"{escaped}+%@%", escape="\\"),
            ),
        )
        .limit(MAX_CANDIDATES)
    )
    matches = []
    for other_id, other in rows:
        reason = _email_reason(address, other)
        if reason is not None:
            matches.append((other_id, reason))
    return matches


def _email_reason(address: str, other: str) -> str | None:
    local, _, domain = address.rpartition("@")
    other_local, _, other_domain = other.rpartition("@")
    if local.partition("+")[0] != other_local.partition("+")[0]:
        return None
    if domain == other_domain:
        return f"same email address apart from a +tag: {address} and {other}"
    if DOMAIN_ALIASES.get(domain, domain) == DOMAIN_ALIASES.get(other_domain, other_domain):
        return f"same mailbox under two domain names: {address} and {other}"
    if domain_name(domain) == domain_name(other_domain):
        return f"same email name at a variant of the domain: {address} and {other}"
    return None


def _parse(e164: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None


def _national(number: phonenumbers.PhoneNumber) -> str:
    return str(phonenumbers.national_significant_number(number)).lstrip("0")


async def _phone_variants(
    session: AsyncSession, contact_id: int, identity: Identity
) -> list[tuple[int, str]]:
    number = _parse(identity.address)
    if number is None:
        return []
    national = _national(number)
    if len(national) < MIN_NATIONAL_DIGITS:
        return []
    rows = await session.execute(
        select(Identity.contact_id, Identity.kind, Identity.address)
        .where(
            Identity.kind.in_(_PHONE_KINDS),
            Identity.contact_id != contact_id,
            Identity.address.like(f"%{_escape_like(national)}", escape="\\"),
        )
        .limit(MAX_CANDIDATES)
    )
    matches = []
    for other_id, kind, address in rows:
        if address == identity.address:
            if kind != identity.kind:
                matches.append(
                    (other_id, f"same number {address}, as {identity.kind} and as {kind}")
                )
            continue
        other = _parse(address)
        if other is None or _national(other) != national:
            continue
        if other.country_code != number.country_code:
            matches.append(
                (
                    other_id,
                    f"same national number {national} under country codes "
                    f"+{number.country_code} and +{other.country_code}",
                )
            )
    return matches
