"""The knowledge base: articles the team writes once and uses many times.

An article is one language's text (`KnowledgeArticle`): a title, a body (plain text,
paragraphs separated by blank lines), tags and a visibility. Translations of one article
share its `slug` (unique per language); the slug and language are fixed once it exists, so a
link already sent to a customer keeps working.

- **Who** (`core.visibility`'s rule): every operator reads every article (internal ones are
  for the team); supervisors and admins write them. Integration tokens and other callers
  without an operator read nothing (Forbidden).
- **Versions**: every change (create, update, archive, restore, revert) adds a
  `KnowledgeArticleVersion` with the article's state after it and bumps `version`. An update
  names the version it edits; if someone saved in between, it is a Conflict and nothing
  changes (the row is locked while it is checked, so two saves of one version cannot both
  win). A revert writes a new version with an old version's content; history is never
  rewritten.
- **Archived** articles stay readable in the console but are not suggested, not on the
  public page, and read-only until restored.
- **Public** (`ArticleVisibility.PUBLIC`), non-archived articles are on the public help page
  (`/help/{slug}`, web/routes_help.py) in the language the customer reads best
  (`public_article`); `public_url` is the link an operator sends.

Every write is audited and re-indexed for suggestions (`core.suggestions.index`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Text,
    and_,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, defer

from core import audit
from core.audit import Actor
from core.changes import UNSET, Unset
from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.knowledge_rules import (
    MAX_SLUG,
    SLUG,
    SPACES,
    check_body,
    check_language,
    check_slug,
    check_tags,
    check_title,
    check_visibility,
    checked,
)
from core.knowledge_rules import public_url as public_url
from core.models import (
    ArticleVisibility,
    KnowledgeArticle,
    KnowledgeArticleVersion,
    Role,
    utcnow,
)
from core.pagination import DEFAULT_LIMIT, keyset_page
from core.suggestions.index import index_article

MAX_QUERY = 200
# Words of a search that must all be found.
MAX_WORDS = 8
# The public index lists at most this many articles.
MAX_PUBLIC = 1000
_WORD = re.compile(r"[^\W_]+")

AUDITED = "knowledge_article"
# What a version holds of the article's content (a revert brings these back).
CONTENT = ("title", "body", "tags", "visibility")


@dataclass(frozen=True, kw_only=True)
class ArticleChanges:
    """What an update asks to change; fields left UNSET stay as they are. `version` is the
    version the change was made on (a stale one is a Conflict)."""

    version: int
    title: str | Unset = UNSET
    body: str | Unset = UNSET
    tags: Sequence[str] | Unset = UNSET
    visibility: str | Unset = UNSET


# --- who ----------------------------------------------------------------------------------------


def _check_reader(actor: Actor) -> None:
    """Supervisors and admins (their tokens too), and signed-in operators."""
    if not actor.is_supervisor and (actor.role == Role.INTEGRATION or actor.operator_id is None):
        raise Forbidden("the knowledge base is for signed-in operators")


def _check_writer(actor: Actor) -> None:
    if not actor.is_supervisor:
        raise Forbidden("only supervisors and admins change knowledge articles")


# --- reading ------------------------------------------------------------------------------------


def _variants(word: str) -> list[str]:
    """Spellings a word is looked for in: the databases ignore case for a-z only (SQLite's
    LIKE, PostgreSQL's lower() under a C locale), so other scripts' words are also looked for
    Capitalised and in CAPITALS."""
    if word.isascii():
        return [word]
    return list(dict.fromkeys([word, word.capitalize(), word.upper()]))


def has_tag(dialect: str, tag: str) -> ColumnElement[bool]:
    """Articles tagged `tag` (a JSON list on the row)."""
    if dialect == "postgresql":
        return KnowledgeArticle.tags.op("@>", return_type=Boolean)(
            func.jsonb_build_array(cast(tag, Text))
        )
    listed = func.json_each(KnowledgeArticle.tags).table_valued("value")
    return exists(select(literal(1)).select_from(listed).where(listed.c.value == tag))


def _matches(dialect: str, words: Sequence[str]) -> list[ColumnElement[bool]]:
    """One condition per word: in the title, the body or the slug, or one of the tags."""
    conditions: list[ColumnElement[bool]] = []
    for word in words:
        places: list[ColumnElement[bool]] = [has_tag(dialect, word)]
        for spelling in _variants(word):
            places += [
                KnowledgeArticle.title.icontains(spelling, autoescape=True),
                KnowledgeArticle.body.icontains(spelling, autoescape=True),
                KnowledgeArticle.slug.contains(spelling, autoescape=True),
            ]
        conditions.append(or_(*places))
    return conditions


def search_words(q: str) -> list[str]:
    if len(q) > MAX_QUERY:
        raise InvalidInput(f"a search is at most {MAX_QUERY} characters", field="q")
    return list(dict.fromkeys(_WORD.findall(q.lower())))[:MAX_WORDS]


async def list_articles(
    session: AsyncSession,
    actor: Actor,
    *,
    q: str | None = None,
    language: str | None = None,
    tag: str | None = None,
    include_archived: bool = False,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[KnowledgeArticle], str | None]:
    """Articles matching every filter, last changed first, one keyset page. `q`: every word
    in the title, body or slug, or a tag."""
    _check_reader(actor)
    query = select(KnowledgeArticle)
    dialect = session.get_bind().dialect.name
    if q:
        query = query.where(*_matches(dialect, search_words(q)))
    if language:
        query = query.where(KnowledgeArticle.language == check_language(language))
    if tag and tag.strip():
        query = query.where(has_tag(dialect, SPACES.sub(" ", tag).strip().lower()))
    if not include_archived:
        query = query.where(KnowledgeArticle.archived_at.is_(None))
    return await keyset_page(
        session,
        query,
        KnowledgeArticle.updated_at,
        KnowledgeArticle.id,
        cursor=cursor,
        limit=limit,
    )


async def get_article(session: AsyncSession, actor: Actor, article_id: int) -> KnowledgeArticle:
    _check_reader(actor)
    article = await session.get(KnowledgeArticle, article_id)
    if article is None:
        raise NotFound(f"no knowledge article {article_id}")
    return article


async def translations(session: AsyncSession, actor: Actor, slug: str) -> list[KnowledgeArticle]:
    """Every language of the article `slug` (archived ones too), oldest first."""
    _check_reader(actor)
    return list(
        await session.scalars(
            select(KnowledgeArticle)
            .where(KnowledgeArticle.slug == slug)
            .order_by(KnowledgeArticle.id)
        )
    )


async def list_versions(
    session: AsyncSession,
    actor: Actor,
    article_id: int,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[KnowledgeArticleVersion], str | None]:
    """An article's versions, newest first, one keyset page (their bodies not loaded)."""
    await get_article(session, actor, article_id)
    query = (
        select(KnowledgeArticleVersion)
        .where(KnowledgeArticleVersion.article_id == article_id)
        .options(defer(KnowledgeArticleVersion.body, raiseload=True))
    )
    return await keyset_page(
        session,
        query,
        KnowledgeArticleVersion.created_at,
        KnowledgeArticleVersion.id,
        cursor=cursor,
        limit=limit,
    )


async def version_changes(
    session: AsyncSession, article_id: int, versions: Sequence[int]
) -> dict[int, list[str]]:
    """What each of `versions` changed from the one before: fields of CONTENT, "archived"
    or "restored"; the first: "created". Compared in the database (no body is read)."""
    now, before = aliased(KnowledgeArticleVersion), aliased(KnowledgeArticleVersion)
    rows = await session.execute(
        select(
            now.version,
            before.id,
            now.archived,
            before.archived,
            *(getattr(now, name) != getattr(before, name) for name in CONTENT),
        )
        .outerjoin(
            before,
            and_(before.article_id == now.article_id, before.version == now.version - 1),
        )
        .where(now.article_id == article_id, now.version.in_(list(versions)))
    )
    changes: dict[int, list[str]] = {}
    for version, previous, archived, was_archived, *differs in rows:
        if previous is None:
            changes[version] = ["created"]
            continue
        changed = [name for name, differ in zip(CONTENT, differs, strict=True) if differ]
        if archived != was_archived:
            changed.append("archived" if archived else "restored")
        changes[version] = changed
    return changes


async def get_version(
    session: AsyncSession, actor: Actor, article_id: int, version: int
) -> KnowledgeArticleVersion:
    await get_article(session, actor, article_id)
    found = await session.scalar(
        select(KnowledgeArticleVersion).where(
            KnowledgeArticleVersion.article_id == article_id,
            KnowledgeArticleVersion.version == version,
        )
    )
    if found is None:
        raise NotFound(f"knowledge article {article_id} has no version {version}")
    return found


# --- writing ------------------------------------------------------------------------------------


def _snapshot(article: KnowledgeArticle, actor: Actor) -> KnowledgeArticleVersion:
    return KnowledgeArticleVersion(
        article_id=article.id,
        version=article.version,
        title=article.title,
        body=article.body,
        tags=list(article.tags),
        visibility=article.visibility,
        archived=article.archived_at is not None,
        author_id=actor.operator_id,
    )


async def _saved(
    session: AsyncSession,
    actor: Actor,
    article: KnowledgeArticle,
    action: str,
    details: dict[str, Any],
) -> KnowledgeArticle:
    """The article's new state kept as a version, audited and re-indexed."""
    session.add(_snapshot(article, actor))
    await session.flush()
    await audit.record(
        session,
        actor,
        f"knowledge.{action}",
        AUDITED,
        article.id,
        {"slug": article.slug, "language": article.language, "version": article.version, **details},
    )
    await index_article(session, article)
    return article


async def create_article(
    session: AsyncSession,
    actor: Actor,
    *,
    slug: str,
    language: str,
    title: str,
    body: str,
    tags: Sequence[str] = (),
    visibility: str = ArticleVisibility.INTERNAL,
) -> KnowledgeArticle:
    """A new article, or a new language of an existing one (the same slug); version 1."""
    _check_writer(actor)
    values = checked(
        {
            "slug": (check_slug, slug),
            "language": (check_language, language),
            "title": (check_title, title),
            "body": (check_body, body),
            "tags": (check_tags, tags),
            "visibility": (check_visibility, visibility),
        }
    )
    taken = await session.scalar(
        select(KnowledgeArticle.id).where(
            KnowledgeArticle.slug == values["slug"],
            KnowledgeArticle.language == values["language"],
        )
    )
    if taken is not None:
        raise Conflict(
            f"the article {values['slug']!r} exists in {values['language']} already "
            f"(article {taken}); edit that one",
            field="language",
        )
    now = utcnow()
    article = KnowledgeArticle(
        **values,
        version=1,
        created_by_id=actor.operator_id,
        updated_by_id=actor.operator_id,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(article)
    except IntegrityError:
        # Written at the same moment by someone else (the unique slug and language).
        raise Conflict(
            f"the article {article.slug!r} exists in {article.language} already",
            field="language",
        ) from None
    return await _saved(session, actor, article, "create", {"visibility": article.visibility})


async def _for_change(
    session: AsyncSession, actor: Actor, article_id: int, version: int | None
) -> KnowledgeArticle:
    """The article, locked until the transaction ends, if `version` is still its version."""
    _check_writer(actor)
    article = await session.get(
        KnowledgeArticle, article_id, with_for_update=True, populate_existing=True
    )
    if article is None:
        raise NotFound(f"no knowledge article {article_id}")
    if version is not None and version != article.version:
        raise Conflict(
            f"the article was changed since version {version}: it is at version "
            f"{article.version} now; reload it and make your change again",
            field="version",
        )
    return article


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _check_editable(article: KnowledgeArticle) -> None:
    if article.archived_at is not None:
        raise Conflict("the article is archived; restore it to change it")


def _apply(actor: Actor, article: KnowledgeArticle, wanted: dict[str, Any]) -> list[str]:
    """Sets what differs and bumps the version; the names of the fields that changed."""
    changed = [name for name, value in wanted.items() if getattr(article, name) != value]
    for name in changed:
        setattr(article, name, wanted[name])
    if changed:
        article.version += 1
        article.updated_by_id = actor.operator_id
        article.updated_at = utcnow()
    return changed


async def update_article(
    session: AsyncSession, actor: Actor, article_id: int, changes: ArticleChanges
) -> KnowledgeArticle:
    """Change the article as of `changes.version`; nothing that differs: no new version."""
    _check_writer(actor)
    checkers = (check_title, check_body, check_tags, check_visibility)
    wanted = checked(
        {
            name: (check, getattr(changes, name))
            for name, check in zip(CONTENT, checkers, strict=True)
            if not isinstance(getattr(changes, name), Unset)
        }
    )
    article = await _for_change(session, actor, article_id, changes.version)
    _check_editable(article)
    changed = _apply(actor, article, wanted)
    if not changed:
        return article
    return await _saved(session, actor, article, "update", {"fields": changed})


async def archive_article(
    session: AsyncSession, actor: Actor, article_id: int, version: int | None = None
) -> KnowledgeArticle:
    """Out of suggestions and the public page, kept with its history (a new version)."""
    article = await _for_change(session, actor, article_id, version)
    if article.archived_at is not None:
        raise Conflict("the article is archived already")
    _apply(actor, article, {"archived_at": utcnow()})
    return await _saved(session, actor, article, "archive", {})


async def restore_article(
    session: AsyncSession, actor: Actor, article_id: int, version: int | None = None
) -> KnowledgeArticle:
    article = await _for_change(session, actor, article_id, version)
    if article.archived_at is None:
        raise Conflict("the article is not archived")
    _apply(actor, article, {"archived_at": None})
    return await _saved(session, actor, article, "restore", {})


async def revert_to(
    session: AsyncSession,
    actor: Actor,
    article_id: int,
    version: int,
    *,
    expected_version: int | None = None,
) -> KnowledgeArticle:
    """A new version with the content (title, body, tags, visibility) of `version`; the
    content as it is already: nothing changes."""
    article = await _for_change(session, actor, article_id, expected_version)
    _check_editable(article)
    old = await get_version(session, actor, article_id, version)
    wanted = {name: _copy(getattr(old, name)) for name in CONTENT}
    changed = _apply(actor, article, wanted)
    if not changed:
        return article
    return await _saved(session, actor, article, "revert", {"to": version, "fields": changed})


# --- the public page ----------------------------------------------------------------------------


def _primary(tag: str) -> str:
    return tag.replace("_", "-").split("-")[0].lower()


def best_translation(
    candidates: Sequence[KnowledgeArticle], languages: Sequence[str]
) -> KnowledgeArticle | None:
    """The translation a reader of `languages` (most wanted first) reads best: for each
    wanted language in turn, the same tag, else the same language in another region or
    script (pt-BR for pt, de for de-AT); none of them: the first translation."""
    if not candidates:
        return None
    for wanted in languages:
        tag = wanted.strip().replace("_", "-").lower()
        if not tag or tag == "*":
            continue
        exact = [item for item in candidates if item.language.lower() == tag]
        if exact:
            return exact[0]
        related = [item for item in candidates if _primary(item.language) == _primary(tag)]
        if related:
            return related[0]
    return candidates[0]


def _public() -> list[ColumnElement[bool]]:
    return [
        KnowledgeArticle.visibility == ArticleVisibility.PUBLIC,
        KnowledgeArticle.archived_at.is_(None),
    ]


async def public_translations(session: AsyncSession, slug: str) -> list[KnowledgeArticle]:
    """The public, non-archived languages of `slug`, oldest first (anyone may read them)."""
    if not SLUG.fullmatch(slug) or len(slug) > MAX_SLUG:
        return []
    return list(
        await session.scalars(
            select(KnowledgeArticle)
            .where(KnowledgeArticle.slug == slug, *_public())
            .order_by(KnowledgeArticle.id)
        )
    )


async def public_article(
    session: AsyncSession, slug: str, languages: Sequence[str]
) -> KnowledgeArticle | None:
    """The public translation of `slug` best for a reader of `languages`; None if there is
    no public, non-archived one."""
    return best_translation(await public_translations(session, slug), languages)


async def public_index(session: AsyncSession, languages: Sequence[str]) -> list[KnowledgeArticle]:
    """Each public article once, in the reader's best language, by title."""
    rows = await session.scalars(
        select(KnowledgeArticle).where(*_public()).order_by(KnowledgeArticle.id).limit(MAX_PUBLIC)
    )
    by_slug: dict[str, list[KnowledgeArticle]] = {}
    for row in rows:
        by_slug.setdefault(row.slug, []).append(row)
    chosen = [best_translation(items, languages) for items in by_slug.values()]
    found = [item for item in chosen if item is not None]
    return sorted(found, key=lambda item: (item.title.casefold(), item.id))
