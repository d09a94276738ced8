"""Finding things: the search box (contacts, conversations by their messages, orders by number
from the ERP bridge), the conversation views with their filters, and saved views."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from core import contacts, inbox, search, views
from core.errors import InvalidInput
from core.models import SavedView
from core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from web.api import ANYONE_SIGNED_IN, ApiRoutes, Call, NoBody, RecordId
from web.keys import ORDER_SEARCH
from web.routes_console_api import inbox_item_out
from web.schemas import ContactOut, ConversationOut, Out
from web.schemas_console import InboxConversationOut

routes = ApiRoutes(tag="search")

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Channel = Annotated[str, StringConstraints(min_length=1, max_length=30)]


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(max_length=search.MAX_QUERY_CHARS, description="words to find")
    kind: Literal["all", "contacts", "conversations"] = Field(
        "all", description="what to find; a cursor continues one kind"
    )
    cursor: str | None = Field(None, max_length=500, description="next_cursor of that kind")
    limit: int = Field(default=20, ge=1, le=MAX_LIMIT, description="per kind")


class HighlightedOut(BaseModel):
    text: str
    highlights: list[tuple[int, int]] = Field(
        description="[start, end) character offsets of the words found in text"
    )


class ConversationHitOut(BaseModel):
    conversation: ConversationOut
    contact_display_name: str
    interaction_id: int = Field(description="the newest message found in it")
    occurred_at: datetime
    snippet: HighlightedOut


class OrderHitOut(BaseModel):
    number: str
    contact_id: int | None
    summary: str


class ContactHitsOut(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class ConversationHitsOut(BaseModel):
    items: list[ConversationHitOut]
    next_cursor: str | None


class SearchOut(BaseModel):
    contacts: ContactHitsOut
    conversations: ConversationHitsOut
    orders: list[OrderHitOut] = Field(
        description="orders by number, from the ERP (empty when the query is no order number "
        "or the ERP cannot answer)"
    )


class ViewFiltersBody(BaseModel):
    """A view's filters: the query of GET /api/v1/views/conversations, stored as JSON."""

    model_config = ConfigDict(extra="forbid")

    scope: views.Scope = Field("all", description="all, mine, queues (colleagues'), unassigned")
    status: views.StatusFilter = Field("all", description="or active: open and pending")
    channel: Channel | None = None
    queue_id: RecordId | None = None
    assignee: RecordId | Literal["me", "none"] | None = Field(
        None, description='an operator id, "me" or "none"'
    )
    tag: Tag | None = Field(None, description="the contact's tag")
    since: AwareDatetime | None = Field(None, description="last activity at or after")
    until: AwareDatetime | None = Field(None, description="last activity before")

    def filters(self) -> views.ViewFilters:
        if self.since and self.until and self.since >= self.until:
            raise InvalidInput("since must be before until", field="until")
        return views.ViewFilters(**self.model_dump())


class ViewQuery(ViewFiltersBody):
    cursor: str | None = Field(None, max_length=500, description="next_cursor of the last page")
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)

    def filters(self) -> views.ViewFilters:
        return ViewFiltersBody.model_validate(
            self.model_dump(exclude={"cursor", "limit"})
        ).filters()


class ViewPageOut(BaseModel):
    items: list[InboxConversationOut]
    next_cursor: str | None
    total: int = Field(description="conversations in the view (not only this page)")


class SavedViewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    filters: ViewFiltersBody


class SavedViewPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    filters: ViewFiltersBody | None = None


class SavedViewOut(Out):
    id: int
    name: str
    filters: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class SavedViewsOut(BaseModel):
    items: list[SavedViewOut]


# --- search -------------------------------------------------------------------------------


