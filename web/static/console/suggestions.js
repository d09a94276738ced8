// Suggested replies (issue 15): the composer's panel of answers the team gave to questions
// like the customer's (and canned responses, knowledge articles), each with where it came from
// and why it matched; and, for supervisors, the timeline's control over which of the team's
// replies are suggested.
//
//   GET   /api/v1/conversations/{id}/suggestions?limit=3        the panel (each answer counts
//         as "shown": asked when the conversation opens and when the customer writes again,
//         only while the panel is open)
//   POST  /api/v1/conversations/{id}/suggestions/{sid}/inserted  Insert (and Send link)
//   PATCH /api/v1/interactions/{id}/suggestion                   shareable / excluded
//
// The reply names the suggestion it started from (`chosenSuggestion`: conversation.js sends it
// as `suggestion_id`); the server tells sent from edited. The text comes filled for the
// conversation except the ERP's placeholders ({{order.number}}...), which are filled here as a
// canned response's are (order_links.js).
import { ApiError, get, patch, post, withQuery } from "../common/api.js";
import { fill, h, toast } from "../common/dom.js";
import { formatNumber, t, tn } from "../common/i18n.js";
import { openArticle } from "./knowledge.js";
import { fillErpPlaceholders, writtenOrderNumbers } from "./order_links.js";
import { isSupervisor, signal, state } from "./state.js";

const LIMIT = 3;
const PREVIEW_CHARS = 200;
const COLLAPSED_KEY = "omnicrm.console.suggestions-collapsed";
// What the customer writes that asks something (the server's question kinds).
const QUESTION_KINDS = ["message", "form"];

// Whether the operator folded the panel away: kept across conversations (and visits).
let collapsed = readCollapsed();
// Timeline entries whose suggestion settings are open: kept across the timeline's refreshes.
const openCurations = new Set();

function readCollapsed() {
  try {
    return window.localStorage.getItem(COLLAPSED_KEY) === "1";
  } catch {
    return false;
  }
}

function storeCollapsed(value) {
  collapsed = value;
  try {
    if (value) window.localStorage.setItem(COLLAPSED_KEY, "1");
    else window.localStorage.removeItem(COLLAPSED_KEY);
  } catch {
    // Storage refused (private mode): the choice lasts this page.
  }
}

// ----- the composer's panel -----

/** The panel for the conversation `conversationId`'s composer. `insert(text)` puts text into
 *  the reply box at the caret; `note(text)` shows what was left empty ("" hides it). */
export function buildSuggestions({ conversationId, textarea, insert, note }) {
  const toggle = h(
    "button",
    {
      type: "button",
      class: "suggestions-toggle",
      id: "suggestions-toggle",
      "aria-expanded": collapsed ? "false" : "true",
      "aria-controls": "suggestions-body",
    },
    h("span", { class: "suggestions-caret", "aria-hidden": "true" }),
    t("Suggested replies"),
  );
  const count = h("span", { class: "suggestions-count muted" });
  const body = h("div", { class: "suggestions-body", id: "suggestions-body", hidden: collapsed });
  const root = h(
    "section",
    {
      class: "suggestions",
      "aria-labelledby": "suggestions-toggle",
      dataset: { state: "idle", collapsed: collapsed ? "true" : "false" },
    },
    h("h2", { class: "suggestions-head" }, toggle, " ", count),
    body,
  );
  const panel = {
    root,
    body,
    count,
    toggle,
    conversationId,
    textarea,
    insert,
    note,
    items: [],
    chosen: null, // the id of the suggestion the reply started from
    wanted: null, // the customer's latest message the suggestions should answer
    loaded: null, // the one they were asked for
    loads: 0,
  };
  fill(body, h("p", { class: "muted suggestions-empty" }, t("Looking for suggestions…")));
  toggle.addEventListener("click", () => setCollapsed(panel, toggle.getAttribute("aria-expanded") === "true"));
  // Clearing the reply box forgets the suggestion it started from.
  textarea.addEventListener("input", () => {
    if (!textarea.value.trim()) forgetSuggestion(panel);
  });
  return panel;
}

