// The ERP bridge in the console: the customer's orders and open invoices in the customer card,
// an order opened in a dialog (lines, shipments, invoices), a stock lookup, order numbers in
// customer messages as links, "Insert into reply", and the {{order.*}} / {{invoice.*}}
// placeholders of canned responses.
//
//   GET /api/v1/contacts/{id}/erp          the card's panel (404: no ERP bridge, panel hidden)
//   GET /api/v1/erp/orders/{number}        an order opened (404: no such order; 503: ERP down)
//   GET /api/v1/erp/products?q=&limit=10   the stock lookup's products
//   GET /api/v1/erp/stock?sku=             a product's stock per warehouse
//   GET /api/v1/erp/settings-for-console   the order number pattern (timeline links)
//
// Whatever the ERP sends is shown as text (never parsed as HTML); a missing field is left out;
// links only ever go to http(s) addresses. Text put into the composer is in the customer's
// language when the server has it (their contact's `language`), else the operator's.
import { ApiError, get, withQuery } from "../common/api.js";
import { fill, formatTime, h } from "../common/dom.js";
import { currentLocale, formatDate, formatDateTime, formatMoney, formatNumber, t, translatorFor } from "../common/i18n.js";
import { signal, state } from "./state.js";

const SEARCH_DELAY_MS = 300;
const PRODUCTS_LIMIT = 10;
const ORDERS_SHOWN = 5;
// The card's data is read again when the card is drawn after this long (never more often).
const RELOAD_AFTER_MS = 5 * 60 * 1000;
// How long the timeline waits for the order number pattern before rendering without links.
const SETTINGS_WAIT_MS = 3000;
const MAX_LINKS_PER_MESSAGE = 50;

export const ERP_PLACEHOLDERS = ["order.number", "order.status", "order.tracking_url", "invoice.amount_due"];
const ANY_PLACEHOLDER = /\{\{\s*([^{}\s]*)\s*\}\}/g;
const isErpPlaceholder = (name) => name.startsWith("order.") || name.startsWith("invoice.");

// ----- words -----

const ORDER_STATUSES = ["draft", "confirmed", "processing", "shipped", "delivered", "cancelled", "other"];

