// The inbox (assigned to me, my queues, unassigned in my queues) and the offers.
import { get, post, withQuery } from "../common/api.js";
import { serverNow } from "../common/clock.js";
import { byId, fill, formatTime, h, toast } from "../common/dom.js";
import { t, tn } from "../common/i18n.js";
import { isVoiceChannel } from "../common/channels.js";
import { channelIcon, icon } from "../common/icons.js";
import { callStateWord, fetchCall } from "./calls.js";
import { queueName, signal, state } from "./state.js";

// The sections never repeat a conversation: "My queues" holds what colleagues have in them.
const SECTION_TITLES = {
  mine: () => t("Assigned to me"),
  queues: () => t("My queues: colleagues'"),
  unassigned: () => t("Unassigned in my queues"),
};
const PAGE = 100;
// The rest of a section comes from the views API with the section's own filters.
const SECTION_VIEWS = {
  mine: { scope: "mine", status: "active" },
  queues: { scope: "queues", status: "active" },
  unassigned: { scope: "unassigned" },
};

export function normalizeItem(raw) {
  return {
    id: raw.id,
    contactId: raw.contact_id,
    contactName: raw.contact_display_name || t("Contact {id}", { id: raw.contact_id }),
    channel: raw.channel,
    status: raw.status,
    subject: raw.subject || "",
    preview: raw.preview || "",
    unread: Number(raw.unread || 0),
    updatedAt: raw.last_interaction_at || raw.updated_at,
    queueId: raw.queue_id,
    assigneeId: raw.assignee_id,
  };
}

async function fetchSections() {
  const data = await get(withQuery("/api/v1/inbox", { limit: PAGE }));
  return Object.keys(SECTION_TITLES).map((key) => {
    const section = data[key] || { items: [], total: 0, unread_conversations: 0 };
    return {
      key,
      title: SECTION_TITLES[key](),
      items: section.items.map(normalizeItem),
      total: section.total,
      unread: section.unread_conversations,
      nextCursor: section.next_cursor || null,
    };
  });
}

async function fetchMore(section, limit) {
  const page = await get(
    withQuery("/api/v1/views/conversations", {
      ...SECTION_VIEWS[section.key],
      cursor: section.nextCursor,
      limit: Math.min(200, Math.max(1, limit)),
    }),
  );
  const known = new Set(section.items.map((item) => item.id));
  section.items.push(...page.items.map(normalizeItem).filter((item) => !known.has(item.id)));
  section.nextCursor = page.next_cursor;
}

export async function loadInbox() {
  // A reload keeps as many of each section as were shown ("load more" is not undone).
  const shown = new Map(state.inboxSections.map((section) => [section.key, section.items.length]));
  const sections = await fetchSections();
  for (const section of sections) {
    while (section.nextCursor && section.items.length < (shown.get(section.key) || 0)) {
      await fetchMore(section, shown.get(section.key) - section.items.length);
    }
  }
  state.inboxSections = sections;
  renderInbox();
}

async function loadMore(section) {
  try {
    await fetchMore(section, PAGE);
  } catch (error) {
    toast(error.message, "error");
  }
  renderInbox();
}

function renderInbox() {
  const container = byId("inbox-sections");
  container.setAttribute("aria-busy", "false");
  fill(
    container,
    state.inboxSections.map((section) =>
      h(
        "section",
        { class: "inbox-section", "aria-labelledby": `section-${section.key}`, dataset: { section: section.key } },
        h(
          "h2",
          { id: `section-${section.key}` },
          section.title,
          " ",
          h("span", { class: "badge quiet" }, section.total, h("span", { class: "visually-hidden" }, ` ${tn("conversation", "conversations", section.total)}`)),
          section.unread
            ? h(
                "span",
                { class: "badge unread-total" },
                section.unread,
                h("span", { class: "visually-hidden" }, ` ${tn("with unread messages", "with unread messages", section.unread)}`),
              )
            : null,
        ),
        section.items.length
          ? h("ul", { class: "inbox-list" }, section.items.map(renderItem))
          : h("p", { class: "muted empty" }, t("Nothing here.")),
        section.nextCursor
          ? h(
              "button",
              { type: "button", class: "load-more", onclick: () => loadMore(section) },
              t("Load more ({shown} of {total})", { shown: section.items.length, total: section.total }),
            )
          : null,
      ),
    ),
  );
}

