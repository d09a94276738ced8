// The supervisor monitor: queues (and their calls), operators, waiting work and today's
// charts, live. Figures a server does not give (an older one: no calls, no tasks) are left
// out rather than shown as zero.
import { get, logout, post, withQuery } from "../common/api.js";
import { lineChart, legend, stackedBars } from "../common/charts.js";
import { byId, fill, formatDuration, formatTime, h, secondsSince, toast } from "../common/dom.js";
import { channelLabel, loadChannels } from "../common/channels.js";
import { currentTimeZone, formatNumber, t, tn, translatePage, useLocale } from "../common/i18n.js";
import { channelIcon } from "../common/icons.js";
import { coalesce, connectLive } from "../common/live.js";

// The operator's time zone (their preferences), else the browser's: "today" is theirs.
let TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
// The period of the suggestion figures, in days.
const SUGGESTION_DAYS = 7;
const HOURS = Array.from({ length: 24 }, (_, hour) => String(hour).padStart(2, "0"));

const state = {
  me: null,
  snapshot: null,
  receivedAt: 0,
  conversations: new Map(),
  contactNames: new Map(),
  queues: new Map(),
  // The team's use of suggested replies (null: the server does not tell).
  suggestions: null,
};

const refresh = coalesce(load, 400);

async function load() {
  const [snapshot, open, pending, queues, suggestions] = await Promise.all([
    get(withQuery("/api/v1/monitor", { tz: TIME_ZONE })),
    get(withQuery("/api/v1/conversations", { status: "open", limit: 200 })),
    get(withQuery("/api/v1/conversations", { status: "pending", limit: 200 })),
    get("/api/v1/queues"),
    get(withQuery("/api/v1/suggestions/stats", { days: SUGGESTION_DAYS })).catch(() => null),
  ]);
  state.snapshot = snapshot;
  state.suggestions = suggestions;
  state.receivedAt = Date.now();
  state.conversations = new Map([...open.items, ...pending.items].map((c) => [c.id, c]));
  state.queues = new Map(queues.map((q) => [q.id, q]));
  await loadContactNames();
  render();
}

async function loadContactNames() {
  const missing = [...new Set([...state.conversations.values()].map((c) => c.contact_id))]
    .filter((id) => !state.contactNames.has(id))
    .slice(0, 60);
  await Promise.all(
    missing.map(async (id) => {
      try {
        const contact = await get(`/api/v1/contacts/${id}`);
        state.contactNames.set(id, contact.display_name || t("Contact {id}", { id }));
      } catch {
        state.contactNames.set(id, t("Contact {id}", { id }));
      }
    }),
  );
}

function render() {
  renderQueues();
  renderCalls();
  renderOperators();
  renderWaiting();
  renderCharts();
  renderSuggestions();
  byId("updated").textContent = t("updated {time}", { time: formatTime(state.snapshot.generated_at) });
  document.body.dataset.ready = "true";
}

// Waits keep growing between two snapshots; the page adds the time since.
function elapsed() {
  return (Date.now() - state.receivedAt) / 1000;
}

function percent(value) {
  return value === null || value === undefined
    ? "–"
    : new Intl.NumberFormat(document.documentElement.lang, { style: "percent" }).format(
        Math.round(value * 100) / 100,
      );
}

function slClass(value) {
  if (value === null || value === undefined) return "";
  return value >= 0.8 ? "good" : value >= 0.6 ? "fair" : "poor";
}

function renderQueues() {
  const rows = state.snapshot.queues.map((queue) =>
    h(
      "tr",
      { dataset: { queueId: queue.id } },
      h("th", { scope: "row" }, queue.name),
      h("td", { class: "num waiting", dataset: { field: "waiting" } }, queue.waiting),
      h(
        "td",
        {
          class: "num longest",
          dataset: { field: "longest", base: queue.longest_wait_seconds ?? "" },
        },
        queue.longest_wait_seconds === null ? "–" : formatDuration(queue.longest_wait_seconds + elapsed()),
      ),
      h("td", { class: "num", dataset: { field: "offers" } }, queue.offers_pending),
      h("td", { class: `num sl ${slClass(queue.service_level_today)}` }, percent(queue.service_level_today)),
      h(
        "td",
        { class: `num sl ${slClass(queue.service_level_last_hour)}` },
        percent(queue.service_level_last_hour),
      ),
      h("td", { class: "num" }, queue.abandoned_today),
      h(
        "td",
        { class: "num" },
        queue.avg_first_response_seconds_today === null
          ? "–"
          : formatDuration(queue.avg_first_response_seconds_today),
      ),
    ),
  );
  fill(
    byId("queues").tBodies[0],
    rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "muted" }, t("No queues yet."))),
  );
}