/** An order's status as a word; `t` translates (the operator's, or a customer's). */
function orderStatusWord(order, t) {
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

function paymentWord(status) {
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

function text(value) {
  return value === null || value === undefined ? "" : String(value).trim();
}

function money(value, inLocale) {
  if (!value || typeof value !== "object") return "";
  return formatMoney(value.amount, value.currency, inLocale);
}

/** A date ("2024-05-01", a calendar day: the same day everywhere) or a time, as a day. */
function day(value) {
  if (!value) return "";
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    return formatDateTime(`${value}T12:00:00Z`, { timeStyle: undefined, timeZone: "UTC" });
  }
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : formatDate(date);
}

function since(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : formatTime(value);
}

function quantity(value) {
  const raw = text(value);
  if (!raw) return "";
  return Number.isFinite(Number(raw)) ? formatNumber(raw) : raw;
}

function isPositive(value) {
  const number = Number(text(value));
  return Number.isFinite(number) && number > 0;
}

/** An http(s) address fit for a link, or null (javascript:, data:, nonsense). */
function safeUrl(value) {
  if (typeof value !== "string" || !value.trim()) return null;
  try {
    const url = new URL(value.trim());
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
  } catch {
    return null;
  }
}

function list(value) {
  return Array.isArray(value) ? value.filter((entry) => entry && typeof entry === "object") : [];
}

function timeOf(value) {
  const at = value ? new Date(value).getTime() : NaN;
  return Number.isNaN(at) ? -Infinity : at;
}

const newestFirst = (key) => (a, b) => timeOf(b[key]) - timeOf(a[key]);

function isOpenInvoice(invoice) {
  return invoice.status === "open" || invoice.status === "overdue";
}

// ----- inserting into the reply -----

/** {locale, t} for text meant for the customer: their language if the server has it. */
async function customerWords() {
  const language = state.contact && state.contact.language;
  const theirs = language ? await translatorFor(language) : null;
  return theirs || { locale: currentLocale(), t };
}

// The builders below take the customer's translator as `t` (the extractor finds t("…")).

function orderSentence(order, t) {
  const number = text(order.number);
  const sentences = {
    draft: () => t("Your order {number} is not confirmed yet.", { number }),
    confirmed: () => t("Your order {number} is confirmed.", { number }),
    processing: () => t("Your order {number} is being prepared.", { number }),
    shipped: () => t("Your order {number} has been shipped.", { number }),
    delivered: () => t("Your order {number} has been delivered.", { number }),
    cancelled: () => t("Your order {number} has been cancelled.", { number }),
  };
  const first = sentences[order.status]
    ? sentences[order.status]()
    : t("Your order {number}: {status}.", { number, status: orderStatusWord(order, t) });
  const url = safeUrl(order.tracking_url);
  if (url) return `${first} ${t("Tracking: {url}", { url })}`;
  if (text(order.tracking_number)) return `${first} ${t("Tracking number: {tracking}", { tracking: text(order.tracking_number) })}`;
  return first;
}

function shipmentSentence(number, shipment, t) {
  const url = safeUrl(shipment.tracking_url);
  if (url) return t("Tracking for your order {number}: {url}", { number, url });
  return t("Tracking number for your order {number}: {tracking}", { number, tracking: text(shipment.tracking_number) });
}

function stockSentence(stock, product, t) {
  const name = text(stock.name) || text(product && product.name) || text(stock.sku);
  const sku = text(stock.sku);
  const what = sku && sku !== name ? `${name} (${sku})` : name;
  const total = list(stock.levels).reduce((sum, level) => sum + (Number(text(level.available)) || 0), 0);
  if (total > 0) return t("{product} is in stock: {quantity} available.", { product: what, quantity: formatNumber(total) });
  return t("{product} is out of stock at the moment.", { product: what });
}

async function insertInto(build) {
  const words = await customerWords();
  signal("insert-into-reply", build(words.t, words.locale));
}

// ----- the card's panel -----

let panel = null;
let current = { contactId: null, status: "idle", data: null, failure: "", loadedAt: 0, promise: null };
let loads = 0;
let showAllOrders = false;
// A server that answered 404 (no ERP bridge) keeps the panel hidden while the next loads.
let absentBefore = false;

/** The ERP panel for the customer card: one element, kept across redraws of the card (a
 *  search being typed survives live updates); it loads the contact's orders when the contact
 *  changes, and hides itself on a server without an ERP bridge. */
export function erpPanel(contact) {
  if (!panel) panel = buildPanel();
  if (current.contactId !== contact.id) {
    showAllOrders = false;
    load(contact.id);
  } else if (current.status === "ready" && Date.now() - current.loadedAt > RELOAD_AFTER_MS) {
    load(contact.id);
  }
  return panel.root;
}

function buildPanel() {
  const reload = h(
    "button",
    {
      type: "button",
      class: "erp-reload",
      dataset: { action: "reload-erp" },
      "aria-label": t("Reload the orders"),
      title: t("Reload the orders"),
      onclick: () => {
        const busy = current.status === "loading" || current.status === "reloading";
        if (current.contactId !== null && !busy) load(current.contactId, { fresh: true });
      },
    },
    "↻",
  );
  const label = h("span", { class: "erp-label muted", hidden: true });
  const body = h("div", { class: "erp-body" });
  const stock = buildStock();
  const root = h(
    "section",
    { class: "card-section erp-panel", "aria-labelledby": "card-orders", dataset: { erpKind: "", stale: "false", state: "loading" } },
    h("div", { class: "erp-head" }, h("h3", { id: "card-orders" }, t("Orders")), label, reload),
    body,
    stock.root,
  );
  return { root, label, reload, body, stock };
}

/** Load the card's ERP data; `fresh` (the reload button) asks the ERP rather than its cache. */
function load(contactId, { fresh = false } = {}) {
  const mine = ++loads;
  if (current.contactId !== contactId) {
    current = { contactId, status: "loading", data: null, failure: "", loadedAt: 0, promise: null };
  } else {
    current.status = current.data ? "reloading" : "loading";
  }
  const promise = get(`/api/v1/contacts/${contactId}/erp${fresh ? "?fresh=true" : ""}`).then(
    (data) => ({ data }),
    (error) => ({ error }),
  );
  current.promise = promise;
  renderPanel();
  promise.then((result) => {
    if (mine !== loads) return;
    if (result.data !== undefined && !(result.data && result.data.erp)) {
      // No ERP connected (`erp` null): as on a server without the bridge, no panel.
      current.status = "absent";
      absentBefore = true;
    } else if (result.data !== undefined) {
      current.data = normalise(result.data);
      current.status = "ready";
      current.loadedAt = Date.now();
      absentBefore = false;
    } else if (result.error instanceof ApiError && result.error.status === 404) {
      current.status = "absent";
      absentBefore = true;
    } else {
      current.status = "failed";
      current.failure = (result.error && result.error.message) || t("the server did not answer");
    }
    renderPanel();
  });
  return promise;
}

function normalise(data) {
  const value = data && typeof data === "object" ? data : {};
  const erp = value.erp && typeof value.erp === "object" ? value.erp : {};
  return {
    customer: value.customer && typeof value.customer === "object" ? value.customer : null,
    orders: list(value.orders).sort(newestFirst("ordered_at")),
    invoices: list(value.invoices),
    asOf: value.as_of || null,
    stale: value.stale === true,
    error: value.error ? String(value.error) : null,
    kind: text(erp.kind),
    label: text(erp.label) || text(erp.kind),
  };
}

function renderPanel() {
  const { root, label, body, reload } = panel;
  const data = current.data;
  root.hidden = current.status === "absent" || (current.status === "loading" && absentBefore);
  root.dataset.state = current.status;
  root.dataset.erpKind = data ? data.kind : "";
  root.dataset.stale = data && data.stale ? "true" : "false";
  root.setAttribute("aria-busy", current.status === "loading" || current.status === "reloading" ? "true" : "false");
  // Not disabled while loading: a disabled button would lose the keyboard's focus.
  reload.setAttribute("aria-disabled", current.status === "loading" || current.status === "reloading" ? "true" : "false");
  label.hidden = !(data && data.label);
  label.textContent = data ? data.label : "";
  if (current.status === "loading") {
    fill(body, h("p", { class: "muted" }, t("Loading orders…")));
    return;
  }
  if (current.status === "failed") {
    fill(
      body,
      h("p", { class: "erp-error", role: "alert" }, t("Orders cannot be shown: {reason}", { reason: current.failure })),
    );
    return;
  }
  if (!data) {
    fill(body);
    return;
  }
  fill(
    body,
    data.error
      ? h(
          "p",
          { class: "erp-error", role: "alert" },
          t("{erp} is not answering, and nothing is known from before: {reason}", { erp: data.label || t("The ERP"), reason: data.error }),
        )
      : null,
    data.stale
      ? h(
          "p",
          { class: "erp-stale", role: "status" },
          data.asOf
            ? t("Not up to date: {erp} is not answering. As known at {time}.", { erp: data.label || t("the ERP"), time: since(data.asOf) })
            : t("Not up to date: {erp} is not answering.", { erp: data.label || t("the ERP") }),
        )
      : data.asOf && !data.error
        ? h("p", { class: "erp-as-of muted" }, t("as of {time}", { time: since(data.asOf) }))
        : null,
    data.error ? null : customerLine(data),
    data.error ? null : ordersList(data),
    data.error ? null : invoicesList(data),
  );
}

function customerLine(data) {
  const customer = data.customer;
  if (!customer) {
    return h("p", { class: "erp-customer muted" }, t("No customer in {erp} matches this contact.", { erp: data.label || t("the ERP") }));
  }
  const turnover = money(customer.turnover);
  return h(
    "p",
    { class: "erp-customer", dataset: { customerRef: text(customer.ref) } },
    h("strong", { class: "erp-customer-name" }, text(customer.name) || text(customer.ref)),
    text(customer.tier) ? [" ", h("span", { class: "pill tier erp-tier" }, text(customer.tier))] : null,
    turnover ? h("span", { class: "muted erp-turnover" }, ` · ${t("{amount} in 12 months", { amount: turnover })}`) : null,
  );
}

function ordersList(data) {
  if (!data.orders.length) return h("p", { class: "muted erp-no-orders" }, t("No orders."));
  const shown = showAllOrders ? data.orders : data.orders.slice(0, ORDERS_SHOWN);
  const more = data.orders.length - shown.length;
  return [
    h("h4", { class: "erp-subhead" }, t("Recent orders")),
    h("ul", { class: "erp-orders" }, shown.map((order) => orderItem(order))),
    more > 0
      ? h(
          "button",
          {
            type: "button",
            class: "link-button erp-more",
            onclick: () => {
              showAllOrders = true;
              renderPanel();
            },
          },
          t("Show {n} more", { n: more }),
        )
      : null,
  ];
}

function statusWord(order) {
  const status = ORDER_STATUSES.includes(order.status) ? order.status : "other";
  const label = text(order.status_label);
  return h(
    "span",
    { class: "erp-status", dataset: { status }, title: label ? t("In the ERP: {status}", { status: label }) : null },
    orderStatusWord(order, t),
  );
}

function trackingLink(url, number, carrier) {
  const href = safeUrl(url);
  const shown = text(number) || t("Track the parcel");
  const words = carrier ? `${text(carrier)} ${shown}` : shown;
  if (!href) return number ? h("span", { class: "erp-tracking-number" }, words) : null;
  return h("a", { href, target: "_blank", rel: "noopener noreferrer", title: t("Track the parcel (opens a new tab)") }, words);
}

function orderItem(order) {
  const number = text(order.number);
  const payment = paymentWord(order.payment_status);
  const total = money(order.total);
  const tracking = trackingLink(order.tracking_url, order.tracking_number);
  const when = day(order.ordered_at);
  return h(
    "li",
    {
      class: "erp-order",
      dataset: { orderNumber: number, orderStatus: text(order.status), paymentStatus: text(order.payment_status) },
    },
    h(
      "div",
      { class: "erp-order-top" },
      h(
        "button",
        {
          type: "button",
          class: "link-button erp-order-number",
          dataset: { action: "open-order" },
          "aria-label": t("Open order {number}", { number }),
          onclick: () => openOrder(number),
        },
        number,
      ),
      statusWord(order),
      total ? h("span", { class: "erp-total" }, total) : null,
    ),
    when || payment
      ? h(
          "div",
          { class: "erp-order-meta muted" },
          when ? h("span", {}, when) : null,
          when && payment ? " · " : null,
          payment ? h("span", { class: "erp-payment", dataset: { paymentStatus: text(order.payment_status) } }, payment) : null,
        )
      : null,
    tracking ? h("div", { class: "erp-tracking" }, h("span", { class: "muted" }, `${t("Tracking:")} `), tracking) : null,
    h(
      "button",
      {
        type: "button",
        class: "erp-insert",
        dataset: { action: "insert-order" },
        "aria-label": t("Insert order {number} into the reply", { number }),
        onclick: () => insertInto((say) => orderSentence(order, say)),
      },
      t("Insert into reply"),
    ),
  );
}

function invoiceItem(invoice) {
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

function invoicesList(data) {
  const open = data.invoices.filter(isOpenInvoice);
  return [
    h("h4", { class: "erp-subhead" }, t("Open invoices")),
    open.length
      ? h("ul", { class: "erp-invoices" }, open.map((invoice) => invoiceItem(invoice)))
      : h("p", { class: "muted erp-no-invoices" }, t("No open invoices.")),
  ];
}

// ----- an order opened -----

let dialog = null;
let orderLoads = 0;

function orderDialog() {
  if (dialog) return dialog;
  const title = h("h2", { id: "erp-order-title" });
  const body = h("div", { class: "erp-order-body", "aria-live": "polite" });
  const insert = h(
    "button",
    { type: "button", class: "primary erp-insert", dataset: { action: "insert-order" }, disabled: true },
    t("Insert into reply"),
  );
  const close = () => root.close();
  const root = h(
    "dialog",
    { class: "erp-order-detail", "aria-labelledby": "erp-order-title" },
    h(
      "div",
      { class: "erp-dialog-head" },
      title,
      h("button", { type: "button", class: "erp-close", "aria-label": t("Close"), onclick: close }, "×"),
    ),
    body,
    h("div", { class: "dialog-actions" }, insert, h("button", { type: "button", onclick: close }, t("Close"))),
  );
  root.addEventListener("close", () => {
    if (root.returnFocus && root.returnFocus.isConnected) root.returnFocus.focus();
    root.returnFocus = null;
  });
  document.body.append(root);
  dialog = { root, title, body, insert, order: null };
  return dialog;
}

/** Close the order dialog for the composer: the focus goes there, not back to the opener. */
function closeForInsert() {
  dialog.root.returnFocus = null;
  dialog.root.close();
}

/** Open order `number` in the order dialog (from the card, or a link in the timeline). */
export async function openOrder(number) {
  const view = orderDialog();
  const mine = ++orderLoads;
  view.order = null;
  view.root.dataset.orderNumber = number;
  view.root.dataset.state = "loading";
  view.insert.disabled = true;
  view.insert.onclick = null;
  fill(view.title, t("Order {number}", { number }));
  fill(view.body, h("p", { class: "muted" }, t("Loading the order…")));
  if (!view.root.open) {
    view.root.returnFocus = document.activeElement;
    view.root.showModal();
  }
  let answer;
  try {
    answer = await get(`/api/v1/erp/orders/${encodeURIComponent(number)}`);
  } catch (error) {
    if (mine !== orderLoads) return;
    view.root.dataset.state = "failed";
    const why =
      error instanceof ApiError && error.status === 404
        ? t("The ERP has no order {number}.", { number })
        : error instanceof ApiError && error.status === 503
          ? t("The ERP is not answering: {reason}", { reason: error.message })
          : t("The order cannot be shown: {reason}", { reason: error.message });
    fill(view.body, h("p", { class: "erp-error", role: "alert" }, why));
    return;
  }
  if (mine !== orderLoads) return;
  const order = answer && answer.order && typeof answer.order === "object" ? answer.order : null;
  if (!order) {
    view.root.dataset.state = "failed";
    fill(view.body, h("p", { class: "erp-error", role: "alert" }, t("The ERP has no order {number}.", { number })));
    return;
  }
  view.order = order;
  view.root.dataset.state = "ready";
  view.root.dataset.orderNumber = text(order.number) || number;
  view.root.dataset.orderStatus = text(order.status);
  view.root.dataset.stale = answer.stale === true ? "true" : "false";
  view.insert.disabled = false;
  view.insert.onclick = () => {
    closeForInsert();
    insertInto((say) => orderSentence(order, say));
  };
  fill(view.title, t("Order {number}", { number: text(order.number) || number }), " ", statusWord(order));
  fill(view.body, orderDetail(order, answer));
}

function orderDetail(order, answer) {
  const number = text(order.number);
  const facts = [
    day(order.ordered_at) ? t("ordered {date}", { date: day(order.ordered_at) }) : "",
    paymentWord(order.payment_status),
    money(order.total) ? t("total {amount}", { amount: money(order.total) }) : "",
  ].filter(Boolean);
  return [
    answer.stale === true
      ? h(
          "p",
          { class: "erp-stale", role: "status" },
          answer.as_of
            ? t("Not up to date: the ERP is not answering. As known at {time}.", { time: since(answer.as_of) })
            : t("Not up to date: the ERP is not answering."),
        )
      : answer.as_of
        ? h("p", { class: "erp-as-of muted" }, t("as of {time}", { time: since(answer.as_of) }))
        : null,
    facts.length ? h("p", { class: "erp-order-facts" }, facts.join(" · ")) : null,
    linesTable(order),
    shipmentsList(number, order),
    list(order.invoices).length
      ? [h("h3", {}, t("Invoices")), h("ul", { class: "erp-invoices" }, list(order.invoices).map((invoice) => invoiceItem(invoice)))]
      : null,
  ];
}

function linesTable(order) {
  const lines = list(order.lines);
  if (!lines.length) return null;
  return [
    h("h3", {}, t("Items")),
    h(
      "div",
      { class: "erp-table-box" },
      h(
        "table",
        { class: "erp-lines" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, t("Item")),
            h("th", { scope: "col", class: "number" }, t("Quantity")),
            h("th", { scope: "col", class: "number" }, t("Unit price")),
            h("th", { scope: "col", class: "number" }, t("Total")),
          ),
        ),
        h(
          "tbody",
          {},
          lines.map((line) =>
            h(
              "tr",
              { class: "erp-line", dataset: { sku: text(line.sku) } },
              h("td", {}, text(line.name), text(line.sku) ? h("span", { class: "muted erp-sku" }, ` ${text(line.sku)}`) : null),
              h("td", { class: "number" }, quantity(line.quantity)),
              h("td", { class: "number" }, money(line.unit_price)),
              h("td", { class: "number" }, money(line.total)),
            ),
          ),
        ),
      ),
    ),
  ];
}

