// Tasks: callbacks for missed calls (routing puts them in the call's queue, or gives them an
// owner) and follow-ups operators set on a conversation, each with a due time.
//
//   the Tasks tab      three lists with their counts: Mine, My queues, Overdue
//                      (GET /api/v1/tasks?scope=mine|queues|overdue&state=open, paged with
//                      next_cursor); each task with what it is about, why (a callback's reason
//                      in words), how many calls (×2), when it is due (red once overdue), whose
//                      it is and its note; Call back (POST /api/v1/tasks/{id}/call: the server
//                      rings the operator's phone, then the customer), Done, Take, the
//                      conversation and a voicemail's message.
//   followUpControl()  the "Follow-up…" form of an open conversation (POST /api/v1/tasks).
//
// main.js reloads the lists on "task.updated" and "task.due", and passes "call.updated" on,
// so a callback's progress shows on its task. A server without tasks (the list answers 404)
// shows neither the tab nor the form.
import { ApiError, get, patch, post, withQuery } from "../common/api.js";
import { serverNow } from "../common/clock.js";
import { byId, fill, formatDuration, formatTime, h, localInputValue, toast } from "../common/dom.js";
import { formatDateTime, t, tn } from "../common/i18n.js";
import { icon } from "../common/icons.js";
import { callOutcomeWord, callStateWord } from "./calls.js";
import { on, signal, state } from "./state.js";

const PAGE = 50;
const SCOPES = [
  ["mine", () => t("Mine")],
  ["queues", () => t("My queues")],
  ["overdue", () => t("Overdue")],
];

const lists = Object.fromEntries(SCOPES.map(([scope]) => [scope, { items: [], nextCursor: null }]));
let current = "mine";
// What became of a "Call back", by task id: {text, tone: "busy"|"ok"|"error", callId, phone}.
const callStatus = new Map();
// Callbacks placed from here, by call id: {taskId, conversationId, opened}.
const placedCalls = new Map();
// call id -> the last "call.updated" labels of a call not (yet) known as placed from here: the
// call's events can arrive before the answer to the request that placed it (a phone that
// answers at once, a busy machine). A few are kept, the newest.
const earlyCallEvents = new Map();
const EARLY_CALL_EVENTS = 20;

// A callback's reason in words.
function reasonWords(task) {
  switch (task.reason) {
    case "abandoned":
      return task.waited_seconds
        ? t("hung up after waiting {duration}", { duration: formatDuration(task.waited_seconds) })
        : t("hung up while waiting");
    case "no_answer":
      return t("no one answered");
    case "busy":
      return t("the line was busy");
    case "failed":
      return t("the call failed");
    case "after_hours":
      return t("called after hours");
    case "voicemail":
      return t("left a voicemail");
    default:
      return task.reason || "";
  }
}

function kindLabel(kind) {
  return kind === "callback" ? t("Callback") : t("Follow-up");
}

/** Who or what the task is about: the contact, else the number, else the task itself. */
export function taskTitle(task) {
  if (task.contact && task.contact.name) return task.contact.name;
  if (task.number) return task.number;
  return t("Task {id}", { id: task.id });
}

function isOverdue(task) {
  return task.overdue === true || (task.due_at ? new Date(task.due_at).getTime() <= serverNow() : false);
}

function dueText(task) {
  if (!task.due_at) return "";
  const left = (new Date(task.due_at).getTime() - serverNow()) / 1000;
  if (left <= 0) return t("overdue by {duration}", { duration: formatDuration(-left) });
  if (isOverdue(task)) return t("overdue");
  if (left < 24 * 3600) return t("due in {duration}", { duration: formatDuration(left) });
  return t("due {time}", { time: formatTime(task.due_at) });
}

function ownerText(task) {
  if (task.owner_id !== null && task.owner_id !== undefined) {
    if (state.me && task.owner_id === state.me.id) return t("for you");
    return t("for {name}", { name: task.owner_name || t("operator {id}", { id: task.owner_id }) });
  }
  return t("nobody's yet");
}

// ----- loading -----

