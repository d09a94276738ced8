"""`omnicrm erp set|show|check|import`, run in-process on SQLite: CSV files of each kind into
the embedded ERP (bad rows reported by number, the good ones stored, a re-import changes
nothing, `--all-or-nothing`), an ERP's secret taken from stdin and stored encrypted, never
shown, and a check that fails in one line."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.credentials import CredentialCipher
from core.db import SessionFactory
from core.models import (
    Account,
    AuditEntry,
    Contact,
    ErpConnection,
    ErpInvoice,
    ErpOrder,
    ErpProduct,
    ErpStock,
    Identity,
    IdentityKind,
    LegalEntity,
)
from core.settings import INSECURE_DEV_SECRET
from web.cli import main
from web.cli_common import ProgressBar

pytestmark = pytest.mark.usefixtures("keep_logging")
# The tests that use a database use SQLite's.

# The credentials key of settings that set none, as the CLI runs here.
CIPHER = CredentialCipher(INSECURE_DEV_SECRET)
API_KEY = "odoo-Secret-27182818"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


Run = Callable[..., Awaitable[Result]]


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    sessions: SessionFactory,
) -> Run:
    """run(*argv, stdin="") -> Result: the CLI on the test's (emptied) database, in a thread
    (it runs its own event loop)."""

    async def invoke(*argv: str, stdin: str = "") -> Result:
        capsys.readouterr()
        with monkeypatch.context() as patch:
            for name in ("OMNICRM_CONFIG", "OMNICRM_CREDENTIALS_KEY", "OMNICRM_SECRET_KEY"):
                patch.delenv(name, raising=False)
            patch.setenv("OMNICRM_DATABASE_URL", database_url)
            patch.setenv("OMNICRM_LOG_JSON", "false")
            patch.setattr("sys.stdin", io.StringIO(stdin))
            code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


async def count(sessions: SessionFactory, model: type[object]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
async def customers(sessions: SessionFactory) -> dict[str, int]:
    """Max (a phone number), Oliver (an email address) and Nordwind's legal entity C-10042."""
    async with sessions() as session, session.begin():
        found = {}
        for name, kind, address in (
            ("Max Müller", IdentityKind.PHONE, "+4915123456789"),
            ("Oliver Brown", IdentityKind.EMAIL, "oliver@example.com"),
        ):
            contact = Contact(display_name=name)
            session.add(contact)
            await session.flush()
            session.add(Identity(contact_id=contact.id, kind=kind, address=address))
            found[name.split()[0].lower()] = contact.id
        account = Account(name="Nordwind Logistics")
        session.add(account)
        await session.flush()
        session.add(LegalEntity(account_id=account.id, name="Nordwind GmbH", erp_ref="C-10042"))
    return found


PRODUCTS = """\
sku,name,price,currency
CHAIR-1,Ergonomic desk chair,249.00,EUR
TBL-OAK,Oak dining table,eight hundred,EUR
LAMP-2,Desk lamp,39.5,eur
"""


@pytest.mark.sqlite_only
async def test_products_bad_rows_are_reported_by_number_and_the_good_ones_stored(
    run: Run, sessions: SessionFactory, tmp_path: Path
) -> None:
    path = write(tmp_path, "products.csv", PRODUCTS)
    result = await run("erp", "import", path)
    assert result.code == 1, result.err
    assert "products.csv: row 3: price: not a number" in result.err.splitlines()
    assert result.out.strip() == (
        "products.csv: products from 3 rows: 2 created, 0 updated, 0 unchanged, "
        "1 not stored (1 rows with errors)"
    )
    # Not a terminal: plain counts, no bar.
    assert "products.csv: 2/2 products" in result.err.splitlines()
    async with sessions() as session:
        stored = {row.sku: row for row in await session.scalars(select(ErpProduct))}
        audited = list(await session.scalars(select(AuditEntry)))
    assert set(stored) == {"CHAIR-1", "LAMP-2"}
    assert (stored["LAMP-2"].price, stored["LAMP-2"].currency) == (Decimal("39.50"), "EUR")
    # One audit entry for the import, not one per record.
    [entry] = audited
    assert (entry.action, entry.actor_label) == ("erp.import", "cli")
    assert entry.details["created"] == 2
    # Again, fixed: the good rows are unchanged, the fixed one is created.
    fixed = write(tmp_path, "products.csv", PRODUCTS.replace("eight hundred", "800"))
    again = await run("erp", "import", fixed)
    assert again.code == 0, again.err
    assert "1 created, 0 updated, 2 unchanged" in again.out
    same = await run("erp", "import", fixed)
    assert "0 created, 0 updated, 3 unchanged" in same.out
    assert await count(sessions, ErpProduct) == 3