/** A queue's call figures, if the server gives them and any is worth a row. */
function callFigures(queue) {
  const calls = queue.calls;
  if (!calls || typeof calls !== "object") return null;
  const some = [
    calls.waiting,
    calls.answered_today,
    calls.abandoned_today,
    calls.longest_wait_seconds,
    calls.avg_handle_seconds_today,
  ].some((value) => value !== null && value !== undefined && value !== 0);
  return some ? calls : null;
}

function count(value) {
  return value === null || value === undefined ? "–" : formatNumber(value);
}

/** "12 of 15 calls within 20 s": of the calls that counted today (answered or abandoned), how
 * many were answered within the target; with the share, coloured like a service level. */
function withinTarget(calls) {
  const answered = calls.answered_today;
  const within = calls.answered_within_target_today;
  if (answered === null || answered === undefined) return ["–", ""];
  const counted = answered + (calls.abandoned_today || 0);
  const parts = [];
  if (within !== null && within !== undefined && calls.answer_target_seconds) {
    parts.push(
      tn("{within} of {count} call within {target}", "{within} of {count} calls within {target}", counted, {
        within: formatNumber(within),
        count: formatNumber(counted),
        target: formatDuration(calls.answer_target_seconds),
      }),
    );
  } else if (within !== null && within !== undefined) {
    parts.push(`${formatNumber(within)}/${formatNumber(counted)}`);
  } else {
    parts.push(formatNumber(answered));
  }
  const level = calls.service_level_today;
  if (level !== null && level !== undefined) parts.push(`(${percent(level)})`);
  return [parts.join(" "), slClass(level)];
}

function renderCalls() {
  const queues = state.snapshot.queues
    .map((queue) => ({ queue, calls: callFigures(queue) }))
    .filter((one) => one.calls !== null);
  byId("calls-panel").hidden = queues.length === 0;
  fill(
    byId("calls").tBodies[0],
    queues.map(({ queue, calls }) => {
      const [target, level] = withinTarget(calls);
      const longest = calls.longest_wait_seconds;
      return h(
        "tr",
        { dataset: { queueId: queue.id } },
        h("th", { scope: "row" }, queue.name),
        h("td", { class: "num waiting", dataset: { field: "calls-waiting" } }, count(calls.waiting)),
        h(
          "td",
          {
            class: "num longest",
            dataset: { field: "calls-longest", base: longest ?? "" },
          },
          longest === null || longest === undefined ? "–" : formatDuration(longest + elapsed()),
        ),
        h("td", { class: `num sl ${level}`, dataset: { field: "calls-within-target" } }, target),
        h("td", { class: "num", dataset: { field: "calls-abandoned" } }, count(calls.abandoned_today)),
        h(
          "td",
          { class: "num", dataset: { field: "calls-handle" } },
          calls.avg_handle_seconds_today === null || calls.avg_handle_seconds_today === undefined
            ? "–"
            : formatDuration(calls.avg_handle_seconds_today),
        ),
      );
    }),
  );
}

function tickWaits() {
  if (!state.snapshot) return;
  for (const cell of document.querySelectorAll("td.longest[data-base]")) {
    if (cell.dataset.base === "") continue;
    cell.textContent = formatDuration(Number(cell.dataset.base) + elapsed());
  }
  for (const cell of document.querySelectorAll("td.waited[data-since]")) {
    cell.textContent = formatDuration(secondsSince(cell.dataset.since));
  }
  for (const cell of document.querySelectorAll("[data-on-call-base]")) {
    cell.textContent = onCallText(Number(cell.dataset.onCallBase) + elapsed());
  }
  for (const cell of document.querySelectorAll("[data-presence-since]")) {
    cell.textContent = t("for {duration}", {
      duration: formatDuration(secondsSince(cell.dataset.presenceSince)),
    });
  }
}

function conversationLabel(id) {
  const c = state.conversations.get(id);
  if (!c) return `#${id}`;
  const name = state.contactNames.get(c.contact_id) || t("Contact {id}", { id: c.contact_id });
  return `${name} · #${id}`;
}

