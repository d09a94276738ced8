"""The demo's embedded ERP: the shop's products, its warehouses and their stock, and the orders
and invoices of the customers the story tells of (Max Müller's order 10330 he asks about by
SMS, Oliver Brown's desk chair on its way with a tracking link, the teapot Hannah Fischer
received broken, Nordwind Logistics' overdue invoice), written through the embedded ERP's
own service functions (erp_bridge/embedded_data.py, as the CSV import and the API write).
Customers are named as an import would name them: by an address of theirs, or a legal
entity's ERP reference.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.audit import CLI
from erp_bridge.embedded_data import (
    InvoiceData,
    OrderData,
    ProductData,
    StockData,
    save_invoice,
    save_order,
    save_product,
    save_stock,
    validated,
)
from web.demo.story import Story

PRODUCTS = (
    ("CHAIR-ERGO", "Ergonomic desk chair", "289.00"),
    ("DESK-STAND", "Standing desk 160 x 80", "549.00"),
    ("TBL-OAK-6", "Oak dining table, six seats", "1290.00"),
    ("TBL-OAK-C", "Oak coffee table", "349.00"),
    ("CUSH-BLUE", "Seat cushion, blue", "19.90"),
    ("SOFA-3", "Three-seat sofa", "1490.00"),
    ("TEAPOT-CER", "Ceramic teapot 1.2 l", "39.00"),
    ("BK-200", "Bookshelf BK-200", "179.00"),
    ("BLENDER-X", "Blender X 1000", "129.00"),
    ("RACK-PAL", "Pallet rack, three levels", "420.00"),
)

# (sku, warehouse, on hand, reserved); the oak dining table is sold out until Tuesday.
STOCK = (
    ("CHAIR-ERGO", "Hamburg", "24", "3"),
    ("CHAIR-ERGO", "Newark", "6", "1"),
    ("DESK-STAND", "Hamburg", "40", "12"),
    ("DESK-STAND", "Newark", "9", "0"),
    ("TBL-OAK-6", "Hamburg", "0", "0"),
    ("TBL-OAK-C", "Hamburg", "5", "1"),
    ("CUSH-BLUE", "Hamburg", "130", "4"),
    ("SOFA-3", "Hamburg", "3", "1"),
    ("TEAPOT-CER", "Hamburg", "58", "0"),
    ("BK-200", "Rotterdam", "17", "2"),
    ("BLENDER-X", "Hamburg", "11", "1"),
    ("RACK-PAL", "Rotterdam", "120", "40"),
)


async def erp(story: Story) -> None:
    """The embedded ERP's data, as it stands now."""
    story.at(story.now)
    session = story.session
    for sku, name, price in PRODUCTS:
        data = {"sku": sku, "name": name, "price": price, "currency": "EUR"}
        await save_product(session, CLI, validated(ProductData, data))
    for sku, warehouse, on_hand, reserved in STOCK:
        level = {"sku": sku, "warehouse": warehouse, "on_hand": on_hand, "reserved": reserved}
        await save_stock(session, CLI, validated(StockData, level))
    for order in orders(story):
        await save_order(
            session,
            CLI,
            validated(OrderData, order),
            default_region=story.services.policy.default_region,
        )
    for invoice in invoices(story):
        await save_invoice(session, CLI, validated(InvoiceData, invoice))


def line(sku: str, name: str, quantity: str, unit_price: str) -> dict[str, str]:
    return {"sku": sku, "name": name, "quantity": quantity, "unit_price": unit_price}