function setAvailable(available) {
  state.tasksAvailable = available;
  const tab = byId("tab-tasks");
  if (tab) tab.hidden = !available;
  if (!available) {
    const panel = byId("panel-tasks");
    if (panel && !panel.hidden) signal("show-tab", "inbox");
  }
}

async function fetchScope(scope, cursor, limit) {
  return get(withQuery("/api/v1/tasks", { scope, state: "open", limit, cursor }));
}

/** Reload the three lists (keeping as many of each as were shown) and draw them. */
export async function loadTasks() {
  const shown = Object.fromEntries(SCOPES.map(([scope]) => [scope, lists[scope].items.length]));
  let pages;
  try {
    pages = await Promise.all(SCOPES.map(([scope]) => fetchScope(scope, null, PAGE)));
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 405)) {
      setAvailable(false);
      return;
    }
    throw error;
  }
  setAvailable(true);
  SCOPES.forEach(([scope], index) => {
    const page = pages[index] || {};
    lists[scope] = { items: Array.isArray(page.items) ? page.items : [], nextCursor: page.next_cursor || null };
  });
  for (const [scope] of SCOPES) {
    const list = lists[scope];
    while (list.nextCursor && list.items.length < shown[scope]) {
      await more(scope, shown[scope] - list.items.length);
    }
  }
  renderTasks();
}

async function more(scope, limit) {
  const list = lists[scope];
  const page = await fetchScope(scope, list.nextCursor, Math.min(200, Math.max(1, limit)));
  const known = new Set(list.items.map((task) => task.id));
  list.items.push(...(page.items || []).filter((task) => !known.has(task.id)));
  list.nextCursor = page.next_cursor || null;
}

async function loadMore(scope) {
  try {
    await more(scope, PAGE);
  } catch (error) {
    toast(error.message, "error");
  }
  renderTasks();
}

/** A task of the lists loaded, by id (null if none shows it). */
export function findTask(id) {
  for (const [scope] of SCOPES) {
    const found = lists[scope].items.find((task) => task.id === id);
    if (found) return found;
  }
  return null;
}

// ----- drawing -----

function count(scope) {
  const list = lists[scope];
  return `${list.items.length}${list.nextCursor ? "+" : ""}`;
}

function renderTabs() {
  const tabs = byId("task-tabs");
  if (!tabs) return;
  fill(
    tabs,
    SCOPES.map(([scope, label]) => {
      const selected = scope === current;
      const overdue = scope === "overdue" && lists.overdue.items.length > 0;
      return h(
        "button",
        {
          type: "button",
          role: "tab",
          class: "task-tab",
          id: `task-tab-${scope}`,
          "aria-selected": selected ? "true" : "false",
          "aria-controls": "task-list",
          tabindex: selected ? "0" : "-1",
          dataset: { scope },
          onclick: () => chooseScope(scope),
          onkeydown: (event) => {
            const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
            if (!step) return;
            event.preventDefault();
            const index = SCOPES.findIndex(([one]) => one === scope);
            const next = SCOPES[(index + step + SCOPES.length) % SCOPES.length][0];
            chooseScope(next);
            byId(`task-tab-${next}`).focus();
          },
        },
        label(),
        " ",
        h("span", { class: `badge task-count${overdue ? " overdue" : " quiet"}`, dataset: { count: lists[scope].items.length } }, count(scope)),
      );
    }),
  );
  // The nav tab's badge: overdue tasks, when there are any.
  const badge = byId("tasks-count");
  if (badge) {
    const n = lists.overdue.items.length;
    badge.hidden = n === 0;
    fill(badge, count("overdue"), h("span", { class: "visually-hidden" }, ` ${tn("overdue task", "overdue tasks", n)}`));
  }
}

function chooseScope(scope) {
  current = scope;
  renderTasks();
}

