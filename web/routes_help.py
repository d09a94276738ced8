"""The public help pages: knowledge articles marked public, for anyone, without sign-in.

`/help/{slug}` shows the article in the reader's language (core/knowledge.py:
`public_article`): the translation `?lang=` names, else the best one for Accept-Language,
else the first one written. The page's own words (the date line, the other languages) are in
the article's language where omnicrm speaks it, else in the reader's (core.i18n); `<html
lang>` is the article's. `/help` lists the public articles, each in the reader's language.

An article that does not exist, is internal or archived is a 404 page that says only that
(clients that do not ask for HTML get the API's JSON 404). The body is plain text: escaped,
paragraphs at blank lines, line breaks kept; no markup of the author's runs. The pages are
plain HTML without scripts under a strict Content-Security-Policy; each client address may
open this many a minute (`web/ratelimit.py`). `public_base` is the address links to them
start with (the `public_url` setting, as for status links).
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote

from aiohttp import web
from babel import Locale, UnknownLocaleError
from babel.dates import format_date

from core import knowledge
from core.errors import NotFound
from core.i18n import Translator, negotiate, parse_accept_language, translator
from core.models import KnowledgeArticle
from web.api import PUBLIC, ApiRoutes, Call, NoBody
from web.error_pages import prefers_html, visitor_locale
from web.keys import SESSIONS, SETTINGS
from web.origins import client_address
from web.ratelimit import enforce_key

routes = ApiRoutes(tag="help")

PAGES_PER_MINUTE = 60
MAX_LANG_PARAMETER = 35
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")

STYLE = (
    "body{font:17px/1.6 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;"
    "color:#1f2937}h1{line-height:1.25}.note{color:#555;font-size:.9rem}"
    "nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.4rem 1rem}"
    ".articles{padding-left:1.2rem}.articles li{margin:.3rem 0}"
    "footer{margin-top:2.5rem;border-top:1px solid #e5e7eb;padding-top:.8rem}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def public_base(request: web.Request) -> str:
    """Where public links start: the `public_url` setting when set (a forged Host header
    cannot change it), else this request's origin (as `routes_status.link_for`)."""
    return request.app[SETTINGS].public_url or str(request.url.origin())


def wanted_languages(request: web.Request) -> list[str]:
    """The reader's languages, most wanted first: `?lang=`, then Accept-Language."""
    wanted = request.query.get("lang", "").strip()[:MAX_LANG_PARAMETER]
    ranges = parse_accept_language(request.headers.get("Accept-Language"))
    return [tag for tag in (wanted, *ranges) if tag and tag != "*"]


def _speaks(tag: str) -> bool:
    """Whether omnicrm's pages speak the language of `tag`."""
    chosen = negotiate(None, tag)
    return chosen.split("-")[0] == tag.replace("_", "-").split("-")[0].lower()


def chrome_locale(request: web.Request, language: str) -> str:
    """The page's own words: in the article's language where omnicrm has them, else in the
    reader's (`?lang=`, Accept-Language, English)."""
    if _speaks(language):
        return negotiate(None, language)
    return visitor_locale(request)


def language_name(tag: str) -> str:
    """A language in its own words ("Deutsch", "português (Brasil)"); unknown ones as tagged."""
    try:
        name = Locale.parse(tag, sep="-").get_display_name()
    except (ValueError, UnknownLocaleError):
        return tag
    return name or tag


def render_body(body: str) -> str:
    """Plain text as HTML: escaped, a paragraph per blank-line-separated block, line breaks
    kept within one."""
    blocks = [block.strip("\n") for block in _PARAGRAPH_BREAK.split(body)]
    paragraphs = [
        "<p>" + "<br>\n".join(escape(line) for line in block.split("\n")) + "</p>"
        for block in blocks
        if block.strip()
    ]
    return "\n".join(paragraphs)


def _lang(locale: str, content_language: str) -> str:
    """A `lang` attribute for the page's own words when they differ from the content's."""
    if locale.split("-")[0] == content_language.split("-")[0].lower():
        return ""
    return f' lang="{escape(locale)}"'