function shipmentsList(number, order) {
  const shipments = list(order.shipments);
  if (!shipments.length) return null;
  return [
    h("h3", {}, t("Shipments")),
    h(
      "ul",
      { class: "erp-shipments" },
      shipments.map((shipment) => {
        const tracking = trackingLink(shipment.tracking_url, shipment.tracking_number, shipment.carrier);
        const facts = [
          text(shipment.status),
          day(shipment.shipped_at) ? t("shipped {date}", { date: day(shipment.shipped_at) }) : "",
          day(shipment.delivered_at) ? t("delivered {date}", { date: day(shipment.delivered_at) }) : "",
        ].filter(Boolean);
        return h(
          "li",
          { class: "erp-shipment", dataset: { shipmentRef: text(shipment.ref) } },
          facts.length ? h("div", {}, facts.join(" · ")) : null,
          tracking ? h("div", { class: "erp-tracking" }, tracking) : null,
          tracking
            ? h(
                "button",
                {
                  type: "button",
                  class: "erp-insert",
                  dataset: { action: "insert-tracking" },
                  "aria-label": t("Insert the tracking into the reply"),
                  onclick: () => {
                    closeForInsert();
                    insertInto((say) => shipmentSentence(number, shipment, say));
                  },
                },
                t("Insert into reply"),
              )
            : null,
        );
      }),
    ),
  ];
}

