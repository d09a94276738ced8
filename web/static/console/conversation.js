// The conversation view: header, actions, the customer's whole timeline, and the composer.
import { get, post, withQuery } from "../common/api.js";
import { serverNow } from "../common/clock.js";
import { byId, fill, formatTime, h, localInputValue, toast } from "../common/dom.js";
import {
  channelInfo,
  channelLabel,
  channelsSendingTo,
  defaultReplyChannel,
  isVoiceChannel,
  replyWindowLeft,
} from "../common/channels.js";
import { channelIcon, icon } from "../common/icons.js";
import { buildCallBar, callSummary, directionIcon, fetchCall, renderCallBar } from "./calls.js";
import { buildFlags, defaultChannel, loadContext, renderFlags } from "./context_flags.js";
import { renderCustomer } from "./customer.js";
import { chosenTemplate, deliveryBadge, loadDelivery, loadReplyOptions, renderReplyRules } from "./delivery.js";
import { markCurrent, markRead } from "./inbox.js";
import { erpSettings, fillErpPlaceholders, linkOrderNumbers, writtenOrderNumbers } from "./order_links.js";
import { showCustomerTyping, watchTyping } from "./typing.js";
import { isSupervisor, operatorName, presenceLabel, queueName, signal, state, statusLabel } from "./state.js";
import { buildSuggestions, curationControl, forgetSuggestion, sendReply, updateSuggestions } from "./suggestions.js";
import { followUpControl } from "./tasks.js";
import { makeLead } from "./leads.js";
import { t } from "../common/i18n.js";

const TIMELINE_PAGE = 50;

let view = null; // the elements of the open conversation
let timeline = { items: [], cursor: null, contactId: null };
let routingEvents = [];
// The customer's history beside it (context_flags.js): flags, the default reply channel.
let customerContext = null;
// The open conversation's call (CallView or null), and conversations a call event named.
let call = null;
const callConversations = new Set();
// How many "call.updated" events have come: a view that loaded its call meanwhile fetches it
// again (its own answer may be older than the event's).
let callEventsSeen = 0;

export async function openConversation(id, { focus = false, reveal = null } = {}) {
  const switching = state.conversationId !== id || view === null;
  state.conversationId = id;
  if (location.hash !== `#c=${id}`) history.replaceState(null, "", `#c=${id}`);
  byId("console").dataset.view = "conversation";
  markCurrent();
  if (switching) {
    timeline = { items: [], cursor: null, contactId: null };
    routingEvents = [];
    customerContext = null;
    call = null;
    view = buildView(id);
    fill(byId("conversation"), view.root);
  }
  await refreshConversation();
  if (state.conversationId !== id) return;
  await markConversationRead();
  const pane = byId("conversation");
  if (reveal !== null && revealInteraction(reveal)) return;
  if (focus) view.textarea.focus();
  // Someone who already started typing in the new conversation keeps their place.
  else if (switching && !pane.contains(document.activeElement)) pane.focus({ preventScroll: true });
}

export function closeConversation() {
  state.conversationId = null;
  state.conversation = null;
  view = null;
  history.replaceState(null, "", location.pathname);
  byId("console").dataset.view = "inbox";
  markCurrent();
}

// The refresh under way and the one asked for meanwhile (see refreshConversation).
let refreshing = null;
let refreshAgain = null;

/** Load the open conversation again and draw it. One refresh runs at a time: a live event, the
 *  composer and the delivery badges often ask together (a reply brings its own refresh, its
 *  interaction, its delivery and the conversation's update), and each refresh is some eight
 *  requests; run side by side they took turns on the server (SQLite's one connection), so
 *  what was asked first was drawn last. Asked while one runs, a refresh runs once after it, for
 *  everyone who asked meanwhile (the one under way may have read before what they wait for);
 *  another conversation opened meanwhile starts at once. */
export function refreshConversation() {
  const id = state.conversationId;
  if (refreshing === null || refreshing.id !== id) return startRefresh(id);
  if (refreshAgain === null || refreshAgain.id !== id) {
    const after = refreshing.done;
    const again = { id, done: null };
    again.done = after
      .catch(() => {})
      .then(() => {
        if (refreshAgain === again) refreshAgain = null;
        if (state.conversationId !== id) return undefined;
        // One started since the other ended has read after it: that one will do.
        return refreshing !== null && refreshing.id === id ? refreshing.done : startRefresh(id);
      });
    refreshAgain = again;
  }
  return refreshAgain.done;
}

function startRefresh(id) {
  const run = { id, done: null };
  run.done = loadConversation().finally(() => {
    if (refreshing === run) refreshing = null;
  });
  refreshing = run;
  return run.done;
}

