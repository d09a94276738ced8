"""Web form definitions (the web-form channel's configuration)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.errors import Conflict, InvalidInput, NotFound
from core.models import WebForm

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
# Fields a form can require; anything else a form sends is kept as custom data.
KNOWN_FIELDS = ("name", "email", "phone", "message")


def validate_thank_you_url(url: str | None) -> str | None:
    if url is None or url == "":
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput("thank-you URL must be an absolute http(s) URL", field="thank_you_url")
    return url


async def create_form(
    session: AsyncSession,
    actor: Actor,
    *,
    slug: str,
    title: str = "Contact us",
    queue_id: int | None = None,
    create_lead: bool = False,
    required_fields: Sequence[str] = ("email", "message"),
    thank_you_url: str | None = None,
) -> WebForm:
    if not SLUG.match(slug):
        raise InvalidInput(
            "slug must be lower-case letters, digits and dashes (up to 100)", field="slug"
        )
    unknown = [name for name in required_fields if name not in KNOWN_FIELDS]
    if unknown:
        raise InvalidInput(
            f"unknown required fields {unknown}; choose from {list(KNOWN_FIELDS)}",
            field="required_fields",
        )
    if await session.scalar(select(WebForm.id).where(WebForm.slug == slug)):
        raise Conflict(f"a form with slug {slug!r} exists already", field="slug")
    form = WebForm(
        slug=slug,
        title=title.strip()[:200] or "Contact us",
        queue_id=queue_id,
        create_lead=create_lead,
        required_fields=list(dict.fromkeys(required_fields)),
        thank_you_url=validate_thank_you_url(thank_you_url),
        active=True,
    )
    session.add(form)
    await session.flush()
    await audit.record(session, actor, "form.create", "web_form", form.id, {"slug": slug})
    return form


async def form_by_slug(session: AsyncSession, slug: str, *, active_only: bool = True) -> WebForm:
    query = select(WebForm).where(WebForm.slug == slug)
    if active_only:
        query = query.where(WebForm.active.is_(True))
    form = await session.scalar(query)
    if form is None:
        raise NotFound(f"no form {slug!r}")
    return form
