// How a report's figures read on the page: column labels and cells by the column's kind, in
// the operator's language and number format. The API names columns and a few rows ("All",
// "No queue", "Unassigned", "No owner") in English: they are message ids, translated here.
import { formatDuration } from "../common/dom.js";
import { channelLabel } from "../common/channels.js";
import { currentLocale, formatNumber, t } from "../common/i18n.js";

export const NUMERIC = new Set(["count", "seconds", "share", "money", "days"]);

/** The total row of reports that have one (performance, sales by owner). */
export function isTotal(row) {
  return row.key === "all";
}

/** A column's heading: a money column's label is a currency code ("-" for none), as in the
 *  exports. */
export function columnLabel(column) {
  if (column.kind === "money") return `${t("Value won")} (${column.label})`;
  return t(column.label);
}

function numberFormat(options) {
  return new Intl.NumberFormat(currentLocale(), options);
}

/** "2026-03-02" (a plain day, no time zone) as the operator reads a date. */
export function formatDay(value, options = { dateStyle: "medium" }) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(value || ""));
  if (!match) return String(value ?? "");
  const day = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
  return new Intl.DateTimeFormat(currentLocale(), { ...options, timeZone: "UTC" }).format(day);
}

export function formatShare(value) {
  return numberFormat({ style: "percent", maximumFractionDigits: 1 }).format(value);
}

/** A value of `kind` as text; "–" for a figure there is none of (a median of nothing). */
export function formatValue(kind, value) {
  if (value === null || value === undefined || value === "") return "–";
  switch (kind) {
    case "count":
      return formatNumber(Number(value));
    case "seconds":
      return formatDuration(Number(value));
    case "share":
      return formatShare(Number(value));
    case "money":
      return numberFormat({ minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(Number(value));
    case "days":
      return numberFormat({ minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(Number(value));
    case "date":
      return formatDay(value);
    default:
      return String(value);
  }
}

/** A text cell: channels by their label, the rows the API names in English translated. */
export function textOf(column, row) {
  const value = row[column.key];
  if (value === null || value === undefined || value === "") return "–";
  if (column.key === "channel") return channelLabel(value);
  // A row of everyone, or of no queue / operator / owner: its name is a message id.
  if (column.key === "name" && "key" in row && (isTotal(row) || row.key === null)) return t(value);
  return String(value);
}

/** A cell as text, by its column's kind. */
export function cellText(column, row) {
  return column.kind === "text" ? textOf(column, row) : formatValue(column.kind, row[column.key]);
}

/** The figure as a number for a chart (money comes as a decimal string); 0 for none. */
export function numeric(value) {
  const number = Number(value);
  return value === null || value === undefined || Number.isNaN(number) ? 0 : number;
}