@pytest.mark.sqlite_only
async def test_stock_and_invoices(
    run: Run, sessions: SessionFactory, tmp_path: Path, customers: dict[str, int]
) -> None:
    assert (await run("erp", "import", write(tmp_path, "p.csv", PRODUCTS))).code == 1
    # A European spreadsheet: semicolons, decimal commas, a byte-order mark, spaced headers.
    stock = (
        "\ufeffSKU;Warehouse;On hand;Reserved\n"
        "CHAIR-1;Hamburg;12;2\n"
        "CHAIR-1;Rotterdam;3,5;\n"
        "NOPE-9;Hamburg;1;0\n"
        "LAMP-2;Hamburg;-4;0\n"
    )
    result = await run("erp", "import", write(tmp_path, "stock.csv", stock))
    assert result.code == 1
    assert "stock.csv: row 4: sku: no product has the SKU 'NOPE-9'" in result.err
    assert "stock.csv: row 5: on_hand: must not be negative" in result.err
    assert "stock levels from 4 rows: 2 created" in result.out
    async with sessions() as session:
        levels = sorted(row.on_hand for row in await session.scalars(select(ErpStock)))
    assert levels == [Decimal("3.5"), Decimal(12)]
    invoices = (
        "number,customer,issued_at,due_at,total,amount_due,status\n"
        "INV-2305,C-10042,2026-01-05,2026-02-04,4210.00,,\n"
        "INV-2306,nobody@example.com,2026-01-05,,10,,\n"
        "INV-2307,+49 151 23456789,2026-01-06,2026-01-01,10,20,open\n"
    )
    result = await run("erp", "import", write(tmp_path, "invoices.csv", invoices))
    # No currency column: which file this is cannot be told, nothing is written.
    assert result.code == 2
    assert "invoices.csv: cannot tell the kind of file from its header" in result.error_line
    invoices = invoices.replace("status\n", "status,currency\n").replace("\n", ",EUR\n")
    invoices = invoices.replace("status,currency,EUR\n", "status,currency\n")
    result = await run("erp", "import", write(tmp_path, "invoices.csv", invoices))
    assert result.code == 1, result.err
    errors = [line for line in result.err.splitlines() if ": row " in line]
    assert errors == [
        "invoices.csv: row 3: customer: no contact has the address nobody@example.com",
        "invoices.csv: row 4: amount_due: must not be more than the total",
    ]
    async with sessions() as session:
        [invoice] = await session.scalars(select(ErpInvoice))
    assert (invoice.number, invoice.customer_ref, invoice.status) == ("INV-2305", "C-10042", "open")
    assert invoice.amount_due == Decimal("4210")


ORDERS = """\
number,customer,ordered_at,status,payment_status,currency,sku,name,quantity,unit_price,tracking_url
10330,+49 151 23456789,2026-03-01T10:00:00+01:00,processing,paid,EUR,TBL-OAK,Oak coffee table,1,349,
10330,,,,,,CUSH-1,Cushion,two,19.90,
10335,oliver@example.com,2026-03-02,shipped,paid,USD,CHAIR-1,Desk chair,1,289,https://track.example/1Z
10335,,,,,,,Delivery,1,15,
10340,C-10042,2026-03-03,confirmed,unpaid,EUR,RACK-1,Pallet rack,10,120.50,
10341,C-99999,2026-03-03,confirmed,unpaid,EUR,RACK-1,Pallet rack,1,120.50,
10342,oliver@example.com,2026-03-04,lost,unpaid,EUR,RACK-1,Pallet rack,1,1,
10340,,,cancelled,,,,Delivery,1,50,
"""


