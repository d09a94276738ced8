"""The customer card's ERP panel: its latency with a cold and a warm cache, against an Odoo
stand-in adding realistic latency, next to the stand-in alone, in the same run.

It starts the Odoo stand-in (tests/erp_standins/odoo.py: Odoo 19, its demo database) in this
process with `--latency-ms` added before every answer, and points an `OdooErp` adapter at it
over JSON-2. A panel is what `GET /api/v1/contacts/{id}/erp` asks the adapter, in the
route's order: `find_customer` (Kim Lee by her email; her customer is her company, Acme
GmbH, with some 40 orders and invoices), then `list_orders(customer, 10)` and
`list_invoices(customer)`. The HTTP route, the database lookup of the contact's addresses
and the encoding of the answer are not in it; the stand-in runs in the same event loop, so
its own work is in every figure, the floor's too.

- **cold**: the adapter's answer cache is cleared before each panel, so every panel asks the
  stand-in (the adapter's per-process knowledge of which fields the database has, asked once
  by `fields_get`, is kept, as it is in a running server; the first panel, which pays for it
  and for the connection, is timed apart);
- **warm**: the same panel again with the cache filled (within its TTLs): it never reaches the
  stand-in;
- **the stand-in alone** (the floor): the same three questions as raw `search_read` requests
  with aiohttp, one after another on one keep-alive session (partner by email, the company's
  last 10 orders, its invoices), with the same fields.

It prints p50/p99 of each in milliseconds and how many requests each panel sent the stand-in.

    python bench/erp.py [--runs 50] [--latency-ms 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentile  # noqa: E402 - the path is set up just above
from erp_bridge.models import CustomerQuery  # noqa: E402
from erp_bridge.odoo import (  # noqa: E402
    INVOICE_FIELDS,
    ORDER_FIELDS,
    PARTNER_FIELDS,
    OdooErp,
    OdooSettings,
)
from tests.erp_standins.odoo import ACME, API_KEY, DATABASE, OdooStandIn, demo  # noqa: E402

EMAIL = "kim.lee@acme.example"  # Kim Lee, a contact of Acme GmbH (tests/erp_standins/odoo.py)


@dataclass
class Timings:
    name: str
    latencies: list[float] = field(default_factory=list)
    standin_requests: list[int] = field(default_factory=list)  # per panel

    def percentile(self, share: float) -> float:
        """In milliseconds."""
        return percentile(self.latencies, share) * 1000

    @property
    def requests_per_panel(self) -> float:
        if not self.standin_requests:
            return float("nan")
        return sum(self.standin_requests) / len(self.standin_requests)


@dataclass
class Result:
    runs: int
    latency_ms: float
    floor: Timings
    first: Timings
    cold: Timings
    warm: Timings
    violations: list[str]  # requests the stand-in says a real client must not send


async def panel(erp: OdooErp, query: CustomerQuery) -> int:
    """What the contact's ERP card asks (web/routes_erp_console.py: contact_erp): the
    customer, then their last 10 orders and their invoices. Returns the orders found."""
    customer = await erp.find_customer(query)
    if customer.value is None:
        return 0
    orders = await erp.list_orders(customer.value.ref, 10)
    await erp.list_invoices(customer.value.ref)
    return len(orders.value)


def raw_requests(http: aiohttp.ClientSession, url: str) -> Callable[[], Awaitable[int]]:
    """The stand-in alone: the same three questions as plain JSON-2 requests."""
    headers = {
        "Authorization": f"bearer {API_KEY}",
        "X-Odoo-Database": DATABASE,
        "Content-Type": "application/json; charset=utf-8",
    }
    questions: list[tuple[str, dict[str, object]]] = [
        (
            "res.partner",
            {
                "domain": [["email_normalized", "in", [EMAIL]]],
                "fields": [*PARTNER_FIELDS, "email_normalized"],
                "limit": 1,
            },
        ),
        (
            "sale.order",
            {
                "domain": [["partner_id", "child_of", ACME]],
                "fields": list(ORDER_FIELDS),
                "order": "date_order desc, id desc",
                "limit": 10,
            },
        ),
        (
            "account.move",
            {
                "domain": [
                    ["move_type", "=", "out_invoice"],
                    ["state", "in", ["posted", "cancel"]],
                    ["partner_id", "child_of", ACME],
                ],
                "fields": list(INVOICE_FIELDS),
                "order": "invoice_date desc, id desc",
                "limit": 80,
            },
        ),
    ]

    async def ask() -> int:
        orders = 0
        for model, body in questions:
            target = f"{url}/json/2/{model}/search_read"
            async with http.post(target, data=json.dumps(body), headers=headers) as response:
                records = await response.json()
                if response.status != 200 or not isinstance(records, list):
                    raise RuntimeError(f"the stand-in answered {response.status}: {records}")
            if model == "sale.order":
                orders = len(records)
        return orders

    return ask


async def timed(
    timings: Timings,
    runs: int,
    standin: OdooStandIn,
    call: Callable[[], Awaitable[int]],
    before: Callable[[], None] | None = None,
) -> None:
    for _ in range(runs):
        if before is not None:
            before()
        asked = len(standin.calls)
        started = time.perf_counter()
        found = await call()
        timings.latencies.append(time.perf_counter() - started)
        timings.standin_requests.append(len(standin.calls) - asked)
        if found != 10:
            raise RuntimeError(f"{timings.name}: {found} orders instead of 10")


async def run(runs: int, latency_ms: float) -> Result:
    standin = demo(OdooStandIn(19))
    standin.latency = latency_ms / 1000
    url = await standin.start()
    settings = OdooSettings(url=url, database=DATABASE, protocol="json2", api_key=API_KEY)
    erp = OdooErp(settings, timeout=30.0)
    query = CustomerQuery(emails=(EMAIL,))
    floor, first = Timings("stand-in alone (3 requests)"), Timings("first panel (fields_get)")
    cold, warm = Timings("cold cache"), Timings("warm cache")
    try:
        async with aiohttp.ClientSession() as http:
            ask = raw_requests(http, url)
            await ask()  # the connection, as the adapter's first panel makes its own
            await timed(floor, runs, standin, ask)
        await timed(first, 1, standin, lambda: panel(erp, query))
        await timed(cold, runs, standin, lambda: panel(erp, query), erp.cache.clear)
        await timed(warm, runs, standin, lambda: panel(erp, query))
    finally:
        await erp.close()
        await standin.close()
    return Result(runs, latency_ms, floor, first, cold, warm, list(standin.violations))


def report(result: Result) -> None:
    print(
        f"ERP panel (find_customer + list_orders + list_invoices) through the Odoo adapter, "
        f"Odoo stand-in adding {result.latency_ms:g} ms per request, {result.runs} panels each"
    )
    print(f"  {'path':30}{'p50 ms':>9}{'p99 ms':>9}{'requests/panel':>16}")
    for timings in (result.floor, result.cold, result.warm, result.first):
        print(
            f"  {timings.name:30}{timings.percentile(0.5):9.2f}{timings.percentile(0.99):9.2f}"
            f"{timings.requests_per_panel:16.1f}"
        )
    floor = result.floor.percentile(0.5)
    warm = result.warm.percentile(0.5)
    warm_share = f"1/{floor / warm:,.0f}" if warm > 0 else "too fast to time"
    print(
        f"  p50 against the stand-in alone: cold {result.cold.percentile(0.5) / floor:.2f}x, "
        f"warm {warm_share}"
    )
    if result.violations:
        print(f"  the stand-in saw requests a real client must not send: {result.violations}")


def main(argv: Sequence[str] | None = None) -> Result:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=50, help="panels timed of each kind")
    parser.add_argument(
        "--latency-ms", type=float, default=40.0, help="what the stand-in adds to every request"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.latency_ms < 0:
        parser.error("--runs must be at least 1 and --latency-ms not negative")
    result = asyncio.run(run(args.runs, args.latency_ms))
    report(result)
    return result


if __name__ == "__main__":
    main()