// ----- stock lookup -----

function buildStock() {
  const input = h("input", {
    type: "search",
    id: "erp-stock-search",
    name: "erp-stock-search",
    autocomplete: "off",
    spellcheck: "false",
    maxlength: 200,
    placeholder: t("Product name or SKU"),
    "aria-controls": "erp-products",
  });
  const products = h("ul", { class: "erp-products", id: "erp-products", "aria-label": t("Products found"), hidden: true });
  const result = h("div", { class: "erp-stock-result", "aria-live": "polite" });
  const root = h(
    "div",
    { class: "erp-stock" },
    h("h4", { class: "erp-subhead" }, h("label", { for: "erp-stock-search" }, t("Stock lookup"))),
    input,
    products,
    result,
  );
  const stock = { root, input, products, result, timer: null, asked: 0, looked: 0 };
  input.addEventListener("input", () => {
    clearTimeout(stock.timer);
    stock.timer = setTimeout(() => searchProducts(stock), SEARCH_DELAY_MS);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      clearTimeout(stock.timer);
      searchProducts(stock);
    } else if (event.key === "ArrowDown") {
      const first = products.querySelector("button");
      if (first) {
        event.preventDefault();
        first.focus();
      }
    }
  });
  products.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const buttons = [...products.querySelectorAll("button")];
    const index = buttons.indexOf(document.activeElement);
    if (index === -1) return;
    event.preventDefault();
    if (event.key === "ArrowUp" && index === 0) input.focus();
    else buttons[Math.min(buttons.length - 1, Math.max(0, index + (event.key === "ArrowDown" ? 1 : -1)))].focus();
  });
  return stock;
}

