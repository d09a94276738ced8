// The channels this server runs, as GET /api/v1/channels describes them: label, icon, the
// kind of customer address each delivers to, whether it can send, the channel that answers
// for one that cannot, its reply window. Loaded once when a page starts; the console and the
// monitor name no channel of their own. A channel the server does not run (old data, a
// channel removed since) shows its name and the generic icon, and is never offered.
import { get } from "./api.js";
import { t } from "./i18n.js";

let channels = new Map();

export async function loadChannels() {
  const list = await get("/api/v1/channels");
  channels = new Map(list.map((channel) => [channel.name, channel]));
  return channels;
}

/** The channels conversations happen on (not account-only entries such as Twilio's), for
 *  filters: [{name, label, ...}] by label. */
export function conversationChannels() {
  return [...channels.values()]
    .filter((channel) => channel.carries_conversations)
    .sort((a, b) => channelLabel(a.name).localeCompare(channelLabel(b.name)));
}

/** What the server says of a channel, or null for one it does not run. */
export function channelInfo(name) {
  return channels.get(name) || null;
}

/** A channel's label in the operator's language (the server's labels are message ids). */
export function channelLabel(name) {
  const channel = channels.get(name);
  return channel ? t(channel.label) : name;
}

/** The icon a channel asks for; "channel" (the generic one) for an unknown channel. */
export function channelIconName(name) {
  const channel = channels.get(name);
  return channel ? channel.icon : "channel";
}

/** Whether work on a channel is a phone call: its facts' capacity kind is "voice" (a server
 *  that does not say its capacity kind: its icon is the phone). */
export function isVoiceChannel(name) {
  const channel = channels.get(name);
  if (!channel) return false;
  if (channel.capacity_kind) return channel.capacity_kind === "voice";
  return channel.icon === "voice" || channel.icon === "phone";
}

/** The channel an answer goes out on by default: the conversation's own, or the one that
 *  answers for it (web forms: email). */
export function defaultReplyChannel(name) {
  const channel = channels.get(name);
  if (channel && !channel.can_send && channel.answered_by) return channel.answered_by;
  return name;
}

/** Names of the channels that can send to an address of `kind` ("email", "phone", ...). */
export function channelsSendingTo(kind) {
  return [...channels.values()]
    .filter((channel) => channel.can_send && channel.address_kind === kind)
    .map((channel) => channel.name);
}

/** Seconds left to answer on `name` in free text after the customer's last message on it
 *  (`lastInboundAt`, ISO), at `now` (ms); null when the channel has no reply window or the
 *  customer never wrote on it. */
export function replyWindowLeft(name, lastInboundAt, now) {
  const channel = channels.get(name);
  if (!channel || channel.reply_window_seconds === null || !lastInboundAt) return null;
  const closes = new Date(lastInboundAt).getTime() + channel.reply_window_seconds * 1000;
  return Math.max(0, Math.floor((closes - now) / 1000));
}
