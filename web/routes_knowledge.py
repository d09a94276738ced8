"""Knowledge base API: articles listed, read, written, archived and restored, with their
versions and reverts (core/knowledge.py).

Every operator reads every article; supervisors and admins write (operators: 403).
Integration tokens and tokens without an operator are refused (403). An update names the
version it edits: a stale one is a 409 and changes nothing. Each change is a new version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import knowledge, knowledge_rules
from core.knowledge import ArticleChanges
from core.models import ArticleVisibility, KnowledgeArticle, KnowledgeArticleVersion, Operator
from web.api import ApiRoutes, Call, NoBody, PageQuery
from web.routes_help import public_base
from web.schemas import Page

routes = ApiRoutes(tag="knowledge")

ARTICLES = "/api/v1/knowledge/articles"
ARTICLE = ARTICLES + "/{id}"
VersionNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]


class ArticleQuery(PageQuery):
    q: str | None = Field(
        None,
        max_length=knowledge.MAX_QUERY,
        description="every word in the title, body or slug, or one of the tags",
    )
    language: str | None = Field(None, max_length=knowledge_rules.MAX_LANGUAGE, examples=["pt-BR"])
    tag: str | None = Field(None, max_length=knowledge_rules.MAX_TAG)
    include_archived: bool = Field(False, description="archived ones too")


class NewArticleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(
        max_length=knowledge_rules.MAX_SLUG,
        description="a-z, 0-9 and hyphens; translations of one article share it",
        examples=["returns-policy"],
    )
    language: str = Field(max_length=knowledge_rules.MAX_LANGUAGE, examples=["en", "pt-BR"])
    title: str = Field(max_length=knowledge_rules.MAX_TITLE)
    body: str = Field(
        max_length=knowledge_rules.MAX_BODY,
        description="plain text; a blank line starts a paragraph",
    )
    tags: list[Annotated[str, Field(max_length=knowledge_rules.MAX_TAG)]] = Field(
        default_factory=list,
        max_length=knowledge_rules.MAX_TAGS,
        description="kept lower-case, each once",
    )
    visibility: ArticleVisibility = Field(
        ArticleVisibility.INTERNAL,
        description="internal: for the team; public: also on the public help page, and may "
        "be sent to customers as a link",
    )


class ArticlePatchBody(BaseModel):
    """Fields left out stay as they are; the slug and language never change."""

    model_config = ConfigDict(extra="forbid")

    version: VersionNumber = Field(description="the version you edited; an older one is a 409")
    title: str | None = Field(None, max_length=knowledge_rules.MAX_TITLE)
    body: str | None = Field(None, max_length=knowledge_rules.MAX_BODY)
    tags: list[Annotated[str, Field(max_length=knowledge_rules.MAX_TAG)]] | None = Field(
        None, max_length=knowledge_rules.MAX_TAGS
    )
    visibility: ArticleVisibility | None = None

    @field_validator("title", "body", "tags", "visibility")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null")
        return value


class StateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: VersionNumber | None = Field(
        None, description="the version you saw; if it changed since, a 409"
    )


class RevertBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: VersionNumber = Field(description="the version whose content comes back")
    current_version: VersionNumber | None = Field(
        None, description="the version you saw; if it changed since, a 409"
    )


class TranslationOut(BaseModel):
    id: int
    language: str
    title: str
    archived: bool


class ArticleSummaryOut(BaseModel):
    """An article in a list: without its body, with the start of it."""

    id: int
    slug: str
    language: str
    title: str
    excerpt: str = Field(description="the body's first characters, lines joined")
    tags: list[str]
    visibility: ArticleVisibility
    version: int
    archived: bool
    updated_at: datetime
    updated_by_name: str | None


class ArticleOut(BaseModel):
    id: int
    slug: str
    language: str
    title: str
    body: str
    tags: list[str]
    visibility: ArticleVisibility
    version: int = Field(description="the current version's number; send it with a change")
    archived: bool
    archived_at: datetime | None
    public_url: str | None = Field(
        description="the public page of a public, non-archived article, to send to a customer"
    )
    translations: list[TranslationOut] = Field(description="its other languages (same slug)")
    created_at: datetime
    created_by_id: int | None
    created_by_name: str | None
    updated_at: datetime
    updated_by_id: int | None
    updated_by_name: str | None


class VersionSummaryOut(BaseModel):
    version: int
    changes: list[str] = Field(
        description="what it changed from the version before: title, body, tags, visibility,"
        " archived or restored; the first version: created"
    )
    title: str
    tags: list[str]
    visibility: ArticleVisibility
    archived: bool
    author_id: int | None
    author_name: str | None
    created_at: datetime


class VersionOut(VersionSummaryOut):
    body: str


EXCERPT_CHARS = 160


async def operator_names(session: AsyncSession, ids: set[int | None]) -> dict[int, str]:
    wanted = {item for item in ids if item is not None}
    if not wanted:
        return {}
    rows = await session.execute(select(Operator.id, Operator.name).where(Operator.id.in_(wanted)))
    return dict(rows.all())


def _excerpt(body: str) -> str:
    flat = " ".join(body.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


async def _article_out(
    call: Call[Any, Any], session: AsyncSession, article: KnowledgeArticle
) -> ArticleOut:
    names = await operator_names(session, {article.created_by_id, article.updated_by_id})
    others = [
        TranslationOut(
            id=item.id,
            language=item.language,
            title=item.title,
            archived=item.archived_at is not None,
        )
        for item in await knowledge.translations(session, call.actor, article.slug)
        if item.id != article.id
    ]
    public = article.visibility == ArticleVisibility.PUBLIC and article.archived_at is None
    return ArticleOut(
        id=article.id,
        slug=article.slug,
        language=article.language,
        title=article.title,
        body=article.body,
        tags=list(article.tags),
        visibility=article.visibility,
        version=article.version,
        archived=article.archived_at is not None,
        archived_at=article.archived_at,
        public_url=knowledge.public_url(public_base(call.request), article) if public else None,
        translations=others,
        created_at=article.created_at,
        created_by_id=article.created_by_id,
        created_by_name=names.get(article.created_by_id or 0),
        updated_at=article.updated_at,
        updated_by_id=article.updated_by_id,
        updated_by_name=names.get(article.updated_by_id or 0),
    )


def _version_fields(
    row: KnowledgeArticleVersion, names: dict[int, str], changes: dict[int, list[str]]
) -> dict[str, object]:
    return {
        "version": row.version,
        "changes": changes.get(row.version, []),
        "title": row.title,
        "tags": list(row.tags),
        "visibility": row.visibility,
        "archived": row.archived,
        "author_id": row.author_id,
        "author_name": names.get(row.author_id or 0),
        "created_at": row.created_at,
    }


@routes.get(
    ARTICLES,
    summary="Knowledge articles matching the filters, last changed first, one page",
    query=ArticleQuery,
    response=Page[ArticleSummaryOut],
)
async def list_articles(call: Call[NoBody, ArticleQuery]) -> Page[ArticleSummaryOut]:
    query = call.query
    async with call.sessions() as session:
        rows, next_cursor = await knowledge.list_articles(
            session,
            call.actor,
            q=query.q,
            language=query.language,
            tag=query.tag,
            include_archived=query.include_archived,
            cursor=query.cursor,
            limit=query.limit,
        )
        names = await operator_names(session, {row.updated_by_id for row in rows})
    items = [
        ArticleSummaryOut(
            id=row.id,
            slug=row.slug,
            language=row.language,
            title=row.title,
            excerpt=_excerpt(row.body),
            tags=list(row.tags),
            visibility=row.visibility,
            version=row.version,
            archived=row.archived_at is not None,
            updated_at=row.updated_at,
            updated_by_name=names.get(row.updated_by_id or 0),
        )
        for row in rows
    ]
    return Page[ArticleSummaryOut](items=items, next_cursor=next_cursor)


@routes.post(
    ARTICLES,
    summary="Write a knowledge article, or another language of one (the same slug); "
    "supervisors and admins",
    body=NewArticleBody,
    response=ArticleOut,
    status=201,
    errors=(409,),
)
async def create_article(call: Call[NewArticleBody, NoBody]) -> ArticleOut:
    body = call.body
    async with call.sessions() as session, session.begin():
        article = await knowledge.create_article(
            session,
            call.actor,
            slug=body.slug,
            language=body.language,
            title=body.title,
            body=body.body,
            tags=body.tags,
            visibility=body.visibility,
        )
        return await _article_out(call, session, article)


@routes.get(ARTICLE, summary="One knowledge article, with its other languages", response=ArticleOut)
async def get_article(call: Call[NoBody, NoBody]) -> ArticleOut:
    async with call.sessions() as session:
        article = await knowledge.get_article(session, call.actor, call.path_int("id"))
        return await _article_out(call, session, article)


@routes.patch(
    ARTICLE,
    summary="Change an article as of the version you edited (a new version); supervisors "
    "and admins. A stale version is a 409",
    body=ArticlePatchBody,
    response=ArticleOut,
    errors=(409,),
)
async def update_article(call: Call[ArticlePatchBody, NoBody]) -> ArticleOut:
    changes = ArticleChanges(**call.body.model_dump(exclude_unset=True))
    async with call.sessions() as session, session.begin():
        article = await knowledge.update_article(session, call.actor, call.path_int("id"), changes)
        return await _article_out(call, session, article)


@routes.post(
    ARTICLE + "/archive",
    summary="Archive an article: no longer suggested nor public, kept with its versions; "
    "supervisors and admins",
    body=StateBody,
    response=ArticleOut,
    errors=(409,),
)
async def archive_article(call: Call[StateBody, NoBody]) -> ArticleOut:
    async with call.sessions() as session, session.begin():
        article = await knowledge.archive_article(
            session, call.actor, call.path_int("id"), call.body.version
        )
        return await _article_out(call, session, article)


@routes.post(
    ARTICLE + "/restore",
    summary="Bring an archived article back; supervisors and admins",
    body=StateBody,
    response=ArticleOut,
    errors=(409,),
)
async def restore_article(call: Call[StateBody, NoBody]) -> ArticleOut:
    async with call.sessions() as session, session.begin():
        article = await knowledge.restore_article(
            session, call.actor, call.path_int("id"), call.body.version
        )
        return await _article_out(call, session, article)


@routes.get(
    ARTICLE + "/versions",
    summary="An article's versions, newest first, one page",
    query=PageQuery,
    response=Page[VersionSummaryOut],
)
async def list_versions(call: Call[NoBody, PageQuery]) -> Page[VersionSummaryOut]:
    async with call.sessions() as session:
        rows, next_cursor = await knowledge.list_versions(
            session,
            call.actor,
            call.path_int("id"),
            cursor=call.query.cursor,
            limit=call.query.limit,
        )
        names = await operator_names(session, {row.author_id for row in rows})
        changes = await knowledge.version_changes(
            session, call.path_int("id"), [row.version for row in rows]
        )
    items = [VersionSummaryOut.model_validate(_version_fields(row, names, changes)) for row in rows]
    return Page[VersionSummaryOut](items=items, next_cursor=next_cursor)


@routes.get(
    ARTICLE + "/versions/{index}",
    summary="One version of an article (index: its version number, 1 is the first)",
    response=VersionOut,
)
async def get_version(call: Call[NoBody, NoBody]) -> VersionOut:
    async with call.sessions() as session:
        row = await knowledge.get_version(
            session, call.actor, call.path_int("id"), call.path_int("index")
        )
        names = await operator_names(session, {row.author_id})
        changes = await knowledge.version_changes(session, row.article_id, [row.version])
    return VersionOut.model_validate({**_version_fields(row, names, changes), "body": row.body})


@routes.post(
    ARTICLE + "/revert",
    summary="Bring back an earlier version's content as a new version; supervisors and admins",
    body=RevertBody,
    response=ArticleOut,
    errors=(409,),
)
async def revert_article(call: Call[RevertBody, NoBody]) -> ArticleOut:
    body = call.body
    async with call.sessions() as session, session.begin():
        article = await knowledge.revert_to(
            session,
            call.actor,
            call.path_int("id"),
            body.version,
            expected_version=body.current_version,
        )
        return await _article_out(call, session, article)
