// Sales pipelines (core/pipelines.py, docs/admin.md "Pipelines"): each with its stages in board
// order. A stage's key is what leads store, so it is typed once and never changes; its
// probability weighs the board's column value, its outcome closes leads as won or lost, and its
// follow-up rule gives a lead entering it a task. The editor sends the whole pipeline (PUT
// replaces it, stages matched by key); the API's per-field errors ("stages.2.probability") go
// beside the field of that row, a refusal (409: a stage still holds leads, the name is taken,
// the last pipeline that takes new leads) is also shown as a notice and nothing changes.
// Admins only.

import { ApiError, get, post, put } from "../common/api.js";
import { fill, h, toast } from "../common/dom.js";
import { t, tn } from "../common/i18n.js";
import { editor, field, sectionHeader, table, valueOf } from "./form.js";

const OUTCOMES = [
  ["open", () => t("Open: in progress")],
  ["won", () => t("Won: closes the lead")],
  ["lost", () => t("Lost: closes the lead")],
];

// core/pipelines.py KEY: what the API takes as a stage key.
const KEY_LENGTH = 40;

/** The stages a new pipeline starts with (those of the "Sales" pipeline every installation
 *  has), named in the admin's language: names are what the board shows. */
function starterStages() {
  const stage = (key, name, probability, outcome = "open", followUpDays = null, note = "") => ({
    key,
    name,
    probability,
    outcome,
    follow_up_days: followUpDays,
    follow_up_note: note,
  });
  return [
    stage("new", t("New"), 10),
    stage("qualified", t("Qualified"), 30),
    stage("proposal", t("Proposal"), 60, "open", 2, t("Call back about the proposal")),
    stage("won", t("Won"), 100, "won"),
    stage("lost", t("Lost"), 0, "lost"),
  ];
}

/** A stage's name as the board shows it: the installation's English default names in the
 *  reader's language (web/static/pipeline/state.js), names an admin gave as written. */
function shownName(name) {
  const defaults = { New: t("New"), Qualified: t("Qualified"), Proposal: t("Proposal"), Won: t("Won"), Lost: t("Lost") };
  return defaults[name] || name;
}

/** A key suggested by a new stage's name: "Demo booked" -> "demo_booked". */
function keyFrom(name) {
  return name
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^[_-]+|_+$/g, "")
    .slice(0, KEY_LENGTH);
}

/** The list of stages: one fieldset per stage with its fields and buttons to move it up or
 *  down and to remove it, and a button to add one. Field names follow the rows' order
 *  ("stages.2.probability"), so the API's errors find their row; `read()` gives the stages. */
