// The widget's texts and formats, in the visitor's language. The English text is the message
// id; the server's session answer gives the language and the translations (msgid → text).
// Write every text as t("literal") so `python -m core.i18n_extract` finds it.

let locale = "en";
let messages = {};

export function useLocale(code, map) {
  locale = code || "en";
  messages = map || {};
}

export const currentLocale = () => locale;

/** The translation of `msgid`, its {placeholders} filled from `vars`. */
export function t(msgid, vars) {
  const found = messages[msgid];
  const text = typeof found === "string" && found ? found : msgid;
  return text.replace(/\{(\w+)\}/g, (all, key) => (vars && key in vars ? String(vars[key]) : all));
}

/** A date in the visitor's language; "" for a missing or bad one. */
export function when(value, options) {
  const date = new Date(value);
  if (!value || Number.isNaN(date.getTime())) return "";
  return new Intl.DateTimeFormat(locale, options).format(date);
}

const CLOCK = { hour: "numeric", minute: "2-digit" };

/** hh:mm today, else with the day (`weekday` for what is ahead, like opening hours). */
export function shortTime(value, ahead) {
  const today = when(value, { dateStyle: "short" }) === when(new Date(), { dateStyle: "short" });
  if (today) return when(value, CLOCK);
  return when(value, ahead ? { weekday: "long", ...CLOCK } : { day: "numeric", month: "short", ...CLOCK });
}

export function fileSize(bytes) {
  if (typeof bytes !== "number") return "";
  const mb = bytes >= 2 ** 20;
  return new Intl.NumberFormat(locale, {
    style: "unit",
    unit: mb ? "megabyte" : "kilobyte",
    maximumFractionDigits: mb ? 1 : 0,
  }).format(Math.max(bytes / 2 ** (mb ? 20 : 10), 1));
}