// Capacity kinds are core's; their names shown in the operator's language.
function kindLabel(kind) {
  const labels = { voice: t("voice"), messaging: t("messaging"), email: t("email") };
  return labels[kind] || kind;
}

function presenceLabel(presence) {
  const labels = {
    available: t("Available"),
    busy: t("Busy"),
    away: t("Away"),
    offline: t("Offline"),
  };
  return labels[presence] || presence;
}

function roleLabel(role) {
  const labels = { operator: t("operator"), supervisor: t("supervisor"), admin: t("admin") };
  return labels[role] || role;
}

function onCallText(seconds) {
  return t("on calls {duration} today", { duration: formatDuration(seconds) });
}

/** On a call now, time on calls today, overdue tasks: each only if the server tells. */
function callAndTaskFacts(operator) {
  const parts = [];
  if (operator.on_call === true) {
    parts.push(h("span", { class: "pill on-call", dataset: { onCall: "true" } }, t("on a call")));
  }
  const seconds = operator.on_call_seconds_today;
  if (typeof seconds === "number" && (seconds > 0 || operator.on_call === true)) {
    parts.push(
      h(
        "span",
        {
          class: "muted small on-call-time",
          // While on a call the time keeps counting between two snapshots.
          dataset: operator.on_call === true ? { onCallBase: seconds } : {},
        },
        onCallText(seconds),
      ),
    );
  }
  // Overdue tasks only when there are some: a row of zeros would hide the one that matters.
  const overdue = operator.overdue_tasks;
  if (typeof overdue === "number" && overdue > 0) {
    parts.push(
      h(
        "span",
        { class: "overdue-tasks has-overdue", dataset: { overdueTasks: overdue } },
        tn("{n} overdue task", "{n} overdue tasks", overdue),
      ),
    );
  }
  return parts.length ? h("div", { class: "operator-calls" }, parts) : null;
}

function meter(kind, load, capacity) {
  const cap = capacity ?? 0;
  const ratio = cap ? Math.min(1, load / cap) : load ? 1 : 0;
  return h(
    "div",
    { class: "meter-row", dataset: { kind } },
    h("span", { class: "meter-label" }, kindLabel(kind)),
    h(
      "meter",
      {
        min: 0,
        max: Math.max(cap, 1),
        value: Math.min(load, Math.max(cap, 1)),
        high: Math.max(cap, 1) * 0.8,
        optimum: 0,
        "aria-label": t("{kind} load {load} of {capacity}", {
          kind: kindLabel(kind),
          load,
          capacity: cap,
        }),
        class: ratio >= 1 ? "full" : "",
      },
      `${load}/${cap}`,
    ),
    h("span", { class: "meter-value" }, `${load}/${cap}`),
  );
}

function renderOperators() {
  const rows = state.snapshot.operators.map((operator) => {
    // Capacity kinds are core's (voice, messaging, email); each channel counts against one.
    const kinds = Object.keys({ ...operator.capacity, ...operator.load })
      .filter((kind) => (operator.capacity[kind] ?? 0) > 0 || (operator.load[kind] ?? 0) > 0)
      .sort();
    return h(
      "tr",
      { dataset: { operatorId: operator.id } },
      h("th", { scope: "row" }, operator.name, h("div", { class: "muted small" }, roleLabel(operator.role))),
      h(
        "td",
        {},
        h("span", { class: `pill presence-${operator.presence}` }, presenceLabel(operator.presence)),
        " ",
        h(
          "span",
          { class: "muted small", dataset: { presenceSince: operator.presence_since } },
          t("for {duration}", { duration: formatDuration(secondsSince(operator.presence_since)) }),
        ),
        operator.presence_reason ? h("div", { class: "muted small" }, operator.presence_reason) : null,
        callAndTaskFacts(operator),
      ),
      h(
        "td",
        { class: "load" },
        kinds.length ? kinds.map((kind) => meter(kind, operator.load[kind] ?? 0, operator.capacity[kind])) : h("span", { class: "muted" }, t("no capacity set")),
        operator.total_capacity !== null
          ? h(
              "div",
              { class: "muted small" },
              t("total {load}/{capacity}", {
                load: Object.values(operator.load).reduce((a, b) => a + b, 0),
                capacity: operator.total_capacity,
              }),
            )
          : null,
      ),
      h(
        "td",
        {},
        operator.conversations.length
          ? h(
              "ul",
              { class: "chips" },
              operator.conversations.map((id) => {
                const c = state.conversations.get(id);
                return h(
                  "li",
                  { dataset: { conversationId: id } },
                  c ? channelIcon(c.channel) : null,
                  h("span", {}, conversationLabel(id)),
                  h(
                    "button",
                    {
                      type: "button",
                      class: "reassign",
                      "aria-label": t("Reassign {conversation}", { conversation: conversationLabel(id) }),
                      onclick: () => openReassign(id, operator.id),
                    },
                    t("Reassign"),
                  ),
                );
              }),
            )
          : h("span", { class: "muted" }, t("none")),
      ),
    );
  });
  fill(
    byId("operators").tBodies[0],
    rows.length ? rows : h("tr", {}, h("td", { colspan: 4, class: "muted" }, t("No operators."))),
  );
}