@pytest.mark.sqlite_only
async def test_orders_are_read_line_by_line_and_a_reimport_changes_nothing(
    run: Run, sessions: SessionFactory, tmp_path: Path, customers: dict[str, int]
) -> None:
    result = await run("erp", "import", write(tmp_path, "orders.csv", ORDERS))
    assert result.code == 1, result.err
    errors = [line for line in result.err.splitlines() if ": row " in line]
    assert errors == [
        "orders.csv: row 3: quantity: not a number",
        "orders.csv: row 7: customer: no contact or legal entity has the ERP reference "
        "'C-99999' (give contact:<id>, an ERP reference, an email address or a +phone number)",
        "orders.csv: row 8: status: must be one of 'draft', 'confirmed', 'processing', "
        "'shipped', 'delivered', 'cancelled' or 'other'",
        "orders.csv: row 9: status: differs from row 6, the order's first row",
    ]
    assert "orders from 8 rows: 1 created, 0 updated, 0 unchanged, 4 not stored" in result.out
    async with sessions() as session:
        [order] = await session.scalars(select(ErpOrder))
        await session.refresh(order, ["lines"])
    assert (order.number, order.customer_ref, order.contact_id) == (
        "10335",
        f"contact:{customers['oliver']}",
        customers["oliver"],
    )
    assert (order.total, order.currency, order.tracking_url) == (
        Decimal("304.00"),
        "USD",
        "https://track.example/1Z",
    )
    assert [(line.name, line.total) for line in order.lines] == [
        ("Desk chair", Decimal("289.00")),
        ("Delivery", Decimal("15.00")),
    ]
    fixed = ORDERS.replace(",two,", ",2,").replace(",lost,", ",draft,")
    fixed = fixed.replace(",cancelled,,,,Delivery", ",,,,,Delivery").replace("C-99999", "C-10042")
    result = await run("erp", "import", write(tmp_path, "orders.csv", fixed))
    assert result.code == 0, result.err
    assert "4 created, 0 updated, 1 unchanged" in result.out
    again = await run("erp", "import", write(tmp_path, "orders.csv", fixed))
    assert "0 created, 0 updated, 5 unchanged" in again.out
    # A changed line updates its order, and only it.
    changed = fixed.replace("Cushion,2,19.90", "Cushion,3,19.90")
    result = await run("erp", "import", write(tmp_path, "orders.csv", changed))
    assert "0 created, 1 updated, 4 unchanged" in result.out
    async with sessions() as session:
        max_order = await session.scalar(select(ErpOrder).where(ErpOrder.number == "10330"))
        assert max_order is not None
        await session.refresh(max_order, ["lines"])
    assert max_order.contact_id == customers["max"]
    assert max_order.total == Decimal("408.70")
    assert [line.quantity for line in max_order.lines] == [Decimal(1), Decimal(3)]


@pytest.mark.sqlite_only
async def test_all_or_nothing_stores_nothing_when_a_row_is_bad(
    run: Run, sessions: SessionFactory, tmp_path: Path, customers: dict[str, int]
) -> None:
    result = await run("erp", "import", write(tmp_path, "p.csv", PRODUCTS), "--all-or-nothing")
    assert result.code == 2
    assert "p.csv: row 3: price: not a number" in result.err
    assert "nothing stored: 1 of 3 rows have errors (--all-or-nothing)" in result.out
    assert await count(sessions, ErpProduct) == 0
    # A problem only the database finds (an unknown customer) undoes the good orders too.
    orders = ORDERS.replace(",two,", ",2,").replace(",lost,", ",draft,")
    orders = orders.replace(",cancelled,,,,Delivery", ",,,,,Delivery")
    result = await run("erp", "import", write(tmp_path, "orders.csv", orders), "--all-or-nothing")
    assert result.code == 2
    assert "orders.csv: row 7: customer: no contact or legal entity" in result.err
    assert await count(sessions, ErpOrder) == 0
    assert await count(sessions, AuditEntry) == 0


@pytest.mark.sqlite_only
async def test_a_file_that_is_no_import_is_one_line_and_exit_code_2(
    run: Run, sessions: SessionFactory, tmp_path: Path
) -> None:
    missing = await run("erp", "import", str(tmp_path / "nothing.csv"))
    assert (missing.code, missing.error_line) == (
        2,
        f"omnicrm: {tmp_path / 'nothing.csv'}: no such file",
    )
    unknown = await run("erp", "import", write(tmp_path, "x.csv", "sku,name,colour\nA,B,red\n"))
    assert unknown.code == 2
    assert unknown.error_line == (
        "omnicrm: x.csv: columns not in a products file: colour (expected products: sku, name "
        "[price, currency]); nothing was imported"
    )
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"sku,name\n\xff\xfe,x\n")
    assert (await run("erp", "import", str(binary))).error_line == (
        "omnicrm: b.csv: the file is not UTF-8 text (byte 10); nothing was imported"
    )
    empty = await run("erp", "import", write(tmp_path, "e.csv", ""))
    assert empty.code == 2
    assert "the file is empty" in empty.error_line
    assert await count(sessions, ErpProduct) == 0


def test_the_progress_bar_draws_in_place_on_a_terminal() -> None:
    stream = io.StringIO()
    bar = ProgressBar("orders.csv", "orders", stream, tty=True)
    bar.update(1, 4)
    bar.update(4, 4)
    bar.close()
    assert stream.getvalue().endswith(f"\rorders.csv [{'#' * 30}] 4/4 orders\n")
    plain = io.StringIO()
    counts = ProgressBar("orders.csv", "orders", plain, tty=False, every=2)
    for done in range(1, 6):
        counts.update(done, 5)
    counts.close()
    assert plain.getvalue().splitlines() == [
        "orders.csv: 2/5 orders",
        "orders.csv: 4/5 orders",
        "orders.csv: 5/5 orders",
    ]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.sqlite_only