function setCollapsed(panel, value) {
  storeCollapsed(value);
  panel.toggle.setAttribute("aria-expanded", value ? "false" : "true");
  panel.root.dataset.collapsed = value ? "true" : "false";
  panel.body.hidden = value;
  if (!value && panel.wanted !== panel.loaded) load(panel);
}

/** After the conversation (re)loaded: ask again when the customer wrote something new (the
 *  newest question of this conversation in `timelineItems`, newest first). */
export function updateSuggestions(panel, timelineItems) {
  if (!panel) return;
  const latest = timelineItems.find(
    (item) =>
      item.conversation_id === panel.conversationId &&
      item.direction === "in" &&
      QUESTION_KINDS.includes(item.kind),
  );
  panel.wanted = latest ? latest.id : 0;
  if (panel.wanted !== panel.loaded && !collapsed) load(panel);
}

async function load(panel) {
  const asked = panel.wanted;
  panel.loaded = asked;
  panel.loads += 1;
  const token = panel.loads;
  // What was shown stays until the answer comes: the composer does not jump.
  panel.root.dataset.state = "loading";
  panel.body.setAttribute("aria-busy", "true");
  let answer;
  try {
    answer = await get(
      withQuery(`/api/v1/conversations/${panel.conversationId}/suggestions`, { limit: LIMIT }),
    );
  } catch (error) {
    // Asked again when the customer writes again (not on every refresh of the view).
    if (token !== panel.loads) return;
    panel.items = [];
    panel.root.dataset.state = "error";
    panel.body.removeAttribute("aria-busy");
    panel.count.textContent = "";
    fill(
      panel.body,
      h("p", { class: "muted suggestions-empty" }, t("Suggestions are not available: {reason}", { reason: error.message })),
    );
    return;
  }
  if (token !== panel.loads) return;
  panel.items = answer.suggestions || [];
  panel.body.removeAttribute("aria-busy");
  // The customer's message they answer (the tests wait on it).
  panel.root.dataset.answering = String(asked);
  render(panel, answer);
}

function render(panel, answer) {
  const items = panel.items;
  panel.root.dataset.state = items.length ? "ready" : "empty";
  panel.root.dataset.engine = answer.engine || "";
  panel.count.textContent = items.length ? `(${formatNumber(items.length)})` : "";
  if (!items.length) {
    fill(
      panel.body,
      h(
        "p",
        { class: "muted suggestions-empty" },
        answer.question
          ? t("Nothing the team has answered before matches this question.")
          : t("Suggestions appear when the customer asks something."),
      ),
    );
    return;
  }
  fill(
    panel.body,
    h(
      "ul",
      { class: "suggestion-list", "aria-label": t("Suggested replies, best first") },
      items.map((item, index) => renderSuggestion(panel, item, index)),
    ),
  );
}

function kindLabel(kind) {
  const labels = { reply: t("Team reply"), canned: t("Canned response"), article: t("Article") };
  return labels[kind] || kind;
}

function preview(text) {
  const flat = (text || "").replace(/\s+/g, " ").trim();
  return flat.length > PREVIEW_CHARS ? `${flat.slice(0, PREVIEW_CHARS - 1)}…` : flat;
}

/** Where a suggestion came from: the conversation it was sent in, the article (each opens in
 *  the console), the canned response's title. */
function sourceOf(item) {
  const source = item.source || {};
  if (item.kind === "reply" && source.conversation_id) {
    const id = source.conversation_id;
    return h(
      "span",
      { class: "suggestion-source", title: item.title || null },
      h(
        "a",
        {
          href: `#c=${id}`,
          class: "suggestion-source-link",
          dataset: { conversationId: id },
          onclick: (event) => {
            event.preventDefault();
            signal("open", { id });
          },
        },
        t("conversation #{id}", { id }),
      ),
    );
  }
  if (item.kind === "article" && source.article_id) {
    const id = source.article_id;
    return h(
      "span",
      { class: "suggestion-source", title: item.title || null },
      h(
        "a",
        {
          href: "#",
          class: "suggestion-source-link",
          dataset: { articleId: id },
          onclick: (event) => {
            event.preventDefault();
            openArticle(id);
          },
        },
        item.title || t("article {id}", { id }),
      ),
    );
  }
  return h("span", { class: "suggestion-source", title: item.title || null }, item.title || "");
}