def orders(story: Story) -> list[dict[str, Any]]:
    ago = story.ago
    return [
        {
            "number": "10280",
            "customer": "C-10042",
            "ordered_at": ago(days=45),
            "status": "delivered",
            "payment_status": "unpaid",
            "currency": "EUR",
            "carrier": "Rhenus Freight",
            "shipped_at": ago(days=42),
            "delivered_at": ago(days=40),
            "lines": [line("RACK-PAL", "Pallet rack, three levels", "10", "405.00")],
        },
        {
            "number": "10284",
            "customer": "C-20017",
            "ordered_at": ago(days=38),
            "status": "delivered",
            "payment_status": "paid",
            "currency": "EUR",
            "carrier": "Rhenus Freight",
            "shipped_at": ago(days=35),
            "delivered_at": ago(days=33),
            "lines": [line("RACK-PAL", "Pallet rack, three levels", "4", "420.00")],
        },
        {
            "number": "10290",
            "customer": "lucas.silva@example.com",
            "ordered_at": ago(days=12),
            "status": "delivered",
            "payment_status": "paid",
            "currency": "EUR",
            "carrier": "DHL",
            "tracking_number": "JJD000390007781234",
            "tracking_url": "https://www.dhl.com/track?tracking-id=JJD000390007781234",
            "shipped_at": ago(days=10),
            "delivered_at": ago(days=8),
            "lines": [line("BK-200", "Bookshelf BK-200", "1", "179.00")],
        },
        {
            "number": "10301",
            "customer": "grace.kim@example.org",
            "ordered_at": ago(days=9),
            "status": "delivered",
            "payment_status": "paid",
            "currency": "EUR",
            "shipped_at": ago(days=8),
            "delivered_at": ago(days=6),
            "lines": [line("BLENDER-X", "Blender X 1000", "1", "129.00")],
        },
        {
            "number": "10311",
            "customer": "hannah.fischer@example.net",
            "ordered_at": ago(days=4),
            "status": "delivered",
            "payment_status": "paid",
            "currency": "EUR",
            "carrier": "DHL",
            "tracking_number": "JJD000390007795511",
            "tracking_url": "https://www.dhl.com/track?tracking-id=JJD000390007795511",
            "shipped_at": ago(days=2),
            "delivered_at": ago(hours=7),
            "lines": [line("TEAPOT-CER", "Ceramic teapot 1.2 l", "1", "39.00")],
        },
        {
            "number": "10317",
            "customer": "isla.walker@example.co.uk",
            "ordered_at": ago(days=3),
            "status": "processing",
            "payment_status": "paid",
            "currency": "EUR",
            "lines": [line("DESK-STAND", "Standing desk 160 x 80", "1", "549.00")],
        },
        {
            "number": "10322",
            "customer": "+33 6 12 34 56 78",
            "ordered_at": ago(days=2),
            "status": "confirmed",
            "payment_status": "paid",
            "currency": "EUR",
            "lines": [
                line("SOFA-3", "Three-seat sofa, blue", "1", "1490.00"),
                line("CUSH-BLUE", "Seat cushion, blue", "1", "19.90"),
            ],
        },
        {
            "number": "10330",
            "customer": "+49 151 23456789",
            "ordered_at": ago(days=2, hours=3),
            "status": "processing",
            "payment_status": "paid",
            "currency": "EUR",
            "lines": [
                line("TBL-OAK-C", "Oak coffee table", "1", "349.00"),
                line("CUSH-BLUE", "Seat cushion, blue", "2", "19.90"),
            ],
        },
        {
            "number": "10335",
            "customer": "+1 646 555 0142",
            "ordered_at": ago(hours=2, minutes=20),
            "status": "shipped",
            "payment_status": "paid",
            "currency": "USD",
            "carrier": "UPS",
            "tracking_number": "1Z999AA10123456784",
            "tracking_url": "https://www.ups.com/track?tracknum=1Z999AA10123456784",
            "shipped_at": ago(hours=1),
            "lines": [
                line("CHAIR-ERGO", "Ergonomic desk chair", "1", "319.00"),
                line("", "Saturday delivery", "1", "25.00"),
            ],
        },
    ]


def invoices(story: Story) -> list[dict[str, Any]]:
    today = story.now.date()
    return [
        {
            "number": "INV-2305",
            "order_number": "10280",
            "issued_at": today - timedelta(days=40),
            "due_at": today - timedelta(days=10),
            "total": "4050.00",
            "currency": "EUR",
        },
        {
            "number": "INV-2291-C",
            "order_number": "10284",
            "issued_at": today - timedelta(days=33),
            "due_at": today - timedelta(days=3),
            "total": "1680.00",
            "currency": "EUR",
            "status": "paid",
        },
        {
            "number": "INV-10301",
            "order_number": "10301",
            "issued_at": today - timedelta(days=9),
            "total": "129.00",
            "currency": "EUR",
            "status": "paid",
        },
        {
            "number": "INV-10330",
            "order_number": "10330",
            "issued_at": today - timedelta(days=2),
            "total": "388.80",
            "currency": "EUR",
            "status": "paid",
        },
    ]
