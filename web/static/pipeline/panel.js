// The lead beside the board: its details (title, value, currency, expected close; the owner
// for supervisors), its open tasks with a form for the next step, and the contact's
// conversations, each a link into the console.
import { get, patch, post, withQuery } from "../common/api.js";
import { serverNow } from "../common/clock.js";
import { byId, fill, formatTime, h, localInputValue, toast } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { channelLabel } from "../common/channels.js";
import { channelIcon } from "../common/icons.js";
import { isSupervisor, operatorName, sourceLabel, stageName, state } from "./state.js";

let handlers = { changed: async () => {}, closed: () => {} };
// What the panel shows: {lead, tasks, contact, conversations}; null while closed.
let shown = null;
// The details form, kept while its fields hold unsaved edits (live updates redraw the rest).
let detailsForm = null;
let detailsDirty = false;

export function usePanelHandlers(given) {
  handlers = { ...handlers, ...given };
}

/** Show lead `id` beside the board (its tasks and contact's history too). */
export async function openLead(id, { focus = false } = {}) {
  const aside = byId("lead-panel");
  const switching = !shown || shown.lead.id !== id;
  state.leadId = id;
  aside.hidden = false;
  byId("layout").dataset.panel = "open";
  if (switching) {
    shown = null;
    detailsForm = null;
    detailsDirty = false;
    fill(aside, h("p", { class: "muted panel-loading" }, t("Loading…")));
  }
  await refreshPanel();
  if (focus && state.leadId === id) byId("lead-panel-title")?.focus();
}

/** Whether the panel holds typing that closing it would lose (details or a next step's note). */
export function panelHasEdits() {
  const note = byId("next-step-note");
  return detailsDirty || Boolean(note && note.value.trim());
}

export function closePanel() {
  shown = null;
  detailsForm = null;
  detailsDirty = false;
  state.leadId = null;
  const aside = byId("lead-panel");
  fill(aside);
  aside.hidden = true;
  byId("layout").dataset.panel = "closed";
}

/** Fetch the open lead again and redraw (a move, a live update, a saved change). */
export async function refreshPanel() {
  const id = state.leadId;
  if (id === null) return;
  let lead;
  try {
    lead = await get(`/api/v1/leads/${id}`);
  } catch (error) {
    if (state.leadId !== id) return;
    shown = null;
    fill(
      byId("lead-panel"),
      panelHeader(t("Lead {id}", { id })),
      h("p", { class: "error-text", role: "alert" }, t("Cannot open lead {id}: {reason}", { id, reason: error.message })),
    );
    return;
  }
  const [tasks, contact, conversations] = await Promise.all([
    get(withQuery("/api/v1/tasks", { scope: "all", lead_id: id, limit: 50 }))
      .then((page) => page.items)
      .catch(() => []),
    get(`/api/v1/contacts/${lead.contact_id}`).catch(() => null),
    get(withQuery("/api/v1/conversations", { contact_id: lead.contact_id, limit: 20 }))
      .then((page) => page.items)
      .catch(() => []),
  ]);
  if (state.leadId !== id) return;
  shown = { lead, tasks, contact, conversations };
  render();
}

function leadTitle(lead, contact) {
  return lead.title || (contact && contact.display_name) || t("Lead {id}", { id: lead.id });
}

function pipelineStage(lead) {
  const pipeline = state.pipelines.find((one) => one.id === lead.pipeline_id);
  return pipeline ? pipeline.stages.find((stage) => stage.key === lead.stage) || null : null;
}

function panelHeader(title) {
  return h(
    "header",
    { class: "panel-head" },
    h("h2", { id: "lead-panel-title", tabindex: "-1" }, title),
    h(
      "button",
      {
        type: "button",
        class: "close-panel",
        "aria-label": t("Close the lead"),
        title: t("Close (Esc)"),
        onclick: () => handlers.closed(),
      },
      "×",
    ),
  );
}

