// What the console knows right now; modules read it and ask main.js to refresh it.

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
};

export function operatorName(id) {
  if (id === null || id === undefined) return "nobody";
  const operator = state.operators.get(id);
  return operator ? operator.name : `operator ${id}`;
}

export function queueName(id) {
  if (id === null || id === undefined) return "no queue";
  const queue = state.queues.get(id);
  return queue ? queue.name : `queue ${id}`;
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
