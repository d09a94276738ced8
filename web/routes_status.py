"""Customers see their status themselves: `/status/{token}`, a page without sign-in.

An operator who may see a conversation makes a link to it (`POST /api/v1/conversations/{id}/
status-link`, optionally naming an order; audited), or puts `{{status.link}}` into a canned
response (core/canned.py; the order is then the latest number the customer wrote, found by
the ERP's order number pattern). The link is a signed token (core/status_links.py) that
expires after `status_link_days`.

The page speaks the customer's language (`?lang=`, else their contact's language, else
Accept-Language) and shows the request's state (open, waiting for them, resolved), when it
arrived and when it was last answered, and, if the link names an order, the order's status,
dates and tracking from the ERP with the time the ERP said so; an ERP that cannot answer
makes that one line say so. It never shows a message, a note, another conversation, or an
order the ERP does not list for this customer. It is plain HTML with a strict
Content-Security-Policy and no scripts; it is not cached and sends no Referer onwards.

A link that is not this server's, is damaged, or names a request that is gone (or a customer
who was erased) is a 404 page; an expired one a 410 page asking for a new link: both say
nothing of the request. Clients that do not ask for HTML get the JSON 404 of the API. Each
client address may open this many pages a minute (`web/ratelimit.py`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from babel import Locale
from babel.dates import format_date, format_time
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.conversations import get_conversation
from core.errors import Forbidden, InvalidInput, NotFound
from core.i18n import N_, Translator, negotiate, translator
from core.models import Contact, Conversation, ConversationStatus, Direction, Interaction
from core.status_links import (
    MAX_ORDER_NUMBER,
    Rejected,
    StatusLink,
    check_order_number,
    expiry,
    make_token,
    read_token,
)
from erp_bridge.base import ErpAdapter, ErpError
from erp_bridge.enricher import query_for_contact
from erp_bridge.models import CustomerQuery, Order, OrderStatus
from erp_bridge.patterns import compile_pattern, pattern_of
from web.api import PUBLIC, ApiRoutes, Call, NoBody
from web.error_pages import prefers_html, visitor_locale
from web.keys import ERP, SESSIONS, SETTINGS
from web.origins import client_address
from web.ratelimit import enforce_key
from web.routes_erp_console import DEFAULT_PATTERN

routes = ApiRoutes(tag="status")

PAGES_PER_MINUTE = 30
# How many of the customer's latest messages are searched for an order number.
MESSAGES_SEARCHED = 20

# A canned response's `{{status.link}}`: the link for a conversation (core/canned.py).
LinkMaker = Callable[[AsyncSession, Conversation], Awaitable[str]]


# --- the operators' side: making a link -----------------------------------------------------


class StatusLinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_number: str | None = Field(
        default=None,
        max_length=MAX_ORDER_NUMBER,
        description="an order whose status the page shows too (as the ERP numbers it)",
    )


class StatusLinkOut(BaseModel):
    url: str = Field(description="the page's absolute address, to send to the customer")
    expires_at: datetime


@routes.post(
    "/api/v1/conversations/{id}/status-link",
    summary="A link for the customer to see this request's state (and an order's status) "
    "without signing in; it expires after status_link_days",
    body=StatusLinkBody,
    response=StatusLinkOut,
)
async def make_status_link(call: Call[StatusLinkBody, NoBody]) -> StatusLinkOut:
    conversation_id = call.path_int("id")
    try:
        number = check_order_number(call.body.order_number)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="order_number") from None
    async with call.sessions() as session, session.begin():
        try:
            conversation = await get_conversation(session, call.actor, conversation_id)
        except Forbidden:
            # Whether a conversation one may not see exists is not for the caller to learn.
            raise NotFound(f"no conversation {conversation_id}") from None
        url, expires_at = link_for(call.request, conversation.id, number)
        await audit.record(
            session,
            call.actor,
            "conversation.status_link",
            "conversation",
            conversation.id,
            {"order_number": number, "expires_at": expires_at.isoformat()},
        )
    return StatusLinkOut(url=url, expires_at=expires_at)


def link_for(
    request: web.Request, conversation_id: int, order_number: str | None
) -> tuple[str, datetime]:
    """The absolute address of a new status link, and when it expires. Under the
    `public_url` setting when it is set (so a forged Host header cannot change it)."""
    settings = request.app[SETTINGS]
    expires_at = expiry(settings.status_link_days)
    token = make_token(settings.secret_key, conversation_id, order_number, expires_at)
    base = settings.public_url or str(request.url.origin())
    return f"{base}/status/{token}", expires_at


def canned_link_maker(request: web.Request) -> LinkMaker:
    """`{{status.link}}` for core.canned.render: a link to the conversation and the latest
    order number its customer wrote (by the ERP's pattern), if any."""

    async def make(session: AsyncSession, conversation: Conversation) -> str:
        # The adapter as it is (no refresh: that would need a second connection while the
        # caller's session holds one, which SQLite's pool of one cannot give).
        adapter = request.app[ERP].current()
        number = (
            await latest_order_number(session, conversation.id, order_pattern(adapter))
            if adapter is not None
            else None
        )
        return link_for(request, conversation.id, number)[0]

    return make


def order_pattern(adapter: ErpAdapter | None) -> str:
    """How the ERP's order numbers look (its setting; the console's default without one)."""
    return pattern_of(adapter, DEFAULT_PATTERN)


@functools.lru_cache(maxsize=16)
def _compiled(pattern: str) -> Any:
    """The pattern on RE2 (linear time whatever an admin wrote); None if RE2 refuses it."""
    try:
        return compile_pattern(pattern)
    except ValueError:
        return None


async def latest_order_number(
    session: AsyncSession, conversation_id: int, pattern: str
) -> str | None:
    """The order number the customer wrote last in the conversation, if any: in their
    newest message that has one, the last one written."""
    compiled = _compiled(pattern)
    if compiled is None:
        return None
    texts = await session.scalars(
        select(Interaction.text)
        .where(
            Interaction.conversation_id == conversation_id,
            Interaction.direction == Direction.IN,
        )
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(MESSAGES_SEARCHED)
    )
    for text in texts:
        found: str | None = None
        for match in compiled.finditer(text or ""):
            try:
                found = check_order_number(match.group(0)) or found
            except ValueError:
                continue
        if found:
            return found
    return None


# --- the customer's side: the page ------------------------------------------------------------

_STATES: dict[str, str] = {
    ConversationStatus.OPEN: N_("Open: we are working on it"),
    ConversationStatus.SNOOZED: N_("Open: we are working on it"),
    ConversationStatus.PENDING: N_("Waiting for your answer"),
    ConversationStatus.RESOLVED: N_("Resolved. If anything is still open, just write to us."),
}
_ORDER_STATES: dict[str, str] = {
    OrderStatus.DRAFT: N_("Not confirmed yet"),
    OrderStatus.CONFIRMED: N_("Confirmed"),
    OrderStatus.PROCESSING: N_("Being prepared"),
    OrderStatus.SHIPPED: N_("Shipped"),
    OrderStatus.DELIVERED: N_("Delivered"),
    OrderStatus.CANCELLED: N_("Cancelled"),
    OrderStatus.OTHER: N_("In progress"),
}

STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}"
    "dt{color:#555}dd{margin:0}.state{font-weight:600}.note{color:#555}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class OrderAnswer:
    """What the page says of the order: shown (with the ERP's time), or why not."""

    number: str
    order: Order | None = None
    as_of: datetime | None = None
    stale: bool = False
    unavailable: bool = False


