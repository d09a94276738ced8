// The ERP in the conversation: order numbers in customer messages as links that open the
// order (order_dialog.js), and the {{order.*}} / {{invoice.*}} placeholders of canned
// responses and suggestions filled from the order the customer wrote about in the
// conversation (else their most recent one) and their open invoice (the card's ERP data,
// orders.js), in the customer's language when the server has it (erp_reply.js).
//
//   GET /api/v1/erp/settings-for-console   the order number pattern (timeline links)
import { ApiError, get } from "../common/api.js";
import { h } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { isOpenInvoice, money, newestFirst, orderStatusWord, safeUrl, text } from "./erp_format.js";
import { customerWords } from "./erp_reply.js";
import { openOrder } from "./order_dialog.js";
import { erpData } from "./orders.js";

// How the timeline waits for the order number pattern before rendering without links.
const SETTINGS_WAIT_MS = 3000;
const MAX_LINKS_PER_MESSAGE = 50;

export const ERP_PLACEHOLDERS = ["order.number", "order.status", "order.tracking_url", "invoice.amount_due"];
const ANY_PLACEHOLDER = /\{\{\s*([^{}\s]*)\s*\}\}/g;
const isErpPlaceholder = (name) => name.startsWith("order.") || name.startsWith("invoice.");

// ----- order numbers in the timeline -----

let settings = null; // {pattern: RegExp|null} once known
let settingsLoading = null;

/** The ERP's settings for the console (the order number pattern), asked once; resolves
 *  within a few seconds at most (to null while unknown: asked again next time). */
export function erpSettings() {
  if (settings) return Promise.resolve(settings);
  if (!settingsLoading) {
    settingsLoading = get("/api/v1/erp/settings-for-console")
      .then((answer) => {
        // No ERP connected (kind null): nothing to link to.
        const connected = Boolean(answer && answer.kind);
        settings = { pattern: connected ? orderPattern(answer.order_number_pattern) : null };
        return settings;
      })
      .catch((error) => {
        // No ERP bridge (404) or not allowed: no links, and no asking again.
        if (error instanceof ApiError && [403, 404].includes(error.status)) settings = { pattern: null };
        return settings;
      })
      .finally(() => {
        settingsLoading = null;
      });
  }
  const loading = settingsLoading;
  return Promise.race([loading, new Promise((resolve) => setTimeout(() => resolve(settings), SETTINGS_WAIT_MS))]);
}

/** The ERP's pattern as a JavaScript RegExp (global), or null if it is none or finds the
 *  empty text. ERPs write RE2 (Python-style): `(?P<name>` and leading flags like `(?i)` are
 *  turned into JavaScript's; anything else JavaScript cannot read links nothing. */
