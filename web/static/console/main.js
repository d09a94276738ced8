// The agent console: wires the inbox, offers, conversation view and customer card to the API
// and to the live events of /ws.
import { get, logout, post, put } from "../common/api.js";
import { loadChannels } from "../common/channels.js";
import { byId, fill, formatDuration, formatTime, h, secondsSince, toast } from "../common/dom.js";
import { t, tn } from "../common/i18n.js";
import { coalesce, connectLive } from "../common/live.js";
import {
  closeConversation,
  focusCanned,
  focusComposer,
  insertIntoComposer,
  onCall,
  onDelivery,
  onInteraction,
  onTyping,
  openConversation,
  openPopover,
  refreshConversation,
  setStatus,
  toggleCustomer,
} from "./conversation.js";
import { answerOffer, firstOffer, inboxOrder, loadInbox, loadOffers } from "./inbox.js";
import {
  buildAttentionSettings,
  noticeMentions,
  noticeOffers,
  noticeTaskDue,
  useAttentionPreferences,
} from "./attention.js";
import { loadPreferences, mountPreferences, openPreferences } from "./preferences.js";
import { findTask, loadTasks, onCallForTasks, startTasks, taskTitle } from "./tasks.js";
import { startKnowledge } from "./knowledge.js";
import { focusSearch, startSearch } from "./search.js";
import { on, presenceWord, state } from "./state.js";
import { loadView, showTab, startViews, viewsVisible } from "./views.js";

const reloadInboxNow = coalesce(() => loadInbox(), 200);
const reloadView = coalesce(() => loadView(), 300);
// Whatever changes the inbox may change the view on screen too.
const reloadInbox = () => {
  reloadInboxNow();
  if (viewsVisible()) reloadView();
};
const openFromAlert = (id) => openConversation(id, { focus: true });
async function loadOffersAndNotice() {
  await loadOffers();
  noticeOffers(state.offers, openFromAlert);
}
const reloadOffers = coalesce(() => loadOffersAndNotice(), 100);
const reloadConversation = coalesce(() => refreshConversation(), 200);
const reloadNotifications = coalesce(() => loadNotifications(), 200);
const reloadTeam = coalesce(() => loadTeam(), 500);
const reloadTasks = coalesce(() => loadTasks(), 300);
let callEvents = [];
// Call events in a burst: one reload per conversation, a whole refresh if its call ended.
const reloadCallNow = coalesce(async () => {
  const latest = new Map();
  for (const { ids, labels } of callEvents) {
    const ended = labels.state === "ended" || (latest.get(ids.conversation) || {}).ended;
    latest.set(ids.conversation, { ids, labels: ended ? { ...labels, state: "ended" } : labels, ended });
  }
  callEvents = [];
  for (const { ids, labels } of latest.values()) await onCall(ids, labels);
}, 150);
let deliveryIds = {};
const reloadDeliveryNow = coalesce(() => onDelivery(deliveryIds), 200);
const reloadDelivery = (ids) => {
  deliveryIds = ids;
  reloadDeliveryNow();
};

async function loadTeam() {
  const [operators, queues] = await Promise.all([get("/api/v1/operators"), get("/api/v1/queues")]);
  state.operators = new Map(operators.map((operator) => [operator.id, operator]));
  state.queues = new Map(queues.map((queue) => [queue.id, queue]));
  state.myQueueIds = new Set(
    queues.filter((queue) => queue.operator_ids.includes(state.me.id)).map((queue) => queue.id),
  );
}

// ----- presence -----

function showPresence() {
  const select = byId("presence");
  select.value = state.me.presence;
  select.dataset.presence = state.me.presence;
  byId("presence-since").textContent = t("for {duration}", {
    duration: formatDuration(secondsSince(state.me.presence_since)),
  });
}

async function changePresence() {
  const select = byId("presence");
  try {
    state.me = await put("/api/v1/operators/me/presence", { presence: select.value });
    toast(t("You are {presence}", { presence: presenceWord(state.me.presence) }));
  } catch (error) {
    toast(error.message, "error");
  }
  showPresence();
}

// ----- tasks coming due -----

async function onTaskDue(ids) {
  await loadTasks().catch(() => null);
  const task = findTask(ids.task);
  const what = task ? taskTitle(task) : t("a task");
  const body = task ? task.note || "" : "";
  const conversationId = (task && task.conversation_id) || ids.conversation;
  toast(t("Task due: {what}", { what }));
  noticeTaskDue(ids.task, what, body, () => (conversationId ? openFromAlert(conversationId) : showTab("tasks")));
  reloadNotifications();
}