@routes.get(
    "/status/{token}",
    summary="A customer's status page (HTML, no sign-in): their request's state and an "
    "order's status, in their language. A link that is not valid is a 404 (a browser gets a "
    "page; an expired link: a 410 page)",
    roles=PUBLIC,
    errors=(429,),
)
async def status_page(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    request = call.request
    enforce_key(request, "status-page", PAGES_PER_MINUTE, client_address(request))
    link = read_token(call.settings.secret_key, request.match_info["token"])
    if isinstance(link, Rejected):
        return _rejected(request, link)
    async with request.app[SESSIONS]() as session:
        conversation = await session.get(Conversation, link.conversation_id)
        contact = (
            await session.get(Contact, conversation.contact_id)
            if conversation is not None
            else None
        )
        if conversation is None or contact is None or contact.erased_at is not None:
            return _rejected(request, Rejected.MALFORMED)
        query = await query_for_contact(session, contact.id) if link.order_number else None
    # The ERP is asked with no connection held (the embedded one reads this database, and
    # SQLite's pool is one connection).
    order = await _order(request, query, link.order_number) if link.order_number else None
    tr = translator(_customer_locale(request, contact.language))
    return _page(tr, _body(tr, conversation, order, link), status=200)


def _customer_locale(request: web.Request, language: str | None) -> str:
    """`?lang=`, else the contact's language, else Accept-Language (the supported ones)."""
    for wanted in (request.query.get("lang"), language):
        if wanted and _supported(wanted):
            return negotiate(None, wanted)
    return visitor_locale(request)


def _supported(tag: str) -> bool:
    """Whether the pages speak `tag` (negotiate falls back to English for the others)."""
    chosen = negotiate(None, tag)
    return chosen.split("-")[0] == tag.strip().replace("_", "-").split("-")[0].lower()


async def _order(request: web.Request, query: CustomerQuery | None, number: str) -> OrderAnswer:
    """The order as the ERP has it now (or last had it), if it is the customer's whom
    `query` finds."""
    adapter = await request.app[ERP].adapter()
    if adapter is None:
        return OrderAnswer(number, unavailable=True)
    query = query or CustomerQuery()
    try:
        found = await adapter.get_order(number)
        if found.value is None:
            return OrderAnswer(number)
        customer = await adapter.find_customer(query)
        as_of, stale = min(found.as_of, customer.as_of), found.stale or customer.stale
        if customer.value is None:
            return OrderAnswer(number)
        theirs = found.value.customer_ref in {customer.value.ref, *query.erp_refs}
        if not theirs:
            # Customer numbers are spelt more than one way (an ERP ref given to a contact
            # later): the customer's own list decides.
            listed = await adapter.list_orders(customer.value.ref, 100)
            theirs = any(item.number == found.value.number for item in listed.value)
            as_of, stale = min(as_of, listed.as_of), stale or listed.stale
    except ErpError:
        return OrderAnswer(number, unavailable=True)
    if not theirs:
        return OrderAnswer(number)
    return OrderAnswer(number, found.value, as_of, stale)


def _body(
    tr: Translator, conversation: Conversation, order: OrderAnswer | None, link: StatusLink
) -> str:
    state = tr.gettext(_STATES.get(conversation.status, _STATES[ConversationStatus.OPEN]))
    rows = [
        (tr.gettext("Status"), f'<span class="state">{escape(state)}</span>'),
        (tr.gettext("Received"), escape(_when(tr, conversation.created_at))),
    ]
    answered = conversation.last_outbound_at
    rows.append(
        (
            tr.gettext("Last answered"),
            escape(_when(tr, answered) if answered else tr.gettext("Not answered yet")),
        )
    )
    if conversation.status == ConversationStatus.RESOLVED and conversation.resolved_at:
        rows.append((tr.gettext("Resolved on"), escape(_when(tr, conversation.resolved_at))))
    title = tr.gettext("Your request #{id}", id=conversation.id)
    parts = [
        f"<h1>{escape(title)}</h1>",
        _list(rows),
    ]
    if order is not None:
        parts.append(_order_section(tr, order))
    valid = tr.gettext("This link is valid until {date}.", date=_when(tr, link.expires_at))
    parts.append(f'<p class="note">{escape(valid)}</p>')
    return "\n".join(parts)


def _order_section(tr: Translator, answer: OrderAnswer) -> str:
    title = tr.gettext("Order {number}", number=answer.number)
    heading = f"<h2>{escape(title)}</h2>"
    order = answer.order
    if answer.unavailable:
        text = tr.gettext("The order status is not available right now. Please try again later.")
        return f"{heading}\n<p>{escape(text)}</p>"
    if order is None or answer.as_of is None:
        text = tr.gettext("We cannot show this order here. Please ask us about it.")
        return f"{heading}\n<p>{escape(text)}</p>"
    rows = [(tr.gettext("Status"), f'<span class="state">{escape(_order_state(tr, order))}</span>')]
    if order.ordered_at is not None:
        rows.append((tr.gettext("Ordered on"), escape(_day(tr, order.ordered_at))))
    shipment = order.shipments[-1] if order.shipments else None
    if shipment is not None and shipment.shipped_at is not None:
        rows.append((tr.gettext("Shipped on"), escape(_day(tr, shipment.shipped_at))))
    if shipment is not None and shipment.delivered_at is not None:
        rows.append((tr.gettext("Delivered on"), escape(_day(tr, shipment.delivered_at))))
    tracking = _tracking(tr, order)
    if tracking:
        rows.append((tr.gettext("Tracking"), tracking))
    when = _when(tr, answer.as_of)
    if answer.stale:
        note = tr.gettext(
            "This is the last status we know, as of {time}; a newer one cannot be read right now.",
            time=when,
        )
    else:
        note = tr.gettext("Order status as of {time}.", time=when)
    return f'{heading}\n{_list(rows)}\n<p class="note">{escape(note)}</p>'


def _order_state(tr: Translator, order: Order) -> str:
    return tr.gettext(_ORDER_STATES.get(order.status, _ORDER_STATES[OrderStatus.OTHER]))


def _tracking(tr: Translator, order: Order) -> str:
    """The parcel's tracking number, as a link to the carrier when the ERP gives one (only
    http and https addresses)."""
    url, number = order.tracking_url, order.tracking_number
    for shipment in reversed(order.shipments):
        if url or number:
            break
        url, number = shipment.tracking_url, shipment.tracking_number
    if url and urlsplit(url).scheme.lower() not in ("http", "https"):
        url = None
    text = number or tr.gettext("Track the parcel")
    if url:
        return f'<a href="{escape(url)}" rel="noopener noreferrer">{escape(text)}</a>'
    return escape(number) if number else ""


def _list(rows: list[tuple[str, str]]) -> str:
    """A definition list of (label, HTML) rows; labels are escaped here."""
    items = "".join(f"<dt>{escape(label)}</dt><dd>{value}</dd>" for label, value in rows)
    return f"<dl>{items}</dl>"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _day(tr: Translator, moment: datetime | date) -> str:
    day = _utc(moment).date() if isinstance(moment, datetime) else moment
    return str(format_date(day, "long", locale=tr.locale))


def _when(tr: Translator, moment: datetime) -> str:
    """A date and time as the customer's language writes them, in UTC (the page knows no
    time zone of theirs)."""
    moment = _utc(moment)
    pattern = str(Locale.parse(tr.locale).datetime_formats["medium"])
    time_text = str(format_time(moment, "short", tzinfo=UTC, locale=tr.locale))
    joined = pattern.replace("{1}", _day(tr, moment)).replace("{0}", time_text)
    return f"{joined} UTC"


def _page(tr: Translator, body: str, status: int, title: str | None = None) -> web.Response:
    title = title or tr.gettext("The status of your request")
    page = (
        f'<!doctype html>\n<html lang="{escape(tr.locale)}"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style></head>\n"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )
    return web.Response(
        text=page,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex",
            "Content-Language": tr.locale,
            "Vary": "Accept, Accept-Language",
        },
    )


def _rejected(request: web.Request, why: Rejected) -> web.Response:
    """A link that does not open: a page for browsers (410 when it expired), the API's 404
    for the rest; neither says anything of the request."""
    if not prefers_html(request):
        raise NotFound("this status link is not valid or has expired")
    tr = translator(visitor_locale(request))
    if why is Rejected.EXPIRED:
        title = tr.gettext("This link has expired")
        text = tr.gettext(
            "Status links work for a limited time. Please ask us for a new one, for example "
            "by answering our last message."
        )
        status = 410
    else:
        title = tr.gettext("This link does not work")
        text = tr.gettext("Please check that the whole link was copied, or ask us for a new one.")
        status = 404
    body = f"<h1>{escape(title)}</h1>\n<p>{escape(text)}</p>"
    return _page(tr, body, status=status, title=title)