async function loadConversation() {
  const id = state.conversationId;
  if (id === null || view === null) return;
  let conversation;
  try {
    conversation = await get(`/api/v1/conversations/${id}`);
  } catch (error) {
    if (state.conversationId !== id) return;
    fill(
      view.header,
      h("p", { class: "error-text", role: "alert" }, t("Cannot open conversation {id}: {reason}", { id, reason: error.message })),
    );
    return;
  }
  if (state.conversationId !== id) return;
  state.conversation = conversation;
  const eventsBefore = callEventsSeen;
  const contextLoad = loadContext(id);
  const [contact, currentCall] = await Promise.all([
    get(`/api/v1/contacts/${conversation.contact_id}`),
    hasCall(conversation) ? fetchCall(id).catch(() => null) : null,
    loadTimeline(conversation.contact_id),
    loadRouting(id),
    loadReplyOptions(id),
    // The ERP's order number pattern, for links in customer messages (asked once).
    erpSettings(),
  ]);
  await loadDelivery(outboundConversations());
  const foundContext = await contextLoad;
  if (state.conversationId !== id) return;
  customerContext = foundContext;
  state.contact = contact;
  state.timelineItems = timeline.items;
  call =
    callEventsSeen !== eventsBefore && hasCall(conversation)
      ? await fetchCall(id).catch(() => currentCall)
      : currentCall;
  if (state.conversationId !== id) return;
  renderHeader();
  renderFlags(view.flags, customerContext);
  renderCallBar(view.callBar, call, id, onCallControlled);
  renderActions();
  renderTimeline();
  renderChannels();
  renderCustomer();
  updateSuggestions(view.suggestions, timeline.items);
}

/** Whether the conversation may have a call: a voice channel's, or one a call event named. */
function hasCall(conversation) {
  return isVoiceChannel(conversation.channel) || callConversations.has(conversation.id);
}

/** After Hold, Resume or Hang up: a hung-up call's entry joins the timeline. */
async function onCallControlled(verb) {
  if (verb === "hangup") await refreshConversation();
}

/** A "call.updated" event: reload the call bar of the open conversation; when the call ended,
 *  the whole conversation (the call's entry and recording join the timeline). */
export async function onCall(ids, labels) {
  if (ids.conversation) callConversations.add(ids.conversation);
  callEventsSeen += 1;
  if (view === null || ids.conversation !== state.conversationId) return;
  if (labels.state === "ended" || !state.conversation) {
    await refreshConversation();
    return;
  }
  const id = state.conversationId;
  const fresh = await fetchCall(id).catch(() => null);
  if (state.conversationId !== id || view === null) return;
  call = fresh;
  renderCallBar(view.callBar, call, id, onCallControlled);
}

/** Scroll to an interaction of the timeline and focus it (a voicemail from the tasks); false
 *  if it is not loaded. */
export function revealInteraction(interactionId) {
  if (!view) return false;
  const item = view.list.querySelector(`.item[data-interaction-id="${Number(interactionId)}"]`);
  if (!item) return false;
  item.setAttribute("tabindex", "-1");
  item.classList.add("revealed");
  item.scrollIntoView({ block: "center" });
  item.focus({ preventScroll: true });
  return true;
}

/** Conversations of the outbound messages in view (their delivery status is shown). */
function outboundConversations() {
  return timeline.items
    .filter((item) => item.direction === "out" && item.conversation_id !== null)
    .map((item) => item.conversation_id);
}

/** A message's delivery changed: refresh if it is in view. */
export async function onDelivery(ids) {
  if (!state.conversation || view === null) return;
  if (ids.conversation !== state.conversationId && !outboundConversations().includes(ids.conversation)) return;
  await refreshConversation();
}

/** A conversation.typing event: the visitor of the open chat is typing (or stopped). */
export function onTyping(ids, labels) {
  if (!view || ids.conversation !== state.conversationId || labels.who !== "customer") return;
  showCustomerTyping(view.typingLine, labels.typing === "true");
}

/** New interactions of the contact: refresh the timeline; mark read if we are looking. */
export async function onInteraction(ids) {
  if (!state.conversation) return;
  if (ids.contact !== state.conversation.contact_id && ids.conversation !== state.conversationId) return;
  await refreshConversation();
  if (ids.conversation === state.conversationId && document.visibilityState === "visible") {
    await markConversationRead();
  }
}

async function markConversationRead() {
  const id = state.conversationId;
  if (id === null) return;
  await post(`/api/v1/conversations/${id}/read`);
  markRead(id);
}

async function loadTimeline(contactId) {
  const page = await get(
    withQuery(`/api/v1/contacts/${contactId}/timeline`, { limit: TIMELINE_PAGE }),
  );
  if (timeline.contactId !== contactId) {
    timeline = { items: page.items, cursor: page.next_cursor, contactId };
    return;
  }
  // Keep the older pages already loaded; newest first, no duplicates.
  const known = new Set(page.items.map((item) => item.id));
  timeline.items = [...page.items, ...timeline.items.filter((item) => !known.has(item.id))];
  if (timeline.cursor === null && timeline.items.length <= page.items.length) {
    timeline.cursor = page.next_cursor;
  }
}

async function loadOlder() {
  if (!timeline.cursor) return;
  const page = await get(
    withQuery(`/api/v1/contacts/${timeline.contactId}/timeline`, {
      limit: TIMELINE_PAGE,
      cursor: timeline.cursor,
    }),
  );
  const known = new Set(timeline.items.map((item) => item.id));
  timeline.items.push(...page.items.filter((item) => !known.has(item.id)));
  timeline.cursor = page.next_cursor;
  renderTimeline({ keepScroll: true });
}

async function loadRouting(conversationId) {
  const page = await get(withQuery(`/api/v1/conversations/${conversationId}/routing`, { limit: 200 }));
  routingEvents = page.items;
}