export function renderTasks() {
  const box = byId("task-list");
  if (!box) return;
  const focused = document.activeElement;
  const focusTask = box.contains(focused) ? focused.closest("[data-task-id]") : null;
  const focusAction = focusTask && focused.dataset ? focused.dataset.action : null;
  renderTabs();
  box.setAttribute("aria-busy", "false");
  box.setAttribute("aria-labelledby", `task-tab-${current}`);
  const list = lists[current];
  fill(
    box,
    list.items.length
      ? h("ul", { class: "task-list" }, list.items.map(renderTask))
      : h("p", { class: "muted empty" }, current === "overdue" ? t("Nothing overdue.") : t("No open tasks.")),
    list.nextCursor
      ? h("button", { type: "button", class: "load-more", onclick: () => loadMore(current) }, t("Load more"))
      : null,
  );
  if (focusTask) {
    const row = box.querySelector(`[data-task-id="${focusTask.dataset.taskId}"]`);
    const target = row && ((focusAction && row.querySelector(`[data-action="${focusAction}"]`)) || row);
    if (target) target.focus();
  }
}

function renderTask(task) {
  const overdue = isOverdue(task);
  const status = callStatus.get(task.id);
  const callback = task.kind === "callback";
  const attempts = Number(task.attempts || 0);
  return h(
    "li",
    {
      class: `task${overdue ? " overdue" : ""}`,
      tabindex: "-1",
      dataset: {
        taskId: task.id,
        taskKind: task.kind,
        taskState: task.state || "open",
        overdue: overdue ? "true" : "false",
        conversationId: task.conversation_id ?? "",
      },
      "aria-label": `${kindLabel(task.kind)}: ${taskTitle(task)}`,
    },
    h(
      "div",
      { class: "task-head" },
      callback
        ? icon("callback", t("Callback"), { taskKind: "callback" })
        : icon("task", t("Follow-up"), { taskKind: "follow_up" }),
      h("strong", { class: "task-name" }, taskTitle(task)),
      task.number && task.contact && task.contact.name ? h("span", { class: "task-number" }, task.number) : null,
      attempts > 1
        ? h(
            "span",
            { class: "task-attempts", title: tn("{n} call", "{n} calls", attempts), dataset: { attempts } },
            `×${attempts}`,
            h("span", { class: "visually-hidden" }, ` ${tn("{n} call", "{n} calls", attempts)}`),
          )
        : null,
    ),
    h(
      "div",
      { class: "task-why" },
      [callback ? reasonWords(task) || kindLabel(task.kind) : kindLabel(task.kind), task.queue_name || ""]
        .filter(Boolean)
        .join(" · "),
    ),
    h(
      "div",
      { class: "task-when" },
      task.due_at
        ? h(
            "time",
            {
              class: `task-due${overdue ? " overdue" : ""}`,
              datetime: task.due_at,
              title: formatDateTime(task.due_at),
              dataset: { due: task.due_at },
            },
            dueText(task),
          )
        : null,
      task.due_at ? h("span", { "aria-hidden": "true" }, "·") : null,
      h("span", { class: "task-owner" }, ownerText(task)),
    ),
    task.note ? h("p", { class: "task-note" }, task.note) : null,
    h(
      "p",
      {
        class: `task-status${status ? ` tone-${status.tone}` : ""}`,
        role: status && status.tone === "error" ? "alert" : "status",
        hidden: !status,
        dataset: { callState: (status && status.callState) || "" },
      },
      status ? status.text : "",
      status && status.phone
        ? [
            " ",
            h(
              "button",
              { type: "button", class: "link-button", dataset: { action: "set-phone" }, onclick: () => signal("preferences-open", { focus: "voice_device" }) },
              t("Set your phone…"),
            ),
          ]
        : null,
    ),
    h("div", { class: "task-actions" }, taskActions(task, status)),
  );
}