export function renderItem(item) {
  const current = item.id === state.conversationId;
  return h(
    "li",
    {},
    h(
      "a",
      {
        href: `#c=${item.id}`,
        class: `inbox-item${item.unread ? " unread" : ""}${current ? " current" : ""}`,
        "aria-current": current ? "true" : null,
        dataset: { conversationId: item.id },
        onclick: (event) => {
          event.preventDefault();
          signal("open", { id: item.id, focus: false });
        },
      },
      h(
        "span",
        { class: "item-top" },
        channelIcon(item.channel),
        h("strong", { class: "name" }, item.contactName),
        h("time", { datetime: item.updatedAt || "" }, formatTime(item.updatedAt)),
      ),
      h(
        "span",
        { class: "item-bottom" },
        h("span", { class: "preview" }, item.preview || item.subject || t("(no text)")),
        item.unread
          ? h("span", { class: "badge unread-count" }, item.unread, h("span", { class: "visually-hidden" }, ` ${tn("unread", "unread", item.unread)}`))
          : null,
      ),
    ),
  );
}

/** Conversation ids in inbox order, for j/k. */
export function inboxOrder() {
  const seen = new Set();
  const order = [];
  for (const section of state.inboxSections) {
    for (const item of section.items) {
      if (!seen.has(item.id)) {
        seen.add(item.id);
        order.push(item.id);
      }
    }
  }
  return order;
}

export function markCurrent() {
  for (const link of document.querySelectorAll(".inbox-item")) {
    const current = Number(link.dataset.conversationId) === state.conversationId;
    link.classList.toggle("current", current);
    if (current) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  }
}

export function markRead(conversationId) {
  for (const section of state.inboxSections) {
    for (const item of section.items) if (item.id === conversationId) item.unread = 0;
    section.unread = section.items.filter((item) => item.unread > 0).length;
  }
  renderInbox();
}

// ----- offers -----

let countdownTimer = null;

export async function loadOffers() {
  const page = await get("/api/v1/offers");
  // Supervisors are shown everyone's offers; the console shows one's own.
  const offers = page.items.filter(
    (offer) => offer.status === "pending" && offer.operator_id === state.me.id,
  );
  const details = await Promise.all(
    offers.map(async (offer) => {
      try {
        const conversation = await get(`/api/v1/conversations/${offer.conversation_id}`);
        // An offer of a voice channel's conversation is an incoming call: its number and
        // menu choice come with the call.
        const isCall = isVoiceChannel(conversation.channel);
        const [contact, call] = await Promise.all([
          get(`/api/v1/contacts/${conversation.contact_id}`),
          isCall ? fetchCall(offer.conversation_id).catch(() => null) : null,
        ]);
        return { offer, conversation, contact, call, isCall };
      } catch {
        return { offer, conversation: null, contact: null, call: null, isCall: false };
      }
    }),
  );
  state.offers = details;
  renderOffers();
}

/** "{time} left" with the time in its own element (the countdown updates it). */
function countdownParts(left) {
  const [before, after] = t("{time} left").split("{time}");
  return [before, h("span", { class: "countdown" }, t("{s} s", { s: left })), after];
}

function secondsLeft(offer) {
  return Math.max(0, (new Date(offer.expires_at).getTime() - serverNow()) / 1000);
}

/** The caller's number: the call's, else the contact's first phone number. */
function callerNumber(call, contact) {
  if (call && call.direction !== "out" && call.from) return call.from;
  const phone = contact && (contact.identities || []).find((identity) => identity.kind === "phone");
  return phone ? phone.address : "";
}