// ----- building -----

function buildView(id) {
  const header = h("header", { class: "conversation-header" });
  const actions = h("div", { class: "actions", role: "group", "aria-label": t("Conversation actions") });
  const list = h("ol", { class: "timeline", "aria-label": t("Timeline of the customer, oldest first") });
  const older = h(
    "button",
    { type: "button", class: "load-older", hidden: true, onclick: () => loadOlder() },
    t("Load older history"),
  );
  const timelineBox = h(
    "section",
    { class: "timeline-box", "aria-label": t("Timeline"), tabindex: "-1" },
    older,
    list,
  );
  const composer = buildComposer(id);
  const callBar = buildCallBar();
  const flags = buildFlags();
  const root = h(
    "div",
    { class: "conversation-view", dataset: { conversationId: id } },
    h(
      "button",
      { type: "button", class: "back-to-inbox", onclick: () => closeConversation() },
      `← ${t("Inbox")}`,
    ),
    header,
    flags,
    actions,
    callBar,
    timelineBox,
    composer.form,
  );
  return { id, root, header, flags, actions, callBar, list, older, timelineBox, followUp: null, ...composer };
}

function renderHeader() {
  const c = state.conversation;
  const contact = state.contact;
  const name = contact.display_name || t("Contact {id}", { id: contact.id });
  fill(
    view.header,
    h("h1", { id: "conversation-title" }, channelIcon(c.channel), " ", name),
    c.subject ? h("p", { class: "subject" }, c.subject) : null,
    h(
      "p",
      { class: "meta" },
      h("span", { class: `pill status-${c.status}`, dataset: { status: c.status } }, statusLabel(c.status)),
      " ",
      h("span", {}, `#${c.id} · ${channelLabel(c.channel)} · ${queueName(c.queue_id)} · `),
      h("span", { class: "assignee" }, c.assignee_id ? t("assigned to {name}", { name: operatorName(c.assignee_id) }) : t("unassigned")),
      c.snoozed_until ? h("span", {}, ` · ${t("snoozed until {time}", { time: formatTime(c.snoozed_until) })}`) : null,
      c.sla_due_at && !c.first_response_at
        ? h("span", { class: "sla" }, ` · ${t("first response due {time}", { time: formatTime(c.sla_due_at) })}`)
        : null,
      " ",
      h(
        "button",
        {
          type: "button",
          class: "show-customer",
          "aria-controls": "customer",
          onclick: () => toggleCustomer(),
        },
        t("Customer"),
      ),
    ),
  );
  view.root.setAttribute("aria-labelledby", "conversation-title");
}

export function toggleCustomer(show) {
  const layout = byId("console");
  const open = show ?? layout.dataset.customer !== "open";
  layout.dataset.customer = open ? "open" : "closed";
  if (open) byId("customer").focus({ preventScroll: false });
}

// ----- actions -----

function renderActions() {
  const c = state.conversation;
  const mine = c.assignee_id === state.me.id;
  const buttons = [];
  if (!mine && (c.assignee_id === null || isSupervisor())) {
    buttons.push(button(t("Take"), "take", () => assignTo(state.me.id), t("Assign this conversation to me")));
  }
  if (c.status !== "resolved") {
    buttons.push(button(t("Resolve"), "resolve", () => setStatus("resolved"), t("Resolve (e)")));
  } else {
    buttons.push(button(t("Reopen"), "reopen", () => setStatus("open"), t("Reopen")));
  }
  if (c.status !== "pending") {
    buttons.push(button(t("Pending"), "pending", () => setStatus("pending"), t("Waiting on the customer (p)")));
  }
  if (c.status !== "open" && c.status !== "resolved") {
    buttons.push(button(t("Open"), "open", () => setStatus("open"), t("Back to open")));
  }
  buttons.push(
    button(t("Make a lead"), "make-lead", (event) => makeLead(c, event.currentTarget), t("Open a sales lead for this conversation")),
  );
  // The follow-up form is kept across refreshes: a half-written note survives live updates.
  if (state.tasksAvailable && view.followUp === null) view.followUp = followUpControl(c.id);
  fill(view.actions, buttons, snoozeControl(), transferControl(), state.tasksAvailable ? view.followUp : null);
}

function button(text, name, onclick, title) {
  return h("button", { type: "button", class: `action-${name}`, title, onclick }, text);
}

function snoozeControl() {
  const inFourHours = new Date(serverNow() + 4 * 3600 * 1000);
  const input = h("input", {
    type: "datetime-local",
    id: "snooze-until",
    name: "snooze-until",
    value: localInputValue(inFourHours),
    min: localInputValue(new Date(serverNow())),
    required: true,
  });
  const form = h(
    "form",
    {
      class: "inline-form",
      onsubmit: (event) => {
        event.preventDefault();
        const until = new Date(input.value);
        if (Number.isNaN(until.getTime())) return toast(t("Pick a date and time"), "error");
        setStatus("snoozed", until.toISOString());
        details.open = false;
      },
    },
    h("label", { for: "snooze-until" }, t("Snooze until")),
    input,
    h("button", { type: "submit" }, t("Snooze")),
  );
  const details = h("details", { class: "popover snooze" }, h("summary", {}, t("Snooze…")), form);
  return details;
}

