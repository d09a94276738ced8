"""Order numbers in the search box: `core.search.OrderSearch` over the process's ERP.

A query that looks like an order number is looked up in the ERP and found as one order. It
looks like one when the whole query (spaces and a leading "#" aside) matches the connected
ERP's `order_number_pattern` (case-insensitive, as the adapters read it), or, for an ERP
without one, is 4 or more digits. The lookup is the adapter's `get_order`, so its cache
(a wrong number does not reach the ERP on every keystroke), stale answers and circuit breaker
apply. The order's contact is the CRM's contact for its customer when the CRM knows which
(`contact:<id>`, or a contact's `erp_ref`), else none.

The search box never fails because of the ERP: no ERP, an ERP that is down, answers nonsense
or takes longer than `timeout` (1 s) finds no orders, and the search answers its other
results.
"""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from core.logfields import log_fields
from core.models import Contact
from core.search import OrderHit
from erp_bridge.base import ErpError, Fresh
from erp_bridge.embedded_data import CONTACT_REF, live_contact
from erp_bridge.models import Order
from erp_bridge.patterns import compile_pattern, pattern_of
from erp_bridge.service import ErpService

log = logging.getLogger(__name__)

DEFAULT_PATTERN = r"\d{4,}"
TIMEOUT_SECONDS = 1.0


@lru_cache(maxsize=16)
def _compiled(pattern: str) -> Any:
    """An ERP's order number pattern on RE2 (linear time whatever an admin wrote; every
    ERP's settings are checked with it), or None if RE2 cannot read it."""
    try:
        return compile_pattern(pattern, case_sensitive=False)
    except ValueError:
        return None


def order_number(adapter: object, query: str) -> str | None:
    """The order number `query` is, by `adapter`'s `settings.order_number_pattern` (4 or more
    digits without one); None when it is not one."""
    candidate = query.strip().removeprefix("#").strip()
    if not candidate:
        return None
    compiled = _compiled(pattern_of(adapter, DEFAULT_PATTERN))
    if compiled is None or compiled.fullmatch(candidate) is None:
        return None
    return candidate


def summary(found: Fresh[Order]) -> str:
    """One line about an order for the search box: status, total, date, how old."""
    order = found.value
    parts = [order.status_label or str(order.status)]
    if order.total is not None:
        parts.append(f"{order.total.amount} {order.total.currency}")
    if order.ordered_at is not None:
        parts.append(f"ordered {order.ordered_at.isoformat()[:10]}")
    if found.stale:
        parts.append(f"as of {found.as_of:%Y-%m-%d %H:%M} UTC")
    return " · ".join(parts)


class ErpOrderSearch:
    """`core.search.OrderSearch` over an `ErpService` (see the module docstring)."""

    def __init__(self, service: ErpService, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.service = service
        self.timeout = timeout

    async def __call__(self, query: str, limit: int) -> list[OrderHit]:
        if limit < 1:
            return []
        try:
            async with asyncio.timeout(self.timeout):
                return await self._find(query)
        except (ErpError, TimeoutError) as exc:
            log.info(
                "no orders searched: the ERP did not answer",
                extra=log_fields(error=str(exc) or type(exc).__name__),
            )
            return []

    async def _find(self, query: str) -> list[OrderHit]:
        adapter = await self.service.adapter()
        if adapter is None:
            return []
        number = order_number(adapter, query)
        if number is None:
            return []
        found = await adapter.get_order(number)
        order = found.value
        if order is None:
            return []
        return [
            OrderHit(
                number=order.number,
                contact_id=await self._contact_of(order.customer_ref),
                summary=summary(Fresh(order, found.as_of, found.stale)),
            )
        ]

    async def _contact_of(self, customer_ref: str | None) -> int | None:
        """The CRM's contact for an ERP customer, if it knows one (a merged contact's
        survivor; none for an erased one or a company)."""
        ref = (customer_ref or "").strip()
        if not ref or "\x00" in ref:
            return None
        try:
            async with self.service.sessions() as session:
                if match := CONTACT_REF.fullmatch(ref):
                    contact = await session.get(Contact, int(match.group(1)))
                else:
                    contact = await session.scalar(select(Contact).where(Contact.erp_ref == ref))
                contact = await live_contact(session, contact)
        except (SQLAlchemyError, OSError, UnicodeError):
            return None
        return contact.id if contact is not None else None
