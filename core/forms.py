"""Web form definitions (the web-form channel's configuration), and the cache public posts
read them through (`FormCache`)."""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.cache import EventCache
from core.errors import Conflict, InvalidInput, NotFound
from core.event_types import FORM_UPDATED
from core.events import Event, EventBus, emit
from core.models import Queue, WebForm

# At most 95 characters, so a lead source "form:<slug>" fits its 100.
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,94}$")
# Fields a form can require; anything else a form sends is kept as custom data.
KNOWN_FIELDS = ("name", "email", "phone", "message")
# The thank-you page's host: it is also named in the form page's Content-Security-Policy.
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


class _Unset(enum.Enum):
    UNSET = enum.auto()


# "Leave as it is" for update_form, where None is a value (no queue, no thank-you URL).
UNSET = _Unset.UNSET


def validate_thank_you_url(url: str | None) -> str | None:
    if url is None or url == "":
        return None
    parts = urlsplit(url)
    plain = url.isascii() and url.isprintable() and " " not in url and len(url) <= 2000
    if not plain or parts.scheme not in ("http", "https") or not _HOST.fullmatch(parts.netloc):
        raise InvalidInput(
            "thank-you URL must be an absolute http(s) URL (ASCII, no spaces, host[:port])",
            field="thank_you_url",
        )
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
    if not SLUG.fullmatch(slug):
        raise InvalidInput(
            "slug must be lower-case letters, digits and dashes (up to 95)", field="slug"
        )
    if await session.scalar(select(WebForm.id).where(WebForm.slug == slug)):
        raise Conflict(f"a form with slug {slug!r} exists already", field="slug")
    form = WebForm(
        slug=slug,
        title=_title(title),
        queue_id=await _existing_queue(session, queue_id),
        create_lead=create_lead,
        required_fields=_required_fields(required_fields),
        thank_you_url=validate_thank_you_url(thank_you_url),
        active=True,
    )
    session.add(form)
    await session.flush()
    await audit.record(session, actor, "form.create", "web_form", form.id, {"slug": slug})
    await emit(session, Event(FORM_UPDATED, {"form": form.id}))
    return form


async def form_by_slug(session: AsyncSession, slug: str, *, active_only: bool = True) -> WebForm:
    if not SLUG.fullmatch(slug):
        raise NotFound("no such form")
    query = select(WebForm).where(WebForm.slug == slug)
    if active_only:
        query = query.where(WebForm.active.is_(True))
    form = await session.scalar(query)
    if form is None:
        raise NotFound(f"no form {slug!r}")
    return form


class FormCache:
    """Active forms by slug, for the public pages and posts: read once and kept
    (`core.cache.EventCache`), emptied by `form.updated`, which every change made through
    `create_form`, `update_form` or `deactivate_form` announces. The forms handed out are
    detached copies with every column loaded, shared by the requests that read them: they are
    read, never changed or added to a session."""

    def __init__(
        self,
        bus: EventBus,
        ttl_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._forms: EventCache[str, WebForm] = EventCache(
            bus, {FORM_UPDATED}, ttl_seconds=ttl_seconds, clock=clock
        )

    async def get(self, session: AsyncSession, slug: str) -> WebForm:
        """The active form `slug` (NotFound if there is none), from the cache when it can."""

        async def load() -> WebForm:
            form = await form_by_slug(session, slug)
            session.expunge(form)
            return form

        form = await self._forms.get(slug, load)
        assert form is not None  # form_by_slug raises rather than answer None
        return form


async def list_forms(session: AsyncSession) -> list[WebForm]:
    """Every form, active or not, oldest first."""
    return list(await session.scalars(select(WebForm).order_by(WebForm.id)))


async def get_form(session: AsyncSession, form_id: int) -> WebForm:
    form = await session.get(WebForm, form_id)
    if form is None:
        raise NotFound(f"no form {form_id}")
    return form


async def update_form(
    session: AsyncSession,
    actor: Actor,
    form_id: int,
    *,
    title: str | _Unset = UNSET,
    queue_id: int | _Unset | None = UNSET,
    create_lead: bool | _Unset = UNSET,
    required_fields: Sequence[str] | _Unset = UNSET,
    thank_you_url: str | _Unset | None = UNSET,
    active: bool | _Unset = UNSET,
) -> WebForm:
    """Change the given settings of a form (its slug, the public address, stays)."""
    form = await get_form(session, form_id)
    changed: list[str] = []
    if not isinstance(title, _Unset) and _title(title) != form.title:
        form.title = _title(title)
        changed.append("title")
    if not isinstance(queue_id, _Unset) and queue_id != form.queue_id:
        form.queue_id = await _existing_queue(session, queue_id)
        changed.append("queue_id")
    if not isinstance(create_lead, _Unset) and create_lead != form.create_lead:
        form.create_lead = create_lead
        changed.append("create_lead")
    if not isinstance(required_fields, _Unset):
        wanted = _required_fields(required_fields)
        if wanted != form.required_fields:
            form.required_fields = wanted
            changed.append("required_fields")
    if not isinstance(thank_you_url, _Unset):
        url = validate_thank_you_url(thank_you_url)
        if url != form.thank_you_url:
            form.thank_you_url = url
            changed.append("thank_you_url")
    if not isinstance(active, _Unset) and active != form.active:
        form.active = active
        changed.append("active")
    if changed:
        await session.flush()
        await audit.record(session, actor, "form.update", "web_form", form.id, {"changed": changed})
        await emit(session, Event(FORM_UPDATED, {"form": form.id}))
    return form


async def deactivate_form(session: AsyncSession, actor: Actor, form_id: int) -> WebForm:
    """Stop accepting submissions; the form and what it received stay."""
    form = await get_form(session, form_id)
    if form.active:
        form.active = False
        await session.flush()
        await audit.record(session, actor, "form.deactivate", "web_form", form.id)
        await emit(session, Event(FORM_UPDATED, {"form": form.id}))
    return form


def _title(title: str) -> str:
    title = title.strip()
    if not title or len(title) > 200:
        raise InvalidInput("title must be 1 to 200 characters", field="title")
    return title


def _required_fields(names: Sequence[str]) -> list[str]:
    unknown = [name for name in names if name not in KNOWN_FIELDS]
    if unknown:
        raise InvalidInput(
            f"unknown required fields {unknown}; choose from {list(KNOWN_FIELDS)}",
            field="required_fields",
        )
    return list(dict.fromkeys(names))


async def _existing_queue(session: AsyncSession, queue_id: int | None) -> int | None:
    if queue_id is not None and await session.get(Queue, queue_id) is None:
        raise InvalidInput(f"no queue {queue_id}", field="queue_id")
    return queue_id
