// The ERP bridge in the customer card: the Orders panel (the customer as the ERP knows them,
// their recent orders with status, payment and tracking, their open invoices, how old the
// answer is, a reload), and the card's ERP data the canned responses' placeholders read too
// (order_links.js). The panel holds the stock lookup (stock.js); an order opens in the order
// dialog (order_dialog.js); "Insert into reply" writes in the customer's words (erp_reply.js).
//
//   GET /api/v1/contacts/{id}/erp   the card's data (?fresh=true from the reload button asks
//                                   the ERP, not its cache); 404: no ERP bridge, panel hidden
//
// The ERP modules: orders.js (this) → stock.js, order_dialog.js → erp_reply.js → erp_format.js;
// order_links.js (timeline links, canned responses' placeholders) → orders.js, order_dialog.js.
import { ApiError, get } from "../common/api.js";
import { fill, h } from "../common/dom.js";
import { t } from "../common/i18n.js";
import {
  day,
  invoiceItem,
  isOpenInvoice,
  list,
  money,
  newestFirst,
  paymentWord,
  since,
  statusWord,
  text,
  trackingLink,
} from "./erp_format.js";
import { insertInto, orderSentence } from "./erp_reply.js";
import { openOrder } from "./order_dialog.js";
import { buildStock } from "./stock.js";

const ORDERS_SHOWN = 5;
// The card's data is read again when the card is drawn after this long (never more often).
const RELOAD_AFTER_MS = 5 * 60 * 1000;

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
  const built = !panel;
  if (built) panel = buildPanel();
  if (current.contactId !== contact.id) {
    showAllOrders = false;
    load(contact.id);
  } else if (current.status === "ready" && Date.now() - current.loadedAt > RELOAD_AFTER_MS) {
    load(contact.id);
  } else if (built) {
    // The data came before the panel (asked for a canned response's placeholders).
    renderPanel();
  }
  return panel.root;
}

/** The card's ERP data for `contactId` once loaded (loading it if the card has another
 *  contact's): {status, data}, status "ready" (data as normalise() makes it), "absent" (no
 *  ERP), "failed", or "changed" (the card went on to another contact meanwhile). */
export async function erpData(contactId) {
  if (current.contactId !== contactId || !current.promise) load(contactId);
  await current.promise;
  if (current.contactId !== contactId) return { status: "changed", data: null };
  return { status: current.status, data: current.data };
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
  if (!panel) return; // not drawn yet: erpPanel() renders what is known then
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

function invoicesList(data) {
  const open = data.invoices.filter(isOpenInvoice);
  return [
    h("h4", { class: "erp-subhead" }, t("Open invoices")),
    open.length
      ? h("ul", { class: "erp-invoices" }, open.map((invoice) => invoiceItem(invoice)))
      : h("p", { class: "muted erp-no-invoices" }, t("No open invoices.")),
  ];
}