function transferControl() {
  const select = h(
    "select",
    { id: "transfer-target", name: "transfer-target", required: true },
    h("option", { value: "" }, t("Choose…")),
    h(
      "optgroup",
      { label: t("Queues") },
      [...state.queues.values()].map((q) => h("option", { value: `queue:${q.id}` }, q.name)),
    ),
    h(
      "optgroup",
      { label: t("Operators") },
      [...state.operators.values()]
        .filter((o) => o.active && o.id !== state.me.id)
        .map((o) => h("option", { value: `operator:${o.id}` }, `${o.name} (${presenceLabel(o.presence)})`)),
    ),
  );
  const note = h("input", {
    type: "text",
    id: "transfer-note",
    name: "transfer-note",
    maxlength: 2000,
    placeholder: t("What the next person should know"),
  });
  const form = h(
    "form",
    {
      class: "inline-form",
      onsubmit: async (event) => {
        event.preventDefault();
        if (!select.value) return toast(t("Choose a queue or an operator"), "error");
        const [kind, target] = select.value.split(":");
        const body = kind === "queue" ? { queue_id: Number(target) } : { operator_id: Number(target) };
        if (note.value.trim()) body.note = note.value.trim();
        await act(() => post(`/api/v1/conversations/${state.conversationId}/transfer`, body), t("Transferred"));
        details.open = false;
      },
    },
    h("label", { for: "transfer-target" }, t("Transfer to")),
    select,
    h("label", { for: "transfer-note" }, t("Note")),
    note,
    h("button", { type: "submit" }, t("Transfer")),
  );
  const details = h("details", { class: "popover transfer" }, h("summary", {}, t("Transfer…")), form);
  return details;
}

export function openPopover(name) {
  if (!view) return;
  const details = view.actions.querySelector(`details.${name}`);
  if (!details) return;
  details.open = true;
  const field = details.querySelector("input, select");
  if (field) field.focus();
}

async function act(call, done) {
  try {
    await call();
    toast(done);
  } catch (error) {
    toast(error.message, "error");
  }
  await refreshConversation();
  signal("inbox-changed");
}

export function setStatus(status, snoozedUntil) {
  if (!state.conversationId) return Promise.resolve();
  const body = { status };
  if (snoozedUntil) body.snoozed_until = snoozedUntil;
  const words = {
    resolved: t("Conversation resolved"),
    pending: t("Set to pending"),
    snoozed: t("Conversation snoozed"),
    open: t("Reopened"),
  };
  return act(() => post(`/api/v1/conversations/${state.conversationId}/status`, body), words[status]);
}

function assignTo(operatorId) {
  return act(
    () => post(`/api/v1/conversations/${state.conversationId}/assign`, { assignee_id: operatorId }),
    t("Assigned to you"),
  );
}

// ----- timeline -----

function timelineEntries() {
  const entries = timeline.items.map((item) => ({ at: item.occurred_at, kind: "interaction", item }));
  for (const decision of routingEvents) {
    entries.push({ at: decision.created_at, kind: "routing", item: decision });
  }
  const c = state.conversation;
  if (c && c.resolved_at) entries.push({ at: c.resolved_at, kind: "status", item: { text: t("Conversation resolved") } });
  entries.sort((a, b) => new Date(a.at) - new Date(b.at));
  return entries;
}

function renderTimeline({ keepScroll = false } = {}) {
  const box = view.timelineBox;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const fromBottom = box.scrollHeight - box.scrollTop;
  view.older.hidden = !timeline.cursor;
  // Email frames are kept across refreshes, so they do not reload (and flicker).
  const frames = new Map();
  for (const frame of view.list.querySelectorAll("iframe[data-interaction-id]")) {
    frames.set(frame.dataset.interactionId, frame);
  }
  fill(
    view.list,
    timelineEntries().map((entry) => {
      if (entry.kind === "routing") return renderRouting(entry.item);
      if (entry.kind === "status") return renderSystem(entry.item.text, entry.at);
      return renderInteraction(entry.item, frames);
    }),
  );
  if (keepScroll) box.scrollTop = box.scrollHeight - fromBottom;
  else if (atBottom || !box.dataset.scrolled) box.scrollTop = box.scrollHeight;
  box.dataset.scrolled = "1";
}

// What each kind of routing decision reads as; {operator} is who got the work, {queue} where.
const ROUTING_WORDS = {
  queue: (v) => t("Entered queue {queue}", v),
  offer: (v) => t("Offered to {operator}", v),
  assign: (v) => t("Assigned to {operator}", v),
  accepted: (v) => t("{operator} accepted the offer", v),
  rejected: (v) => t("{operator} declined the offer", v),
  timed_out: (v) => t("The offer to {operator} timed out", v),
  overflow: (v) => t("Overflowed to {queue}", v),
  transfer: (v) => t("Transferred to {queue}", v),
  manual_assign: (v) => t("Assigned to {operator}", v),
  requeue: (v) => t("Back in queue {queue}", v),
  sla_breach: (v) => t("SLA breached", v),
  wait: (v) => t("Waiting for an operator", v),
  none: (v) => t("No operator available", v),
  auto_away: (v) => t("{operator} went away", v),
  task_assign: (v) => t("Callback given to {operator}", v),
};

