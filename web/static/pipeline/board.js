// The board: one column per stage (its count, total and weighted value) holding the cards of
// its leads. A card moves by drag and drop onto another column, by its "Move to…" menu, or
// with Alt+ArrowLeft/Right while it has the focus; opening it (click, Enter) shows the lead
// beside the board. main.js does the moving and opening (`useHandlers`).
import { byId, fill, formatTime, h } from "../common/dom.js";
import { formatNumber, t, tn } from "../common/i18n.js";
import { cardTitle, formatDay, money, moneyLine, operatorName, stageName, state } from "./state.js";

let handlers = {
  move: async () => {},
  open: () => {},
};
// The lead being dragged ({leadId, from}), and whether a redraw waits for the drop.
let dragging = null;
let redrawAfterDrag = false;

export function useHandlers(given) {
  handlers = { ...handlers, ...given };
}

/** Draw the board from `state.board`, keeping the focus (and an open "Move to…" menu) on the
 *  card that had it: live updates redraw while someone works with the keyboard. */
export function renderBoard() {
  if (dragging) {
    redrawAfterDrag = true;
    return;
  }
  const container = byId("columns");
  const active = document.activeElement;
  const activeCard = active instanceof Element ? active.closest(".lead-card") : null;
  const openMenu = container.querySelector(".lead-card details.move[open]");
  const keep = {
    focusLead: activeCard ? activeCard.dataset.leadId : null,
    focusMenu: Boolean(activeCard && active.closest("details.move")),
    menuLead: openMenu ? openMenu.closest(".lead-card").dataset.leadId : null,
  };
  fill(container, state.board.columns.map((column, index) => renderColumn(column, index)));
  container.setAttribute("aria-busy", "false");
  if (keep.menuLead) {
    const menu = cardElement(keep.menuLead)?.querySelector("details.move");
    if (menu) menu.open = true;
  }
  if (keep.focusLead) focusCard(keep.focusLead, { menu: keep.focusMenu });
}

export function cardElement(leadId) {
  return byId("columns").querySelector(`.lead-card[data-lead-id="${Number(leadId)}"]`);
}

/** Put the focus on a card's title (or its "Move to…" control); false if it is not shown. */
export function focusCard(leadId, { menu = false } = {}) {
  const card = cardElement(leadId);
  if (!card) return false;
  const target = menu ? card.querySelector("details.move summary") : card.querySelector(".card-open");
  target.focus();
  return true;
}

/** Show a card in another column at once, while the server is asked (a reload follows). */
export function placeCard(leadId, stageKey) {
  const card = cardElement(leadId);
  const list = byId("columns").querySelector(`.stage-column[data-stage="${stageKey}"] .cards`);
  if (!card || !list) return;
  const slot = card.closest("li");
  list.querySelector(".empty-column")?.remove();
  list.prepend(slot);
  card.classList.add("moving");
  card.dataset.stage = stageKey;
  const menu = card.querySelector("details.move");
  if (menu) menu.open = false;
}

function percent(probability) {
  return new Intl.NumberFormat(document.documentElement.lang || "en", { style: "percent" }).format(
    probability / 100,
  );
}

function renderColumn(column, index) {
  const stage = column.stage;
  const titleId = `stage-${stage.key}-title`;
  const section = h(
    "section",
    {
      class: `stage-column outcome-${stage.outcome}`,
      dataset: { stage: stage.key, outcome: stage.outcome, index },
      "aria-labelledby": titleId,
    },
    h(
      "header",
      { class: "column-head" },
      h(
        "h2",
        { id: titleId },
        h("span", { class: "stage-name" }, stageName(stage)),
        " ",
        h("span", { class: "badge quiet count", "aria-hidden": "true", dataset: { field: "count" } }, formatNumber(column.count)),
        h("span", { class: "visually-hidden" }, tn("{n} lead", "{n} leads", column.count)),
      ),
      h(
        "dl",
        { class: "column-figures" },
        h(
          "div",
          { dataset: { field: "total" } },
          h("dt", {}, t("Total")),
          h("dd", {}, moneyLine(column.totals) || "–"),
        ),
        h(
          "div",
          { dataset: { field: "weighted" } },
          h("dt", {}, t("Weighted ({percent})", { percent: percent(stage.probability) })),
          h("dd", {}, moneyLine(column.weighted) || "–"),
        ),
      ),
    ),
    h(
      "ol",
      { class: "cards", "aria-labelledby": titleId },
      column.cards.length
        ? column.cards.map((card) => h("li", {}, renderCard(card, index)))
        : h("li", { class: "empty-column muted" }, t("No leads here")),
    ),
    column.count > column.cards.length
      ? h(
          "p",
          { class: "muted small more" },
          t("Showing the latest {shown} of {count}", {
            shown: formatNumber(column.cards.length),
            count: formatNumber(column.count),
          }),
        )
      : null,
  );
  section.addEventListener("dragover", (event) => {
    if (!dragging || dragging.from === stage.key) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    section.classList.add("drop-target");
  });
  section.addEventListener("dragleave", (event) => {
    if (!section.contains(event.relatedTarget)) section.classList.remove("drop-target");
  });
  section.addEventListener("drop", (event) => {
    event.preventDefault();
    section.classList.remove("drop-target");
    if (!dragging || dragging.from === stage.key) return;
    const { leadId } = dragging;
    finishDrag();
    handlers.move(leadId, stage.key, { focus: false });
  });
  return section;
}

