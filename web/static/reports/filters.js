// The report's filters: the period (with quick choices), and those the chosen report takes
// (the API refuses the others, so only those are shown, kept in the URL's hash and sent).
// A view is {report, start, end, granularity, group_by, queue_id, channel, operator_id,
// source, pipeline_id}: strings as in the query ("" for none), lists comma-separated.
import { byId, fill, h } from "../common/dom.js";
import { serverNow } from "../common/clock.js";
import { channelLabel } from "../common/channels.js";
import { currentTimeZone, t } from "../common/i18n.js";

export const FILTER_KEYS = ["granularity", "group_by", "queue_id", "channel", "operator_id", "source", "pipeline_id"];
// Filters that are not in a report's `filters` list (every report accepts them, only these
// read them); their defaults are left out of the hash and the query.
const OWN_FILTERS = { granularity: ["volume"], group_by: ["performance"] };
const DEFAULTS = { granularity: "day", group_by: "queue" };
const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** Whether the report `info` ({name, filters}) takes the filter `key`. */
export function takes(info, key) {
  if (key in OWN_FILTERS) return OWN_FILTERS[key].includes(info.name);
  return info.filters.includes(key);
}

// ----- days -----

function toDay(date) {
  return date.toISOString().slice(0, 10);
}

function addDays(day, days) {
  const [year, month, date] = day.split("-").map(Number);
  return toDay(new Date(Date.UTC(year, month - 1, date + days)));
}

/** Today in the operator's time zone, by the server's clock. */
export function today() {
  const zone = currentTimeZone() || browserZone();
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
  }).formatToParts(new Date(serverNow()));
  const part = (type) => parts.find((one) => one.type === type).value;
  return `${part("year")}-${part("month")}-${part("day")}`;
}

/** The quick choices of a period: [start, end]. */
export const PERIODS = {
  "7": () => [addDays(today(), -6), today()],
  "30": () => [addDays(today(), -29), today()],
  month: () => [`${today().slice(0, 8)}01`, today()],
};

// ----- the hash -----

/** The view the hash asks for, with the defaults filled in (the first report, the last 7
 *  days); `complete` tells whether the hash said all that itself. */
export function viewFromHash(reports) {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const wanted = reports.find((info) => info.name === params.get("report")) || reports[0];
  const [start, end] = PERIODS["7"]();
  const view = {
    report: wanted.name,
    start: DAY.test(params.get("start") || "") ? params.get("start") : start,
    end: DAY.test(params.get("end") || "") ? params.get("end") : end,
  };
  for (const key of FILTER_KEYS) {
    view[key] = takes(wanted, key) ? (params.get(key) || "").trim() : "";
  }
  const complete = ["report", "start", "end"].every((key) => params.get(key) === view[key]);
  return { view, complete };
}

/** The filters of `view` the report takes and that say something, as query parameters. */
export function filtersOf(view, info) {
  const found = {};
  for (const key of FILTER_KEYS) {
    const value = view[key];
    if (!value || !takes(info, key) || value === DEFAULTS[key]) continue;
    found[key] = value;
  }
  return found;
}

export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** The API's query: the period and filters, and the time zone when the operator's
 *  preferences leave it to the computer (the API would count in UTC). */
export function queryOf(view, info) {
  const query = { start: view.start, end: view.end, ...filtersOf(view, info) };
  if (!currentTimeZone()) query.time_zone = browserZone();
  return query;
}

export function hashOf(view, info) {
  return `#${new URLSearchParams({ report: info.name, start: view.start, end: view.end, ...filtersOf(view, info) })}`;
}

// ----- the form -----

const FIELDS = {
  start: "filter-start",
  end: "filter-end",
  granularity: "filter-granularity",
  group_by: "filter-group-by",
  queue_id: "filter-queue",
  channel: "filter-channel",
  operator_id: "filter-operator",
  source: "filter-source",
  pipeline_id: "filter-pipeline",
};

function options(select, first, items) {
  fill(
    select,
    h("option", { value: "" }, first),
    items.map((item) => h("option", { value: String(item.value) }, item.label)),
  );
}

/** Fill the choices (queues, channels, operators, pipelines) and call `onChange(view
 *  changes)` when the operator changes a filter. */
export function mountFilters({ queues, channels, operators, pipelines, onChange }) {
  const byName = (a, b) => a.label.localeCompare(b.label);
  options(byId(FIELDS.queue_id), t("All queues"), queues.map((q) => ({ value: q.id, label: q.name })).sort(byName));
  options(
    byId(FIELDS.channel),
    t("All channels"),
    channels.map((channel) => ({ value: channel.name, label: channelLabel(channel.name) })),
  );
  options(
    byId(FIELDS.operator_id),
    t("Everyone"),
    operators
      .map((o) => ({ value: o.id, label: o.active === false ? t("{name} (inactive)", { name: o.name }) : o.name }))
      .sort(byName),
  );
  options(byId(FIELDS.pipeline_id), "", pipelines.map((p) => ({ value: p.id, label: p.name })));
  for (const [key, id] of Object.entries(FIELDS)) {
    byId(id).addEventListener("change", () => onChange({ [key]: byId(id).value.trim() }));
  }
  for (const button of document.querySelectorAll("[data-period]")) {
    button.addEventListener("click", () => {
      const [start, end] = PERIODS[button.dataset.period]();
      onChange({ start, end });
    });
  }
  byId("filters").addEventListener("submit", (event) => event.preventDefault());
}

/** Keep a value the hash asks for even if it is not among the choices (several ids, an
 *  operator who left). */
function choose(select, value) {
  if (value && ![...select.options].some((option) => option.value === value)) {
    select.append(h("option", { value }, value));
  }
  select.value = value;
}

/** Show the filters `info` takes, set to `view`. */
export function showFilters(view, info) {
  byId(FIELDS.start).value = view.start;
  byId(FIELDS.end).value = view.end;
  for (const key of FILTER_KEYS) {
    const field = document.querySelector(`[data-filter="${key}"]`);
    field.hidden = !takes(info, key);
    const control = byId(FIELDS[key]);
    if (control.tagName === "SELECT") choose(control, view[key] || DEFAULTS[key] || "");
    else control.value = view[key] || "";
  }
  // Sales reports filter leads by their owner; the funnel is of one pipeline.
  byId("filter-operator-label").textContent = info.area === "sales" ? t("Owner") : t("Operator");
  byId(FIELDS.pipeline_id).options[0].textContent =
    info.name === "funnel" ? t("The first pipeline") : t("All pipelines");
  for (const button of document.querySelectorAll("[data-period]")) {
    const [start, end] = PERIODS[button.dataset.period]();
    button.setAttribute("aria-pressed", String(start === view.start && end === view.end));
  }
}

// ----- errors -----

/** Show the API's complaints next to their filters; what has no visible filter is returned. */
export function showErrors(fields) {
  clearErrors();
  const rest = {};
  for (const [name, message] of Object.entries(fields || {})) {
    const id = FIELDS[name];
    const control = id ? byId(id) : null;
    const field = control ? control.closest(".field") : null;
    if (!field || field.hidden) {
      rest[name] = message;
      continue;
    }
    const error = field.querySelector(".error-text");
    error.textContent = message;
    error.hidden = false;
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", error.id);
  }
  return rest;
}

export function clearErrors() {
  for (const error of document.querySelectorAll("#filters .error-text")) {
    error.textContent = "";
    error.hidden = true;
  }
  for (const control of document.querySelectorAll("#filters [aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    control.removeAttribute("aria-describedby");
  }
}