/** The head of an incoming call's offer: ringing, who calls, from which number. */
function callHead(offer, call, contact, name) {
  const number = callerNumber(call, contact);
  return [
    h(
      "div",
      { class: "offer-head" },
      icon("call_in", t("Incoming call"), { ringing: "true" }),
      h("strong", { class: "offer-kind" }, t("Incoming call")),
      h("span", { class: "muted" }, queueName(offer.queue_id)),
    ),
    h(
      "div",
      { class: "offer-caller" },
      // A caller known only by their number: the name is the number (and says so).
      h("strong", { class: number && number === name ? "caller-name caller-number" : "caller-name" }, name),
      number && number !== name ? h("span", { class: "caller-number" }, number) : null,
    ),
    call && (call.ivr_choice || (call.state && call.state !== "queued"))
      ? h(
          "div",
          { class: "offer-subject" },
          [call.ivr_choice ? t("menu: {choice}", { choice: call.ivr_choice }) : null, call.state && call.state !== "queued" ? callStateWord(call.state) : null]
            .filter(Boolean)
            .join(" · "),
        )
      : null,
  ];
}

function renderOffers() {
  const section = byId("offers");
  section.hidden = state.offers.length === 0;
  fill(
    byId("offer-list"),
    state.offers.map(({ offer, conversation, contact, call, isCall }) => {
      const number = isCall ? callerNumber(call, contact) : "";
      const name = contact
        ? contact.display_name || number || t("Contact {id}", { id: contact.id })
        : t("Conversation {id}", { id: offer.conversation_id });
      const left = Math.ceil(secondsLeft(offer));
      return h(
        "li",
        {
          class: `offer${isCall ? " offer-call" : ""}`,
          dataset: { offerId: offer.id, offerKind: isCall ? "call" : "conversation", conversationId: offer.conversation_id },
          "aria-label": isCall ? t("Incoming call: {name}", { name }) : t("Offer: {name}", { name }),
        },
        isCall
          ? callHead(offer, call, contact, name)
          : h(
              "div",
              { class: "offer-head" },
              conversation ? channelIcon(conversation.channel) : icon("offer", t("Offer")),
              h("strong", {}, name),
              h("span", { class: "muted" }, queueName(offer.queue_id)),
            ),
        !isCall && conversation && conversation.subject ? h("div", { class: "offer-subject" }, conversation.subject) : null,
        h(
          "div",
          { class: "offer-timer", role: "timer", "aria-live": "off", dataset: { expiresAt: offer.expires_at } },
          ...countdownParts(left),
          h("span", { class: "bar", "aria-hidden": "true" }, h("span", { class: "bar-fill" })),
        ),
        h(
          "div",
          { class: "offer-actions" },
          h(
            "button",
            { type: "button", class: "primary accept", onclick: () => answerOffer(offer, "accept") },
            t("Accept"),
          ),
          h("button", { type: "button", class: "reject", onclick: () => answerOffer(offer, "reject") }, t("Reject")),
        ),
      );
    }),
  );
  tickOffers();
  if (state.offers.length && countdownTimer === null) {
    countdownTimer = setInterval(tickOffers, 250);
  } else if (!state.offers.length && countdownTimer !== null) {
    clearInterval(countdownTimer);
    countdownTimer = null;
  }
}

function tickOffers() {
  for (const element of document.querySelectorAll(".offer-timer")) {
    const { offer } = state.offers.find((o) => o.offer.expires_at === element.dataset.expiresAt) || {};
    if (!offer) continue;
    const left = secondsLeft(offer);
    const total = Math.max(1, (new Date(offer.expires_at) - new Date(offer.created_at)) / 1000);
    element.querySelector(".countdown").textContent = t("{s} s", { s: Math.ceil(left) });
    const fillBar = element.querySelector(".bar-fill");
    fillBar.style.width = `${Math.min(100, (100 * left) / total)}%`;
    element.classList.toggle("urgent", left < 10);
    if (left <= 0) element.closest(".offer").classList.add("expired");
  }
}

export async function answerOffer(offer, verb) {
  try {
    await post(`/api/v1/offers/${offer.id}/${verb}`);
    if (verb === "accept") {
      toast(t("Offer accepted"));
      signal("open", { id: offer.conversation_id, focus: true });
    } else {
      toast(t("Offer rejected; it goes to someone else"));
    }
  } catch (error) {
    toast(error.status === 409 ? t("This offer is gone: it expired or was answered") : error.message, "error");
  }
  await loadOffers();
  signal("inbox-changed");
}

export function firstOffer() {
  return state.offers.length ? state.offers[0].offer : null;
}