function finishDrag() {
  dragging = null;
  for (const element of document.querySelectorAll(".drop-target, .dragging")) {
    element.classList.remove("drop-target", "dragging");
  }
  if (redrawAfterDrag) {
    redrawAfterDrag = false;
    renderBoard();
  }
}

function nextStep(card, outcome) {
  if (card.next_task_id !== null) {
    const when = formatTime(card.next_task_due_at);
    return h(
      "p",
      { class: `next-step${card.next_task_overdue ? " overdue" : ""}`, dataset: { field: "next-step" } },
      card.next_task_overdue ? t("Overdue since {time}", { time: when }) : t("Next step {time}", { time: when }),
      card.next_task_note ? h("span", { class: "note" }, card.next_task_note) : null,
    );
  }
  if (card.needs_next_step && outcome === "open") {
    return h("p", { class: "flag no-next-step", dataset: { field: "next-step" } }, t("No next step"));
  }
  return null;
}

function moveMenu(card, title) {
  const lead = card.lead;
  const targets = state.board.columns
    .map((column) => column.stage)
    .filter((stage) => stage.key !== lead.stage);
  const details = h(
    "details",
    { class: "move" },
    h("summary", { "aria-describedby": `lead-${lead.id}-title` }, t("Move to…")),
    h(
      "div",
      { class: "move-targets", role: "group", "aria-label": t("Move {title} to", { title }) },
      targets.map((stage) =>
        h(
          "button",
          {
            type: "button",
            class: `move-target outcome-${stage.outcome}`,
            dataset: { stage: stage.key },
            onclick: () => handlers.move(lead.id, stage.key, { focus: true }),
          },
          stageName(stage),
        ),
      ),
    ),
  );
  details.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && details.open) {
      event.preventDefault();
      event.stopPropagation();
      details.open = false;
      details.querySelector("summary").focus();
    }
  });
  return details;
}

function renderCard(card, columnIndex) {
  const lead = card.lead;
  const title = cardTitle(card);
  const titleId = `lead-${lead.id}-title`;
  const facts = [];
  if (lead.title && card.contact_name) {
    facts.push(h("p", { class: "contact", dataset: { field: "contact" } }, card.contact_name));
  }
  const value = lead.value !== null ? money(lead.value, lead.currency) : "";
  const closes = lead.expected_close_on ? t("closes {day}", { day: formatDay(lead.expected_close_on) }) : "";
  if (value || closes) {
    facts.push(
      h(
        "p",
        { class: "figures" },
        value ? h("span", { class: "value", dataset: { field: "value" } }, value) : null,
        value && closes ? " · " : null,
        closes ? h("span", { dataset: { field: "expected-close" } }, closes) : null,
      ),
    );
  }
  facts.push(
    h(
      "p",
      { class: `owner${lead.owner_id === null ? " unowned" : ""}`, dataset: { field: "owner" } },
      operatorName(lead.owner_id),
    ),
  );
  if (lead.lost_reason) {
    facts.push(h("p", { class: "lost-reason", dataset: { field: "lost-reason" } }, lead.lost_reason));
  }
  const element = h(
    "article",
    {
      class: `lead-card${card.needs_next_step ? " needs-next-step" : ""}`,
      // Someone else's lead (for an operator) cannot be moved: it does not pretend it can.
      draggable: card.may_change ? "true" : "false",
      dataset: { leadId: lead.id, stage: lead.stage, mayChange: String(card.may_change) },
      "aria-labelledby": titleId,
      "aria-current": state.leadId === lead.id ? "true" : null,
    },
    h(
      "h3",
      {},
      h(
        "button",
        {
          type: "button",
          class: "card-open",
          id: titleId,
          title: t("Open (Enter); move with Alt+←/→"),
          onclick: () => handlers.open(lead.id),
        },
        title,
      ),
    ),
    facts,
    nextStep(card, state.board.columns[columnIndex].stage.outcome),
    card.may_change ? moveMenu(card, title) : null,
  );
  element.addEventListener("click", (event) => {
    // A click on the card's free space opens it; its controls do their own thing.
    if (event.target instanceof Element && event.target.closest("button, a, details, input, select")) return;
    handlers.open(lead.id);
  });
  element.addEventListener("keydown", (event) => {
    if (!card.may_change || !event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    event.preventDefault();
    const columns = state.board.columns;
    const target = columns[columnIndex + (event.key === "ArrowRight" ? 1 : -1)];
    if (target) handlers.move(lead.id, target.stage.key, { focus: true });
  });
  element.addEventListener("dragstart", (event) => {
    if (!card.may_change) {
      event.preventDefault();
      return;
    }
    dragging = { leadId: lead.id, from: lead.stage };
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", String(lead.id));
    element.classList.add("dragging");
  });
  element.addEventListener("dragend", () => finishDrag());
  return element;
}