function stageList(stages, savedKeys) {
  const rows = h("div", { class: "stage-rows" });
  const addButton = h("button", { type: "button", onclick: () => addStage() }, t("Add a stage"));
  const errorId = `stages-error-${Math.random().toString(36).slice(2)}`;
  const box = h(
    "fieldset",
    { class: "wide stages", dataset: { field: "stages" }, "aria-describedby": errorId },
    h("legend", {}, t("Stages, in board order")),
    h("p", { class: "error-text full", id: errorId, role: "alert" }),
    h(
      "p",
      { class: "hint" },
      t("A key is what leads store: lowercase letters, digits, _ and -. It cannot change once saved."),
    ),
    rows,
    h("div", { class: "stage-add" }, addButton),
  );

  const allRows = () => [...rows.children];
  const part = (row, name) => row.querySelector(`[data-part="${name}"]`);
  const control = (row, name) => part(row, name).querySelector("input, select, textarea");
  const label = (row) => control(row, "name").value.trim() || control(row, "key").value.trim() || row.dataset.number;

  function renumber() {
    const all = allRows();
    all.forEach((row, index) => {
      row.dataset.number = String(index + 1);
      row.dataset.field = `stages.${index}`;
      for (const fieldBox of row.querySelectorAll("[data-part]")) {
        fieldBox.dataset.field = `stages.${index}.${fieldBox.dataset.part}`;
        fieldBox.querySelector("input, select, textarea").name = fieldBox.dataset.field;
      }
      row.querySelector("legend").textContent = t("Stage {n}", { n: index + 1 });
      const buttons = row.querySelector(".stage-buttons");
      const up = buttons.querySelector("[data-action=up]");
      const down = buttons.querySelector("[data-action=down]");
      const remove = buttons.querySelector("[data-action=remove]");
      up.disabled = index === 0;
      down.disabled = index === all.length - 1;
      remove.disabled = all.length === 1;
      relabel(row);
    });
  }

  function relabel(row) {
    const name = label(row);
    const buttons = [
      ["up", t("Move stage {name} up", { name })],
      ["down", t("Move stage {name} down", { name })],
      ["remove", t("Remove stage {name}", { name })],
    ];
    for (const [action, text] of buttons) {
      const button = row.querySelector(`[data-action=${action}]`);
      button.setAttribute("aria-label", text);
      button.title = text;
    }
  }

  function move(row, step, button) {
    const other = step < 0 ? row.previousElementSibling : row.nextElementSibling;
    if (!other) return;
    if (step < 0) rows.insertBefore(row, other);
    else rows.insertBefore(other, row);
    renumber();
    // Keep the keyboard where it was; at the top or bottom, on the button that still moves.
    const again = row.querySelector(`[data-action=${button}]`);
    (again.disabled ? row.querySelector(`[data-action=${button === "up" ? "down" : "up"}]`) : again).focus();
  }

  function remove(row) {
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    renumber();
    (next ? next.querySelector("[data-action=remove]") : addButton).focus();
  }

  function stageRow(stage, saved) {
    const piece = (name, options) => {
      const box = field({ name, ...options });
      box.dataset.part = name;
      box.classList.add(`stage-${name.replace(/_/g, "-")}`);
      return box;
    };
    const row = h(
      "fieldset",
      { class: "stage", dataset: { saved: saved ? "true" : "false" } },
      h("legend", {}),
      piece("key", {
        label: t("Key"),
        value: stage.key,
        attrs: saved ? { readonly: true, maxlength: KEY_LENGTH } : { maxlength: KEY_LENGTH, autocapitalize: "off", spellcheck: "false" },
      }),
      piece("name", { label: t("Name"), value: stage.name, attrs: { maxlength: 100 } }),
      piece("probability", { label: t("Probability (%)"), kind: "number", value: stage.probability, attrs: { min: 0, max: 100, step: 1 } }),
      piece("outcome", { label: t("Outcome"), kind: "select", value: stage.outcome, options: OUTCOMES.map(([value, text]) => [value, text()]) }),
      piece("follow_up_days", { label: t("Follow-up after (days)"), kind: "number", value: stage.follow_up_days, attrs: { min: 0, max: 365, step: 1 } }),
      piece("follow_up_note", { label: t("Follow-up task note"), value: stage.follow_up_note, attrs: { maxlength: 500 } }),
      h(
        "div",
        { class: "stage-buttons" },
        h("button", { type: "button", dataset: { action: "up" }, onclick: () => move(row, -1, "up") }, "↑"),
        h("button", { type: "button", dataset: { action: "down" }, onclick: () => move(row, 1, "down") }, "↓"),
        h("button", { type: "button", class: "danger", dataset: { action: "remove" }, onclick: () => remove(row) }, "✕"),
      ),
      h("p", { class: "error-text stage-error", role: "alert" }),
    );
    const key = control(row, "key");
    const name = control(row, "name");
    // A stage typed in here gets a key from its name until the key is typed itself.
    let keyTyped = saved || Boolean(stage.key);
    key.addEventListener("input", () => {
      keyTyped = true;
      relabel(row);
    });
    name.addEventListener("input", () => {
      if (!keyTyped) key.value = keyFrom(name.value);
      relabel(row);
    });
    return row;
  }

  function addStage() {
    // A new stage is another step of the work: before the won and lost ones.
    const blank = { key: "", name: "", probability: 50, outcome: "open", follow_up_days: null, follow_up_note: "" };
    const row = stageRow(blank, false);
    const closing = allRows().find((each) => control(each, "outcome").value !== "open");
    rows.insertBefore(row, closing || null);
    renumber();
    control(row, "name").focus();
  }

  function read() {
    renumber();
    return allRows().map((row) => {
      const number = (name) => {
        const value = control(row, name).value;
        return value === "" ? null : Number(value);
      };
      return {
        key: control(row, "key").value.trim(),
        name: control(row, "name").value.trim(),
        probability: number("probability"),
        outcome: control(row, "outcome").value,
        follow_up_days: number("follow_up_days"),
        follow_up_note: control(row, "follow_up_note").value.trim(),
      };
    });
  }

  for (const stage of stages) rows.append(stageRow(stage, savedKeys.has(stage.key)));
  renumber();
  return { box, read };
}