function renderWaiting() {
  const waiting = [...state.conversations.values()]
    .filter((c) => c.assignee_id === null && c.queue_id !== null && c.status === "open")
    .sort((a, b) => new Date(a.queue_entered_at || a.created_at) - new Date(b.queue_entered_at || b.created_at));
  const rows = waiting.map((c) => {
    const since = c.queue_entered_at || c.created_at;
    const queue = state.queues.get(c.queue_id);
    return h(
      "tr",
      { dataset: { conversationId: c.id } },
      h("th", { scope: "row" }, channelIcon(c.channel), " ", conversationLabel(c.id), h("div", { class: "muted small" }, c.subject || channelLabel(c.channel))),
      h("td", {}, queue ? queue.name : t("queue {id}", { id: c.queue_id })),
      h("td", { class: "num waited", dataset: { since } }, formatDuration(secondsSince(since))),
      h(
        "td",
        {},
        h(
          "button",
          {
            type: "button",
            class: "reassign",
            "aria-label": t("Assign {conversation}", { conversation: conversationLabel(c.id) }),
            onclick: () => openReassign(c.id, null),
          },
          t("Assign…"),
        ),
      ),
    );
  });
  fill(
    byId("waiting").tBodies[0],
    rows.length ? rows : h("tr", {}, h("td", { colspan: 4, class: "muted" }, t("Nobody is waiting."))),
  );
}

function renderCharts() {
  const volume = state.snapshot.volume_today;
  const channels = [...new Set(volume.map((v) => v.channel))].sort();
  const series = channels.map((channel) => ({
    name: channelLabel(channel),
    values: HOURS.map((_, hour) =>
      volume.filter((v) => v.channel === channel && v.hour === hour).reduce((sum, v) => sum + v.count, 0),
    ),
  }));
  fill(
    byId("volume-chart"),
    stackedBars({
      label: t("Interactions per hour today ({zone})", { zone: TIME_ZONE }),
      xLabels: HOURS,
      series,
    }),
    channels.length
      ? legend(series.map((one) => one.name))
      : h("p", { class: "muted" }, t("Nothing yet today.")),
    dataTable(
      t("Volume per hour as a table"),
      [t("Hour"), ...series.map((one) => one.name)],
      HOURS.map((hour, i) => [hour, ...series.map((one) => one.values[i])]).filter((row) =>
        row.slice(1).some((value) => value > 0),
      ),
    ),
  );
  const levels = state.snapshot.service_level_today;
  const points = HOURS.map((_, hour) => {
    const found = levels.find((level) => level.hour === hour);
    return { x: hour, y: found && found.value !== null ? Math.round(found.value * 1000) / 10 : null };
  });
  fill(
    byId("sl-chart"),
    lineChart({
      label: t("Service level per hour today, percent ({zone})", { zone: TIME_ZONE }),
      xLabels: HOURS,
      points,
    }),
    dataTable(
      t("Service level per hour as a table"),
      [t("Hour"), t("Service level")],
      points.filter((p) => p.y !== null).map((p) => [HOURS[p.x], `${formatNumber(p.y)}%`]),
    ),
  );
}

/** How much the team used suggested replies over the last days: the share of replies that
 *  started from one, and what became of those shown. Left out if the server does not tell. */
