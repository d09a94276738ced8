// The board's filters (owner, source, creation days) and the URL's hash that keeps them with
// the pipeline shown and the open lead: #owner=me&source=form:contact&from=2026-05-01&lead=7.
// A reload, or a link, shows the same board.
import { byId, fill, h } from "../common/dom.js";
import { currentTimeZone, t } from "../common/i18n.js";
import { sourceLabel, state } from "./state.js";

export const FILTERS = ["owner", "source", "from", "to"];
const DAY = /^\d{4}-\d{2}-\d{2}$/;

// ----- the URL's hash: pipeline, filters, the open lead -----

export function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const day = (name) => (DAY.test(params.get(name) || "") ? params.get(name) : "");
  const owner = params.get("owner") || "";
  return {
    pipeline: Number(params.get("pipeline")) || null,
    lead: Number(params.get("lead")) || null,
    filters: {
      owner: ["me", "none"].includes(owner) || /^\d+$/.test(owner) ? owner : "",
      source: (params.get("source") || "").slice(0, 100),
      from: day("from"),
      to: day("to"),
    },
  };
}

export function writeHash() {
  const params = new URLSearchParams();
  if (state.pipelines.length > 1 && state.pipelineId !== null) params.set("pipeline", String(state.pipelineId));
  for (const name of FILTERS) if (state.filters[name]) params.set(name, state.filters[name]);
  if (state.leadId !== null) params.set("lead", String(state.leadId));
  const text = params.toString();
  if (location.hash.slice(1) !== text) {
    history.replaceState(null, "", text ? `#${text}` : location.pathname + location.search);
  }
}

/** The board's query for the filters. */
export function boardQuery() {
  const { owner, source, from, to } = state.filters;
  const query = { source, created_from: from, created_to: to };
  // The days are the user's: their preference, else the browser's own time zone.
  if (from || to) query.time_zone = currentTimeZone() || Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (owner === "me") query.owner_id = state.me.id;
  else if (owner === "none") query.unowned = true;
  else if (owner) query.owner_id = owner;
  return query;
}

function option(value, label) {
  return h("option", { value }, label);
}

export function renderPipelineChoice() {
  const select = byId("pipeline-choice");
  fill(select, state.pipelines.map((pipeline) => option(String(pipeline.id), pipeline.name)));
  select.value = String(state.pipelineId);
  byId("pipeline-field").hidden = state.pipelines.length < 2;
}

export function renderOwnerChoices() {
  const select = byId("filter-owner");
  const operators = [...state.operators.values()].filter((operator) => operator.active);
  fill(
    select,
    option("", t("Anyone")),
    option("me", t("Mine")),
    option("none", t("Unowned")),
    h("optgroup", { label: t("Operators") }, operators.map((operator) => option(String(operator.id), operator.name))),
  );
  select.value = state.filters.owner;
  if (select.value !== state.filters.owner) select.value = "";
}

export function renderSources() {
  fill(
    byId("sources"),
    [...state.sources].sort().map((source) => h("option", { value: source, label: sourceLabel(source) })),
  );
}

export function showFilters() {
  byId("filter-owner").value = state.filters.owner;
  byId("filter-source").value = state.filters.source;
  byId("filter-from").value = state.filters.from;
  byId("filter-to").value = state.filters.to;
  byId("filter-to").min = state.filters.from;
  byId("filter-from").max = state.filters.to;
  byId("filter-clear").disabled = FILTERS.every((name) => !state.filters[name]);
}

function readFilters() {
  const from = byId("filter-from").value;
  const to = byId("filter-to").value;
  return {
    owner: byId("filter-owner").value,
    source: byId("filter-source").value.trim(),
    from,
    // An end before the start would be refused: the range is one day then.
    to: to && from && to < from ? from : to,
  };
}

/** Listen to the filter controls; `changed` reloads the board. */
export function wireFilters(changed) {
  const apply = () => {
    state.filters = readFilters();
    showFilters();
    writeHash();
    changed();
  };
  byId("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  for (const id of ["filter-owner", "filter-source", "filter-from", "filter-to"]) {
    byId(id).addEventListener("change", apply);
  }
  byId("filter-clear").addEventListener("click", () => {
    state.filters = { owner: "", source: "", from: "", to: "" };
    showFilters();
    writeHash();
    changed();
  });
  byId("pipeline-choice").addEventListener("change", (event) => {
    state.pipelineId = Number(event.target.value);
    writeHash();
    changed();
  });
}