def _page(language: str, title: str, main: str, status: int = 200) -> web.Response:
    page = (
        f'<!doctype html>\n<html lang="{escape(language)}"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style></head>\n"
        f"<body><main>\n{main}\n</main></body></html>\n"
    )
    return web.Response(
        text=page,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            # Archiving or making an article internal must take effect at once.
            "Cache-Control": "no-cache",
            "Referrer-Policy": "no-referrer",
            "Content-Language": language,
            "Vary": "Accept, Accept-Language",
        },
    )


def _day(tr: Translator, moment: datetime) -> str:
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return str(format_date(moment.date(), "long", locale=tr.locale))


def _languages_nav(tr: Translator, shown: KnowledgeArticle, all_: list[KnowledgeArticle]) -> str:
    others = [item for item in all_ if item.id != shown.id]
    if not others:
        return ""
    label = escape(tr.gettext("This article in other languages"))
    links = "".join(
        f'<li><a href="?lang={quote(item.language, safe="-")}" hreflang="{escape(item.language)}"'
        f' lang="{escape(item.language)}">{escape(language_name(item.language))}</a></li>'
        for item in others
    )
    return (
        f'<nav aria-label="{label}"{_lang(tr.locale, shown.language)}>'
        f"<h2>{label}</h2><ul>{links}</ul></nav>"
    )


@routes.get(
    "/help/{slug}",
    summary="A public help article (HTML, no sign-in) in the reader's language: ?lang=, "
    "else Accept-Language, else the first translation. Unknown, internal or archived: 404 "
    "(a browser gets a page)",
    roles=PUBLIC,
    errors=(429,),
)
async def help_article(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    request = call.request
    enforce_key(request, "help-page", PAGES_PER_MINUTE, client_address(request))
    slug = request.match_info["slug"]
    languages = wanted_languages(request)
    async with request.app[SESSIONS]() as session:
        found = await knowledge.public_translations(session, slug)
    article = knowledge.best_translation(found, languages)
    if article is None:
        return not_found(request)
    tr = translator(chrome_locale(request, article.language))
    chrome = _lang(tr.locale, article.language)
    updated = tr.gettext("Updated on {date}", date=_day(tr, article.updated_at))
    index = tr.gettext("All help articles")
    index_href = f"../help?lang={quote(article.language, safe='-')}"
    main = "\n".join(
        part
        for part in (
            f"<article>\n<h1>{escape(article.title)}</h1>\n{render_body(article.body)}\n</article>",
            f'<p class="note"{chrome}>{escape(updated)}</p>',
            _languages_nav(tr, article, found),
            f'<footer{chrome}><a href="{escape(index_href)}">{escape(index)}</a></footer>',
        )
        if part
    )
    return _page(article.language, article.title, main)


@routes.get(
    "/help",
    summary="The public help articles (HTML, no sign-in), each in the reader's language",
    roles=PUBLIC,
    errors=(429,),
)
async def help_index(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    request = call.request
    enforce_key(request, "help-page", PAGES_PER_MINUTE, client_address(request))
    languages = wanted_languages(request)
    async with request.app[SESSIONS]() as session:
        articles = await knowledge.public_index(session, languages)
    tr = translator(visitor_locale(request))
    title = tr.gettext("Help")
    if articles:
        items = "".join(
            f'<li><a href="help/{quote(item.slug, safe="-")}?lang='
            f'{quote(item.language, safe="-")}" lang="{escape(item.language)}">'
            f"{escape(item.title)}</a></li>"
            for item in articles
        )
        listing = f'<ul class="articles">{items}</ul>'
    else:
        empty = tr.gettext("There are no help articles yet.")
        listing = f"<p>{escape(empty)}</p>"
    return _page(tr.locale, title, f"<h1>{escape(title)}</h1>\n{listing}")


def not_found(request: web.Request) -> web.Response:
    """The page for an article that is not (or no longer) public; JSON for non-browsers."""
    if not prefers_html(request):
        raise NotFound("there is no public help article here")
    tr = translator(visitor_locale(request))
    title = tr.gettext("This article is not available")
    text = tr.gettext(
        "It may have been moved or withdrawn. Please check the link, or ask us for a new one."
    )
    index = tr.gettext("All help articles")
    main = (
        f"<h1>{escape(title)}</h1>\n<p>{escape(text)}</p>\n"
        f'<footer><a href="../help?lang={quote(tr.locale)}">{escape(index)}</a></footer>'
    )
    return _page(tr.locale, title, main, status=404)
