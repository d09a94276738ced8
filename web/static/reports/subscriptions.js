// "Email me this report weekly": the report on screen, with its filters (not its period: each
// email covers the seven days before it), from a mailbox, on a weekday at an hour in the
// operator's time zone; and the list of the operator's weekly emails, each one deletable.
// A server without the weekly emails (404) shows no such section.
import { api, ApiError, get, post } from "../common/api.js";
import { channelLabel } from "../common/channels.js";
import { byId, fill, formatTime, h, toast } from "../common/dom.js";
import { currentLocale, currentTimeZone, t } from "../common/i18n.js";
import { browserZone, filtersOf } from "./filters.js";

const state = {
  reports: [],
  names: { queue_id: new Map(), operator_id: new Map(), pipeline_id: new Map() },
  mailboxes: [],
  current: () => null,
};

/** "Monday" (0) to "Sunday" (6) in the operator's language. */
export function weekdayName(weekday) {
  // 1 January 2024 was a Monday.
  return new Intl.DateTimeFormat(currentLocale(), { weekday: "long", timeZone: "UTC" }).format(
    new Date(Date.UTC(2024, 0, 1 + weekday)),
  );
}

function hourName(hour) {
  return new Intl.DateTimeFormat(currentLocale(), { hour: "numeric", minute: "2-digit", timeZone: "UTC" }).format(
    new Date(Date.UTC(2024, 0, 1, hour)),
  );
}

function when(subscription) {
  return t("{weekday} at {hour}", {
    weekday: weekdayName(subscription.weekday),
    hour: hourName(subscription.hour),
  });
}

function reportTitle(name) {
  const info = state.reports.find((one) => one.name === name);
  return info ? t(info.title) : name;
}

/** The filters of a weekly email in words: "Queue: Support · Channel: Email". */
function describeFilters(filters) {
  const named = (key, value) =>
    String(value)
      .split(",")
      .map((id) => state.names[key].get(Number(id)) || id)
      .join(", ");
  const parts = [];
  for (const [key, value] of Object.entries(filters || {})) {
    if (value === null || value === undefined || value === "") continue;
    if (key === "queue_id") parts.push(t("Queue: {names}", { names: named(key, value) }));
    else if (key === "operator_id") parts.push(t("Operator: {names}", { names: named(key, value) }));
    else if (key === "pipeline_id") parts.push(t("Pipeline: {names}", { names: named(key, value) }));
    else if (key === "channel") {
      parts.push(t("Channel: {names}", { names: String(value).split(",").map(channelLabel).join(", ") }));
    } else if (key === "source") parts.push(t("Source: {names}", { names: value }));
    else if (key === "granularity" && value === "week") parts.push(t("per week"));
    else if (key === "group_by" && value === "operator") parts.push(t("a row per operator"));
  }
  return parts.join(" · ");
}

function renderList(subscriptions) {
  const mailboxes = new Map(state.mailboxes.map((box) => [box.id, box]));
  fill(
    byId("subscription-list"),
    subscriptions.length
      ? subscriptions.map((subscription) => {
          const title = reportTitle(subscription.report);
          const mailbox = mailboxes.get(subscription.channel_account_id);
          const filters = describeFilters(subscription.filters);
          return h(
            "li",
            { dataset: { id: subscription.id, report: subscription.report } },
            h(
              "div",
              {},
              h("strong", {}, title),
              " · ",
              when(subscription),
              filters ? h("div", { class: "muted small" }, filters) : null,
              h(
                "div",
                { class: "muted small" },
                mailbox ? t("from {mailbox}", { mailbox: `${mailbox.name} <${mailbox.address}>` }) : null,
                mailbox ? " · " : null,
                t("next: {time}", { time: formatTime(subscription.next_run_at) }),
              ),
            ),
            h(
              "button",
              {
                type: "button",
                class: "danger",
                "aria-label": t("Delete the weekly email {title}, {when}", { title, when: when(subscription) }),
                onclick: () => remove(subscription),
              },
              t("Delete"),
            ),
          );
        })
      : h("li", { class: "muted" }, t("No weekly emails yet.")),
  );
}

async function reload() {
  renderList(await get("/api/v1/report-subscriptions"));
}

async function remove(subscription) {
  try {
    await api("DELETE", `/api/v1/report-subscriptions/${subscription.id}`);
    toast(t("You will no longer get {title} by email.", { title: reportTitle(subscription.report) }));
    await reload();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function subscribe(event) {
  event.preventDefault();
  const { view, info } = state.current();
  const form = byId("subscribe-form");
  const problem = byId("subscribe-error");
  problem.hidden = true;
  const filters = filtersOf(view, info);
  if (filters.pipeline_id) filters.pipeline_id = Number(filters.pipeline_id);
  const body = {
    report: info.name,
    filters,
    channel_account_id: Number(form.elements.mailbox.value),
    weekday: Number(form.elements.weekday.value),
    hour: Number(form.elements.hour.value),
    time_zone: currentTimeZone() || browserZone(),
  };
  try {
    const made = await post("/api/v1/report-subscriptions", body);
    toast(t("You will get {title} by email every {when}.", { title: t(info.title), when: when(made) }));
    await reload();
  } catch (error) {
    const fields = error instanceof ApiError ? Object.values(error.fields) : [];
    problem.textContent = [error.message, ...fields].join(" ");
    problem.hidden = false;
  }
}

/** Say which report the form would send (the one on screen). */
export function showSubscriptionForm(info) {
  byId("subscribe-what").textContent = t(
    "{title}, with the filters above, covering the seven days before each email.",
    { title: t(info.title) },
  );
}

export async function mountSubscriptions({ reports, queues, operators, pipelines, current }) {
  state.reports = reports;
  state.current = current;
  state.names.queue_id = new Map(queues.map((q) => [q.id, q.name]));
  state.names.operator_id = new Map(operators.map((o) => [o.id, o.name]));
  state.names.pipeline_id = new Map(pipelines.map((p) => [p.id, p.name]));
  let subscriptions;
  try {
    [state.mailboxes, subscriptions] = await Promise.all([
      get("/api/v1/report-subscriptions/mailboxes"),
      get("/api/v1/report-subscriptions"),
    ]);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) toast(error.message, "error");
    return;
  }
  const form = byId("subscribe-form");
  fill(
    form.elements.mailbox,
    state.mailboxes.map((box) => h("option", { value: box.id }, `${box.name} <${box.address}>`)),
  );
  fill(
    form.elements.weekday,
    [0, 1, 2, 3, 4, 5, 6].map((day) => h("option", { value: day }, weekdayName(day))),
  );
  fill(
    form.elements.hour,
    Array.from({ length: 24 }, (_, hour) => h("option", { value: hour, selected: hour === 8 }, hourName(hour))),
  );
  form.elements.hour.value = "8";
  const none = state.mailboxes.length === 0;
  byId("no-mailbox").hidden = !none;
  form.hidden = none;
  form.addEventListener("submit", subscribe);
  renderList(subscriptions);
  byId("subscriptions").hidden = false;
}
