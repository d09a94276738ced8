"""The knowledge base's rules, pure: what a slug, a language tag, a title, a body, tags and a
visibility may be (each check returns the cleaned value or raises InvalidInput naming its
field), and the public link of an article (`public_url`, and whether a text carries one:
`links_to`). `core.knowledge` applies them."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from core.errors import InvalidInput
from core.models import ArticleVisibility, KnowledgeArticle

MAX_SLUG = 100
MAX_LANGUAGE = 16
MAX_TITLE = 300
MAX_BODY = 100_000
MAX_TAGS = 20
MAX_TAG = 50

SLUG = re.compile(r"[a-z0-9][a-z0-9-]*")
# A language, an optional script, an optional region: en, ru, pt-BR, zh-Hant-TW, es-419.
LANGUAGE = re.compile(r"([a-z]{2,3})(?:-([a-z]{4}))?(?:-([a-z]{2}|[0-9]{3}))?", re.IGNORECASE)
SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_slug(slug: str) -> str:
    slug = slug.strip().lower()
    if not slug or len(slug) > MAX_SLUG or not SLUG.fullmatch(slug):
        raise InvalidInput(
            f"slug must be 1 to {MAX_SLUG} lower-case letters a-z, digits and hyphens, "
            "starting with a letter or digit",
            field="slug",
        )
    return slug


def check_language(language: str) -> str:
    """A language tag as written canonically: "pt_br" is pt-BR, "ZH-hant" zh-Hant."""
    match = LANGUAGE.fullmatch(language.strip().replace("_", "-"))
    if match is None:
        raise InvalidInput(
            "language must be a language tag such as en, ru or pt-BR", field="language"
        )
    primary, script, region = match.groups()
    parts = [primary.lower()]
    if script:
        parts.append(script.title())
    if region:
        parts.append(region.upper())
    return "-".join(parts)


def check_title(title: str) -> str:
    title = SPACES.sub(" ", title).strip()
    if not title or len(title) > MAX_TITLE:
        raise InvalidInput(f"title must be 1 to {MAX_TITLE} characters", field="title")
    return title


def check_body(body: str) -> str:
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if not body.strip():
        raise InvalidInput("body may not be blank", field="body")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"body must be at most {MAX_BODY} characters", field="body")
    if _CONTROL.search(body):
        raise InvalidInput("body may not contain control characters", field="body")
    return body.strip("\n")


def check_tags(tags: Sequence[str]) -> list[str]:
    """Lower-case, spaces collapsed, each once in the order given; blank ones dropped."""
    normalized: list[str] = []
    for raw in tags:
        tag = SPACES.sub(" ", raw).strip().lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG:
            raise InvalidInput(f"a tag is at most {MAX_TAG} characters: {tag!r}", field="tags")
        if tag not in normalized:
            normalized.append(tag)
    if len(normalized) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags", field="tags")
    return normalized


def check_visibility(visibility: str) -> str:
    try:
        return ArticleVisibility(visibility).value
    except ValueError:
        known = " or ".join(item.value for item in ArticleVisibility)
        raise InvalidInput(f"visibility must be {known}", field="visibility") from None


def checked(checks: dict[str, tuple[Callable[[Any], Any], Any]]) -> dict[str, Any]:
    """Each value through its check; every field at fault is named in one InvalidInput."""
    values: dict[str, Any] = {}
    error = InvalidInput("the article has invalid fields")
    for name, (check, value) in checks.items():
        try:
            values[name] = check(value)
        except InvalidInput as exc:
            error.fields.update(exc.fields or {name: exc.message})
    if error.fields:
        if len(error.fields) == 1:
            error.message = next(iter(error.fields.values()))
            error.args = (error.message,)
        raise error
    return values


def public_url(base: str, article: KnowledgeArticle) -> str:
    """The public page of `article` in its language, under `base` (the server's public
    address, see web/routes_help.py: public_base). Only public, non-archived articles open
    there; any other is the page's 404."""
    language = quote(article.language, safe="-")
    return f"{base.rstrip('/')}{_public_path(article.slug)}?lang={language}"


def _public_path(slug: str) -> str:
    return f"/help/{quote(slug, safe='-')}"


def links_to(text: str, slug: str) -> bool:
    """Whether `text` carries a link to the public page of the article `slug` (any server's
    address, any language: translations share the slug)."""
    return re.search(rf"{re.escape(_public_path(slug))}(?![\w-])", text) is not None