function render() {
  const { lead, contact } = shown;
  const stage = pipelineStage(lead);
  if (detailsForm === null || !detailsDirty) {
    detailsForm = buildDetailsForm(lead);
    detailsDirty = false;
  }
  const aside = byId("lead-panel");
  // A redraw keeps the focus where it was (a live update while someone types a next step).
  const activeId = aside.contains(document.activeElement) ? document.activeElement.id : null;
  const nextStepForm = aside.querySelector("#next-step-form") || buildNextStepForm(lead.id);
  fill(
    aside,
    panelHeader(leadTitle(lead, contact)),
    h(
      "p",
      { class: "lead-meta" },
      h("span", { class: `pill stage-pill outcome-${stage ? stage.outcome : "open"}`, dataset: { field: "stage" } }, stage ? stageName(stage) : lead.stage),
      " ",
      t("since {time}", { time: formatTime(lead.stage_entered_at) }),
    ),
    h(
      "dl",
      { class: "fields" },
      h("dt", {}, t("Contact")),
      h("dd", { dataset: { field: "contact" } }, contact ? contact.display_name : t("Contact {id}", { id: lead.contact_id })),
      h("dt", {}, t("Source")),
      h("dd", {}, sourceLabel(lead.source)),
      h("dt", {}, t("Owner")),
      h("dd", { dataset: { field: "owner" } }, operatorName(lead.owner_id)),
      h("dt", {}, t("Created")),
      h("dd", {}, formatTime(lead.created_at)),
      lead.lost_reason ? [h("dt", {}, t("Why lost")), h("dd", { dataset: { field: "lost-reason" } }, lead.lost_reason)] : null,
    ),
    section("lead-details", t("Details"), detailsForm),
    section("lead-tasks", t("Next steps"), taskList(), nextStepForm),
    section(
      "lead-history",
      contact ? t("Conversations with {name}", { name: contact.display_name }) : t("Conversations"),
      history(),
    ),
  );
  if (activeId) byId(activeId)?.focus();
}

function section(id, title, ...children) {
  return h(
    "section",
    { class: "panel-section", id, "aria-labelledby": `${id}-title` },
    h("h3", { id: `${id}-title` }, title),
    children,
  );
}

// ----- details -----

function field(label, control) {
  control.setAttribute("aria-describedby", `${control.id}-error`);
  return h(
    "div",
    { class: "field" },
    h("label", { for: control.id }, label),
    control,
    h("p", { class: "field-error", id: `${control.id}-error` }),
  );
}

function buildDetailsForm(lead) {
  const title = h("input", { id: "lead-title", name: "title", type: "text", maxlength: 200, value: lead.title, autocomplete: "off" });
  const value = h("input", {
    id: "lead-value",
    name: "value",
    type: "number",
    min: 0,
    step: "0.01",
    inputmode: "decimal",
    value: lead.value ?? "",
  });
  const currency = h("input", {
    id: "lead-currency",
    name: "currency",
    type: "text",
    maxlength: 3,
    pattern: "[A-Za-z]{3}",
    placeholder: "EUR",
    autocomplete: "off",
    value: lead.currency ?? "",
  });
  const closes = h("input", { id: "lead-expected-close", name: "expected_close_on", type: "date", value: lead.expected_close_on ?? "" });
  const owner = isSupervisor()
    ? h(
        "select",
        { id: "lead-owner", name: "owner_id" },
        h("option", { value: "" }, t("Unowned")),
        [...state.operators.values()]
          .filter((operator) => operator.active || operator.id === lead.owner_id)
          .map((operator) => h("option", { value: operator.id }, operator.name)),
      )
    : null;
  if (owner) owner.value = lead.owner_id === null ? "" : String(lead.owner_id);
  const error = h("p", { class: "field-error", role: "alert" });
  const form = h(
    "form",
    {
      id: "lead-form",
      class: "form-grid",
      dataset: { leadId: lead.id },
      oninput: () => {
        detailsDirty = true;
      },
      onsubmit: (event) => saveDetails(event, lead.id, { form, title, value, currency, closes, owner, error }),
    },
    field(t("Title"), title),
    h(
      "div",
      { class: "field-row" },
      field(t("Value"), value),
      field(t("Currency"), currency),
    ),
    field(t("Expected close"), closes),
    owner ? field(t("Owner"), owner) : null,
    error,
    h("div", {}, h("button", { type: "submit", class: "primary" }, t("Save"))),
  );
  return form;
}

async function saveDetails(event, leadId, controls) {
  event.preventDefault();
  const { form, title, value, currency, closes, owner, error } = controls;
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
  for (const message of form.querySelectorAll(".field-error")) message.textContent = "";
  const body = {
    title: title.value.trim(),
    value: value.value.trim() === "" ? null : value.value.trim(),
    currency: currency.value.trim() === "" ? null : currency.value.trim().toUpperCase(),
    expected_close_on: closes.value || null,
  };
  if (owner) body.owner_id = owner.value === "" ? null : Number(owner.value);
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await patch(`/api/v1/leads/${leadId}`, body);
    detailsDirty = false;
    detailsForm = null;
    toast(t("Lead saved"));
    await handlers.changed();
  } catch (failure) {
    const fields = failure.fields || {};
    const names = { title, value, currency, expected_close_on: closes, owner_id: owner };
    let first = null;
    for (const [name, message] of Object.entries(fields)) {
      const control = names[name];
      if (!control) continue;
      control.setAttribute("aria-invalid", "true");
      byId(`${control.id}-error`).textContent = message;
      first = first || control;
    }
    error.textContent = first ? "" : failure.message;
    if (first) first.focus();
  } finally {
    button.disabled = false;
  }
}