function taskActions(task, status) {
  const actions = [];
  const open = (task.state || "open") === "open";
  if (open && task.kind === "callback") {
    actions.push(
      h(
        "button",
        {
          type: "button",
          class: "primary",
          dataset: { action: "call-back" },
          disabled: Boolean(status && status.tone === "busy"),
          title: task.number ? t("Call {number} back from your phone", { number: task.number }) : null,
          onclick: () => callBack(task),
        },
        t("Call back"),
      ),
    );
  }
  if (open) {
    actions.push(h("button", { type: "button", dataset: { action: "done" }, onclick: () => markDone(task) }, t("Done")));
  }
  if (open && (task.owner_id === null || task.owner_id === undefined)) {
    actions.push(h("button", { type: "button", dataset: { action: "take" }, onclick: () => take(task) }, t("Take")));
  }
  if (task.conversation_id) {
    actions.push(
      h(
        "a",
        {
          href: `#c=${task.conversation_id}`,
          dataset: { action: "open" },
          onclick: (event) => {
            event.preventDefault();
            signal("open", { id: task.conversation_id, focus: false });
          },
        },
        t("Open conversation"),
      ),
    );
  }
  if (task.lead_id) {
    // A lead's next step: its card on the pipeline board.
    actions.push(
      h("a", { href: `/pipeline/#lead=${task.lead_id}`, dataset: { action: "lead" } }, t("Open lead")),
    );
  }
  if (task.voicemail_interaction_id && task.conversation_id) {
    actions.push(
      h(
        "a",
        {
          href: `#c=${task.conversation_id}`,
          dataset: { action: "voicemail", interactionId: task.voicemail_interaction_id },
          onclick: (event) => {
            event.preventDefault();
            signal("open", { id: task.conversation_id, focus: false, reveal: task.voicemail_interaction_id });
          },
        },
        t("Voicemail"),
      ),
    );
  }
  return actions;
}

/** Refresh the relative due times (the lists themselves come from the server). */
function tickDue() {
  for (const element of document.querySelectorAll("#task-list .task-due[data-due]")) {
    const row = element.closest("[data-task-id]");
    const task = row ? findTask(Number(row.dataset.taskId)) : null;
    if (!task) continue;
    const overdue = isOverdue(task);
    element.textContent = dueText(task);
    element.classList.toggle("overdue", overdue);
    row.classList.toggle("overdue", overdue);
    row.dataset.overdue = overdue ? "true" : "false";
  }
}

// ----- actions -----

function setCallStatus(taskId, status) {
  if (status) callStatus.set(taskId, status);
  else callStatus.delete(taskId);
  renderTasks();
}

/** What a callback's call state reads as on its task. */
function callText(callState, outcome) {
  switch (callState) {
    case "dialing":
    case "ringing":
      return t("Your phone is ringing: pick up, then the customer is called");
    case "connected":
      return t("Connected with the customer");
    case "on_hold":
      return t("The customer is on hold");
    case "ended":
      return outcome ? t("Call ended: {outcome}", { outcome: callOutcomeWord(outcome) }) : t("Call ended");
    default:
      return callState ? t("Call: {state}", { state: callStateWord(callState) }) : t("Calling your phone…");
  }
}

async function callBack(task) {
  setCallStatus(task.id, { text: t("Calling your phone…"), tone: "busy" });
  try {
    const result = (await post(`/api/v1/tasks/${task.id}/call`)) || {};
    if (result.call_id !== undefined && result.call_id !== null) {
      placedCalls.set(result.call_id, { taskId: task.id, conversationId: task.conversation_id, opened: false });
    }
    const early = earlyCallEvents.get(result.call_id);
    earlyCallEvents.delete(result.call_id);
    if (early) {
      onCallForTasks(early.ids, early.labels);  // it moved on before we heard back
    } else {
      setCallStatus(task.id, {
        text: callText(result.state || "dialing"),
        tone: "ok",
        callId: result.call_id,
        callState: result.state || "",
      });
    }
    if (task.conversation_id && task.conversation_id !== state.conversationId) {
      const placed = placedCalls.get(result.call_id);
      if (placed) placed.opened = true;
      signal("open", { id: task.conversation_id, focus: false });
    }
  } catch (error) {
    // 409: the server has no telephony; 400: e.g. the operator has no phone set.
    const phone = error instanceof ApiError && error.status === 400;
    setCallStatus(task.id, { text: error.message, tone: "error", phone });
  }
}

async function markDone(task) {
  try {
    await post(`/api/v1/tasks/${task.id}/done`, { outcome: "done" });
    callStatus.delete(task.id);
    toast(t("Task done"));
  } catch (error) {
    toast(error.message, "error");
  }
  await loadTasks().catch((error) => toast(error.message, "error"));
}

async function take(task) {
  try {
    await patch(`/api/v1/tasks/${task.id}`, { owner_id: state.me.id });
    toast(t("The task is yours"));
  } catch (error) {
    toast(error.message, "error");
  }
  await loadTasks().catch((error) => toast(error.message, "error"));
}

