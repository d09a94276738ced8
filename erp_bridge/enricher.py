"""The ERP as routing sees it: a contact's customer in the ERP, and what queue rules may match.

`query_for_contact` is how every part of omnicrm asks the ERP about a contact: by the ERP
references the CRM knows (the contact's own `erp_ref`, those of the legal entities of their
company account) first, then by their email addresses and phone numbers, then by the tax ids
of those legal entities (for a company whose ERP reference the CRM does not know).

`ErpEnricher` is routing's enricher (`core.enrichment.Enricher`): for new work from a contact
it supplies these facts, which queue rules compare (`"erp": [{"key": "erp.tier", "op": "==",
"value": "gold"}]`, docs/routing.md):

- `erp.customer`: whether the ERP knows them (True/False);
- `erp.tier`: the ERP's word for their standing (price list, segment), if any;
- `erp.turnover`: their sales over the last 12 months, where the ERP says (the embedded
  ERP, Odoo and ERPNext; not 1C);
- `erp.open_orders`, `erp.open_order_value`: orders not yet delivered or cancelled, and their
  total (in the orders' currency; mixed currencies are added as numbers);
- `erp.overdue_invoices`, `erp.amount_overdue`: invoices past due, and what is still owed.

Routing gives enrichers a deadline and goes on without their facts when the ERP is slow or
down (a missing fact fails a rule's comparison); the adapter's cache makes the second
conversation of a customer cost nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import SessionFactory
from core.enrichment import WorkFacts
from core.models import Contact, Identity, IdentityKind, LegalEntity
from erp_bridge.base import ErpAdapter
from erp_bridge.models import CustomerQuery, InvoiceStatus, OrderStatus

# How many of a customer's newest orders the card and routing read: the same request, so one
# fills the cache for the other.
RECENT_ORDERS = 20
# Orders still on their way to the customer.
OPEN_ORDERS = frozenset({OrderStatus.CONFIRMED, OrderStatus.PROCESSING, OrderStatus.SHIPPED})


async def query_for_contact(session: AsyncSession, contact_id: int) -> CustomerQuery:
    """How to find a contact's customer in the ERP (empty for an unknown or erased one)."""
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.erased_at is not None:
        return CustomerQuery()
    refs = [contact.erp_ref] if contact.erp_ref else []
    tax_ids: list[str] = []
    if contact.account_id is not None:
        entities = (
            await session.execute(
                select(LegalEntity.erp_ref, LegalEntity.tax_id)
                .where(LegalEntity.account_id == contact.account_id)
                .order_by(LegalEntity.id)
            )
        ).all()
        refs += [ref for ref, _ in entities if ref]
        tax_ids = [tax_id for _, tax_id in entities if tax_id]
    identities = (
        await session.execute(
            select(Identity.kind, Identity.address)
            .where(Identity.contact_id == contact_id)
            .order_by(Identity.id)
        )
    ).all()
    emails = [address for kind, address in identities if kind == IdentityKind.EMAIL]
    phones = [
        address
        for kind, address in identities
        if kind in (IdentityKind.PHONE, IdentityKind.WHATSAPP)
    ]
    return CustomerQuery(
        erp_refs=tuple(dict.fromkeys(refs)),
        emails=tuple(dict.fromkeys(emails)),
        phones=tuple(dict.fromkeys(phones)),
        tax_ids=tuple(dict.fromkeys(tax_ids)),
    )


class ErpEnricher:
    """Routing's ERP facts (see the module docstring). `adapter` gives the adapter in use now
    (`ErpService.adapter`: an admin may change the ERP while the server runs)."""

    name = "erp"

    def __init__(
        self,
        sessions: SessionFactory,
        adapter: Callable[[], Awaitable[ErpAdapter | None]],
        today: Callable[[], date] | None = None,
    ) -> None:
        self.sessions = sessions
        self.adapter = adapter
        self.today = today

    async def enrich(self, facts: WorkFacts) -> Mapping[str, object]:
        if facts.contact_id is None:
            return {}
        erp = await self.adapter()
        if erp is None:
            return {}
        async with self.sessions() as session:
            query = await query_for_contact(session, facts.contact_id)
        customer = (await erp.find_customer(query)).value
        if customer is None:
            return {"erp.customer": False}
        found: dict[str, object] = {"erp.customer": True}
        if customer.tier:
            found["erp.tier"] = customer.tier
        if customer.turnover is not None:
            found["erp.turnover"] = float(customer.turnover.amount)
        orders = (await erp.list_orders(customer.ref, RECENT_ORDERS)).value
        open_orders = [order for order in orders if order.status in OPEN_ORDERS]
        found["erp.open_orders"] = len(open_orders)
        found["erp.open_order_value"] = float(
            sum(order.total.amount for order in open_orders if order.total is not None)
        )
        invoices = (await erp.list_invoices(customer.ref)).value
        today = self.today() if self.today is not None else None
        overdue = [
            invoice
            for invoice in invoices
            if invoice.status == InvoiceStatus.OVERDUE
            or (
                today is not None
                and invoice.status == InvoiceStatus.OPEN
                and invoice.due_at is not None
                and invoice.due_at < today
                and invoice.amount_due.amount > 0
            )
        ]
        found["erp.overdue_invoices"] = len(overdue)
        found["erp.amount_overdue"] = float(sum(invoice.amount_due.amount for invoice in overdue))
        return found
