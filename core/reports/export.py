"""A report's table as a file: CSV (UTF-8 with a byte order mark, so spreadsheet programs
read Cyrillic, Georgian, Chinese and Armenian names right) or XLSX (XlsxWriter), with the
column labels in the reader's language. Numbers stay numbers: shares as fractions (formatted
as percent in XLSX), durations in seconds, money with two decimals. Text is never a formula:
XLSX cells are written as strings, CSV text that starts like a formula gets an apostrophe."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from typing import Any

import xlsxwriter

from core.i18n import Translator
from core.reports.base import Kind, ReportResult

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def header(result: ReportResult, tr: Translator) -> list[str]:
    return [
        tr.gettext("Value won") + f" ({column.label})"
        if column.kind is Kind.MONEY
        else tr.gettext(column.label)
        for column in result.columns
    ]


# A cell a spreadsheet would read as a formula (a UTM campaign is whatever a visitor's link
# said): written with a leading apostrophe, so it shows as the text it is.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def to_csv(result: ReportResult, tr: Translator) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header(result, tr))
    for row in result.rows:
        writer.writerow([_cell(label_of(row, column.key, tr)) for column in result.columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(result: ReportResult, tr: Translator) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "remove_timezone": True})
    sheet = book.add_worksheet(tr.gettext(result.title)[:31])
    bold = book.add_format({"bold": True})
    formats = {
        Kind.SHARE: book.add_format({"num_format": "0.0%"}),
        Kind.MONEY: book.add_format({"num_format": "#,##0.00"}),
        Kind.DATE: book.add_format({"num_format": "yyyy-mm-dd"}),
    }
    for index, label in enumerate(header(result, tr)):
        sheet.write_string(0, index, label, bold)
        sheet.set_column(index, index, max(10, min(40, len(label) + 2)))
    for row_index, row in enumerate(result.rows, start=1):
        for index, column in enumerate(result.columns):
            value = label_of(row, column.key, tr)
            style = formats.get(column.kind)
            if value is None:
                continue
            if column.kind is Kind.MONEY:
                sheet.write_number(row_index, index, float(Decimal(str(value))), style)
            elif column.kind is Kind.DATE and isinstance(value, date):
                sheet.write_datetime(row_index, index, value, style)
            elif isinstance(value, int | float):
                sheet.write_number(row_index, index, value, style)
            else:
                sheet.write_string(row_index, index, str(value))
    sheet.freeze_panes(1, 0)
    book.close()
    return out.getvalue()


def label_of(row: dict[str, Any], key: str, tr: Translator) -> Any:
    """The row's value; the names the server made ("All", "No queue") in the reader's words."""
    value = row.get(key)
    # Rows per queue, operator or owner carry their `key`: "all" for everyone, null for none.
    if key == "name" and "key" in row and row["key"] in ("all", None) and isinstance(value, str):
        return tr.gettext(value)
    return value
