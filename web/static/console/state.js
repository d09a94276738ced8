// What the console knows right now; modules read it and ask main.js to refresh it.
import { t } from "../common/i18n.js";

export const state = {
  me: null,
  operators: new Map(),
  queues: new Map(),
  myQueueIds: new Set(),
  inboxSections: [],
  offers: [],
  conversationId: null,
  conversation: null,
  contact: null,
  timelineItems: [],
  canned: null,
  // Whether the server keeps tasks (GET /api/v1/tasks answers): null until asked.
  tasksAvailable: null,
};

export function operatorName(id) {
  if (id === null || id === undefined) return t("nobody");
  const operator = state.operators.get(id);
  return operator ? operator.name : t("operator {id}", { id });
}

export function queueName(id) {
  if (id === null || id === undefined) return t("no queue");
  const queue = state.queues.get(id);
  return queue ? queue.name : t("queue {id}", { id });
}

// Data values (statuses, presences) stay English in the data and the DOM's data-* attributes;
// these are their names as shown, in the operator's language.

/** A conversation status as shown in a pill ("open", "pending", "snoozed", "resolved"). */
export function statusLabel(status) {
  const labels = {
    open: t("open"),
    pending: t("pending"),
    snoozed: t("snoozed"),
    resolved: t("resolved"),
  };
  return labels[status] || status;
}

/** An operator's presence as shown ("Available", "Busy", "Away", "Offline"). */
export function presenceLabel(presence) {
  const labels = {
    available: t("Available"),
    busy: t("Busy"),
    away: t("Away"),
    offline: t("Offline"),
  };
  return labels[presence] || presence;
}

/** A presence in a sentence ("You are {presence}"). */
export function presenceWord(presence) {
  const labels = {
    available: t("available"),
    busy: t("busy"),
    away: t("away"),
    offline: t("offline"),
  };
  return labels[presence] || presence;
}

export function isSupervisor() {
  return state.me && (state.me.role === "supervisor" || state.me.role === "admin");
}

// A tiny publish/subscribe between the console's modules.
const listeners = new Map();

export function on(name, fn) {
  if (!listeners.has(name)) listeners.set(name, new Set());
  listeners.get(name).add(fn);
}

export function signal(name, detail) {
  for (const fn of listeners.get(name) || []) fn(detail);
}
