// The customer's history in the defaults (GET /api/v1/conversations/{id}/context): a strip of
// flags under the conversation's header (an order they keep writing about this week, their
// open tasks, their unresolved conversations elsewhere, where they wrote last, their tier and
// language) and the channel a reply goes out on by default: where they wrote last.
//
// The flags are extras: a context that cannot be loaded leaves the strip empty and the
// composer at the conversation's own channel.
import { get } from "../common/api.js";
import { channelLabel } from "../common/channels.js";
import { fill, formatTime, h } from "../common/dom.js";
import { currentLocale, t, tn } from "../common/i18n.js";
import { channelIcon } from "../common/icons.js";
import { signal, statusLabel } from "./state.js";

// Unresolved conversations named one by one; more are counted.
const LISTED = 3;

/** The context of conversation `id`, or null when it cannot be had. */
export async function loadContext(id) {
  try {
    return await get(`/api/v1/conversations/${id}/context`);
  } catch {
    return null;
  }
}

/** The empty strip, filled by renderFlags. */
export function buildFlags() {
  return h("ul", { class: "context-flags", "aria-label": t("About this customer"), hidden: true });
}

/** The channel a reply goes out on by default, as the server decides it for the reply API
 *  too: the one answering where the customer wrote last (a web form's: email) if it reaches
 *  them, else the conversation's; null when the context is not known. */
export function defaultChannel(context) {
  return context && context.default_channel ? context.default_channel : null;
}

export function renderFlags(element, context) {
  const flags = context ? contextFlags(context) : [];
  element.hidden = flags.length === 0;
  fill(element, flags);
}

function contextFlags(context) {
  return [
    ...context.repeat.orders.map(repeatFlag),
    tasksFlag(context.open_tasks),
    ...unresolvedFlags(context.unresolved_elsewhere),
    lastWroteFlag(context),
    tierFlag(context.tier),
    languageFlag(context.language),
  ].filter(Boolean);
}

function flag(kind, ...children) {
  return h("li", { class: `context-flag flag-${kind}`, dataset: { flag: kind } }, ...children);
}

/** A link that opens conversation `id` in the console. */
function conversationLink(id, text) {
  return h(
    "a",
    {
      href: `#c=${id}`,
      onclick: (event) => {
        event.preventDefault();
        signal("open", { id });
      },
    },
    text,
  );
}

function repeatFlag(order) {
  const item = flag(
    "repeat",
    tn("{n} message about order {number} this week", "{n} messages about order {number} this week", order.messages, {
      number: order.number,
    }),
  );
  item.title = t("first {first}, last {last}", { first: formatTime(order.first_at), last: formatTime(order.last_at) });
  return item;
}

function tasksFlag(tasks) {
  if (!tasks.length) return null;
  const overdue = tasks.filter((task) => task.overdue).length;
  const item = flag(
    "tasks",
    tn("{n} open task", "{n} open tasks", tasks.length),
    overdue ? ` · ${tn("{n} overdue", "{n} overdue", overdue)}` : null,
  );
  if (overdue) item.classList.add("flag-warn");
  return item;
}

function unresolvedFlags(conversations) {
  const shown = conversations.slice(0, LISTED).map((c) => {
    const text = t("Unresolved on {channel} (#{id})", { channel: channelLabel(c.channel), id: c.id });
    const item = flag("unresolved", channelIcon(c.channel), " ", conversationLink(c.id, text));
    item.dataset.conversationId = c.id;
    item.title = [c.subject, statusLabel(c.status), formatTime(c.last_activity_at)].filter(Boolean).join(" · ");
    return item;
  });
  const more = conversations.length - shown.length;
  if (more > 0) shown.push(flag("unresolved-more", tn("{n} more unresolved", "{n} more unresolved", more)));
  return shown;
}

/** Where the customer wrote last, when it is not this conversation's channel: the composer
 *  offers that channel first. */
function lastWroteFlag(context) {
  const last = context.reply_channel;
  if (!last || !last.differs) return null;
  const channel = channelLabel(last.channel);
  if (last.conversation_id === context.conversation_id) {
    return flag("last-channel", t("The customer last wrote on {channel}", { channel }));
  }
  const text = t("The customer last wrote on {channel} (#{id})", { channel, id: last.conversation_id });
  return flag("last-channel", conversationLink(last.conversation_id, text));
}

function tierFlag(tier) {
  const parts = [];
  if (tier.priority && tier.priority !== "standard") parts.push(tier.priority);
  if (tier.erp) parts.push(t("ERP: {tier}", { tier: tier.erp }));
  if (!parts.length) return null;
  return flag("tier", h("span", { class: "pill tier" }, parts.join(" · ")));
}

function languageFlag(code) {
  if (!code) return null;
  return flag("language", t("Writes in {language}", { language: languageName(code) }));
}

/** A language's name in the operator's language ("de" → "German"), else its code. */
function languageName(code) {
  try {
    return new Intl.DisplayNames([currentLocale()], { type: "language" }).of(code) || code;
  } catch {
    return code;
  }
}