@routes.get(
    "/api/v1/search",
    summary=(
        "Find contacts (name, email, phone) and conversations (by their messages) you may see;"
        " each kind paged"
    ),
    roles=ANYONE_SIGNED_IN,
    query=SearchQuery,
    response=SearchOut,
)
async def search_everything(call: Call[NoBody, SearchQuery]) -> SearchOut:
    query = call.query
    if query.cursor and query.kind == "all":
        raise InvalidInput("a cursor continues one kind: give kind too", field="kind")
    found_contacts: list[Any] = []
    hits: list[search.ConversationHit] = []
    contacts_next = conversations_next = None
    async with call.sessions() as session:
        if query.kind in ("all", "contacts") and query.q.strip():
            found_contacts, contacts_next = await contacts.search_contacts(
                session,
                query.q,
                default_region=call.settings.default_region,
                cursor=query.cursor,
                limit=query.limit,
            )
        if query.kind in ("all", "conversations"):
            hits, conversations_next = await search.search_conversations(
                session, call.actor, query.q, cursor=query.cursor, limit=query.limit
            )
    orders: list[search.OrderHit] = []
    order_search = call.request.app.get(ORDER_SEARCH)
    if order_search is not None and query.kind == "all" and query.q.strip():
        orders = await order_search(query.q, query.limit)
    return SearchOut(
        contacts=ContactHitsOut(
            items=[ContactOut.model_validate(row) for row in found_contacts],
            next_cursor=contacts_next,
        ),
        conversations=ConversationHitsOut(
            items=[
                ConversationHitOut(
                    conversation=ConversationOut.model_validate(hit.conversation),
                    contact_display_name=hit.contact_name,
                    interaction_id=hit.interaction_id,
                    occurred_at=hit.occurred_at,
                    snippet=HighlightedOut(
                        text=hit.snippet.text, highlights=hit.snippet.highlights
                    ),
                )
                for hit in hits
            ],
            next_cursor=conversations_next,
        ),
        orders=[OrderHitOut(**vars(order)) for order in orders],
    )


# --- views --------------------------------------------------------------------------------


@routes.get(
    "/api/v1/views/conversations",
    summary="Conversations you may see by scope, status and filters, paged to the end",
    roles=ANYONE_SIGNED_IN,
    query=ViewQuery,
    response=ViewPageOut,
)
async def list_view(call: Call[NoBody, ViewQuery]) -> ViewPageOut:
    filters = call.query.filters()
    async with call.sessions() as session:
        rows, next_cursor = await views.list_view(
            session, call.actor, filters, cursor=call.query.cursor, limit=call.query.limit
        )
        total = await views.count(session, call.actor, filters)
        items = await inbox.describe(session, call.actor.operator_id or 0, rows)
    return ViewPageOut(
        items=[inbox_item_out(item) for item in items], next_cursor=next_cursor, total=total
    )


def _saved_out(row: SavedView) -> SavedViewOut:
    return SavedViewOut.model_validate(row)


@routes.get(
    "/api/v1/saved-views",
    summary="Your saved views, by name",
    roles=ANYONE_SIGNED_IN,
    response=SavedViewsOut,
)
async def list_saved_views(call: Call[NoBody, NoBody]) -> SavedViewsOut:
    async with call.sessions() as session:
        rows = await views.list_saved(session, call.actor)
    return SavedViewsOut(items=[_saved_out(row) for row in rows])


@routes.post(
    "/api/v1/saved-views",
    summary="Save a view (a name and its filters) for yourself",
    roles=ANYONE_SIGNED_IN,
    body=SavedViewBody,
    response=SavedViewOut,
    status=201,
    errors=(409,),
)
async def create_saved_view(call: Call[SavedViewBody, NoBody]) -> SavedViewOut:
    body = call.body
    body.filters.filters()
    async with call.sessions() as session, session.begin():
        row = await views.create_saved(
            session, call.actor, body.name, body.filters.model_dump(mode="json")
        )
    return _saved_out(row)


@routes.get(
    "/api/v1/saved-views/{id}",
    summary="One of your saved views",
    roles=ANYONE_SIGNED_IN,
    response=SavedViewOut,
)
async def get_saved_view(call: Call[NoBody, NoBody]) -> SavedViewOut:
    async with call.sessions() as session:
        row = await views.get_saved(session, call.actor, call.path_int("id"))
    return _saved_out(row)


@routes.patch(
    "/api/v1/saved-views/{id}",
    summary="Rename one of your saved views or change its filters",
    roles=ANYONE_SIGNED_IN,
    body=SavedViewPatch,
    response=SavedViewOut,
    errors=(409,),
)
async def update_saved_view(call: Call[SavedViewPatch, NoBody]) -> SavedViewOut:
    body = call.body
    if body.filters is not None:
        body.filters.filters()
    async with call.sessions() as session, session.begin():
        row = await views.update_saved(
            session,
            call.actor,
            call.path_int("id"),
            name=body.name,
            filters=None if body.filters is None else body.filters.model_dump(mode="json"),
        )
    return _saved_out(row)


@routes.delete(
    "/api/v1/saved-views/{id}",
    summary="Delete one of your saved views",
    roles=ANYONE_SIGNED_IN,
    status=204,
)
async def delete_saved_view(call: Call[NoBody, NoBody]) -> web.StreamResponse:
    async with call.sessions() as session, session.begin():
        await views.delete_saved(session, call.actor, call.path_int("id"))
    return web.Response(status=204)
