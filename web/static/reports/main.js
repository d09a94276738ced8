// The reports page (supervisors and admins): choose a report, set its period and filters (all
// in the URL's hash, so a reload or a shared link shows the same report), see its chart and
// table, download it as CSV or XLSX, and have it emailed weekly (subscriptions.js).
//
// body[data-ready] is "false" while a report loads and "true" once it is drawn (or its error
// shown): the browser tests wait for it.
import { ApiError, get, logout, withQuery } from "../common/api.js";
import { conversationChannels, loadChannels } from "../common/channels.js";
import { byId, fill, formatTime, h, toast } from "../common/dom.js";
import { t, translatePage, useLocale } from "../common/i18n.js";
import { drawChart } from "./chart.js";
import { cellText, columnLabel, formatDay, isTotal, NUMERIC } from "./format.js";
import {
  clearErrors,
  hashOf,
  mountFilters,
  queryOf,
  showErrors,
  showFilters,
  viewFromHash,
} from "./filters.js";
import { mountSubscriptions, showSubscriptionForm } from "./subscriptions.js";

// The chooser's groups, by the area the API gives each report.
const AREAS = [
  ["contact_center", () => t("Contact center")],
  ["sales", () => t("Sales")],
];

const state = {
  reports: [],
  view: null,
  // Each load has a number; an answer to an older one (the operator clicked on) is dropped.
  loading: 0,
};

const infoOf = (name) => state.reports.find((info) => info.name === name);

function setReady(ready) {
  document.body.dataset.ready = String(ready);
  byId("report").setAttribute("aria-busy", String(!ready));
}

// ----- the chooser -----

/** The list of reports, grouped by area (built once, so a keyboard user's focus stays on
 *  the link they followed); each link keeps the period and the filters the report takes. */
function renderChooser() {
  const box = byId("report-groups");
  if (!box.childElementCount) {
    fill(
      box,
      AREAS.map(([area, title]) => {
        const reports = state.reports.filter((info) => info.area === area);
        if (!reports.length) return null;
        return h(
          "div",
          { class: "report-group" },
          h("h2", { id: `area-${area}` }, title()),
          h(
            "ul",
            { "aria-labelledby": `area-${area}` },
            reports.map((info) => h("li", {}, h("a", { href: "#", dataset: { report: info.name } }, t(info.title)))),
          ),
        );
      }),
    );
  }
  for (const link of box.querySelectorAll("a[data-report]")) {
    const info = infoOf(link.dataset.report);
    link.href = hashOf(state.view, info);
    if (info.name === state.view.report) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// ----- a report -----

/** The hash changed (a link, a filter, back/forward, a reload): show what it says. */
async function showFromHash() {
  const { view, complete } = viewFromHash(state.reports);
  const info = infoOf(view.report);
  state.view = view;
  // A shareable address even when the hash said nothing (defaults written in, no new entry).
  if (!complete) history.replaceState(null, "", hashOf(view, info));
  renderChooser();
  showFilters(view, info);
  showSubscriptionForm(info);
  await load(view, info);
}

/** Change the view (a filter, a period); the hash change loads it. */
function change(changes) {
  const view = { ...state.view, ...changes };
  const target = hashOf(view, infoOf(view.report));
  if (target === location.hash) return;
  location.hash = target;
}

async function load(view, info) {
  const number = (state.loading += 1);
  setReady(false);
  clearErrors();
  byId("report-title").textContent = t(info.title);
  const query = queryOf(view, info);
  setExports(info, query);
  try {
    const report = await get(withQuery(`/api/v1/reports/${encodeURIComponent(info.name)}`, query));
    if (number !== state.loading) return;
    render(report, view);
  } catch (error) {
    if (number !== state.loading) return;
    showFailure(error);
  }
  setReady(true);
}

function setExports(info, query) {
  for (const link of document.querySelectorAll("[data-export]")) {
    link.href = withQuery(`/api/v1/reports/${encodeURIComponent(info.name)}/export`, {
      format: link.dataset.export,
      ...query,
    });
  }
}

function render(report, view) {
  byId("report-title").textContent = report.title;
  byId("report-period").textContent = t("{start} to {end}", {
    start: formatDay(view.start),
    end: formatDay(view.end),
  });
  byId("report-generated").textContent = t("made {time}", { time: formatTime(report.generated_at) });
  byId("report-error").hidden = true;
  fill(byId("chart"), drawChart(report));
  renderTable(report);
  fill(
    byId("notes"),
    report.notes.map((note) => h("li", {}, note)),
  );
  byId("report-body").hidden = false;
}

function renderTable(report) {
  const table = byId("report-table");
  const columns = report.columns;
  // The row of everyone last, whatever the order it came in.
  const rows = [...report.rows.filter((row) => !isTotal(row)), ...report.rows.filter(isTotal)];
  fill(table.caption, t("{title} as a table", { title: report.title }));
  fill(
    table.tHead,
    h(
      "tr",
      {},
      columns.map((column) =>
        h(
          "th",
          { scope: "col", class: NUMERIC.has(column.kind) ? "num" : null, dataset: { column: column.key } },
          columnLabel(column),
        ),
      ),
    ),
  );
  fill(
    table.tBodies[0],
    rows.length
      ? rows.map((row) =>
          h(
            "tr",
            { class: isTotal(row) ? "total" : null, dataset: { key: row.key ?? "" } },
            columns.map((column, index) =>
              h(
                index === 0 ? "th" : "td",
                {
                  scope: index === 0 ? "row" : null,
                  class: NUMERIC.has(column.kind) ? "num" : null,
                  dataset: { column: column.key },
                },
                cellText(column, row),
              ),
            ),
          ),
        )
      : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, t("No data for this period."))),
  );
}

function showFailure(error) {
  const fields = error instanceof ApiError ? error.fields : {};
  const rest = showErrors(fields);
  const box = byId("report-error");
  box.textContent = t("The report could not be made: {reason}", { reason: error.message });
  box.hidden = false;
  byId("report-body").hidden = true;
  // What no filter on the page shows (or a failure of the network) as a toast as well.
  if (Object.keys(fields).length === 0 || Object.keys(rest).length) {
    toast(box.textContent, "error");
  }
}

// ----- start -----

async function start() {
  // The operator's language and time zone first: everything after is shown in them.
  const prefs = await get("/api/v1/auth/me/preferences");
  await useLocale(prefs.locale, prefs.time_zone);
  translatePage();
  const me = await get("/api/v1/auth/me");
  byId("me-name").textContent = me.name;
  byId("logout-button").addEventListener("click", () => logout());
  const [reports, queues, operators, pipelines] = await Promise.all([
    get("/api/v1/reports"),
    get("/api/v1/queues"),
    get("/api/v1/operators"),
    get("/api/v1/pipelines"),
    loadChannels(),
  ]);
  state.reports = reports;
  mountFilters({ queues, channels: conversationChannels(), operators, pipelines, onChange: change });
  await mountSubscriptions({
    reports,
    queues,
    operators,
    pipelines,
    current: () => ({ view: state.view, info: infoOf(state.view.report) }),
  });
  window.addEventListener("hashchange", () => showFromHash().catch(failed));
  await showFromHash();
}

function failed(error) {
  console.error(error);
  toast(t("The reports could not start: {reason}", { reason: error.message }), "error");
  setReady(true);
}

start().catch(failed);