function orderPattern(source) {
  if (typeof source !== "string" || !source || source.length > 500) return null;
  let body = source.replace(/\(\?P</g, "(?<");
  let flags = "g";
  const leading = /^\(\?([imsU]+)\)/.exec(body);
  if (leading) {
    body = body.slice(leading[0].length);
    for (const flag of new Set(leading[1].replace(/U/g, ""))) flags += flag;
  }
  try {
    const pattern = new RegExp(body, flags);
    return pattern.test("") ? null : new RegExp(body, flags);
  } catch {
    return null;
  }
}

/** A customer message's text with its order numbers as links that open the order: text
 *  nodes and <a> elements (never parsed HTML), or the text itself when nothing matches. */
export function linkOrderNumbers(value) {
  const body = typeof value === "string" ? value : "";
  const pattern = settings && settings.pattern;
  if (!pattern || !body) return body;
  const parts = [];
  let at = 0;
  let links = 0;
  pattern.lastIndex = 0;
  for (let match = pattern.exec(body); match !== null && links < MAX_LINKS_PER_MESSAGE; match = pattern.exec(body)) {
    if (!match[0]) {
      pattern.lastIndex += 1;
      continue;
    }
    const number = match[0];
    parts.push(body.slice(at, match.index));
    parts.push(
      h(
        "a",
        {
          href: "#",
          class: "order-link",
          dataset: { orderNumber: number },
          title: t("Open order {number}", { number }),
          onclick: (event) => {
            event.preventDefault();
            openOrder(number);
          },
        },
        number,
      ),
    );
    at = match.index + number.length;
    links += 1;
  }
  pattern.lastIndex = 0;
  if (!links) return body;
  parts.push(body.slice(at));
  return parts;
}

/** The order numbers the customer wrote in the conversation `conversationId`, newest first,
 *  each once: what the timeline links in their messages (`items`, the timeline, newest
 *  first). None while the ERP's pattern is not known. */
export function writtenOrderNumbers(items, conversationId) {
  const pattern = settings && settings.pattern;
  const found = [];
  if (!pattern) return found;
  for (const item of items || []) {
    const customerText = item.direction === "in" && item.kind !== "note" && item.kind !== "event";
    if (item.conversation_id !== conversationId || !customerText) continue;
    for (const match of (item.text || "").matchAll(pattern)) {
      if (match[0] && !found.includes(match[0])) found.push(match[0]);
    }
  }
  return found;
}

// ----- canned responses and suggestions: {{order.*}} and {{invoice.*}} -----

/** The values of the ERP placeholders for a contact, from the order they wrote about (the
 *  first of `written`, newest first, that the ERP lists as theirs), else their most recent
 *  one, and their most recent open invoice; {values, reason, unlisted}: reason says why
 *  there are none ("" when known), unlisted the number they wrote that is not among their
 *  orders when the most recent one stood in for it. */
async function placeholderValues(contactId, written = []) {
  const { status, data } = await erpData(contactId);
  if (status === "changed") return { values: {}, reason: t("the customer changed") };
  if (status === "absent") return { values: {}, reason: t("no ERP is connected") };
  if (status === "failed" || !data) return { values: {}, reason: t("the ERP is not available") };
  if (data.error) return { values: {}, reason: t("the ERP is not available") };
  const words = await customerWords();
  const values = {};
  const theirs = written.map((number) => data.orders.find((item) => text(item.number) === number)).find(Boolean);
  const order = theirs || data.orders[0];
  const unlisted = !theirs && order && written.length ? written[0] : "";
  if (order) {
    values["order.number"] = text(order.number);
    values["order.status"] = orderStatusWord(order, words.t);
    values["order.tracking_url"] = safeUrl(order.tracking_url) || "";
  }
  const invoice = data.invoices.filter(isOpenInvoice).sort(newestFirst("issued_at"))[0];
  if (invoice) values["invoice.amount_due"] = money(invoice.amount_due, words.locale);
  return { values, reason: "", unlisted };
}

/** Where the ERP placeholders of a canned response's `body` are in the server's rendering of
 *  it (kept as written, or left empty): [{name, start, end}], or null if it cannot tell. */
function placeholderSlots(body, rendered) {
  const found = [...body.matchAll(ANY_PLACEHOLDER)];
  if (!found.some((match) => isErpPlaceholder(match[1])) || found.length > 20) return null;
  const escape = (part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const names = [];
  let source = "^";
  let at = 0;
  for (const match of found) {
    source += escape(body.slice(at, match.index));
    if (isErpPlaceholder(match[1])) {
      source += `(${escape(match[0])}|)`;
      names.push(match[1]);
    } else {
      source += "[\\s\\S]*?";
    }
    at = match.index + match[0].length;
  }
  source += `${escape(body.slice(at))}$`;
  let match;
  try {
    match = new RegExp(source, "d").exec(rendered);
  } catch {
    return null;
  }
  if (!match || !match.indices) return null;
  return names.map((name, index) => ({ name, start: match.indices[index + 1][0], end: match.indices[index + 1][1] }));
}

/** A canned response (or suggestion) rendered by the server, with the ERP placeholders filled
 *  for the contact, about the order they wrote in the conversation if the ERP lists it
 *  (`written`: writtenOrderNumbers), else their most recent one: {text, note}; an unknown or
 *  unavailable value is left empty and `note` says which, or which order stood in. */
export async function fillErpPlaceholders(body, rendered, contactId, written = []) {
  const source = typeof body === "string" ? body : "";
  let slots = source ? placeholderSlots(source, rendered) : null;
  if (!slots) {
    // Placeholders the server left as written.
    slots = [...rendered.matchAll(ANY_PLACEHOLDER)]
      .filter((match) => isErpPlaceholder(match[1]))
      .map((match) => ({ name: match[1], start: match.index, end: match.index + match[0].length }));
  }
  if (!slots.length) return { text: rendered, note: "" };
  const { values, reason, unlisted } = await placeholderValues(contactId, written);
  let filled = rendered;
  const empty = [];
  let aboutOrder = false;
  for (const slot of [...slots].reverse()) {
    const value = ERP_PLACEHOLDERS.includes(slot.name) ? values[slot.name] || "" : "";
    if (!value && !empty.includes(slot.name)) empty.unshift(slot.name);
    if (value && slot.name.startsWith("order.")) aboutOrder = true;
    filled = filled.slice(0, slot.start) + value + filled.slice(slot.end);
  }
  const notes = [];
  if (aboutOrder && unlisted) {
    notes.push(
      t("Order {number} is not among the customer's orders: filled with their most recent one.", {
        number: unlisted,
      }),
    );
  }
  if (empty.length) {
    const names = empty.map((name) => `{{${name}}}`).join(", ");
    notes.push(
      reason
        ? t("Left empty: {placeholders} ({reason}).", { placeholders: names, reason })
        : t("Left empty, the ERP has no value for: {placeholders}.", { placeholders: names }),
    );
  }
  return { text: filled, note: notes.join(" ") };
}
