"""CSV files into the embedded ERP (`omnicrm erp import FILE`): products, stock, orders, invoices.

The kind of file is told by its header (names in any order and case, spaces as `_`; `,` or
`;` between values; UTF-8, with or without a byte-order mark). Rows are numbered as a
spreadsheet shows them, the header being row 1. Blank cells are values not given.

- products: `sku`, `name`; optional `price` and `currency` (together).
- stock: `sku`, `warehouse`, `on_hand`; optional `reserved` (default 0).
- orders: `number`, `customer`, `ordered_at`, `status`, `currency`, `name`, `quantity`;
  optional `payment_status`, `total`, `tracking_number`, `tracking_url`, `carrier`,
  `shipped_at`, `delivered_at`, `sku`, `unit_price`, `line_total`.
- invoices: `number`, `issued_at`, `total`, `currency`; optional `order_number`, `customer`,
  `due_at`, `amount_due`, `status`.

What the values mean:

- **orders**: one row per order line (`sku`, `name`, `quantity`, `unit_price`, `line_total`);
  the order's own columns are read from its first row and may be repeated (or left blank) on
  the others, but not differ. The lines of an import replace the order's stored lines; `total`
  is their sum unless given. `customer` is `contact:<id>`, an ERP reference (a contact's or a
  legal entity's) or a contact's email address or `+`phone number
  (erp_bridge/embedded_data.py); `status` one of draft, confirmed, processing, shipped,
  delivered, cancelled, other; `payment_status` one of paid, partial, unpaid, refunded,
  unknown; times ISO 8601 (`2026-03-01` or `2026-03-01T10:00:00+01:00`; no offset: UTC).
- **invoices**: `order_number` or `customer` (else the order's customer); dates `YYYY-MM-DD`;
  `status` open, paid, overdue or cancelled (default: paid when nothing is due, else open);
  `amount_due` defaults to the total while open.
- **stock**: a warehouse named for the first time is made; the product must exist.
- Numbers use `.` for decimals (`;`-separated files may use `,`): amounts two places,
  quantities three.

Records are keyed by their SKU, number, or SKU and warehouse, so importing a file again updates
what it holds and changes nothing else. A row with a problem is reported ("row 12: quantity:
not a number") and the others are stored (an order with a bad line is not stored at all);
`all_or_nothing` stores nothing unless every row is good. One `erp.import` audit entry records
each import (not one per record).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.db import SessionFactory
from core.errors import DomainError, InvalidInput
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

BATCH = 500
MAX_FILE_BYTES = 200 * 1024 * 1024


class CsvError(Exception):
    """The file cannot be imported at all (its header, its encoding); nothing is written."""


@dataclass(frozen=True)
class Format:
    name: str
    noun: str
    required: tuple[str, ...]
    optional: tuple[str, ...]

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(self.required) | frozenset(self.optional)

    def describe(self) -> str:
        optional = f" [{', '.join(self.optional)}]" if self.optional else ""
        return f"{self.name}: {', '.join(self.required)}{optional}"


ORDER_COLUMNS = (
    "number",
    "customer",
    "ordered_at",
    "status",
    "payment_status",
    "currency",
    "total",
    "tracking_number",
    "tracking_url",
    "carrier",
    "shipped_at",
    "delivered_at",
)
LINE_COLUMNS = {"sku": "sku", "name": "name", "quantity": "quantity"}
LINE_COLUMNS |= {"unit_price": "unit_price", "line_total": "total"}
NUMERIC = frozenset(
    {"price", "on_hand", "reserved", "quantity", "unit_price", "line_total", "total", "amount_due"}
)

FORMATS = {
    "products": Format("products", "products", ("sku", "name"), ("price", "currency")),
    "stock": Format("stock", "stock levels", ("sku", "warehouse", "on_hand"), ("reserved",)),
    "orders": Format(
        "orders",
        "orders",
        ("number", "customer", "ordered_at", "status", "currency", "name", "quantity"),
        (
            "payment_status",
            "total",
            "tracking_number",
            "tracking_url",
            "carrier",
            "shipped_at",
            "delivered_at",
            "sku",
            "unit_price",
            "line_total",
        ),
    ),
    "invoices": Format(
        "invoices",
        "invoices",
        ("number", "issued_at", "total", "currency"),
        ("order_number", "customer", "due_at", "amount_due", "status"),
    ),
}


@dataclass(frozen=True, order=True)
class RowError:
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return (
            f"row {self.row}: {self.field}: {self.message}"
            if self.field
            else (f"row {self.row}: {self.message}")
        )


@dataclass(frozen=True)
class Record:
    """One thing to store, from the file rows it was read from (an order's problems with the
    database, such as its customer, are its first row's)."""

    rows: tuple[int, ...]
    data: BaseModel


@dataclass
class Parsed:
    format: Format
    rows: int
    records: list[Record]
    errors: list[RowError]
    # Records the rows would have made but for their errors.
    rejected: int = 0


@dataclass
class Summary:
    format: Format
    rows: int
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    written: bool = True

    def line(self) -> str:
        """The summary line, e.g. "orders: 3 created, 1 updated, 0 unchanged, 1 not stored
        (2 rows with errors)"."""
        counts = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"
        rows = len({error.row for error in self.errors})
        problems = f", {self.failed} not stored ({rows} rows with errors)" if self.errors else ""
        if not self.written:
            return (
                f"{self.format.noun}: nothing stored: {rows} of {self.rows} rows have errors "
                "(--all-or-nothing)"
            )
        return f"{self.format.noun} from {self.rows} rows: {counts}{problems}"


# --- reading ----------------------------------------------------------------------------------


def decode(raw: bytes) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise CsvError(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError(f"the file is not UTF-8 text (byte {exc.start + 1})") from None


def _column(name: str) -> str:
    return re.sub(r"\s+", "_", name.strip().lower())


def detect(header: Sequence[str]) -> Format:
    """The kind of file a header names; CsvError saying what is wrong with it."""
    columns = [_column(name) for name in header]
    if not any(columns):
        raise CsvError("the file is empty: its first row must name the columns")
    doubled = sorted({name for name in columns if columns.count(name) > 1})
    if doubled:
        raise CsvError(f"the header names {', '.join(doubled)} more than once")
    given = frozenset(columns)
    fitting = [f for f in FORMATS.values() if set(f.required) <= given <= f.columns]
    if len(fitting) == 1:
        return fitting[0]
    near = [f for f in FORMATS.values() if set(f.required) <= given]
    if len(near) == 1:
        unknown = sorted(given - near[0].columns)
        raise CsvError(
            f"columns not in a {near[0].name} file: {', '.join(unknown)} "
            f"(expected {near[0].describe()})"
        )
    kinds = "; ".join(f.describe() for f in FORMATS.values())
    raise CsvError(
        f"cannot tell the kind of file from its header ({', '.join(columns)}); "
        f"the columns of each: {kinds}"
    )


BROKEN = "\x00broken"  # marks a row whose values could not be read as the columns


def parse(text: str) -> Parsed:
    """Read and check every row (no database yet); CsvError if the file is no import."""
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    try:
        table = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise CsvError(f"the file is not CSV: {exc}") from None
    if not table:
        raise CsvError("the file is empty: its first row must name the columns")
    found = detect(table[0])
    columns = [_column(name) for name in table[0]]
    errors: list[RowError] = []
    rows: list[tuple[int, dict[str, str]]] = []
    for index, cells in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # blank lines
        values = dict(zip(columns, cells, strict=False))
        if len(cells) > len(columns):
            errors.append(RowError(index, "", f"{len(cells)} values for {len(columns)} columns"))
            values[BROKEN] = "1"
        if delimiter == ";":
            values = {key: _decimal_comma(key, value) for key, value in values.items()}
        rows.append((index, values))
    if found.name == "orders":
        records, rejected = _orders(rows, errors)
    else:
        singles: dict[str, tuple[type[BaseModel], tuple[str, ...]]] = {
            "products": (ProductData, ("sku",)),
            "stock": (StockData, ("sku", "warehouse")),
            "invoices": (InvoiceData, ("number",)),
        }
        model, key = singles[found.name]
        records, rejected = _singles(rows, model, key, errors)
    return Parsed(found, len(table) - 1, records, sorted(errors), rejected)


def _decimal_comma(key: str, value: str) -> str:
    if key in NUMERIC and re.fullmatch(r"\s*-?[0-9]+,[0-9]+\s*", value):
        return value.replace(",", ".")
    return value


def _singles(
    rows: Sequence[tuple[int, dict[str, str]]],
    model: type[BaseModel],
    key: Sequence[str],
    errors: list[RowError],
) -> tuple[list[Record], int]:
    """A record per row; and how many rows made none."""
    records: list[Record] = []
    seen: dict[tuple[str, ...], int] = {}
    for index, values in rows:
        if BROKEN in values:
            continue
        try:
            data = validated(model, values)
        except InvalidInput as exc:
            errors.extend(RowError(index, name, text) for name, text in exc.fields.items())
            continue
        identity = tuple(str(getattr(data, name)) for name in key)
        if identity in seen:
            where = f"{', '.join(identity)} is on row {seen[identity]} too"
            errors.append(RowError(index, key[0], where))
            continue
        seen[identity] = index
        records.append(Record((index,), data))
    return records, len(rows) - len(records)


def _orders(
    rows: Sequence[tuple[int, dict[str, str]]], errors: list[RowError]
) -> tuple[list[Record], int]:
    """A record per order number (its rows its lines); and how many orders (or rows without
    a number) made none."""
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    rejected = 0
    for index, values in rows:
        number = values.get("number", "").strip()
        if not number:
            if BROKEN not in values:
                errors.append(RowError(index, "number", "required"))
            rejected += 1
            continue
        groups.setdefault(number, []).append((index, values))
    records: list[Record] = []
    for group in groups.values():
        first_row, first = group[0]
        order: dict[str, Any] = {name: first.get(name, "") for name in ORDER_COLUMNS}
        failed = any(BROKEN in values for _, values in group)
        for index, values in group[1:]:
            for name in ORDER_COLUMNS:
                given = values.get(name, "").strip()
                if given and given != order[name].strip():
                    where = f"differs from row {first_row}, the order's first row"
                    errors.append(RowError(index, name, where))
                    failed = True
        lines = [
            {target: values.get(column, "") for column, target in LINE_COLUMNS.items()}
            for _, values in group
        ]
        try:
            data = validated(OrderData, {**order, "lines": lines})
        except InvalidInput as exc:
            for name, text in exc.fields.items():
                parts = name.split(".")
                if parts[0] == "lines" and len(parts) >= 3 and parts[1].isdigit():
                    column = "line_total" if parts[2] == "total" else parts[2]
                    errors.append(RowError(group[int(parts[1])][0], column, text))
                else:
                    errors.append(RowError(first_row, name, text))
            failed = True
        if failed:
            rejected += 1
        else:
            records.append(Record(tuple(row for row, _ in group), data))
    return records, rejected


# --- storing --------------------------------------------------------------------------------


Progress = Callable[[int, int], None]


async def store(
    sessions: SessionFactory,
    actor: Actor,
    parsed: Parsed,
    *,
    all_or_nothing: bool = False,
    progress: Progress | None = None,
    default_region: str | None = None,
    file_name: str = "",
) -> Summary:
    """Store the records read, each in a savepoint: a record the database refuses (an unknown
    customer or SKU) is reported by row and the others are stored, committed every `BATCH`
    records; with `all_or_nothing`, in one transaction that commits only without a problem."""
    summary = Summary(parsed.format, parsed.rows, errors=list(parsed.errors))
    summary.failed = parsed.rejected
    if all_or_nothing and parsed.errors:
        summary.written = False
        return summary
    total = len(parsed.records)
    done = 0
    batches = (
        [parsed.records]
        if all_or_nothing
        else [parsed.records[start : start + BATCH] for start in range(0, total, BATCH)]
    )
    async with sessions() as session:
        try:
            for batch in batches:
                async with session.begin():
                    for record in batch:
                        await _store_one(session, actor, record, summary, default_region)
                        done += 1
                        if progress is not None:
                            progress(done, total)
                    if all_or_nothing and len(summary.errors) > len(parsed.errors):
                        raise _Undo
                    if batch is batches[-1]:
                        await _audit_import(session, actor, summary, file_name)
        except _Undo:
            summary.written = False
        if not batches:
            async with session.begin():
                await _audit_import(session, actor, summary, file_name)
    summary.errors.sort()
    if not summary.written:
        summary.created = summary.updated = summary.unchanged = 0
    return summary


class _Undo(Exception):
    """Rolls the all-or-nothing transaction back."""


async def _store_one(
    session: AsyncSession,
    actor: Actor,
    record: Record,
    summary: Summary,
    default_region: str | None,
) -> None:
    data = record.data
    try:
        async with session.begin_nested():
            if isinstance(data, ProductData):
                _, outcome = await save_product(session, actor, data, audited=False)
            elif isinstance(data, StockData):
                _, outcome = await save_stock(session, actor, data, audited=False)
            elif isinstance(data, OrderData):
                _, outcome = await save_order(
                    session, actor, data, audited=False, default_region=default_region
                )
            elif isinstance(data, InvoiceData):
                _, outcome = await save_invoice(
                    session, actor, data, audited=False, default_region=default_region
                )
            else:  # pragma: no cover - parse() makes only these
                raise TypeError(type(data).__name__)
    except DomainError as exc:
        summary.failed += 1
        problems = exc.fields or {"": exc.message}
        summary.errors.extend(
            RowError(record.rows[0], name, text) for name, text in problems.items()
        )
        return
    if outcome == "created":
        summary.created += 1
    elif outcome == "updated":
        summary.updated += 1
    else:
        summary.unchanged += 1


async def _audit_import(
    session: AsyncSession, actor: Actor, summary: Summary, file_name: str
) -> None:
    await audit.record(
        session,
        actor,
        "erp.import",
        f"erp_{summary.format.name}",
        None,
        {
            "file": file_name,
            "kind": summary.format.name,
            "rows": summary.rows,
            "created": summary.created,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "failed": summary.failed,
        },
    )