async def test_the_embedded_erp_by_default_and_set_show_check(
    run: Run, sessions: SessionFactory
) -> None:
    shown = await run("erp", "show")
    assert shown.code == 0, shown.err
    assert shown.out.splitlines() == [
        "ERP: omnicrm's own (embedded) (embedded), the default: no ERP is configured",
        "  order_number_pattern: \\b\\d{5}\\b",
    ]
    checked = await run("erp", "check")
    assert (checked.code, checked.out.strip()) == (
        0,
        "embedded ERP: the embedded ERP answers: 0 products in 0 warehouses, 0 orders",
    )
    bad = await run("erp", "set", "embedded", "--order-number-pattern", "(")
    assert bad.code == 2
    assert bad.error_line.startswith(
        "omnicrm: --order-number-pattern: Value error, not a valid regular expression"
    )
    changed = await run("erp", "set", "embedded", "--order-number-pattern", r"#?\d{5}")
    assert (changed.code, changed.out.strip()) == (
        0,
        "ERP omnicrm's own (embedded) (embedded): changed kind, order_number_pattern",
    )
    assert await count(sessions, ErpConnection) == 1


@pytest.mark.sqlite_only
async def test_erp_set_takes_the_secret_from_stdin_show_hides_it_and_check_fails_in_one_line(
    run: Run, sessions: SessionFactory
) -> None:
    pytest.importorskip("erp_bridge.odoo")
    url = f"http://127.0.0.1:{closed_port()}"
    result = await run(
        "erp", "set", "odoo", "--url", url, "--database", "shop", "--api-key-stdin",
        stdin=f"{API_KEY}\n",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert result.out.strip() == "ERP Odoo (odoo): changed kind, api_key, database, url"
    assert API_KEY not in result.out + result.err
    async with sessions() as session:
        row = await session.get(ErpConnection, 1)
        entries = list(await session.scalars(select(AuditEntry)))
    assert row is not None
    assert row.kind == "odoo"
    assert API_KEY not in str(row.settings)
    assert CIPHER.decrypt(row.settings["api_key"]) == API_KEY
    assert all(API_KEY not in str(entry.details) for entry in entries)
    shown = await run("erp", "show")
    assert shown.code == 0
    assert API_KEY not in shown.out
    assert "  api_key: set" in shown.out.splitlines()
    assert f"  url: {url}" in shown.out.splitlines()
    checked = await run("erp", "check", "--timeout", "5")
    assert checked.code == 1
    assert checked.error_line.startswith("omnicrm: odoo ERP: check failed: ")
    assert API_KEY not in checked.err
    async with sessions() as session:
        after = await session.get(ErpConnection, 1)
    assert after is not None
    assert after.last_check_result is not None
    assert after.last_check_result.startswith("failed: ")
    assert "last check: " in (await run("erp", "show")).out
    # A change without the secret keeps it.
    kept = await run("erp", "set", "odoo", "--database", "shop2")
    assert (kept.code, kept.out.strip()) == (0, "ERP Odoo (odoo): changed database")
    async with sessions() as session:
        again = await session.get(ErpConnection, 1)
    assert again is not None
    assert CIPHER.decrypt(again.settings["api_key"]) == API_KEY
    # A bad value names its flag; a secret flag without a line on stdin says so.
    bad = await run("erp", "set", "odoo", "--url", "ftp://x")
    assert (bad.code, bad.error_line.split(":")[:2]) == (2, ["omnicrm", " --url"])
    missing = await run("erp", "set", "odoo", "--api-key-stdin")
    assert missing.code == 2
    assert "--api-key-stdin: no line left on stdin" in missing.error_line


@pytest.mark.sqlite_only
async def test_erp_set_refuses_an_order_number_pattern_re2_cannot_run(
    run: Run, sessions: SessionFactory
) -> None:
    """ERPNext's pattern is checked by RE2, as every ERP's: a backreference is refused with
    RE2's reason, and nothing is stored."""
    pytest.importorskip("erp_bridge.erpnext")
    refused = await run(
        "erp", "set", "erpnext", "--url", "https://erp.example.com", "--api-key", "k",
        "--order-number-pattern", r"SAL-ORD-(\d)\1", "--api-secret-stdin", stdin="s\n",
    )  # fmt: skip
    assert refused.code == 2
    assert refused.error_line == (
        "omnicrm: --order-number-pattern: Value error, not a valid regular expression: "
        "invalid escape sequence: \\1"
    )
    assert await count(sessions, ErpConnection) == 0


def test_erp_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["erp", "--help"]) == 0
    out = capsys.readouterr().out
    for command in ("set", "show", "check", "import"):
        assert command in out
    assert main(["erp", "set", "embedded", "--help"]) == 0
    assert "--order-number-pattern" in capsys.readouterr().out