function renderSuggestions() {
  const stats = state.suggestions;
  byId("suggestions-panel").hidden = !stats;
  if (!stats) return;
  const figure = (field, label, value, note) =>
    h(
      "div",
      { class: "figure", dataset: { field } },
      h("dt", {}, label),
      h("dd", {}, value),
      note ? h("dd", { class: "muted small" }, note) : null,
    );
  fill(
    byId("suggestion-figures"),
    figure(
      "used-share",
      t("Replies from a suggestion"),
      percent(stats.used_share),
      tn("of {n} reply", "of {n} replies", stats.replies),
    ),
    figure("sent", t("Sent as suggested"), formatNumber(stats.sent)),
    figure("edited", t("Sent after editing"), formatNumber(stats.edited)),
    figure(
      "ignored",
      t("Ignored"),
      formatNumber(stats.ignored),
      tn("of {n} shown", "of {n} shown", stats.shown),
    ),
  );
}

function dataTable(title, head, rows) {
  return h(
    "details",
    { class: "chart-data" },
    h("summary", {}, title),
    rows.length
      ? h(
          "table",
          {},
          h("thead", {}, h("tr", {}, head.map((cell) => h("th", { scope: "col" }, cell)))),
          h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell) => h("td", {}, cell))))),
        )
      : h("p", { class: "muted" }, t("No data yet.")),
  );
}

// ----- reassign -----

let reassigning = null;

function openReassign(conversationId, currentOperatorId) {
  reassigning = conversationId;
  byId("reassign-title").textContent = currentOperatorId === null ? t("Assign") : t("Reassign");
  byId("reassign-what").textContent = conversationLabel(conversationId);
  const operators = state.snapshot.operators.filter((o) => o.id !== currentOperatorId);
  fill(
    byId("reassign-to"),
    operators.map((o) => {
      const load = Object.values(o.load).reduce((a, b) => a + b, 0);
      return h(
        "option",
        { value: o.id },
        tn("{name} ({presence}, {n} open)", "{name} ({presence}, {n} open)", load, {
          name: o.name,
          presence: presenceLabel(o.presence),
        }),
      );
    }),
    currentOperatorId !== null ? h("option", { value: "" }, t("Nobody: back to the queue")) : null,
  );
  byId("reassign-dialog").showModal();
  byId("reassign-to").focus();
}

async function submitReassign(event) {
  event.preventDefault();
  const value = byId("reassign-to").value;
  const assignee = value === "" ? null : Number(value);
  try {
    await post(`/api/v1/conversations/${reassigning}/assign`, { assignee_id: assignee });
    toast(assignee === null ? t("Back in the queue") : t("Reassigned"));
    byId("reassign-dialog").close();
  } catch (error) {
    toast(error.message, "error");
  }
  refresh();
}

// ----- live -----

let connectedOnce = false;

function onEvent(event) {
  if (event.type === "hello") {
    if (connectedOnce) refresh();
    connectedOnce = true;
    return;
  }
  // Anything that changes the figures: reload the snapshot (coalesced).
  if (
    event.type === "resync" ||
    event.type.startsWith("conversation.") ||
    event.type.startsWith("offer.") ||
    event.type.startsWith("operator.") ||
    event.type.startsWith("call.") ||
    event.type.startsWith("task.") ||
    event.type === "interaction.created" ||
    event.type === "routing.decision" ||
    event.type === "sla.breached"
  ) {
    refresh();
  }
}

function setLiveState(value) {
  const element = byId("live-state");
  element.dataset.state = value;
  element.textContent = value === "live" ? t("live") : t("reconnecting…");
}

async function start() {
  // The operator's language and time zone first: everything after is shown in them.
  const prefs = await get("/api/v1/auth/me/preferences");
  await useLocale(prefs.locale, prefs.time_zone);
  TIME_ZONE = currentTimeZone() || TIME_ZONE;
  translatePage();
  state.me = await get("/api/v1/auth/me");
  byId("me-name").textContent = state.me.name;
  byId("logout-button").addEventListener("click", () => logout());
  byId("reassign-form").addEventListener("submit", submitReassign);
  byId("reassign-cancel").addEventListener("click", () => byId("reassign-dialog").close());
  await loadChannels();
  await load();
  connectLive({ onEvent, onState: setLiveState });
  setInterval(tickWaits, 1000);
  // Service levels and hourly figures move with the clock as well.
  setInterval(refresh, 30000);
}

start().catch((error) => {
  console.error(error);
  toast(t("The monitor could not start: {reason}", { reason: error.message }), "error");
});
