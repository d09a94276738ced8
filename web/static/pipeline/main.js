// The sales pipeline board: the leads the operator may see, by stage, filtered by owner,
// source and creation day (the filters live in the URL's hash, so a reload keeps them), moved
// by drag and drop or the keyboard, opened beside the board (#lead=<id> opens one), and
// redrawn live when someone else moves or makes a lead.
import { get, logout, patch, withQuery } from "../common/api.js";
import { loadChannels } from "../common/channels.js";
import { byId, fill, h, toast } from "../common/dom.js";
import { t, tn, translatePage, useLocale } from "../common/i18n.js";
import { coalesce, connectLive } from "../common/live.js";
import { cardElement, focusCard, placeCard, renderBoard, useHandlers } from "./board.js";
import { closePanel, openLead, panelHasEdits, refreshPanel, usePanelHandlers } from "./panel.js";
import {
  FILTERS,
  boardQuery,
  readHash,
  renderOwnerChoices,
  renderPipelineChoice,
  renderSources,
  showFilters,
  wireFilters,
  writeHash,
} from "./filters.js";
import { cardTitle, moneyLine, stageByKey, stageName, state } from "./state.js";

// ----- loading -----

let loads = 0;

async function loadBoard() {
  const ticket = ++loads;
  byId("columns").setAttribute("aria-busy", "true");
  const board = await get(withQuery(`/api/v1/pipelines/${state.pipelineId}/board`, boardQuery()));
  // A newer load (another filter) is on its way: it draws.
  if (ticket !== loads) return;
  state.board = board;
  for (const column of board.columns) {
    for (const card of column.cards) state.sources.add(card.lead.source);
  }
  byId("board-title").textContent = board.pipeline.name;
  renderBoard();
  renderSummary();
  renderSources();
  markCurrent();
}

async function showBoard() {
  try {
    await loadBoard();
  } catch (error) {
    byId("columns").setAttribute("aria-busy", "false");
    toast(t("The board could not load: {reason}", { reason: error.message }), "error");
  }
}

const reloadBoard = coalesce(() => loadBoard(), 200);
const reloadPanel = coalesce(() => refreshPanel(), 200);

/** The whole board in one line: how many leads, and the open ones' value and weighted value. */
function renderSummary() {
  const totals = {};
  const weighted = {};
  let count = 0;
  for (const column of state.board.columns) {
    count += column.count;
    if (column.stage.outcome !== "open") continue;
    for (const [into, from] of [
      [totals, column.totals],
      [weighted, column.weighted],
    ]) {
      for (const [currency, amount] of Object.entries(from)) {
        into[currency] = Math.round(((into[currency] || 0) + Number(amount)) * 100) / 100;
      }
    }
  }
  const parts = [tn("{n} lead", "{n} leads", count)];
  if (Object.keys(totals).length) {
    parts.push(t("open {total}, weighted {weighted}", { total: moneyLine(totals), weighted: moneyLine(weighted) }));
  }
  byId("board-summary").textContent = parts.join(" · ");
}

// ----- moving a card -----

function findCard(leadId) {
  for (const column of state.board.columns) {
    const card = column.cards.find((one) => one.lead.id === leadId);
    if (card) return card;
  }
  return null;
}

let answerReason = null;

/** Ask why a lead was lost (the lost-stage dialog): the reason, or null if cancelled. */
function askReason(title, stage) {
  const dialog = byId("lost-dialog");
  byId("lost-what").textContent = t("“{title}” goes to {stage}.", { title, stage: stageName(stage) });
  byId("lost-reason").value = "";
  byId("lost-reason").removeAttribute("aria-invalid");
  byId("lost-error").textContent = "";
  if (answerReason) answerReason(null);
  return new Promise((resolve) => {
    answerReason = resolve;
    dialog.showModal();
    byId("lost-reason").focus();
  });
}

function wireReasonDialog() {
  const dialog = byId("lost-dialog");
  const answer = (reason) => {
    const resolve = answerReason;
    answerReason = null;
    if (resolve) resolve(reason);
  };
  byId("lost-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const reason = byId("lost-reason").value.trim();
    if (!reason) {
      byId("lost-error").textContent = t("Say why the lead was lost.");
      byId("lost-reason").setAttribute("aria-invalid", "true");
      byId("lost-reason").focus();
      return;
    }
    answer(reason);
    dialog.close();
  });
  byId("lost-cancel").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => answer(null));
}

async function moveLead(leadId, stageKey, { focus = false } = {}) {
  const card = findCard(leadId);
  const stage = stageByKey(stageKey);
  if (!card || !stage || card.lead.stage === stageKey) return;
  const title = cardTitle(card);
  const body = { stage: stageKey };
  if (stage.outcome === "lost") {
    const reason = await askReason(title, stage);
    if (reason === null) {
      if (focus) focusCard(leadId);
      return;
    }
    body.reason = reason;
  }
  placeCard(leadId, stageKey);
  if (focus) focusCard(leadId);
  try {
    await patch(`/api/v1/leads/${leadId}`, body);
    toast(t("“{title}” moved to {stage}", { title, stage: stageName(stage) }));
  } catch (error) {
    const fields = error.fields || {};
    toast(t("Not moved: {reason}", { reason: fields.reason || fields.stage || error.message }), "error");
  }
  // The card goes where the server says: the new stage, or back after an error.
  await showBoard();
  if (focus && !cardElement(leadId)?.contains(document.activeElement)) focusCard(leadId);
  if (state.leadId === leadId) reloadPanel();
}