/** Who made a decision, in words: a person's name, or what the process is. */
function actorWords(decision) {
  switch (decision.actor_kind) {
    case "operator":
      return t("by {name}", { name: decision.actor_name || operatorName(decision.actor_operator_id) });
    case "token":
      return t("by API token {name}", { name: decision.actor_name || "" });
    case "cli":
      return t("from the command line");
    case "config":
      return t("from the config file");
    case "sla":
      return t("by the SLA timer");
    case "routing":
      return t("by routing");
    default:
      return decision.actor_name || decision.actor_label || "";
  }
}

function renderRouting(decision) {
  const words = ROUTING_WORDS[decision.kind];
  const vars = {
    operator: decision.operator_id ? operatorName(decision.operator_id) : t("nobody"),
    queue: decision.queue_id ? queueName(decision.queue_id) : t("no queue"),
  };
  const text = words ? words(vars) : decision.kind;
  return h(
    "li",
    { class: "item item-event", dataset: { routingKind: decision.kind } },
    h(
      "div",
      { class: "item-head" },
      icon("event", t("System event")),
      h("strong", {}, text),
      h("span", { class: "muted actor" }, actorWords(decision)),
      h("time", { datetime: decision.created_at }, formatTime(decision.created_at)),
    ),
    decision.reason ? h("div", { class: "item-body muted" }, decision.reason) : null,
  );
}

function renderSystem(text, at) {
  return h(
    "li",
    { class: "item item-event" },
    h(
      "div",
      { class: "item-head" },
      icon("event", t("System event")),
      h("strong", {}, text),
      h("time", { datetime: at }, formatTime(at)),
    ),
  );
}

function authorOf(item) {
  if (item.meta && item.meta.automatic) return t("Automatic answer");
  if (item.kind === "note" || item.direction === "out" || item.operator_id) {
    return item.operator_id ? operatorName(item.operator_id) : "omnicrm";
  }
  return state.contact ? state.contact.display_name || t("Customer") : t("Customer");
}

function renderInteraction(item, frames) {
  const isNote = item.kind === "note";
  const isEvent = item.kind === "event";
  const other = item.conversation_id !== state.conversationId;
  const kindClass = isNote ? "item-note" : isEvent ? "item-event" : `item-${item.direction}`;
  return h(
    "li",
    {
      class: `item ${kindClass}${other ? " other-conversation" : ""}`,
      dataset: { interactionId: item.id, channel: item.channel, kind: item.kind },
    },
    h(
      "div",
      { class: "item-head" },
      isNote
        ? icon("note", t("Internal note"))
        : isEvent
          ? icon("event", t("System event"))
          : item.kind === "call"
            ? directionIcon((item.meta && item.meta.call && item.meta.call.direction) || item.direction)
            : channelIcon(item.channel),
      h("strong", {}, authorOf(item)),
      h(
        "span",
        { class: "muted" },
        isNote ? t("internal note") : channelLabel(item.channel),
      ),
      item.direction === "out" && !isNote ? deliveryBadge(item, () => refreshConversation()) : null,
      h("time", { datetime: item.occurred_at }, formatTime(item.occurred_at)),
      other && item.conversation_id
        ? h(
            "a",
            {
              href: `#c=${item.conversation_id}`,
              class: "other-link",
              onclick: (event) => {
                event.preventDefault();
                signal("open", { id: item.conversation_id });
              },
            },
            t("conversation #{id}", { id: item.conversation_id }),
          )
        : null,
    ),
    item.subject && !isNote ? h("div", { class: "item-subject" }, item.subject) : null,
    item.kind === "call" ? callSummary(item) : null,
    item.kind === "call" && !item.text ? null : renderBody(item, frames),
    renderEdits(item),
    renderAttachments(item),
    curationControl(item),
  );
}

/** A message the customer edited (Telegram): marked, with what it said before. */
function renderEdits(item) {
  const edits = (item.meta && item.meta.edits) || [];
  if (!edits.length) return null;
  return h(
    "details",
    { class: "item-edits" },
    h("summary", {}, t("edited")),
    h(
      "ol",
      { "aria-label": t("Earlier versions") },
      edits.map((edit) =>
        h(
          "li",
          {},
          h("span", { class: "muted" }, t("until {time}", { time: formatTime(edit.until) })),
          " ",
          h("span", { class: "item-edit-text" }, edit.text || ""),
        ),
      ),
    ),
  );
}

function renderBody(item, frames) {
  // The customer's order numbers link to the order; only in the text the console renders,
  // never inside an email's frame.
  const customerText = item.direction === "in" && item.kind !== "note" && item.kind !== "event";
  const text = h("div", { class: "item-body" }, customerText ? linkOrderNumbers(item.text || "") : item.text || "");
  if (!item.html || item.direction !== "in") return text;
  const key = String(item.id);
  const frame =
    frames.get(key) ||
    h("iframe", {
      class: "email-frame",
      // An empty sandbox: no scripts, no forms, no popups, no same-origin access.
      sandbox: "",
      referrerpolicy: "no-referrer",
      loading: "lazy",
      title: t("Email: {subject}", { subject: item.subject || t("message") }),
      src: `/api/v1/interactions/${item.id}/html`,
      dataset: { interactionId: key },
    });
  return h(
    "div",
    { class: "email" },
    frame,
    h("details", { class: "plain-text" }, h("summary", {}, t("Plain text")), text),
  );
}

