"""The search box's API on both databases: words of any script, addresses, prefixes, hostile
queries, paging, and who finds what."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from core.db import SessionFactory
from core.identity import Address
from core.ingest import InboundEvent, ingest
from core.models import Contact, IdentityKind, Role
from core.search import fts5_query, snippet, tokens, tsquery
from tests.conftest import UserFactory
from tests.test_contacts_api import integration_token
from tests.test_conversations_api import json_of, queue_with

pytestmark = pytest.mark.both_databases  # tests/conftest.py

EMAIL = IdentityKind.EMAIL
PHONE = IdentityKind.PHONE


async def message(
    sessions: SessionFactory,
    external_id: str,
    address: Address,
    text: str,
    *,
    name: str = "",
    queue_id: int | None = None,
    subject: str = "",
) -> int:
    async with sessions() as session, session.begin():
        result = await ingest(
            session,
            InboundEvent(
                channel="email" if address.kind == EMAIL else "sms",
                external_id=external_id,
                addresses=[address],
                display_name=name,
                subject=subject,
                text=text,
                queue_id=queue_id,
            ),
        )
    return result.conversation_id


async def found(caller: Any, q: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = await json_of(
        await caller.get("/api/v1/search", params={"q": q, **params}), 200
    )
    return body


def conversation_ids(body: dict[str, Any]) -> list[int]:
    return [hit["conversation"]["id"] for hit in body["conversations"]["items"]]


def contact_ids(body: dict[str, Any]) -> list[int]:
    return [item["id"] for item in body["contacts"]["items"]]


# --- pure parts ---------------------------------------------------------------------------


def test_queries_become_quoted_words_never_syntax() -> None:
    assert tokens('"foo AND (') == ["foo", "and"]
    assert tokens("Привет, МИР!") == ["привет", "мир"]
    assert tokens("anna.novak@example.com") == ["anna", "novak", "example", "com"]
    assert tokens("*:&|!()'\"") == []
    assert fts5_query(["foo", "bar"]) == '"foo" "bar"*'
    assert tsquery(["foo", "bar"]) == "'foo' & 'bar':*"


def test_a_snippet_shows_the_words_found() -> None:
    text = "word " * 100 + "the parcel never arrived in Tbilisi " + "filler " * 100
    piece = snippet(text, ["parcel", "tbil"])
    assert piece.text.startswith("…")
    assert piece.text.endswith("…")
    marked = [piece.text[start:end] for start, end in piece.highlights]
    assert marked == ["parcel", "Tbil"]
    assert snippet("short", ["zzz"]).text == "short"


# --- both databases -----------------------------------------------------------------------


@pytest.fixture
async def world(sessions: SessionFactory, make_user: UserFactory) -> dict[str, Any]:
    admin = await make_user(Role.ADMIN)
    ann = await make_user(Role.OPERATOR)
    bob = await make_user(Role.OPERATOR)
    support = await queue_with(sessions, "Support", ann)
    sales = await queue_with(sessions, "Sales", bob)
    ids = {
        "ru": await message(
            sessions,
            "ru",
            Address(EMAIL, "ivan@example.ru"),
            "Здравствуйте! Моя посылка не пришла, заказ 48213.",
            name="Иван Петров",
            queue_id=support,
        ),
        "ka": await message(
            sessions,
            "ka",
            Address(EMAIL, "nino@example.ge"),
            "გამარჯობა, ჩემი შეკვეთა ჯერ არ მოსულა",
            name="ნინო ბერიძე",
            queue_id=support,
        ),
        "hy": await message(
            sessions,
            "hy",
            Address(EMAIL, "aram@example.am"),
            "Բարև, իմ պատվերը դեռ չի եկել",
            name="Արամ",
            queue_id=sales,
        ),
        "en": await message(
            sessions,
            "en",
            Address(PHONE, "+4915112345678"),
            "My refrigerator arrived damaged",
            name="Anna Novak",
            queue_id=sales,
        ),
    }
    return {"admin": admin, "ann": ann, "bob": bob, "ids": ids}


async def test_words_of_any_script_find_their_conversation(world: dict[str, Any]) -> None:
    admin, ids = world["admin"], world["ids"]
    assert conversation_ids(await found(admin, "ПОСЫЛКА")) == [ids["ru"]]
    assert conversation_ids(await found(admin, "посылка заказ")) == [ids["ru"]]
    assert conversation_ids(await found(admin, "48213")) == [ids["ru"]]
    assert conversation_ids(await found(admin, "შეკვეთა")) == [ids["ka"]]
    assert conversation_ids(await found(admin, "պատվերը")) == [ids["hy"]]
    # The last word as a prefix, as one types.
    assert conversation_ids(await found(admin, "refrig")) == [ids["en"]]
    assert conversation_ids(await found(admin, "arrived refri")) == [ids["en"]]
    # Every word must match.
    assert conversation_ids(await found(admin, "refrigerator посылка")) == []
    body = await found(admin, "damaged")
    (hit,) = body["conversations"]["items"]
    assert hit["contact_display_name"] == "Anna Novak"
    start, end = hit["snippet"]["highlights"][0]
    assert hit["snippet"]["text"][start:end] == "damaged"
    assert body["orders"] == []


async def test_contacts_by_name_email_and_phone(world: dict[str, Any]) -> None:
    admin = world["admin"]
    body = await found(admin, "Иван")
    (ivan,) = body["contacts"]["items"]
    assert ivan["display_name"] == "Иван Петров"
    assert contact_ids(await found(admin, "петр")) == [ivan["id"]]
    assert contact_ids(await found(admin, "ivan@example.ru")) == [ivan["id"]]
    assert contact_ids(await found(admin, "IVAN@EXAMPLE.RU")) == [ivan["id"]]
    assert contact_ids(await found(admin, "ivan")) == [ivan["id"]]
    (anna,) = (await found(admin, "Anna"))["contacts"]["items"]
    # A phone number in any notation, or the start of it.
    for query in ("+49 151 12345678", "+4915112345678", "4915112"):
        assert contact_ids(await found(admin, query)) == [anna["id"]], query
    assert contact_ids(await found(admin, "ნინო")) != []
    # The contacts list answers the same words.
    listed = await json_of(await admin.get("/api/v1/contacts", params={"q": "петр"}), 200)
    assert [item["id"] for item in listed["items"]] == [ivan["id"]]


@pytest.mark.parametrize(
    "query", ['"foo AND (', "*", "NEAR(a b)", "a:*", "'", "!!!", "foo OR", "^a", "-x", "\\"]
)
async def test_hostile_queries_are_never_a_500(world: dict[str, Any], query: str) -> None:
    body = await found(world["admin"], query)
    assert set(body) == {"contacts", "conversations", "orders"}


async def test_bad_search_requests_are_400(world: dict[str, Any]) -> None:
    admin = world["admin"]
    assert (await admin.get("/api/v1/search", params={"q": "x" * 201})).status == 400
    assert (await admin.get("/api/v1/search")).status == 400
    response = await admin.get("/api/v1/search", params={"q": "a", "cursor": "abc"})
    assert response.status == 400
    response = await admin.get(
        "/api/v1/search", params={"q": "a", "kind": "conversations", "cursor": "%%%"}
    )
    assert response.status == 400


async def test_an_operator_finds_only_what_they_may_see(
    world: dict[str, Any], client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    ann, bob, ids = world["ann"], world["bob"], world["ids"]
    # Ann works Support (Russian, Georgian); Bob works Sales (Armenian, English).
    assert conversation_ids(await found(ann, "посылка")) == [ids["ru"]]
    assert conversation_ids(await found(bob, "посылка")) == []
    assert conversation_ids(await found(ann, "refrigerator")) == []
    assert conversation_ids(await found(bob, "refrigerator")) == [ids["en"]]
    # Contacts are no secret.
    assert contact_ids(await found(bob, "Иван")) != []
    # Internal notes: found by those who see the conversation, never by a token.
    response = await ann.post(
        f"/api/v1/conversations/{ids['ru']}/notes", json={"text": "supervisor approved refund"}
    )
    assert response.status in (200, 201), await response.text()
    assert conversation_ids(await found(ann, "approved refund")) == [ids["ru"]]
    assert conversation_ids(await found(bob, "approved refund")) == []
    headers = await integration_token(sessions)
    response = await client.get("/api/v1/search", params={"q": "refund"}, headers=headers)
    assert response.status == 403


async def test_conversation_hits_page_to_the_end(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    created = [
        await message(sessions, f"p{n}", Address(EMAIL, f"p{n}@example.com"), f"invoice {n}")
        for n in range(7)
    ]
    seen: list[int] = []
    params: dict[str, Any] = {"q": "invoice", "kind": "conversations", "limit": 3}
    while True:
        body = await found(admin, **params)
        assert body["contacts"]["items"] == []
        seen += conversation_ids(body)
        cursor = body["conversations"]["next_cursor"]
        if cursor is None:
            break
        params["cursor"] = cursor
    assert seen == list(reversed(created))


async def test_erased_and_renamed_contacts_follow_the_index(
    world: dict[str, Any], sessions: SessionFactory
) -> None:
    admin = world["admin"]
    (anna,) = (await found(admin, "Anna"))["contacts"]["items"]
    async with sessions() as session, session.begin():
        await session.execute(
            update(Contact).where(Contact.id == anna["id"]).values(display_name="Hanna Berg")
        )
    assert contact_ids(await found(admin, "Anna")) == []
    assert contact_ids(await found(admin, "hanna")) == [anna["id"]]


async def test_a_conversation_with_many_matches_is_found_once_across_pages(
    sessions: SessionFactory, make_user: UserFactory
) -> None:
    admin = await make_user(Role.ADMIN)
    a, b, c = (Address(EMAIL, f"{name}@example.com") for name in "abc")
    order = [a, b, a, c, b, a, a]
    ids = [await message(sessions, f"m{n}", who, f"tracking {n}") for n, who in enumerate(order)]
    by_address = dict(zip(order, ids, strict=True))
    for limit in (1, 2):
        seen: list[int] = []
        params: dict[str, Any] = {"q": "tracking", "kind": "conversations", "limit": limit}
        while True:
            body = await found(admin, **params)
            seen += conversation_ids(body)
            if body["conversations"]["next_cursor"] is None:
                break
            params["cursor"] = body["conversations"]["next_cursor"]
        # Newest match first: a (the last two), then b, then c.
        assert seen == [by_address[a], by_address[b], by_address[c]], limit
