// Text the ERP modules put into the reply: an order's status and tracking, a shipment's
// tracking, a product's availability, written in the customer's language when the server has
// it (their contact's `language`), else the operator's. `insertInto` hands the text to the
// composer (the "insert-into-reply" signal, which main.js passes to conversation.js).
import { currentLocale, formatNumber, t, translatorFor } from "../common/i18n.js";
import { signal, state } from "./state.js";
import { list, orderStatusWord, safeUrl, text } from "./erp_format.js";

/** {locale, t} for text meant for the customer: their language if the server has it. */
export async function customerWords() {
  const language = state.contact && state.contact.language;
  const theirs = language ? await translatorFor(language) : null;
  return theirs || { locale: currentLocale(), t };
}

// The builders below take the customer's translator as `t` (the extractor finds t("…")).

export function orderSentence(order, t) {
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

export function shipmentSentence(number, shipment, t) {
  const url = safeUrl(shipment.tracking_url);
  if (url) return t("Tracking for your order {number}: {url}", { number, url });
  return t("Tracking number for your order {number}: {tracking}", { number, tracking: text(shipment.tracking_number) });
}

export function stockSentence(stock, product, t) {
  const name = text(stock.name) || text(product && product.name) || text(stock.sku);
  const sku = text(stock.sku);
  const what = sku && sku !== name ? `${name} (${sku})` : name;
  const total = list(stock.levels).reduce((sum, level) => sum + (Number(text(level.available)) || 0), 0);
  if (total > 0) return t("{product} is in stock: {quantity} available.", { product: what, quantity: formatNumber(total) });
  return t("{product} is out of stock at the moment.", { product: what });
}

/** Put what `build(t, locale)` writes (in the customer's words) into the reply. */
export async function insertInto(build) {
  const words = await customerWords();
  signal("insert-into-reply", build(words.t, words.locale));
}
