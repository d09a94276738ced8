"""The knowledge base API (core/knowledge.py, web/routes_knowledge.py): supervisors write
articles in several languages, every change is a version, a stale edit is refused, operators
read only, and tokens without an operator get nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from core.audit import CLI
from core.auth import create_token
from core.db import SessionFactory
from core.knowledge import public_url
from core.models import (
    AuditEntry,
    KnowledgeArticle,
    KnowledgeArticleVersion,
    Role,
    SuggestionDoc,
    SuggestionKind,
)
from tests.conftest import User, UserFactory
from tests.test_conversations_api import json_of

pytestmark = pytest.mark.both_databases  # tests/conftest.py

ARTICLES = "/api/v1/knowledge/articles"
RETURNS = (
    "You can send anything back within 30 days.\n\n"
    "Pack it in its box and write the order number on it."
)


async def write(user: User, status: int | None = 201, **fields: Any) -> Any:
    """POST an article; its JSON answer (with the status asserted), or with status None,
    (status, answer)."""
    body = {
        "slug": "returns",
        "language": "en",
        "title": "Returning an order",
        "body": RETURNS,
        **fields,
    }
    response = await user.post(ARTICLES, json=body)
    if status is None:
        return response.status, await response.json()
    return await json_of(response, status)


async def count(sessions: SessionFactory, model: Any) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def listed(user: User, **params: Any) -> list[str]:
    page = await json_of(await user.get(ARTICLES, params=params), 200)
    return [item["title"] for item in page["items"]]


ROUTES = [
    ("GET", ARTICLES),
    ("POST", ARTICLES),
    ("GET", f"{ARTICLES}/1"),
    ("PATCH", f"{ARTICLES}/1"),
    ("POST", f"{ARTICLES}/1/archive"),
    ("POST", f"{ARTICLES}/1/restore"),
    ("GET", f"{ARTICLES}/1/versions"),
    ("GET", f"{ARTICLES}/1/versions/1"),
    ("POST", f"{ARTICLES}/1/revert"),
]


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_needs_sign_in(
    client: TestClient[Any, Any], method: str, path: str
) -> None:
    await json_of(await client.request(method, path, json={}), 401)


@pytest.mark.sqlite_only
async def test_a_supervisor_writes_edits_and_reverts_with_every_version_kept(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    boss = await make_user(Role.SUPERVISOR, name="Sofia Lind")
    created = await write(boss, slug="Returns", tags=["Orders", " returns ", "orders", ""])
    assert (created["slug"], created["version"], created["tags"]) == (
        "returns",
        1,
        ["orders", "returns"],
    )
    assert (created["visibility"], created["public_url"]) == ("internal", None)
    assert created["created_by_name"] == "Sofia Lind"
    path = f"{ARTICLES}/{created['id']}"

    changed = await json_of(
        await boss.patch(
            path,
            json={"version": 1, "body": "Within 14 days only.", "visibility": "public"},
        ),
        200,
    )
    assert (changed["version"], changed["body"], changed["visibility"]) == (
        2,
        "Within 14 days only.",
        "public",
    )
    origin = str(boss.client.make_url("")).rstrip("/")
    assert changed["public_url"] == f"{origin}/help/returns?lang=en"
    # Saving what is there already makes no version.
    same = await json_of(
        await boss.patch(path, json={"version": 2, "title": "Returning an order"}), 200
    )
    assert same["version"] == 2

    versions = await json_of(await boss.get(f"{path}/versions"), 200)
    assert [item["version"] for item in versions["items"]] == [2, 1]
    assert {item["author_name"] for item in versions["items"]} == {"Sofia Lind"}
    first = await json_of(await boss.get(f"{path}/versions/1"), 200)
    assert (first["body"], first["visibility"]) == (RETURNS, "internal")
    await json_of(await boss.get(f"{path}/versions/9"), 404)

    reverted = await json_of(await boss.post(f"{path}/revert", json={"version": 1}), 200)
    assert (reverted["version"], reverted["body"], reverted["visibility"]) == (
        3,
        RETURNS,
        "internal",
    )
    versions = await json_of(await boss.get(f"{path}/versions"), 200)
    assert [(item["version"], item["changes"]) for item in versions["items"]] == [
        (3, ["body", "visibility"]),
        (2, ["body", "visibility"]),
        (1, ["created"]),
    ]
    assert (await json_of(await boss.get(f"{path}/versions/2"), 200))["body"] == (
        "Within 14 days only."
    )

    async with sessions() as session:
        actions = list(
            await session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.entity_type == "knowledge_article")
                .order_by(AuditEntry.id)
            )
        )
        doc = await session.scalar(
            select(SuggestionDoc).where(SuggestionDoc.kind == SuggestionKind.ARTICLE)
        )
    assert actions == ["knowledge.create", "knowledge.update", "knowledge.revert"]
    # The suggestions offer it as it is now.
    assert doc is not None
    assert doc.answer == RETURNS


async def test_an_edit_of_an_old_version_is_refused_and_changes_nothing(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    """Both databases: two supervisors saving the same version at the same moment cannot
    both win (the row is locked while the version is checked)."""
    anna = await make_user(Role.SUPERVISOR)
    ben = await make_user(Role.ADMIN)
    article = await write(anna)
    path = f"{ARTICLES}/{article['id']}"
    saves = await asyncio.gather(
        anna.patch(path, json={"version": 1, "title": "Anna's title"}),
        ben.patch(path, json={"version": 1, "title": "Ben's title"}),
    )
    assert sorted(response.status for response in saves) == [200, 409]
    refused = next(response for response in saves if response.status == 409)
    error = (await refused.json())["error"]
    assert "version 2" in error["message"]
    assert "version" in error["fields"]
    winner = next(response for response in saves if response.status == 200)
    title = (await winner.json())["title"]

    late = await json_of(await ben.patch(path, json={"version": 1, "body": "Mine"}), 409)
    assert late["error"]["code"] == "conflict"
    now = await json_of(await ben.get(path), 200)
    assert (now["version"], now["title"], now["body"]) == (2, title, RETURNS)
    assert await count(sessions, KnowledgeArticleVersion) == 2

    tagged = await json_of(await ben.patch(path, json={"version": 2, "tags": ["Returns"]}), 200)
    assert tagged["version"] == 3
    versions = await json_of(await ben.get(f"{path}/versions"), 200)
    assert [item["changes"] for item in versions["items"]] == [["tags"], ["title"], ["created"]]


async def test_one_article_per_slug_and_language_when_written_at_once(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    """Both databases: the second of two simultaneous writes of one slug and language is a
    409, not a server error."""
    anna = await make_user(Role.SUPERVISOR)
    ben = await make_user(Role.SUPERVISOR)
    answers = await asyncio.gather(write(anna, None), write(ben, None))
    assert sorted(status for status, _ in answers) == [201, 409]
    assert await count(sessions, KnowledgeArticle) == 1
    assert await count(sessions, KnowledgeArticleVersion) == 1


@pytest.mark.sqlite_only
async def test_operators_read_every_article_but_change_none(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    operator = await make_user(Role.OPERATOR)
    article = await write(boss)
    path = f"{ARTICLES}/{article['id']}"
    assert await listed(operator) == ["Returning an order"]
    assert (await json_of(await operator.get(path), 200))["body"] == RETURNS
    await json_of(await operator.get(f"{path}/versions"), 200)
    await json_of(await operator.get(f"{path}/versions/1"), 200)

    refused = await write(operator, 403, slug="other")
    assert "supervisors" in refused["error"]["message"]
    for response in (
        await operator.patch(path, json={"version": 1, "title": "Mine now"}),
        await operator.post(f"{path}/archive", json={}),
        await operator.post(f"{path}/restore", json={}),
        await operator.post(f"{path}/revert", json={"version": 1}),
    ):
        await json_of(response, 403)
    assert (await json_of(await operator.get(path), 200))["version"] == 1
    assert await count(sessions, KnowledgeArticle) == 1
    assert await count(sessions, KnowledgeArticleVersion) == 1


@pytest.mark.sqlite_only
async def test_tokens_without_an_operator_get_nothing(
    make_user: UserFactory, client: TestClient[Any, Any], sessions: SessionFactory
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    article = await write(boss)
    async with sessions() as session, session.begin():
        _, erp = await create_token(session, CLI, "erp")
        _, bot = await create_token(session, CLI, "bot", Role.OPERATOR)
    for token in (erp, bot):
        headers = {"Authorization": f"Bearer {token}"}
        for path in (ARTICLES, f"{ARTICLES}/{article['id']}"):
            await json_of(await client.get(path, headers=headers), 403)
        new = {"slug": "x", "language": "en", "title": "X", "body": "X"}
        await json_of(await client.post(ARTICLES, json=new, headers=headers), 403)
    assert await count(sessions, KnowledgeArticle) == 1


@pytest.mark.sqlite_only
async def test_bad_input_names_each_field_and_stores_nothing(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    refused = await write(
        boss, 400, slug="Returns & refunds", language="english", title="   ", body=" \n "
    )
    assert set(refused["error"]["fields"]) == {"slug", "language", "title", "body"}
    assert "pt-BR" in refused["error"]["fields"]["language"]

    too_many = await write(boss, 400, tags=[f"tag {n}" for n in range(21)])
    assert set(too_many["error"]["fields"]) == {"tags"}
    secret = await write(boss, 400, visibility="secret")
    assert set(secret["error"]["fields"]) == {"visibility"}
    long_title = await write(boss, 400, title="x" * 301)
    assert set(long_title["error"]["fields"]) == {"title"}
    assert await count(sessions, KnowledgeArticle) == 0
    assert await count(sessions, KnowledgeArticleVersion) == 0

    article = await write(boss, language="pt_br")
    assert article["language"] == "pt-BR"
    path = f"{ARTICLES}/{article['id']}"
    await json_of(await boss.patch(path, json={"version": 1, "title": None}), 400)
    bad = await json_of(
        await boss.patch(path, json={"version": 1, "body": "", "tags": ["x" * 51]}), 400
    )
    assert set(bad["error"]["fields"]) == {"tags.0"}
    blank = await json_of(await boss.patch(path, json={"version": 1, "body": "\n\n"}), 400)
    assert set(blank["error"]["fields"]) == {"body"}
    moved = await json_of(await boss.patch(path, json={"version": 1, "slug": "new"}), 400)
    assert "slug" in moved["error"]["fields"]
    assert (await json_of(await boss.get(path), 200))["version"] == 1


@pytest.mark.sqlite_only
async def test_archived_articles_leave_the_lists_and_come_back_restored(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    boss = await make_user(Role.SUPERVISOR)
    operator = await make_user(Role.OPERATOR)
    article = await write(boss, visibility="public")
    path = f"{ARTICLES}/{article['id']}"
    await json_of(await boss.post(f"{path}/archive", json={"version": 9}), 409)
    archived = await json_of(await boss.post(f"{path}/archive", json={"version": 1}), 200)
    assert (archived["archived"], archived["version"], archived["public_url"]) == (True, 2, None)
    assert await listed(operator) == []
    assert await listed(operator, include_archived="true") == ["Returning an order"]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SuggestionDoc)) == 0

    again = await json_of(await boss.post(f"{path}/archive", json={}), 409)
    assert "already" in again["error"]["message"]
    edit = await json_of(await boss.patch(path, json={"version": 2, "title": "New"}), 409)
    assert "restore" in edit["error"]["message"]

    restored = await json_of(await boss.post(f"{path}/restore", json={}), 200)
    assert (restored["archived"], restored["version"]) == (False, 3)
    assert restored["public_url"] is not None
    await json_of(await boss.post(f"{path}/restore", json={}), 409)
    assert await listed(operator) == ["Returning an order"]
    versions = await json_of(await boss.get(f"{path}/versions"), 200)
    assert [item["changes"] for item in versions["items"]] == [
        ["restored"],
        ["archived"],
        ["created"],
    ]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SuggestionDoc)) == 1


@pytest.mark.sqlite_only
async def test_translations_share_a_slug_once_per_language(make_user: UserFactory) -> None:
    boss = await make_user(Role.SUPERVISOR)
    english = await write(boss)
    russian = await write(boss, language="ru", title="Возврат заказа", body="Тридцать дней.")
    taken = await write(boss, 409, language="EN", title="Another")
    assert "exists in en" in taken["error"]["message"]
    shown = await json_of(await boss.get(f"{ARTICLES}/{english['id']}"), 200)
    assert shown["translations"] == [
        {"id": russian["id"], "language": "ru", "title": "Возврат заказа", "archived": False}
    ]
    assert await listed(boss, language="ru") == ["Возврат заказа"]


async def test_search_finds_words_in_any_case_and_script_and_tags(
    make_user: UserFactory,
) -> None:
    """Both databases: they fold case differently outside a-z, and store JSON differently."""
    boss = await make_user(Role.SUPERVISOR)
    await write(boss, tags=["Orders"])
    await write(
        boss,
        slug="delivery",
        language="ru",
        title="Доставка по России",
        body="Посылки идут от трёх до семи дней.",
        tags=["Доставка", "почта"],
    )
    await write(boss, slug="warranty", title="Warranty", body="Two years.", tags=["legal"])
    assert await listed(boss, q="RETURNING order") == ["Returning an order"]
    assert await listed(boss, q="доставка") == ["Доставка по России"]
    assert await listed(boss, q="ПОСЫЛКИ") == ["Доставка по России"]
    assert await listed(boss, q="почта") == ["Доставка по России"]
    assert await listed(boss, q="returns order") == ["Returning an order"]
    assert await listed(boss, q="returning years") == []
    assert await listed(boss, tag="Доставка") == ["Доставка по России"]
    assert await listed(boss, tag="orders") == ["Returning an order"]
    assert await listed(boss, tag="order") == []

    first = await json_of(await boss.get(ARTICLES, params={"limit": 2}), 200)
    assert [item["title"] for item in first["items"]] == ["Warranty", "Доставка по России"]
    rest = await json_of(
        await boss.get(ARTICLES, params={"limit": 2, "cursor": first["next_cursor"]}), 200
    )
    assert ([item["title"] for item in rest["items"]], rest["next_cursor"]) == (
        ["Returning an order"],
        None,
    )


async def test_articles_in_any_language_are_offered_as_suggestions(
    make_user: UserFactory, sessions: SessionFactory
) -> None:
    """Both databases: each language has its own text-search configuration (or none)."""
    boss = await make_user(Role.ADMIN)
    for language in ("en", "ru", "de", "pt-BR", "zh-Hant-TW", "es-419", "sw"):
        await write(boss, language=language, title=f"Returns ({language})")
    async with sessions() as session:
        languages = set(
            await session.scalars(
                select(SuggestionDoc.language).where(SuggestionDoc.kind == SuggestionKind.ARTICLE)
            )
        )
    assert languages == {"en", "ru", "de", "pt-BR", "zh-Hant-TW", "es-419", "sw"}


def test_a_public_link_names_the_article_and_its_language() -> None:
    article = KnowledgeArticle(slug="returns", language="pt-BR")
    assert public_url("https://crm.example.com/", article) == (
        "https://crm.example.com/help/returns?lang=pt-BR"
    )