async function searchProducts(stock) {
  const query = stock.input.value.trim();
  const mine = ++stock.asked;
  if (query.length < 2) {
    stock.products.hidden = true;
    fill(stock.products);
    return;
  }
  let answer;
  try {
    answer = await get(withQuery("/api/v1/erp/products", { q: query, limit: PRODUCTS_LIMIT }));
  } catch (error) {
    if (mine !== stock.asked) return;
    stock.products.hidden = false;
    fill(stock.products, h("li", { class: "erp-error" }, productsFailure(error)));
    return;
  }
  if (mine !== stock.asked) return;
  const found = list(answer && answer.products);
  stock.products.hidden = false;
  fill(
    stock.products,
    answer && answer.stale === true ? h("li", { class: "erp-stale" }, t("Not up to date: the ERP is not answering.")) : null,
    found.length
      ? found.map((product) =>
          h(
            "li",
            {},
            h(
              "button",
              {
                type: "button",
                class: "erp-product",
                dataset: { sku: text(product.sku) },
                onclick: () => showStock(stock, product),
              },
              h("span", { class: "erp-product-name" }, text(product.name) || text(product.sku)),
              text(product.sku) || money(product.price)
                ? h("span", { class: "muted" }, [text(product.sku), money(product.price)].filter(Boolean).join(" · "))
                : null,
            ),
          ),
        )
      : h("li", { class: "muted" }, t("No product matches “{query}”.", { query })),
  );
}