function formatSize(bytes) {
  if (bytes === undefined || bytes === null) return "";
  if (bytes < 1024) return t("{n} B", { n: bytes });
  if (bytes < 1024 * 1024) return t("{n} KB", { n: (bytes / 1024).toFixed(0) });
  return t("{n} MB", { n: (bytes / 1024 / 1024).toFixed(1) });
}

function renderAttachments(item) {
  if (!item.attachments || !item.attachments.length) return null;
  return h(
    "ul",
    { class: "attachments", "aria-label": t("Attachments") },
    item.attachments.map((entry, index) => {
      const name = entry.filename || t("attachment {n}", { n: index + 1 });
      const size = formatSize(entry.size);
      if (!entry.key) {
        // Media a provider holds is fetched after the message is stored (Twilio's).
        const why = entry.pending
          ? t("fetching…")
          : entry.error && !entry.too_large
            ? t("could not be fetched: {reason}", { reason: entry.error })
            : t("too large, not kept");
        return h("li", { class: "muted" }, `${name} ${size} (${why})`);
      }
      const url = `/api/v1/interactions/${item.id}/attachments/${index}`;
      // A recording (a call's, a voicemail, a voice message) plays here; loaded only on play.
      const audio =
        typeof entry.content_type === "string" && entry.content_type.toLowerCase().startsWith("audio/")
          ? h("audio", {
              class: "attachment-audio",
              controls: true,
              preload: "none",
              src: url,
              "aria-label": t("Recording: {name}", { name }),
              dataset: { interactionId: item.id, attachmentIndex: index },
            })
          : null;
      return h(
        "li",
        { class: audio ? "attachment-recording" : null },
        audio,
        h("a", { href: url, download: name }, name),
        size ? h("span", { class: "muted" }, ` ${size}`) : null,
      );
    }),
  );
}

// ----- composer -----

function buildComposer(id) {
  const textarea = h("textarea", {
    id: "composer-text",
    name: "text",
    rows: 4,
    "aria-label": t("Reply to the customer"),
    placeholder: t("Write a reply… (Ctrl+Enter sends)"),
  });
  const channel = h("select", { id: "reply-channel", name: "channel" });
  const canned = h("select", { id: "canned", name: "canned" }, h("option", { value: "" }, t("Canned response…")));
  const send = h("button", { type: "submit", class: "primary send" }, t("Send reply"));
  const mentionList = h("ul", { class: "mention-list", role: "listbox", id: "mention-list", hidden: true, "aria-label": t("Mention a colleague") });
  const modeReply = h("input", { type: "radio", name: "mode", value: "reply", id: "mode-reply", checked: true });
  const modeNote = h("input", { type: "radio", name: "mode", value: "note", id: "mode-note" });
  const channelField = h("span", { class: "field channel-field" }, h("label", { for: "reply-channel" }, t("Send via")), channel);
  // What the chosen channel allows now (reply window, templates): delivery.js fills it.
  const rules = h("div", { class: "reply-rules", id: "reply-rules", hidden: true, "aria-live": "polite" });
  channel.addEventListener("change", () => renderReplyRules(rules, channel.value));
  const typingLine = h("p", { class: "muted customer-typing", hidden: true, "aria-live": "polite" }, t("The customer is typing…"));
  // What a canned response left empty (an order placeholder without a value).
  const cannedNote = h("p", { class: "canned-note", hidden: true, role: "status" });
  // Suggested replies (suggestions.js): Insert puts one into the box as a canned response is.
  const suggestions = buildSuggestions({
    conversationId: id,
    textarea,
    insert: (text) => insertAtCursor(textarea, text),
    note: (text) => {
      cannedNote.textContent = text;
      cannedNote.hidden = !text;
    },
  });
  const form = h(
    "form",
    { class: "composer", "aria-label": t("Reply or note"), dataset: { mode: "reply" } },
    h(
      "div",
      { class: "composer-bar" },
      h(
        "fieldset",
        { class: "mode" },
        h("legend", { class: "visually-hidden" }, t("Write")),
        h("label", { for: "mode-reply" }, modeReply, " ", t("Reply")),
        h("label", { for: "mode-note" }, modeNote, " ", t("Internal note")),
      ),
      channelField,
      h("span", { class: "field" }, h("label", { for: "canned", class: "visually-hidden" }, t("Insert a canned response")), canned),
    ),
    rules,
    typingLine,
    suggestions.root,
    cannedNote,
    h("div", { class: "composer-input" }, textarea, mentionList),
    h("div", { class: "composer-send" }, h("span", { class: "muted hint" }, t("Ctrl+Enter sends")), send),
  );
  const composer = { form, textarea, channel, canned, send, mentionList, modeReply, modeNote, rules, typingLine, cannedNote, suggestions };
  const setMode = () => {
    const note = modeNote.checked;
    form.dataset.mode = note ? "note" : "reply";
    channelField.hidden = note;
    rules.hidden = note || rules.childElementCount === 0;
    send.textContent = note ? t("Add note") : t("Send reply");
    textarea.setAttribute("aria-label", note ? t("Internal note (type @ to mention)") : t("Reply to the customer"));
    textarea.placeholder = note
      ? t("Internal note, never sent to the customer; @name mentions a colleague")
      : t("Write a reply… (Ctrl+Enter sends)");
  };
  modeReply.addEventListener("change", setMode);
  modeNote.addEventListener("change", setMode);
  watchTyping(composer, id);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(composer, id);
  });
  textarea.addEventListener("keydown", (event) => {
    if (handleMentionKeys(composer, event)) return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit(composer, id);
    } else if (event.key === "Escape") {
      textarea.blur();
      byId("conversation").focus();
    }
  });
  textarea.addEventListener("input", () => updateMentions(composer));
  textarea.addEventListener("input", () => {
    if (!composer.textarea.value) composer.cannedNote.hidden = true;
  });
  canned.addEventListener("change", () => insertCanned(composer));
  loadCanned(composer);
  composer.setMode = setMode;
  return composer;
}