/** A "call.updated" event: a callback placed from here moved on. */
export function onCallForTasks(ids, labels) {
  const placed = placedCalls.get(ids.call);
  if (!placed) {
    earlyCallEvents.delete(ids.call);
    earlyCallEvents.set(ids.call, { ids, labels });
    if (earlyCallEvents.size > EARLY_CALL_EVENTS) earlyCallEvents.delete(earlyCallEvents.keys().next().value);
    return;
  }
  const callState = labels.state || "";
  setCallStatus(placed.taskId, {
    text: callText(callState, labels.outcome),
    tone: callState === "ended" && labels.outcome && labels.outcome !== "answered" ? "error" : "ok",
    callId: ids.call,
    callState,
  });
  // The call's conversation, if the server made one of its own for it: shown once.
  if (!placed.opened && ids.conversation && ids.conversation !== state.conversationId) {
    placed.opened = true;
    signal("open", { id: ids.conversation, focus: false });
  }
  if (callState === "ended") placedCalls.delete(ids.call);
}

// ----- the follow-up form of a conversation -----

function at(hours, minutes, daysAhead) {
  const date = new Date(serverNow());
  date.setDate(date.getDate() + daysAhead);
  date.setHours(hours, minutes, 0, 0);
  return date;
}

const QUICK = [
  ["in-1-hour", () => t("In 1 hour"), () => new Date(serverNow() + 3600 * 1000)],
  ["tomorrow-9", () => t("Tomorrow 9:00"), () => at(9, 0, 1)],
  [
    "monday-9",
    () => t("Monday 9:00"),
    () => {
      const today = new Date(serverNow()).getDay();
      return at(9, 0, ((8 - today) % 7) || 7);
    },
  ],
];

/** The "Follow-up…" popover: a due time (with quick choices) and a note. */
export function followUpControl(conversationId) {
  const due = h("input", {
    type: "datetime-local",
    id: "follow-up-due",
    name: "due_at",
    required: true,
    value: localInputValue(new Date(serverNow() + 3600 * 1000)),
  });
  const note = h("textarea", {
    id: "follow-up-note",
    name: "note",
    rows: 2,
    maxlength: 2000,
    placeholder: t("What to do then"),
  });
  const error = h("p", { class: "field-error", id: "follow-up-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary", dataset: { action: "set-follow-up" } }, t("Set follow-up"));
  const form = h(
    "form",
    {
      class: "inline-form follow-up-form",
      dataset: { conversationId },
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
          await post("/api/v1/tasks", {
            conversation_id: conversationId,
            due_at: when.toISOString(),
            note: note.value.trim(),
          });
          toast(t("Follow-up set for {time}", { time: formatTime(when.toISOString()) }));
          note.value = "";
          details.open = false;
          details.querySelector("summary").focus();
          signal("tasks-changed");
        } catch (failure) {
          const fields = failure.fields || {};
          error.textContent = fields.due_at || fields.note || fields.owner_id || failure.message;
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("label", { for: "follow-up-due" }, t("Due")),
    due,
    h(
      "div",
      { class: "quick-choices", role: "group", "aria-label": t("Quick choices") },
      QUICK.map(([name, label, when]) =>
        h(
          "button",
          {
            type: "button",
            class: "quick",
            dataset: { when: name },
            onclick: () => {
              due.value = localInputValue(when());
              error.textContent = "";
            },
          },
          label(),
        ),
      ),
    ),
    h("label", { for: "follow-up-note" }, t("Note")),
    note,
    error,
    submit,
  );
  const details = h(
    "details",
    {
      class: "popover follow-up",
      onkeydown: (event) => {
        if (event.key !== "Escape") return;
        event.preventDefault();
        details.open = false;
        details.querySelector("summary").focus();
      },
    },
    h("summary", { dataset: { action: "follow-up" } }, t("Follow-up…")),
    form,
  );
  return details;
}

// ----- start -----

export function startTasks() {
  on("tasks-shown", () => loadTasks().catch((error) => toast(error.message, "error")));
  setInterval(tickDue, 30000);
}