// ----- mentions and reminders -----

/** One entry of the notifications list: a mention, or a task that came due. */
function notificationEntry(item) {
  const open = async (event) => {
    event.preventDefault();
    byId("notifications-dialog").close();
    if (!item.read_at) {
      await post(`/api/v1/notifications/${item.id}/read`).catch(() => null);
      reloadNotifications();
    }
    if (item.conversation_id) openConversation(item.conversation_id, { focus: false });
    else showTab("tasks");
  };
  if (item.kind === "task_due") {
    const what = item.contact_display_name || item.conversation_subject || t("a task");
    return h(
      "li",
      { class: item.read_at ? "read" : "unread", dataset: { kind: "task_due", taskId: item.task_id ?? "" } },
      h(
        "a",
        { href: item.conversation_id ? `#c=${item.conversation_id}` : "#", onclick: open },
        t("Task due: {what}", { what }),
        item.conversation_subject && item.contact_display_name ? ` · ${item.conversation_subject}` : "",
      ),
      item.excerpt && item.excerpt !== what ? h("div", { class: "muted" }, item.excerpt) : null,
      h("time", { datetime: item.created_at }, formatTime(item.created_at)),
    );
  }
  return h(
    "li",
    { class: item.read_at ? "read" : "unread", dataset: { kind: item.kind || "mention" } },
    h(
      "a",
      { href: `#c=${item.conversation_id}`, onclick: open },
      `${t("{name} mentioned you", { name: item.author_name || t("Someone") })} · ${item.contact_display_name}`,
      item.conversation_subject ? ` · ${item.conversation_subject}` : "",
    ),
    h("div", { class: "muted" }, item.excerpt),
    h("time", { datetime: item.created_at }, formatTime(item.created_at)),
  );
}

async function loadNotifications() {
  const data = await get("/api/v1/notifications");
  noticeMentions(data, openFromAlert);
  const count = byId("notifications-count");
  count.textContent = String(data.unread_count);
  count.classList.toggle("quiet", data.unread_count === 0);
  count.setAttribute("aria-label", tn("{n} unread mention", "{n} unread mentions", data.unread_count));
  fill(
    byId("notification-list"),
    data.items.length ? data.items.map(notificationEntry) : h("li", { class: "muted" }, t("No mentions yet.")),
  );
}

// ----- live events -----

let connectedOnce = false;

function onEvent(event) {
  const ids = event.ids || {};
  switch (event.type) {
    case "hello":
      if (connectedOnce) reloadEverything();
      connectedOnce = true;
      break;
    case "resync":
      reloadEverything();
      break;
    case "interaction.created":
      reloadInbox();
      onInteraction(ids);
      break;
    case "delivery.updated":
      reloadDelivery(ids);
      break;
    case "conversation.typing":
      onTyping(ids, event.labels || {});
      break;
    case "interaction.edited":
      if (state.conversation && (ids.conversation === state.conversationId || ids.contact === state.conversation.contact_id)) {
        reloadConversation();
      }
      break;
    case "conversation.created":
    case "conversation.updated":
    case "conversation.assigned":
      reloadInbox();
      if (ids.conversation === state.conversationId) reloadConversation();
      if (event.type === "conversation.assigned") reloadOffers();
      break;
    case "routing.decision":
      if (ids.conversation === state.conversationId) reloadConversation();
      break;
    case "offer.created":
    case "offer.updated":
      if (ids.operator === state.me.id) {
        reloadOffers();
        if (event.type === "offer.created") toast(t("New offer: accept or reject it"));
      }
      reloadInbox();
      break;
    case "operator.presence":
      if (ids.operator === state.me.id) {
        get("/api/v1/auth/me").then((me) => {
          state.me = me;
          showPresence();
        });
      }
      reloadTeam();
      break;
    case "operator.mentioned":
      if (ids.operator === state.me.id) {
        reloadNotifications();
        toast(t("You were mentioned in a note"));
      }
      break;
    case "operator.created":
    case "operator.updated":
      reloadTeam();
      break;
    case "call.updated":
      callEvents.push({ ids, labels: event.labels || {} });
      reloadCallNow();
      onCallForTasks(ids, event.labels || {});
      break;
    case "task.updated":
      reloadTasks();
      break;
    case "task.due":
      if (ids.operator === state.me.id) onTaskDue(ids).catch((error) => console.error(error));
      else reloadTasks();
      break;
    default:
      break;
  }
}