// ----- the open lead -----

function markCurrent() {
  for (const card of byId("columns").querySelectorAll(".lead-card")) {
    if (Number(card.dataset.leadId) === state.leadId) card.setAttribute("aria-current", "true");
    else card.removeAttribute("aria-current");
  }
}

function openCard(leadId) {
  state.leadId = leadId;
  writeHash();
  markCurrent();
  openLead(leadId, { focus: true }).catch((error) => toast(error.message, "error"));
}

function closeCard() {
  const leadId = state.leadId;
  closePanel();
  writeHash();
  markCurrent();
  if (leadId !== null) focusCard(leadId);
}

async function onHashChange() {
  const wanted = readHash();
  let changed = false;
  if (wanted.pipeline && wanted.pipeline !== state.pipelineId && state.pipelines.some((p) => p.id === wanted.pipeline)) {
    state.pipelineId = wanted.pipeline;
    byId("pipeline-choice").value = String(wanted.pipeline);
    changed = true;
  }
  if (FILTERS.some((name) => wanted.filters[name] !== state.filters[name])) {
    state.filters = wanted.filters;
    showFilters();
    changed = true;
  }
  if (changed) await showBoard();
  if (wanted.lead !== state.leadId) {
    if (wanted.lead) openCard(wanted.lead);
    else closeCard();
  }
}

function onKey(event) {
  if (event.key !== "Escape" || event.defaultPrevented || state.leadId === null) return;
  // An open dialog takes its own Esc; unsaved typing in the panel is not thrown away.
  if (document.querySelector("dialog[open]") || panelHasEdits()) return;
  event.preventDefault();
  closeCard();
}

// ----- live -----

let connectedOnce = false;

async function loadTeam() {
  const operators = await get("/api/v1/operators");
  state.operators = new Map(operators.map((operator) => [operator.id, operator]));
}

function onEvent(event) {
  const ids = event.ids || {};
  switch (event.type) {
    case "hello":
      if (connectedOnce) {
        reloadBoard();
        reloadPanel();
      }
      connectedOnce = true;
      break;
    case "resync":
      reloadBoard();
      reloadPanel();
      break;
    case "lead.created":
    case "lead.updated":
      reloadBoard();
      if (ids.lead === state.leadId) reloadPanel();
      break;
    case "task.updated":
      // A next step set, done or moved: the cards' flags and the open lead's tasks.
      reloadBoard();
      reloadPanel();
      break;
    case "operator.created":
    case "operator.updated":
      loadTeam()
        .then(() => {
          renderOwnerChoices();
          reloadBoard();
        })
        .catch((error) => console.error(error));
      break;
    default:
      break;
  }
}

function setLiveState(value) {
  const element = byId("live-state");
  element.dataset.state = value;
  element.textContent = value === "live" ? t("live") : t("reconnecting…");
}

// ----- start -----

async function choosePipeline(wanted) {
  const known = (id) => state.pipelines.some((pipeline) => pipeline.id === id);
  if (wanted.pipeline && known(wanted.pipeline)) return wanted.pipeline;
  if (wanted.lead) {
    // A link to a lead (#lead=7) shows the board it is on.
    const lead = await get(`/api/v1/leads/${wanted.lead}`).catch(() => null);
    if (lead && known(lead.pipeline_id)) return lead.pipeline_id;
  }
  return state.pipelines[0].id;
}

async function start() {
  // The operator's language and time zone first: everything after is shown in them.
  const prefs = await get("/api/v1/auth/me/preferences");
  await useLocale(prefs.locale, prefs.time_zone);
  translatePage();
  const [me, pipelines] = await Promise.all([
    get("/api/v1/auth/me"),
    get("/api/v1/pipelines"),
    loadTeam(),
    loadChannels(),
  ]);
  state.me = me;
  state.pipelines = pipelines;
  byId("me-name").textContent = me.name;
  byId("monitor-link").hidden = !(me.role === "supervisor" || me.role === "admin");
  byId("logout-button").addEventListener("click", () => logout());
  if (!pipelines.length) {
    fill(byId("columns"), h("p", { class: "muted" }, t("There is no pipeline yet.")));
    document.body.dataset.ready = "true";
    return;
  }
  const wanted = readHash();
  state.filters = wanted.filters;
  state.pipelineId = await choosePipeline(wanted);
  renderPipelineChoice();
  renderOwnerChoices();
  state.filters.owner = byId("filter-owner").value;
  showFilters();
  wireFilters(showBoard);
  wireReasonDialog();
  useHandlers({ move: moveLead, open: openCard });
  usePanelHandlers({
    changed: async () => {
      await Promise.all([showBoard(), refreshPanel()]);
    },
    closed: closeCard,
  });
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", () => onHashChange().catch((error) => console.error(error)));
  if (wanted.lead) state.leadId = wanted.lead;
  await loadBoard();
  writeHash();
  if (wanted.lead) await openLead(wanted.lead);
  connectLive({ onEvent, onState: setLiveState });
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  console.error(error);
  toast(t("The pipeline could not start: {reason}", { reason: error.message }), "error");
});
