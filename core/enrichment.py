"""The enricher seam: facts about a piece of work from outside omnicrm's own tables.

Routing asks enrichers (the ERP bridge is one: a customer's tier from their turnover, their
open orders, overdue invoices) about each new piece of work before it chooses a queue, with a
deadline (`routing.rules.gather_facts`), and queue rules match what they return. The types
live in core so that routing and the ERP bridge each depend on core only, never on each
other; the application passes the enrichers in (`web.app.create_app(enrichers=...)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, kw_only=True)
class WorkFacts:
    """What is known about a piece of work when it needs a queue."""

    # The customer the work is from (an enricher looks them up by it); None in pure tests.
    contact_id: int | None = None

    # The conversation's channel, as the registry names it ("email", "webform", ...).
    channel: str
    # From the contact, or detected from the text; None when neither knows.
    language: str | None = None
    priority_tier: str = "standard"
    subject: str = ""
    text: str = ""
    form_slug: str | None = None
    form_fields: Mapping[str, object] = field(default_factory=dict)
    ivr_choice: str | None = None
    # Filled by enrichers, e.g. {"erp.open_orders": 2, "erp.customer_segment": "B2B"}.
    erp: Mapping[str, object] = field(default_factory=dict)


class Enricher(Protocol):
    """Supplies facts from elsewhere (the ERP bridge implements one)."""

    @property
    def name(self) -> str:
        """Names the enricher in the decision log."""
        ...

    async def enrich(self, facts: WorkFacts) -> Mapping[str, object]:
        """Facts by key, e.g. {"erp.open_orders": 2}; raise or time out to contribute none."""
        ...