/** Why it matched: the customer's words found in it (its score is beside its buttons). */
function reasonOf(item) {
  const terms = item.terms || [];
  if (!terms.length) return h("p", { class: "suggestion-why muted" }, t("No word in common (similar meaning)"));
  return h(
    "p",
    { class: "suggestion-why muted", title: terms.join(", ") },
    tn("Matching word:", "Matching words:", terms.length),
    " ",
    terms.map((term) => [h("span", { class: "suggestion-term" }, term), " "]),
  );
}

function scoreOf(item) {
  const score = formatNumber(Math.round(Number(item.score) * 100) / 100);
  return h(
    "span",
    { class: "suggestion-score muted", title: t("How well it matches, the team's use of it counted in") },
    t("score {score}", { score }),
  );
}

function renderSuggestion(panel, item, index) {
  const title = item.title || kindLabel(item.kind);
  const chosen = panel.chosen === item.id;
  return h(
    "li",
    {
      class: `suggestion${chosen ? " chosen" : ""}`,
      dataset: { suggestionId: item.id, kind: item.kind, chosen: chosen ? "true" : "false" },
    },
    h(
      "div",
      { class: "suggestion-head" },
      h("span", { class: `pill suggestion-kind kind-${item.kind}` }, kindLabel(item.kind)),
      " ",
      sourceOf(item),
    ),
    h("p", { class: "suggestion-preview", title: item.text }, preview(item.text)),
    reasonOf(item),
    h(
      "div",
      { class: "suggestion-actions" },
      h(
        "button",
        {
          type: "button",
          class: "suggestion-insert",
          "aria-label": t("Insert suggestion {n}: {title}", { n: index + 1, title }),
          onclick: () => insertSuggestion(panel, item),
        },
        t("Insert"),
      ),
      item.link
        ? h(
            "button",
            {
              type: "button",
              class: "suggestion-send-link",
              "aria-label": t("Send the link to the article {title}", { title }),
              onclick: () => sendLink(panel, item),
            },
            t("Send link"),
          )
        : null,
      scoreOf(item),
    ),
  );
}

/** Put the suggestion into the reply box (the ERP's placeholders filled from the order the
 *  customer wrote about here, else their latest, as for a canned response) and remember it
 *  for the reply. */
async function insertSuggestion(panel, item) {
  const conversationId = panel.conversationId;
  const contactId =
    state.conversation && state.conversation.id === conversationId ? state.conversation.contact_id : null;
  let filled = { text: item.text, note: "" };
  if (contactId !== null) {
    try {
      const written = writtenOrderNumbers(state.timelineItems, conversationId);
      filled = await fillErpPlaceholders("", item.text, contactId, written);
    } catch (error) {
      console.error(error);
    }
  }
  if (state.conversationId !== conversationId) return;
  panel.insert(filled.text);
  panel.note(filled.note);
  choose(panel, item.id);
  recordInserted(panel, item);
}

/** A public article's link into the reply. The reply starts from the article unless it
 *  already started from another suggestion (the server counts a sent link as the article
 *  used, and never as ignored). */
function sendLink(panel, item) {
  const box = panel.textarea;
  const before = box.value.slice(0, box.selectionStart ?? box.value.length);
  panel.insert(before && !/\s$/.test(before) ? ` ${item.link}` : item.link);
  if (panel.chosen === null) choose(panel, item.id);
  recordInserted(panel, item);
}

function recordInserted(panel, item) {
  post(`/api/v1/conversations/${panel.conversationId}/suggestions/${item.id}/inserted`).catch((error) =>
    console.warn("suggestion not recorded as inserted", error),
  );
}

function choose(panel, id) {
  panel.chosen = id;
  for (const card of panel.body.querySelectorAll(".suggestion")) {
    const mine = Number(card.dataset.suggestionId) === id;
    card.classList.toggle("chosen", mine);
    card.dataset.chosen = mine ? "true" : "false";
  }
}

