// The stock lookup at the foot of the card's Orders panel (orders.js builds it in): a product
// searched by name or SKU, its stock per warehouse, and its availability inserted into the
// reply.
//
//   GET /api/v1/erp/products?q=&limit=10   the products found (at least 2 characters typed)
//   GET /api/v1/erp/stock?sku=             a product's stock per warehouse
//
// Keyboard: Enter searches now, ArrowDown goes into the products found, ArrowUp/Down moves
// between them (and back up to the search).
import { ApiError, get, withQuery } from "../common/api.js";
import { fill, h } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { answerAge, isPositive, list, money, quantity, text } from "./erp_format.js";
import { insertInto, stockSentence } from "./erp_reply.js";

const SEARCH_DELAY_MS = 300;
const PRODUCTS_LIMIT = 10;

/** The stock lookup: {root, …}; `root` goes into the panel. */
export function buildStock() {
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
      answerAge(answer),
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