export function focusComposer(mode) {
  if (!view) return;
  (mode === "note" ? view.modeNote : view.modeReply).checked = true;
  view.setMode();
  view.textarea.focus();
}

export function focusCanned() {
  if (view) view.canned.focus();
}

/** The channels a reply may go out on: those that can send to an address the contact has
 *  (from the server's channel list), the default first: the server's (where the customer
 *  wrote last if a reply can go there, else the conversation's own: context_flags.js), the
 *  conversation's own while the context is not known. */
function replyChoices(conversation, contact) {
  const choices = [];
  for (const identity of contact.identities || []) {
    for (const name of channelsSendingTo(identity.kind)) {
      if (!choices.includes(name)) choices.push(name);
    }
  }
  const wanted = defaultChannel(customerContext);
  const preferred = choices.includes(wanted) ? wanted : defaultReplyChannel(conversation.channel);
  choices.sort((a, b) => (b === preferred) - (a === preferred));
  return { choices, preferred };
}

/** The customer's last message on `channel` in the loaded timeline (for reply windows). */
function lastInboundOn(channel) {
  const found = timeline.items.find((item) => item.direction === "in" && item.channel === channel);
  return found ? found.occurred_at : null;
}

function choiceLabel(name, preferred) {
  const parts = [channelLabel(name)];
  if (name === preferred) parts.push(t("(default)"));
  const info = channelInfo(name);
  const left = replyWindowLeft(name, lastInboundOn(name), serverNow());
  if (info && info.reply_window_seconds !== null && left === 0) parts.push(t("(reply window closed)"));
  return parts.join(" ");
}

function renderChannels() {
  const { choices, preferred } = replyChoices(state.conversation, state.contact);
  const selected = view.channel.value;
  if (!choices.length) {
    fill(view.channel, h("option", { value: "" }, t("No channel reaches this contact")));
    view.channel.disabled = true;
    return;
  }
  view.channel.disabled = false;
  fill(
    view.channel,
    choices.map((name) => h("option", { value: name }, choiceLabel(name, preferred))),
  );
  // The default follows the customer (they wrote on another channel) until the operator
  // picks one.
  const followsDefault = !selected || selected === view.channel.dataset.preferred;
  view.channel.value = !followsDefault && choices.includes(selected) ? selected : choices[0];
  view.channel.dataset.preferred = choices[0];
  if (!view.rules.contains(document.activeElement)) renderReplyRules(view.rules, view.channel.value);
}

async function submit(composer, id) {
  const text = composer.textarea.value.trim();
  const template = composer.modeNote.checked ? null : chosenTemplate(composer.rules);
  if (!text && !template) {
    toast(t("Write something first"), "error");
    composer.textarea.focus();
    return;
  }
  const note = composer.modeNote.checked;
  composer.send.disabled = true;
  try {
    if (note) {
      const added = await post(`/api/v1/conversations/${id}/notes`, { text });
      const mentions = (added.meta && added.meta.mentions) || [];
      const told = mentions.filter((m) => m.notified).map((m) => `@${m.handle}`);
      toast(told.length ? t("Note added; {names} notified", { names: told.join(", ") }) : t("Note added"));
      for (const mention of mentions.filter((m) => !m.notified && m.reason)) {
        toast(t("@{handle} was not notified: {reason}", { handle: mention.handle, reason: mention.reason }), "error");
      }
    } else {
      if (!composer.channel.value) {
        toast(t("No channel this server runs can reach this contact: add an address first"), "error");
        return;
      }
      const body = template ? { ...template, channel: composer.channel.value } : { text, channel: composer.channel.value };
      const result = await sendReply(composer.suggestions, id, body);
      toast(t("Reply queued for {channel} to {recipient}", { channel: channelLabel(result.outbox.channel), recipient: result.outbox.recipient }));
    }
    composer.textarea.value = "";
    composer.cannedNote.hidden = true;
    forgetSuggestion(composer.suggestions);
  } catch (error) {
    toast(error.message, "error");
  } finally {
    composer.send.disabled = false;
  }
  if (state.conversationId === id) await refreshConversation();
  signal("inbox-changed");
}