/** The suggestion the reply in the box started from (its id), or null. */
export function chosenSuggestion(panel) {
  return panel ? panel.chosen : null;
}

/** Send the reply `body` (POST .../reply), naming the suggestion it started from. A suggestion
 *  gone meanwhile (its canned response deleted) does not stop the reply: sent again without. */
export async function sendReply(panel, conversationId, body) {
  const path = `/api/v1/conversations/${conversationId}/reply`;
  const chosen = body.template ? null : chosenSuggestion(panel);
  if (chosen === null) return post(path, body);
  try {
    return await post(path, { ...body, suggestion_id: chosen });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    forgetSuggestion(panel);
    return post(path, body);
  }
}

/** Forget it: the box was cleared, or the reply went out. */
export function forgetSuggestion(panel) {
  if (panel && panel.chosen !== null) choose(panel, null);
}

// ----- supervisors: which replies are suggested -----

/** On an operator's reply in the timeline, for supervisors: suggest it to everyone (also those
 *  who cannot see its conversation), or never. Null for anything else. */
export function curationControl(item) {
  const meta = item.meta || {};
  if (!isSupervisor() || item.direction !== "out" || item.kind !== "message" || !item.operator_id || meta.automatic) {
    return null;
  }
  let marks = { shareable: false, excluded: false, ...(meta.suggestion || {}) };
  const summary = h("summary", {}, curationWords(marks));
  const shareable = h("input", { type: "checkbox", name: "shareable", checked: Boolean(marks.shareable) });
  const excluded = h("input", { type: "checkbox", name: "excluded", checked: Boolean(marks.excluded) });
  const details = h(
    "details",
    {
      class: "suggestion-curation",
      dataset: {
        interactionId: item.id,
        shareable: marks.shareable ? "true" : "false",
        excluded: marks.excluded ? "true" : "false",
      },
      open: openCurations.has(item.id),
      ontoggle: () => {
        if (details.open) openCurations.add(item.id);
        else openCurations.delete(item.id);
      },
    },
    summary,
    h(
      "fieldset",
      {},
      h("legend", { class: "visually-hidden" }, t("Suggest this reply")),
      h("label", {}, shareable, " ", t("Suggest to everyone (shareable)")),
      h("label", {}, excluded, " ", t("Never suggest")),
    ),
  );
  const change = async (body) => {
    shareable.disabled = true;
    excluded.disabled = true;
    try {
      const result = await patch(`/api/v1/interactions/${item.id}/suggestion`, body);
      marks = { ...marks, shareable: result.shareable, excluded: result.excluded };
      // The timeline's copy follows until it is loaded again.
      item.meta = { ...meta, suggestion: marks };
      shareable.checked = marks.shareable;
      excluded.checked = marks.excluded;
      details.dataset.shareable = marks.shareable ? "true" : "false";
      details.dataset.excluded = marks.excluded ? "true" : "false";
      summary.textContent = curationWords(marks);
      toast(curationResult(result));
    } catch (error) {
      shareable.checked = Boolean(marks.shareable);
      excluded.checked = Boolean(marks.excluded);
      toast(error.message, "error");
    } finally {
      shareable.disabled = false;
      excluded.disabled = false;
    }
  };
  shareable.addEventListener("change", () => change({ shareable: shareable.checked }));
  excluded.addEventListener("change", () => change({ excluded: excluded.checked }));
  return details;
}

function curationWords(marks) {
  if (marks.excluded) return t("Never suggested");
  if (marks.shareable) return t("Suggested to everyone");
  return t("Suggestion settings");
}

function curationResult(result) {
  if (result.excluded) return t("This reply is never suggested.");
  if (result.shareable) {
    return result.indexed
      ? t("This reply is suggested to everyone.")
      : t("This reply will be suggested to everyone once its conversation is resolved.");
  }
  return result.indexed
    ? t("This reply is suggested to those who may see its conversation.")
    : t("This reply will be suggested once its conversation is resolved.");
}
