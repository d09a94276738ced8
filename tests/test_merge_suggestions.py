"""Merge suggestions: contacts that look like the same person, each with its reasons."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.audit import CLI
from core.contacts import merge_contacts
from core.db import SessionFactory
from core.duplicates import domain_name
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import IdentityKind, Role
from tests.conftest import User, UserFactory
from tests.test_conversations_api import json_of

pytestmark = pytest.mark.both_databases  # tests/conftest.py

EMAIL = IdentityKind.EMAIL
PHONE = IdentityKind.PHONE
WHATSAPP = IdentityKind.WHATSAPP


async def contact(sessions: SessionFactory, name: str, *addresses: Address) -> int:
    async with sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel="api",
                external_id=secrets.token_hex(8),
                addresses=addresses,
                display_name=name,
                text="hello",
            ),
        )
    return result.contact_id


async def suggestions(user: User, contact_id: int) -> dict[int, list[str]]:
    path = f"/api/v1/contacts/{contact_id}/merge-suggestions"
    body = await json_of(await user.get(path), 200)
    return {item["contact"]["id"]: item["because"] for item in body["items"]}


@pytest.fixture
async def user(make_user: UserFactory) -> User:
    return await make_user(Role.OPERATOR)


@pytest.mark.parametrize(
    ("domain", "name"),
    [
        ("nordwind.de", "nordwind"),
        ("mail.nordwind.co.uk", "nordwind"),
        ("nordwind.co.uk", "nordwind"),
        ("example", "example"),
    ],
)
def test_domain_name(domain: str, name: str) -> None:
    assert domain_name(domain) == name


async def test_the_same_full_name_ignoring_case_and_spaces(
    user: User, sessions: SessionFactory
) -> None:
    anna = await contact(sessions, "Anna Novak", Address(EMAIL, "anna@one.example"))
    twin = await contact(sessions, "anna    NOVAK ", Address(EMAIL, "novak@two.example"))
    await contact(sessions, "Anna Nowak", Address(EMAIL, "nowak@three.example"))
    assert await suggestions(user, anna) == {twin: ["same name: anna NOVAK"]}
    assert set(await suggestions(user, twin)) == {anna}


async def test_a_single_word_name_is_too_common(user: User, sessions: SessionFactory) -> None:
    first = await contact(sessions, "Anna", Address(EMAIL, "a@one.example"))
    await contact(sessions, "Anna", Address(EMAIL, "b@two.example"))
    assert await suggestions(user, first) == {}


async def test_email_names_at_variant_domains(user: User, sessions: SessionFactory) -> None:
    jonas = await contact(sessions, "J. Weber", Address(EMAIL, "jonas.weber@nordwind.de"))
    com = await contact(sessions, "", Address(EMAIL, "jonas.weber@nordwind.com"))
    tagged = await contact(sessions, "", Address(EMAIL, "Jonas.Weber+orders@nordwind.de"))
    await contact(sessions, "", Address(EMAIL, "jonas.weber@otherfirm.de"))
    await contact(sessions, "", Address(EMAIL, "jonas.weberx@nordwind.de"))
    found = await suggestions(user, jonas)
    assert found == {
        com: [
            "same email name at a variant of the domain: jonas.weber@nordwind.de and "
            "jonas.weber@nordwind.com"
        ],
        tagged: [
            "same email address apart from a +tag: jonas.weber@nordwind.de and "
            "jonas.weber+orders@nordwind.de"
        ],
    }


async def test_gmail_and_googlemail_are_one_mailbox(user: User, sessions: SessionFactory) -> None:
    mine = await contact(sessions, "", Address(EMAIL, "kim.lee@gmail.com"))
    other = await contact(sessions, "", Address(EMAIL, "kim.lee@googlemail.com"))
    assert await suggestions(user, mine) == {
        other: ["same mailbox under two domain names: kim.lee@gmail.com and kim.lee@googlemail.com"]
    }


async def test_role_addresses_are_not_people(user: User, sessions: SessionFactory) -> None:
    shop = await contact(sessions, "", Address(EMAIL, "info@nordwind.de"))
    await contact(sessions, "", Address(EMAIL, "info@nordwind.com"))
    assert await suggestions(user, shop) == {}


async def test_a_number_under_another_country_code(user: User, sessions: SessionFactory) -> None:
    german = await contact(sessions, "", Address(PHONE, "+49 40 32901177"))
    read_as_american = await contact(sessions, "", Address(PHONE, "+1 403 290 1177"))
    await contact(sessions, "", Address(PHONE, "+49 40 32901178"))
    assert await suggestions(user, german) == {
        read_as_american: ["same national number 4032901177 under country codes +49 and +1"]
    }


async def test_one_number_as_phone_and_as_whatsapp(user: User, sessions: SessionFactory) -> None:
    caller = await contact(sessions, "", Address(PHONE, "+44 20 7946 0321"))
    chatter = await contact(sessions, "", Address(WHATSAPP, "+44 20 7946 0321"))
    assert await suggestions(user, caller) == {
        chatter: ["same number +442079460321, as phone and as whatsapp"]
    }


async def test_several_reasons_rank_first(user: User, sessions: SessionFactory) -> None:
    emma = await contact(sessions, "Emma Schultz", Address(EMAIL, "emma.schultz@example.org"))
    name_only = await contact(sessions, "Emma Schultz", Address(EMAIL, "es@elsewhere.example"))
    both = await contact(sessions, "Emma Schultz", Address(EMAIL, "emma.schultz@example.com"))
    body = await json_of(await user.get(f"/api/v1/contacts/{emma}/merge-suggestions"), 200)
    assert [item["contact"]["id"] for item in body["items"]] == [both, name_only]
    first = body["items"][0]
    assert len(first["because"]) == 2
    assert first["contact"]["identities"][0]["address"] == "emma.schultz@example.com"


async def test_merged_contacts_are_not_suggested(user: User, sessions: SessionFactory) -> None:
    anna = await contact(sessions, "Anna Novak", Address(EMAIL, "anna@one.example"))
    twin = await contact(sessions, "Anna Novak", Address(EMAIL, "novak@two.example"))
    third = await contact(sessions, "Anna Novak", Address(EMAIL, "an@three.example"))
    async with sessions() as session, session.begin():
        await merge_contacts(session, CLI, anna, third)
    assert set(await suggestions(user, anna)) == {twin}
    # The tombstone points elsewhere instead.
    gone = await json_of(await user.get(f"/api/v1/contacts/{third}/merge-suggestions"), 409)
    assert f"merged into contact {anna}" in gone["error"]["message"]


async def test_unknown_contact_and_sign_in(
    user: User, client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    await json_of(await user.get("/api/v1/contacts/999999/merge-suggestions"), 404)
    anna = await contact(sessions, "Anna Novak", Address(EMAIL, "anna@one.example"))
    await json_of(await client.get(f"/api/v1/contacts/{anna}/merge-suggestions"), 401)
    assert await suggestions(user, anna) == {}