// Canned responses: the picker inserts the rendered text (placeholders filled by the server;
// those of the ERP, {{order.*}} and {{invoice.*}}, by the console from the customer's orders).

async function loadCanned(composer) {
  if (state.canned === null) {
    state.canned = (await get("/api/v1/canned-responses")).items;
  }
  fill(
    composer.canned,
    h("option", { value: "" }, state.canned.length ? t("Canned response…") : t("No canned responses")),
    state.canned.map((item) =>
      h("option", { value: item.id }, item.shortcut ? `${item.title} (/${item.shortcut})` : item.title),
    ),
  );
}

async function insertCanned(composer) {
  const cannedId = composer.canned.value;
  composer.canned.value = "";
  if (!cannedId || state.conversationId === null) return;
  const conversationId = state.conversationId;
  const contactId = state.conversation ? state.conversation.contact_id : null;
  const item = (state.canned || []).find((entry) => String(entry.id) === String(cannedId));
  try {
    const rendered = await post(
      `/api/v1/conversations/${conversationId}/canned-responses/${cannedId}/render`,
    );
    const filled =
      contactId === null
        ? { text: rendered.text, note: "" }
        : await fillErpPlaceholders(
            item ? item.body : "",
            rendered.text,
            contactId,
            writtenOrderNumbers(timeline.items, conversationId),
          );
    if (state.conversationId !== conversationId) return;
    insertAtCursor(composer.textarea, filled.text);
    composer.cannedNote.textContent = filled.note;
    composer.cannedNote.hidden = !filled.note;
  } catch (error) {
    toast(error.message, "error");
  }
}

/** Put `text` into the composer at the caret (the ERP panel's "Insert into reply"), with a
 *  space before it when it would stick to a word. */
export function insertIntoComposer(text) {
  if (!view) {
    toast(t("Open a conversation first"), "error");
    return;
  }
  const textarea = view.textarea;
  const start = textarea.selectionStart ?? textarea.value.length;
  const before = textarea.value.slice(0, start);
  insertAtCursor(textarea, before && !/\s$/.test(before) ? ` ${text}` : text);
}

function insertAtCursor(textarea, text) {
  const start = textarea.selectionStart ?? textarea.value.length;
  const end = textarea.selectionEnd ?? start;
  textarea.setRangeText(text, start, end, "end");
  textarea.focus();
}

// @mentions in notes: typing "@" lists colleagues; Enter or Tab picks one.

function mentionQuery(textarea) {
  const before = textarea.value.slice(0, textarea.selectionStart);
  const match = /(^|\s)@([\p{L}\p{N}._-]*)$/u.exec(before);
  return match ? { query: match[2].toLowerCase(), start: before.length - match[2].length - 1 } : null;
}

export function mentionHandle(operator) {
  return operator.email.split("@")[0];
}

function updateMentions(composer) {
  const list = composer.mentionList;
  const found = composer.modeNote.checked ? mentionQuery(composer.textarea) : null;
  if (!found) {
    list.hidden = true;
    composer.textarea.removeAttribute("aria-activedescendant");
    return;
  }
  const matches = [...state.operators.values()]
    .filter((o) => o.active && o.id !== state.me.id)
    .filter(
      (o) =>
        o.name.toLowerCase().includes(found.query) || mentionHandle(o).toLowerCase().startsWith(found.query),
    )
    .slice(0, 6);
  list.hidden = matches.length === 0;
  fill(
    list,
    matches.map((operator, index) =>
      h(
        "li",
        {
          role: "option",
          id: `mention-${operator.id}`,
          "aria-selected": index === 0 ? "true" : "false",
          dataset: { handle: mentionHandle(operator) },
          onmousedown: (event) => {
            event.preventDefault();
            pickMention(composer, mentionHandle(operator));
          },
        },
        h("strong", {}, operator.name),
        h("span", { class: "muted" }, ` @${mentionHandle(operator)}`),
      ),
    ),
  );
  if (matches.length) composer.textarea.setAttribute("aria-activedescendant", `mention-${matches[0].id}`);
}

function handleMentionKeys(composer, event) {
  const list = composer.mentionList;
  if (list.hidden) return false;
  const options = [...list.querySelectorAll("[role=option]")];
  const index = options.findIndex((o) => o.getAttribute("aria-selected") === "true");
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const next = (index + (event.key === "ArrowDown" ? 1 : options.length - 1)) % options.length;
    options.forEach((o, i) => o.setAttribute("aria-selected", i === next ? "true" : "false"));
    composer.textarea.setAttribute("aria-activedescendant", options[next].id);
    return true;
  }
  if ((event.key === "Enter" && !event.ctrlKey && !event.metaKey) || event.key === "Tab") {
    event.preventDefault();
    pickMention(composer, options[Math.max(0, index)].dataset.handle);
    return true;
  }
  if (event.key === "Escape") {
    event.preventDefault();
    list.hidden = true;
    return true;
  }
  return false;
}

function pickMention(composer, handle) {
  const textarea = composer.textarea;
  const found = mentionQuery(textarea);
  if (!found) return;
  textarea.setRangeText(`@${handle} `, found.start, textarea.selectionStart, "end");
  composer.mentionList.hidden = true;
  textarea.removeAttribute("aria-activedescendant");
  textarea.focus();
}