// ----- tasks -----

function taskList() {
  const tasks = shown.tasks;
  if (!tasks.length) return h("p", { class: "muted", dataset: { field: "no-tasks" } }, t("No open tasks: add the next step."));
  return h(
    "ul",
    { class: "lead-tasks" },
    tasks.map((task) =>
      h(
        "li",
        { class: task.overdue ? "overdue" : "", dataset: { taskId: task.id } },
        h(
          "div",
          { class: "task-when" },
          task.overdue ? t("Overdue since {time}", { time: formatTime(task.due_at) }) : t("Due {time}", { time: formatTime(task.due_at) }),
          task.owner_id !== null ? h("span", { class: "muted" }, ` · ${task.owner_name || operatorName(task.owner_id)}`) : null,
        ),
        task.note ? h("div", { class: "task-note" }, task.note) : null,
        h(
          "button",
          {
            type: "button",
            class: "task-done",
            "aria-label": task.note
              ? t("Mark “{note}” done", { note: task.note })
              : t("Mark the task due {time} done", { time: formatTime(task.due_at) }),
            onclick: () => completeTask(task),
          },
          t("Done"),
        ),
      ),
    ),
  );
}

async function completeTask(task) {
  try {
    await post(`/api/v1/tasks/${task.id}/done`, { outcome: "done" });
    toast(t("Task done"));
  } catch (error) {
    toast(error.message, "error");
  }
  await handlers.changed();
}

function buildNextStepForm(leadId) {
  const due = h("input", {
    id: "next-step-due",
    name: "due_at",
    type: "datetime-local",
    required: true,
    value: localInputValue(new Date(serverNow() + 24 * 3600 * 1000)),
  });
  const note = h("textarea", { id: "next-step-note", name: "note", rows: 2, maxlength: 2000, placeholder: t("What to do then") });
  const error = h("p", { class: "field-error", id: "next-step-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary" }, t("Add next step"));
  const form = h(
    "form",
    {
      id: "next-step-form",
      class: "form-grid",
      onsubmit: async (event) => {
        event.preventDefault();
        error.textContent = "";
        const when = new Date(due.value);
        if (!due.value || Number.isNaN(when.getTime())) {
          error.textContent = t("Pick a date and time");
          due.focus();
          return;
        }
        submit.disabled = true;
        try {
          await post("/api/v1/tasks", { lead_id: leadId, due_at: when.toISOString(), note: note.value.trim() });
          toast(t("Next step set for {time}", { time: formatTime(when.toISOString()) }));
          note.value = "";
          await handlers.changed();
        } catch (failure) {
          const fields = failure.fields || {};
          error.textContent = fields.due_at || fields.note || fields.lead_id || failure.message;
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("div", { class: "field" }, h("label", { for: "next-step-due" }, t("Due")), due),
    h("div", { class: "field" }, h("label", { for: "next-step-note" }, t("Note")), note),
    error,
    h("div", {}, submit),
  );
  return form;
}

// ----- the contact's history -----

function statusLabel(status) {
  const labels = { open: t("open"), pending: t("pending"), snoozed: t("snoozed"), resolved: t("resolved") };
  return labels[status] || status;
}

function history() {
  const { conversations, lead } = shown;
  if (!conversations.length) return h("p", { class: "muted" }, t("No conversations you may see."));
  return h(
    "ul",
    { class: "history" },
    conversations.map((conversation) =>
      h(
        "li",
        { dataset: { conversationId: conversation.id }, class: conversation.id === lead.conversation_id ? "of-lead" : "" },
        channelIcon(conversation.channel),
        h(
          "a",
          { href: `/console/#c=${conversation.id}` },
          conversation.subject || t("{channel} conversation", { channel: channelLabel(conversation.channel) }),
        ),
        " ",
        h("span", { class: `pill status-${conversation.status}`, dataset: { status: conversation.status } }, statusLabel(conversation.status)),
        h("time", { datetime: conversation.updated_at, class: "muted" }, formatTime(conversation.updated_at)),
        conversation.id === lead.conversation_id ? h("span", { class: "muted small" }, t("the lead's conversation")) : null,
      ),
    ),
  );
}
