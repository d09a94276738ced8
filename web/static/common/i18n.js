// Translations and locale-aware formatting for every page (console, monitor, admin, login).
//
// Messages are gettext's: the English text is the message id, and the catalogues are the
// server's .po files, which it serves as JSON at /i18n/<locale>.json (no build step):
//   {"locale": "ru", "locales": ["en", "ru", "de"],
//    "plural_index": {"one": 0, "few": 1, "many": 2, "other": 2},
//    "messages": {"Resolve": "Решить", "{n} conversation": ["{n} разговор", ...]}}
// A plural entry is keyed by its singular and holds the catalogue's forms in order;
// `plural_index` maps the CLDR category Intl.PluralRules gives for a number to a form.
// Until a catalogue is loaded, or for a message it lacks, the English text is shown.
//
//   t("Assigned to {name}", { name })        one message, {placeholders} filled
//   tn("{n} conversation", "{n} conversations", n)   plural; {n} is filled with n
//   formatDateTime(iso), formatTime(iso), formatNumber(n)   in the operator's locale and zone
//   formatMoney("12.50", "EUR")   an amount in its currency, in the operator's locale
//   translatorFor("de")   a t() for another language (a customer's), null if there is none
//   translatePage()   the static text of a page: elements marked data-i18n (their text) and
//                     data-i18n-attrs="aria-label title" (those attributes)
//
// `python -m core.i18n_extract` finds every t("...") and tn("...", "...") with literal
// strings, and the marked elements of the .html pages, and adds them to the catalogues.

let locale = "en";
let timeZone = undefined;
let messages = {};
let pluralIndex = { one: 0, other: 1 };
let pluralRules = new Intl.PluralRules("en");
// Catalogues of other languages (translatorFor), fetched once each: code -> Promise.
const otherCatalogues = new Map();

function fill(text, vars) {
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : whole,
  );
}

/** Load the catalogue of `code` ("ru", "de", ...) and use it from now on; `zone` is the IANA
 *  time zone dates are shown in (the browser's when not given). English needs no catalogue. */
export async function useLocale(code, zone) {
  timeZone = zone || undefined;
  locale = code || "en";
  pluralRules = new Intl.PluralRules(locale);
  document.documentElement.lang = locale;
  if (locale === "en") {
    messages = {};
    pluralIndex = { one: 0, other: 1 };
    return;
  }
  const response = await fetch(`/i18n/${encodeURIComponent(locale)}.json`, {
    credentials: "same-origin",
  });
  if (!response.ok) {
    messages = {};
    return;
  }
  const catalogue = await response.json();
  messages = catalogue.messages || {};
  pluralIndex = catalogue.plural_index || pluralIndex;
}

export function currentLocale() {
  return locale;
}

/** The IANA time zone dates are shown in (undefined: the browser's). */
export function currentTimeZone() {
  return timeZone;
}

/** Translate the page's marked static text (see the top of this file); safe to run again
 *  after a change of language, as the English source is kept on each element. */
export function translatePage(root = document) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    if (element.dataset.i18nSource === undefined) {
      element.dataset.i18nSource = element.textContent.replace(/\s+/g, " ").trim();
    }
    element.textContent = t(element.dataset.i18nSource);
  }
  for (const element of root.querySelectorAll("[data-i18n-attrs]")) {
    for (const name of element.dataset.i18nAttrs.split(/\s+/).filter(Boolean)) {
      const key = `i18nSource${name.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase())}`;
      if (element.dataset[key] === undefined) element.dataset[key] = element.getAttribute(name) || "";
      if (element.dataset[key]) element.setAttribute(name, t(element.dataset[key]));
    }
  }
}

/** The translation of `msgid`, with `{name}` placeholders filled from `vars`. */
export function t(msgid, vars) {
  const found = messages[msgid];
  return fill(typeof found === "string" && found ? found : msgid, vars);
}

/** The form of a plural message for `n`; `{n}` (and `vars`) filled. */
export function tn(singular, plural, n, vars) {
  const all = { n: formatNumber(n), ...(vars || {}) };
  const forms = messages[singular];
  if (Array.isArray(forms) && forms.length) {
    const index = pluralIndex[pluralRules.select(n)] ?? forms.length - 1;
    const form = forms[Math.min(index, forms.length - 1)];
    if (form) return fill(form, all);
  }
  return fill(n === 1 ? singular : plural, all);
}

function asDate(value) {
  return value instanceof Date ? value : new Date(value);
}

export function formatDateTime(value, options) {
  return new Intl.DateTimeFormat(locale, {
    dateStyle: "medium",
    timeStyle: "short",
    timeZone,
    ...(options || {}),
  }).format(asDate(value));
}

export function formatDate(value) {
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone }).format(asDate(value));
}

export function formatTime(value) {
  return new Intl.DateTimeFormat(locale, { timeStyle: "short", timeZone }).format(asDate(value));
}

export function formatNumber(n) {
  return new Intl.NumberFormat(locale).format(n);
}

/** An amount of money in its currency ("12.50", "EUR" -> "12,50 €" in German), in the
 *  operator's locale or in `inLocale`; the amount may be a decimal string (kept exact) or a
 *  number. "" for an amount that is not a number; an unknown currency is written after it. */
export function formatMoney(amount, currency, inLocale) {
  const value = typeof amount === "string" ? amount.trim() : amount;
  if (value === "" || value === null || value === undefined || !Number.isFinite(Number(value))) return "";
  const where = inLocale || locale;
  try {
    return new Intl.NumberFormat(where, { style: "currency", currency }).format(value);
  } catch {
    const number = new Intl.NumberFormat(where, { maximumFractionDigits: 20 }).format(value);
    return currency ? `${number} ${currency}` : number;
  }
}

/** A t() for the language `code` ("de", "ru-RU": its first part counts), for text meant for
 *  someone else than the operator (a customer): {locale, t}. English needs no catalogue; the
 *  operator's own language is the loaded one; null if the server has no such catalogue. */
export async function translatorFor(code) {
  const wanted = String(code || "").trim().toLowerCase().split(/[-_]/)[0];
  if (!wanted) return null;
  if (wanted === locale) return { locale, t };
  if (wanted === "en") return { locale: "en", t: (msgid, vars) => fill(msgid, vars) };
  if (!/^[a-z]{2,8}$/.test(wanted)) return null;
  if (!otherCatalogues.has(wanted)) {
    const loading = fetch(`/i18n/${encodeURIComponent(wanted)}.json`, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : { messages: null }))
      .catch(() => null);
    otherCatalogues.set(wanted, loading);
    // A language the server has not is remembered; a failure (the network) is asked again.
    loading.then((catalogue) => {
      if (catalogue === null) otherCatalogues.delete(wanted);
    });
  }
  const catalogue = await otherCatalogues.get(wanted);
  if (!catalogue || typeof catalogue.messages !== "object" || catalogue.messages === null) return null;
  const theirs = catalogue.messages;
  return {
    locale: wanted,
    t: (msgid, vars) => {
      const found = theirs[msgid];
      return fill(typeof found === "string" && found ? found : msgid, vars);
    },
  };
}
