"""The customer's history beside a conversation (`core/customer_context.py`): where they wrote
last (the reply's default channel), their language and tier, order numbers they keep writing
about, their open tasks and their unresolved conversations elsewhere.

Who sees what is `core.visibility` on every read: a conversation the caller may not see is a
403 (a missing one a 404), as on the other conversation routes; integration tokens are
refused. Order numbers are found with the ERP's own pattern (`erp_bridge/auto_answers.py`).
The ERP's word for the customer's standing (`erp.tier`, as routing's enricher reads it) is
added when the ERP answers within `ERP_WAIT_SECONDS` (its cache answers at once); when it
cannot, the answer says why in `tier.erp_error` and is still a 200.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, Field

from core.customer_context import (
    REPEAT_MIN_MESSAGES,
    REPEAT_WINDOW,
    CustomerContext,
    customer_context,
)
from erp_bridge.auto_answers import order_numbers, pattern_of
from erp_bridge.base import ErpAdapter, ErpError
from erp_bridge.enricher import query_for_contact
from erp_bridge.models import CustomerQuery
from web.api import ApiRoutes, Call, NoBody
from web.keys import ERP

routes = ApiRoutes(tag="conversations")

# How long the answer waits for the ERP's tier (a cached answer comes at once).
ERP_WAIT_SECONDS = 1.0
# Order numbers taken from one message.
NUMBERS_PER_MESSAGE = 10

OutT = TypeVar("OutT", bound=BaseModel)


class ContextReplyChannelOut(BaseModel):
    channel: str = Field(description="the channel of the customer's last message, form or call")
    conversation_id: int = Field(description="the conversation it is in")
    at: datetime
    send_on: str = Field(
        description="the channel a reply to it goes out on (web forms: email; calls: sms)"
    )
    differs: bool = Field(description="another channel than this conversation's")


class ContextTierOut(BaseModel):
    priority: str = Field(description="the contact's priority tier (standard, vip, ...)")
    erp: str | None = Field(description="the ERP's word for their standing, if it says")
    erp_error: str | None = Field(description="why the ERP could not say, if it could not")


class RepeatedOrderOut(BaseModel):
    number: str
    messages: int = Field(description="the customer's messages in the window that name it")
    first_at: datetime
    last_at: datetime


class ContextRepeatOut(BaseModel):
    window_days: int
    since: datetime
    messages: int = Field(description="the customer's messages (forms, calls) in the window")
    orders: list[RepeatedOrderOut] = Field(
        description=f"order numbers in at least {REPEAT_MIN_MESSAGES} of them, most first"
    )


class ContextTaskOut(BaseModel):
    id: int
    kind: str = Field(description="callback or follow_up")
    due_at: datetime
    overdue: bool
    conversation_id: int | None


class ContextConversationOut(BaseModel):
    id: int
    channel: str
    status: str
    subject: str
    last_activity_at: datetime
    same_channel: bool = Field(description="on this conversation's channel")


class CustomerContextOut(BaseModel):
    conversation_id: int
    contact_id: int
    channel: str = Field(description="this conversation's channel")
    reply_channel: ContextReplyChannelOut | None = Field(
        description="where the customer wrote last, among what you may see"
    )
    default_channel: str = Field(
        description="where a reply goes by default: reply_channel's send_on if one of the "
        "customer's addresses is reached there, else the one answering this conversation"
    )
    language: str | None = Field(description="the contact's language (detected per message)")
    tier: ContextTierOut
    repeat: ContextRepeatOut
    open_tasks: list[ContextTaskOut] = Field(description="the contact's, you may see")
    unresolved_elsewhere: list[ContextConversationOut] = Field(
        description="the contact's other conversations, not resolved, you may see"
    )


@routes.get(
    "/api/v1/conversations/{id}/context",
    summary="The customer's history in short: last channel, language, tier, repeated order "
    "numbers this week, open tasks, unresolved conversations elsewhere",
    response=CustomerContextOut,
)
async def conversation_context(call: Call[NoBody, NoBody]) -> CustomerContextOut:
    service = call.request.app[ERP]
    # Before a session is open: a refresh reads the database (SQLite's pool has one).
    adapter = await service.adapter()
    pattern = pattern_of(adapter)

    def find_numbers(text: str) -> list[str]:
        return order_numbers(text, pattern, NUMBERS_PER_MESSAGE)

    async with call.sessions() as session:
        found = await customer_context(session, call.actor, call.path_int("id"), find_numbers)
        query = await query_for_contact(session, found.contact_id) if adapter is not None else None
    # The ERP is asked with the session closed (the embedded ERP reads with one of its own).
    tier: tuple[str | None, str | None] = (
        await erp_tier(adapter, query)
        if adapter is not None and query is not None
        else (None, f"no ERP: {service.problem or 'none is configured'}")
    )
    return context_out(found, *tier)


async def erp_tier(adapter: ErpAdapter, query: CustomerQuery) -> tuple[str | None, str | None]:
    """The ERP's tier of the customer (None if it has none or does not know them), or why it
    could not say. Never raises: the rest of the answer does not depend on the ERP."""
    try:
        async with asyncio.timeout(ERP_WAIT_SECONDS):
            customer = (await adapter.find_customer(query)).value
    except ErpError as exc:
        return None, str(exc)
    except TimeoutError:
        return None, f"the ERP did not answer within {ERP_WAIT_SECONDS:g} s"
    return (customer.tier if customer is not None else None), None


def context_out(
    found: CustomerContext, erp_tier: str | None, erp_error: str | None
) -> CustomerContextOut:
    reply = found.reply_channel
    return CustomerContextOut(
        conversation_id=found.conversation_id,
        contact_id=found.contact_id,
        channel=found.channel,
        reply_channel=_out(ContextReplyChannelOut, reply) if reply is not None else None,
        default_channel=found.default_channel,
        language=found.language,
        tier=ContextTierOut(priority=found.priority_tier, erp=erp_tier, erp_error=erp_error),
        repeat=ContextRepeatOut(
            window_days=REPEAT_WINDOW.days,
            since=found.repeat.since,
            messages=found.repeat.messages,
            orders=[_out(RepeatedOrderOut, order) for order in found.repeat.orders],
        ),
        open_tasks=[_out(ContextTaskOut, task) for task in found.open_tasks],
        unresolved_elsewhere=[
            _out(ContextConversationOut, item) for item in found.unresolved_elsewhere
        ],
    )


def _out(model: type[OutT], value: object) -> OutT:
    return model.model_validate(value, from_attributes=True)