export async function render(main, context) {
  const pipelines = await get("/api/v1/pipelines?include_archived=true");
  const slot = h("div");
  const close = () => fill(slot);
  const reload = () => render(main, context);
  // Where new leads go: the first pipeline not archived (the list comes in board order).
  const takesNewLeads = pipelines.find((pipeline) => !pipeline.archived);

  function pipelineEditor(pipeline) {
    const isNew = !pipeline;
    const stages = isNew ? starterStages() : pipeline.stages;
    const list = stageList(stages, new Set(isNew ? [] : pipeline.stages.map((stage) => stage.key)));
    const nextPosition = Math.min(1000, Math.max(-1, ...pipelines.map((p) => p.position)) + 1);
    const panel = editor({
      title: isNew ? t("New pipeline") : t("Edit {name}", { name: pipeline.name }),
      fields: [
        field({ name: "name", label: t("Name"), value: pipeline?.name, required: true, attrs: { maxlength: 100 } }),
        field({
          name: "position",
          label: t("Position"),
          kind: "number",
          value: isNew ? nextPosition : pipeline.position,
          hint: t("Board order, lowest first; the first pipeline not archived gets the new leads"),
          attrs: { min: 0, max: 1000, step: 1 },
        }),
        field({
          name: "archived",
          label: t("Archived"),
          kind: "checkbox",
          value: pipeline?.archived,
          hint: t("An archived pipeline takes no new leads; its leads stay"),
        }),
        list.box,
      ],
      submitLabel: isNew ? t("Add pipeline") : t("Save"),
      onCancel: close,
      onSubmit: async (form) => {
        const body = {
          name: valueOf(form, "name"),
          position: valueOf(form, "position") ?? 0,
          archived: valueOf(form, "archived"),
          stages: list.read(),
        };
        let saved;
        try {
          saved = isNew ? await post("/api/v1/pipelines", body) : await put(`/api/v1/pipelines/${pipeline.id}`, body);
        } catch (error) {
          // Refused as a whole (nothing was changed): say so, besides the field it is about.
          if (error instanceof ApiError && error.status === 409) toast(error.message, "error");
          throw error;
        }
        toast(t("Pipeline {name} was saved", { name: saved.name }));
        await reload();
      },
    });
    panel.classList.add("pipeline-editor");
    return panel;
  }

  function open(pipeline) {
    const panel = pipelineEditor(pipeline);
    fill(slot, panel);
    panel.querySelector("input").focus();
  }

  const stageItem = (stage) => {
    const details = [`${stage.probability} %`];
    if (stage.outcome === "won") details.push(t("won"));
    if (stage.outcome === "lost") details.push(t("lost"));
    if (stage.follow_up_days !== null && stage.outcome === "open") {
      details.push(tn("follow-up after {n} day", "follow-up after {n} days", stage.follow_up_days));
    }
    return h("li", { dataset: { stage: stage.key } }, shownName(stage.name), " ", h("span", { class: "muted" }, `(${details.join(", ")})`));
  };

  const rows = pipelines.map((pipeline) =>
    h(
      "tr",
      { class: pipeline.archived ? "inactive" : "", dataset: { pipeline: pipeline.id } },
      h(
        "td",
        {},
        pipeline.name,
        pipeline === takesNewLeads ? [" ", h("span", { class: "pill" }, t("gets new leads"))] : null,
      ),
      h("td", { class: "num" }, String(pipeline.position)),
      h("td", {}, h("ol", { class: "stage-list" }, pipeline.stages.map(stageItem))),
      h("td", {}, pipeline.archived ? t("Archived") : t("Active")),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", "aria-label": t("Edit {name}", { name: pipeline.name }), onclick: () => open(pipeline) }, t("Edit")),
      ),
    ),
  );
  fill(
    main,
    sectionHeader(t("Pipelines"), h("button", { type: "button", class: "primary", onclick: () => open(null) }, t("New pipeline"))),
    h("p", { class: "muted" }, t("The sales funnels of the board, with their stages.")),
    slot,
    table(t("Pipelines"), [t("Name"), t("Position"), t("Stages"), t("State"), h("span", { class: "visually-hidden" }, t("Actions"))], rows),
  );
}
