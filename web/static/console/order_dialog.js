// An order opened in a dialog (`dialog.erp-order-detail`), from the card's Orders panel or an
// order number linked in the timeline: its facts, lines, shipments with their tracking, and
// invoices; "Insert into reply" for the order and for each shipment's tracking closes the
// dialog and puts the text into the composer.
//
//   GET /api/v1/erp/orders/{number}   the order (404: no such order; 503: the ERP is down)
import { ApiError, get } from "../common/api.js";
import { fill, h } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { answerAge, day, invoiceItem, list, money, paymentWord, quantity, statusWord, text, trackingLink } from "./erp_format.js";
import { insertInto, orderSentence, shipmentSentence } from "./erp_reply.js";

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
  // Not the order opened before's: its status and age until this one's are known.
  delete view.root.dataset.orderStatus;
  delete view.root.dataset.stale;
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
    answerAge(answer),
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
