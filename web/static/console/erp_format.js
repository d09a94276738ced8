// How the ERP's answers read in the console, for the ERP modules (orders.js, order_dialog.js,
// stock.js, order_links.js, erp_reply.js): values made safe to show (text, money, days,
// quantities, http(s) links only), the words for order, payment and invoice statuses, and the
// pieces the card's panel and the order dialog both draw (a status, a tracking link, an
// invoice, how old an answer is).
//
// Whatever the ERP sends is shown as text (never parsed as HTML); a missing field is left out;
// links only ever go to http(s) addresses.
import { formatTime, h } from "../common/dom.js";
import { formatDate, formatDateTime, formatMoney, formatNumber, t } from "../common/i18n.js";

// ----- words -----

const ORDER_STATUSES = ["draft", "confirmed", "processing", "shipped", "delivered", "cancelled", "other"];

/** An order's status as a word; `t` translates (the operator's, or a customer's). */
export function orderStatusWord(order, t) {
  const words = {
    draft: () => t("draft"),
    confirmed: () => t("confirmed"),
    processing: () => t("processing"),
    shipped: () => t("shipped"),
    delivered: () => t("delivered"),
    cancelled: () => t("cancelled"),
  };
  const word = words[order.status];
  if (word) return word();
  return text(order.status_label) || t("other");
}

export function paymentWord(status) {
  const words = {
    paid: () => t("paid"),
    partial: () => t("partly paid"),
    unpaid: () => t("unpaid"),
    refunded: () => t("refunded"),
  };
  return words[status] ? words[status]() : "";
}

function invoiceStatusWord(status) {
  const words = {
    open: () => t("open"),
    paid: () => t("paid"),
    overdue: () => t("overdue"),
    cancelled: () => t("cancelled"),
  };
  return words[status] ? words[status]() : String(status || "");
}

// ----- formatting -----

export function text(value) {
  return value === null || value === undefined ? "" : String(value).trim();
}

export function money(value, inLocale) {
  if (!value || typeof value !== "object") return "";
  return formatMoney(value.amount, value.currency, inLocale);
}

/** A date ("2024-05-01", a calendar day: the same day everywhere) or a time, as a day. */
export function day(value) {
  if (!value) return "";
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    return formatDateTime(`${value}T12:00:00Z`, { timeStyle: undefined, timeZone: "UTC" });
  }
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : formatDate(date);
}

export function since(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : formatTime(value);
}

export function quantity(value) {
  const raw = text(value);
  if (!raw) return "";
  return Number.isFinite(Number(raw)) ? formatNumber(raw) : raw;
}

export function isPositive(value) {
  const number = Number(text(value));
  return Number.isFinite(number) && number > 0;
}

/** An http(s) address fit for a link, or null (javascript:, data:, nonsense). */
export function safeUrl(value) {
  if (typeof value !== "string" || !value.trim()) return null;
  try {
    const url = new URL(value.trim());
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

export function list(value) {
  return Array.isArray(value) ? value.filter((entry) => entry && typeof entry === "object") : [];
}

function timeOf(value) {
  const at = value ? new Date(value).getTime() : NaN;
  return Number.isNaN(at) ? -Infinity : at;
}

export const newestFirst = (key) => (a, b) => timeOf(b[key]) - timeOf(a[key]);

export function isOpenInvoice(invoice) {
  return invoice.status === "open" || invoice.status === "overdue";
}

// ----- pieces of the panel and the dialog -----

/** An order's status as a pill (`data-status`: one of ORDER_STATUSES, else "other"). */
export function statusWord(order) {
  const status = ORDER_STATUSES.includes(order.status) ? order.status : "other";
  const label = text(order.status_label);
  return h(
    "span",
    { class: "erp-status", dataset: { status }, title: label ? t("In the ERP: {status}", { status: label }) : null },
    orderStatusWord(order, t),
  );
}

/** A parcel's tracking: a link opening a new tab (http(s) only), else its number, else null. */
export function trackingLink(url, number, carrier) {
  const href = safeUrl(url);
  const shown = text(number) || t("Track the parcel");
  const words = carrier ? `${text(carrier)} ${shown}` : shown;
  if (!href) return number ? h("span", { class: "erp-tracking-number" }, words) : null;
  return h("a", { href, target: "_blank", rel: "noopener noreferrer", title: t("Track the parcel (opens a new tab)") }, words);
}

export function invoiceItem(invoice) {
  const status = text(invoice.status);
  const due = money(invoice.amount_due);
  const total = money(invoice.total);
  const dueAt = day(invoice.due_at);
  const issued = day(invoice.issued_at);
  return h(
    "li",
    { class: `erp-invoice${status === "overdue" ? " overdue" : ""}`, dataset: { invoiceStatus: status, invoiceNumber: text(invoice.number) } },
    h(
      "div",
      { class: "erp-invoice-top" },
      h("strong", {}, text(invoice.number) || text(invoice.ref)),
      " ",
      h("span", { class: "erp-invoice-status", dataset: { status } }, invoiceStatusWord(status)),
      due ? h("span", { class: "erp-amount-due" }, t("{amount} due", { amount: due })) : null,
    ),
    h(
      "div",
      { class: "muted erp-invoice-meta" },
      [
        text(invoice.order_number) ? t("order {number}", { number: text(invoice.order_number) }) : "",
        issued ? t("issued {date}", { date: issued }) : "",
        dueAt ? t("due {date}", { date: dueAt }) : "",
        total && total !== due ? t("total {amount}", { amount: total }) : "",
      ]
        .filter(Boolean)
        .join(" · "),
    ),
  );
}

/** How old an answer of the ERP (an order opened, a product's stock) is: "not up to date"
 *  when `stale`, else "as of …", or null when it does not say. */
export function answerAge(answer) {
  if (answer.stale === true) {
    return h(
      "p",
      { class: "erp-stale", role: "status" },
      answer.as_of
        ? t("Not up to date: the ERP is not answering. As known at {time}.", { time: since(answer.as_of) })
        : t("Not up to date: the ERP is not answering."),
    );
  }
  return answer.as_of ? h("p", { class: "erp-as-of muted" }, t("as of {time}", { time: since(answer.as_of) })) : null;
}
