// What the pipeline board knows right now, and how it shows the values of the data (money,
// days, stages, sources) in the operator's language. main.js loads it; board.js and panel.js
// draw from it.
import { channelLabel } from "../common/channels.js";
import { currentLocale, formatMoney, t } from "../common/i18n.js";

export const state = {
  me: null,
  // Every operator by id (inactive ones too: they may still own leads).
  operators: new Map(),
  pipelines: [],
  pipelineId: null,
  // The last GET /api/v1/pipelines/{id}/board answer.
  board: null,
  // As in the URL's hash: owner is "" (anyone), "me", "none" (unowned) or an operator id.
  filters: { owner: "", source: "", from: "", to: "" },
  // The lead open in the side panel.
  leadId: null,
  // Lead sources seen on the board, offered by the source filter.
  sources: new Set(),
};

export function isSupervisor() {
  return Boolean(state.me && (state.me.role === "supervisor" || state.me.role === "admin"));
}

export function operatorName(id) {
  if (id === null || id === undefined) return t("Unowned");
  const operator = state.operators.get(id);
  return operator ? operator.name : t("operator {id}", { id });
}

/** The stages of the pipeline on the board, in order. */
export function stages() {
  if (state.board) return state.board.pipeline.stages;
  const pipeline = state.pipelines.find((one) => one.id === state.pipelineId);
  return pipeline ? pipeline.stages : [];
}

export function stageByKey(key) {
  return stages().find((stage) => stage.key === key) || null;
}

// The stages every installation starts with are named in English in the data; shown in the
// operator's language. Names an admin gave are shown as written.
function defaultStageNames() {
  return {
    New: t("New"),
    Qualified: t("Qualified"),
    Proposal: t("Proposal"),
    Won: t("Won"),
    Lost: t("Lost"),
  };
}

export function stageName(stage) {
  if (!stage) return "";
  return defaultStageNames()[stage.name] || stage.name;
}

/** Where a lead came from: "form:contact" (a web form), "conversation:email" (made from a
 *  conversation), "manual" (for a contact); anything else as stored. */
export function sourceLabel(source) {
  if (!source) return "";
  if (source === "manual") return t("Made by hand");
  const [kind, ...rest] = source.split(":");
  const name = rest.join(":");
  if (kind === "form" && name) return t("Web form {name}", { name });
  if (kind === "conversation" && name) return t("Conversation on {channel}", { channel: channelLabel(name) });
  return source;
}

/** An amount in its currency ("" for none: the number alone). */
export function money(amount, currency) {
  return formatMoney(amount, currency || "");
}

/** Amounts per currency ({"EUR": "1200.00", "": "5.00"}) as one line; "" if there are none. */
export function moneyLine(amounts) {
  return Object.entries(amounts || {})
    .sort(([a], [b]) => (a === "" ? 1 : b === "" ? -1 : a.localeCompare(b)))
    .map(([currency, amount]) => money(amount, currency))
    .join(" · ");
}

/** A calendar day ("2026-05-01") in the operator's language; the day as written, whatever the
 *  time zone. */
export function formatDay(day) {
  if (!day) return "";
  const date = new Date(`${day}T00:00:00Z`);
  if (Number.isNaN(date.getTime())) return day;
  return new Intl.DateTimeFormat(currentLocale(), { dateStyle: "medium", timeZone: "UTC" }).format(date);
}

/** What a card is called: its title, else its contact's name. */
export function cardTitle(card) {
  return card.lead.title || card.contact_name || t("Lead {id}", { id: card.lead.id });
}