function reloadEverything() {
  reloadTeam();
  reloadInbox();
  reloadOffers();
  reloadNotifications();
  if (state.tasksAvailable !== false) reloadTasks();
  if (state.conversationId !== null) reloadConversation();
}

function setLiveState(value) {
  const element = byId("live-state");
  element.dataset.state = value;
  element.textContent = value === "live" ? t("live") : t("reconnecting…");
}

// ----- keyboard -----

function typing(target) {
  return (
    target instanceof HTMLInputElement ||
    target instanceof HTMLTextAreaElement ||
    target instanceof HTMLSelectElement ||
    (target instanceof HTMLElement && target.isContentEditable)
  );
}

function step(delta) {
  const order = inboxOrder();
  if (!order.length) return;
  const index = order.indexOf(state.conversationId);
  const next = index === -1 ? (delta > 0 ? 0 : order.length - 1) : index + delta;
  if (next < 0 || next >= order.length) return;
  openConversation(order[next]);
  const link = document.querySelector(`.inbox-item[data-conversation-id="${order[next]}"]`);
  if (link) link.scrollIntoView({ block: "nearest" });
}

function onKey(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (typing(event.target)) return;
  if (document.querySelector("dialog[open]")) return;
  const actions = {
    j: () => step(1),
    k: () => step(-1),
    "/": () => focusSearch(),
    i: () => {
      showTab("inbox");
      const first = document.querySelector(".inbox-item.current, .inbox-item");
      if (first) first.focus();
    },
    a: () => {
      const offer = firstOffer();
      if (offer) answerOffer(offer, "accept");
    },
    x: () => {
      const offer = firstOffer();
      if (offer) answerOffer(offer, "reject");
    },
    r: () => focusComposer("reply"),
    n: () => focusComposer("note"),
    c: () => focusCanned(),
    e: () => setStatus("resolved"),
    p: () => setStatus("pending"),
    s: () => openPopover("snooze"),
    t: () => openPopover("transfer"),
    f: () => openPopover("follow-up"),
    u: () => toggleCustomer(),
    "?": () => byId("help-dialog").showModal(),
  };
  const action = actions[event.key];
  if (!action) return;
  event.preventDefault();
  action();
}

// ----- start -----

function openFromHash() {
  const match = /^#c=(\d+)$/.exec(location.hash);
  if (match) openConversation(Number(match[1]));
  else if (state.conversationId !== null) closeConversation();
}

async function start() {
  // The operator's language and time zone first: everything after is shown in them.
  const prefs = await loadPreferences();
  mountPreferences(prefs);
  state.me = await get("/api/v1/auth/me");
  byId("me-name").textContent = state.me.name;
  byId("monitor-link").hidden = !(state.me.role === "supervisor" || state.me.role === "admin");
  byId("reports-link").hidden = !(state.me.role === "supervisor" || state.me.role === "admin");
  byId("admin-link").hidden = !(state.me.role === "supervisor" || state.me.role === "admin");
  showPresence();
  setInterval(showPresence, 30000);
  byId("presence").addEventListener("change", changePresence);
  byId("logout-button").addEventListener("click", () => logout());
  byId("help-button").addEventListener("click", () => byId("help-dialog").showModal());
  byId("notifications-button").addEventListener("click", () => {
    reloadNotifications();
    byId("notifications-dialog").showModal();
  });
  useAttentionPreferences(prefs);
  const attention = buildAttentionSettings();
  byId("notifications-button").after(attention.opener);
  document.body.append(attention.dialog);
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", openFromHash);
  on("open", ({ id, focus, reveal }) => openConversation(id, { focus, reveal: reveal ?? null }));
  on("show-tab", (name) => showTab(name));
  on("tasks-changed", () => reloadTasks());
  on("preferences-open", (detail) => openPreferences(detail || {}));
  on("inbox-changed", () => reloadInbox());
  on("conversation-changed", () => reloadConversation());
  on("customer-close", () => toggleCustomer(false));
  on("insert-into-reply", (text) => insertIntoComposer(text));

  // The channels are the server's configuration: loaded once, with the team.
  await Promise.all([loadTeam(), loadChannels()]);
  startViews();
  startSearch();
  startTasks();
  startKnowledge();
  await Promise.all([
    loadInbox(),
    loadOffersAndNotice(),
    loadNotifications(),
    loadTasks().catch((error) => console.error(error)),
  ]);
  connectLive({ onEvent, onState: setLiveState });
  openFromHash();
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  console.error(error);
  toast(t("The console could not start: {reason}", { reason: error.message }), "error");
});