function productsFailure(error) {
  if (error instanceof ApiError && error.status === 404) return t("This server has no stock lookup.");
  if (error instanceof ApiError && error.status === 503) return t("The ERP is not answering: {reason}", { reason: error.message });
  return t("The search failed: {reason}", { reason: error.message });
}

async function showStock(stock, product) {
  const sku = text(product.sku);
  const name = text(product.name) || sku;
  const mine = ++stock.looked;
  if (!sku) {
    fill(stock.result, h("p", { class: "muted" }, t("{product} has no SKU: its stock cannot be looked up.", { product: name })));
    return;
  }
  fill(stock.result, h("p", { class: "muted" }, t("Loading the stock of {product}…", { product: name })));
  let answer;
  try {
    answer = await get(withQuery("/api/v1/erp/stock", { sku }));
  } catch (error) {
    if (mine !== stock.looked) return;
    fill(stock.result, h("p", { class: "erp-error", role: "alert" }, productsFailure(error)));
    return;
  }
  if (mine !== stock.looked) return;
  const found = answer && answer.stock && typeof answer.stock === "object" ? answer.stock : null;
  if (!found) {
    fill(stock.result, h("p", { class: "muted" }, t("The ERP knows no stock of {product} ({sku}).", { product: name, sku })));
    return;
  }
  const levels = list(found.levels);
  const title = text(found.name) || name;
  fill(
    stock.result,
    h(
      "div",
      { class: "erp-stock-card", dataset: { sku: text(found.sku) || sku, stale: answer.stale === true ? "true" : "false" } },
      h("p", { class: "erp-stock-title" }, h("strong", {}, title), h("span", { class: "muted" }, ` ${text(found.sku) || sku}`)),
      answer.stale === true
        ? h(
            "p",
            { class: "erp-stale", role: "status" },
            answer.as_of
              ? t("Not up to date: the ERP is not answering. As known at {time}.", { time: since(answer.as_of) })
              : t("Not up to date: the ERP is not answering."),
          )
        : answer.as_of
          ? h("p", { class: "erp-as-of muted" }, t("as of {time}", { time: since(answer.as_of) }))
          : null,
      levels.length
        ? stockTable(levels)
        : h("p", { class: "muted" }, t("In no warehouse.")),
      h(
        "button",
        {
          type: "button",
          class: "erp-insert",
          dataset: { action: "insert-stock" },
          "aria-label": t("Insert the availability of {product} into the reply", { product: title }),
          onclick: () => insertInto((say) => stockSentence(found, product, say)),
        },
        t("Insert into reply"),
      ),
    ),
  );
}

