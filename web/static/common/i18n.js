// Translations and locale-aware formatting for every page (console, monitor, admin, login).
//
// Messages are gettext's: the English text is the message id, and the catalogues are the
// server's .po files, which it serves as JSON at /i18n/<locale>.json (no build step):
//   {"locale": "ru", "plural_index": {"one": 0, "few": 1, "many": 2, "other": 2},
//    "messages": {"Resolve": "Решить", "{n} conversation": ["{n} разговор", ...]}}
// A plural entry is keyed by its singular and holds the catalogue's forms in order;
// `plural_index` maps the CLDR category Intl.PluralRules gives for a number to a form.
// Until a catalogue is loaded, or for a message it lacks, the English text is shown.
//
//   t("Assigned to {name}", { name })        one message, {placeholders} filled
//   tn("{n} conversation", "{n} conversations", n)   plural; {n} is filled with n
//   formatDateTime(iso), formatTime(iso), formatNumber(n)   in the operator's locale and zone

let locale = "en";
let timeZone = undefined;
let messages = {};
let pluralIndex = { one: 0, other: 1 };
let pluralRules = new Intl.PluralRules("en");

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