function stockTable(levels) {
  const head = [t("Warehouse"), t("Available stock"), t("On hand"), t("Reserved")];
  return h(
    "div",
    { class: "erp-table-box" },
    h(
      "table",
      { class: "erp-stock-levels" },
      h("thead", {}, h("tr", {}, head.map((label, index) => h("th", { scope: "col", class: index ? "number" : null }, label)))),
      h(
        "tbody",
        {},
        levels.map((level) =>
          h(
            "tr",
            {
              class: `erp-stock-level${isPositive(level.available) ? "" : " empty"}`,
              dataset: { warehouse: text(level.warehouse), available: text(level.available) },
            },
            h("th", { scope: "row" }, text(level.warehouse)),
            h("td", { class: "number erp-available" }, quantity(level.available)),
            h("td", { class: "number" }, quantity(level.on_hand)),
            h("td", { class: "number" }, quantity(level.reserved)),
          ),
        ),
      ),
    ),
  );
}

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

// ----- canned responses: {{order.*}} and {{invoice.*}} -----

/** The values of the ERP placeholders for a contact, from their most recent order and most
 *  recent open invoice; {values, reason}: reason says why there are none ("" when known). */
async function placeholderValues(contactId) {
  if (current.contactId !== contactId || !current.promise) load(contactId);
  await current.promise;
  if (current.contactId !== contactId) return { values: {}, reason: t("the customer changed") };
  if (current.status === "absent") return { values: {}, reason: t("no ERP is connected") };
  if (current.status === "failed" || !current.data) return { values: {}, reason: t("the ERP is not available") };
  const data = current.data;
  if (data.error) return { values: {}, reason: t("the ERP is not available") };
  const words = await customerWords();
  const values = {};
  const order = data.orders[0];
  if (order) {
    values["order.number"] = text(order.number);
    values["order.status"] = orderStatusWord(order, words.t);
    values["order.tracking_url"] = safeUrl(order.tracking_url) || "";
  }
  const invoice = data.invoices.filter(isOpenInvoice).sort(newestFirst("issued_at"))[0];
  if (invoice) values["invoice.amount_due"] = money(invoice.amount_due, words.locale);
  return { values, reason: "" };
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

/** A canned response rendered by the server, with the ERP placeholders filled for the contact:
 *  {text, note}; an unknown or unavailable value is left empty and `note` says which. */
export async function fillErpPlaceholders(body, rendered, contactId) {
  const source = typeof body === "string" ? body : "";
  let slots = source ? placeholderSlots(source, rendered) : null;
  if (!slots) {
    // Placeholders the server left as written.
    slots = [...rendered.matchAll(ANY_PLACEHOLDER)]
      .filter((match) => isErpPlaceholder(match[1]))
      .map((match) => ({ name: match[1], start: match.index, end: match.index + match[0].length }));
  }
  if (!slots.length) return { text: rendered, note: "" };
  const { values, reason } = await placeholderValues(contactId);
  let filled = rendered;
  const empty = [];
  for (const slot of [...slots].reverse()) {
    const value = ERP_PLACEHOLDERS.includes(slot.name) ? values[slot.name] || "" : "";
    if (!value && !empty.includes(slot.name)) empty.unshift(slot.name);
    filled = filled.slice(0, slot.start) + value + filled.slice(slot.end);
  }
  if (!empty.length) return { text: filled, note: "" };
  const names = empty.map((name) => `{{${name}}}`).join(", ");
  return {
    text: filled,
    note: reason
      ? t("Left empty: {placeholders} ({reason}).", { placeholders: names, reason })
      : t("Left empty, the ERP has no value for: {placeholders}.", { placeholders: names }),
  };
}
