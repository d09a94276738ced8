// Phone calls in the console: what a call's state and outcome read as, the call bar above an
// open voice conversation's timeline, and a call's line in the timeline.
//
//   the call bar     GET /api/v1/conversations/{id}/call ({"call": CallView | null}): who
//                    calls whom, the state in words, a running timer while connected or on
//                    hold; Hold / Resume / Hang up (POST .../call/hold|resume|hangup, each
//                    answering the CallView) for whoever the server lets control it
//                    (`can_control`). main.js reloads it on "call.updated".
//   the timeline     an interaction of kind "call" reads "Call from +49… · answered · 3:12 talk
//                    · waited 0:40 · menu: sales" from its meta.call.
//
// Which conversations are calls is the channel's fact (common/channels.js: isVoiceChannel);
// nothing here names a channel. Missing fields are left out, never shown as "undefined".
import { ApiError, get, post } from "../common/api.js";
import { fill, formatClock, h, secondsSince, toast } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { icon } from "../common/icons.js";
import { operatorName, state } from "./state.js";

// A call's state as a word in a sentence (the data keeps the English value).
const STATE_WORDS = {
  ivr: () => t("in the phone menu"),
  voicemail: () => t("leaving a voicemail"),
  queued: () => t("waiting in the queue"),
  ringing: () => t("ringing"),
  connected: () => t("connected"),
  on_hold: () => t("on hold"),
  dialing: () => t("dialing"),
  ended: () => t("ended"),
};

// How a call ended.
const OUTCOME_WORDS = {
  answered: () => t("answered"),
  abandoned: () => t("hung up while waiting"),
  voicemail: () => t("voicemail"),
  no_answer: () => t("not answered"),
  busy: () => t("line busy"),
  failed: () => t("call failed"),
  missed: () => t("missed"),
};

export function callStateWord(value) {
  return STATE_WORDS[value] ? STATE_WORDS[value]() : value || "";
}

export function callOutcomeWord(value) {
  return OUTCOME_WORDS[value] ? OUTCOME_WORDS[value]() : value || "";
}

/** The states in which the caller and an operator are on the line (the timer runs). */
const TALKING = new Set(["connected", "on_hold"]);
/** The states a controlling operator may hang up in. */
const HANG_UP = new Set(["connected", "on_hold", "ringing", "dialing"]);

/** "Call from +49…" or "Call to +49…" (the number, when the server gives one). */
export function callParty(direction, from, to) {
  if (direction === "out") return to ? t("Call to {number}", { number: to }) : t("Outgoing call");
  return from ? t("Call from {number}", { number: from }) : t("Incoming call");
}

export function directionIcon(direction) {
  return direction === "out"
    ? icon("call_out", t("Outgoing call"), { direction: "out" })
    : icon("call_in", t("Incoming call"), { direction: "in" });
}

/** The call of a conversation, or null (none, or a server without calls). */
export async function fetchCall(conversationId) {
  try {
    const data = await get(`/api/v1/conversations/${conversationId}/call`);
    return (data && data.call) || null;
  } catch (error) {
    if (error instanceof ApiError && [403, 404].includes(error.status)) return null;
    throw error;
  }
}

// ----- the call bar -----

export function buildCallBar() {
  return h("section", {
    class: "call-bar",
    hidden: true,
    "aria-label": t("Call"),
    "aria-live": "polite",
  });
}

let ticking = null;

function tick() {
  const timers = document.querySelectorAll(".call-timer[data-since]");
  for (const timer of timers) {
    timer.textContent = formatClock(secondsSince(timer.dataset.since));
  }
  if (!timers.length && ticking !== null) {
    clearInterval(ticking);
    ticking = null;
  }
}

/** What the bar says of the call now, for who is looking. */
function stateText(call) {
  const mine = call.operator_id !== null && call.operator_id !== undefined && state.me && call.operator_id === state.me.id;
  switch (call.state) {
    case "ivr":
      return t("The caller is in the phone menu");
    case "voicemail":
      return t("The caller is leaving a voicemail");
    case "queued":
      return t("The caller is waiting in the queue");
    case "ringing":
      return mine
        ? t("Your phone is ringing: pick up to talk")
        : t("Ringing {name}", { name: operatorName(call.operator_id) });
    case "connected":
      return mine || !call.operator_id ? t("Connected") : t("Connected with {name}", { name: operatorName(call.operator_id) });
    case "on_hold":
      return t("On hold: the caller hears the hold message");
    case "dialing":
      return mine ? t("Calling your phone, then the customer…") : t("Dialing…");
    case "ended":
      return call.outcome
        ? t("Call ended: {outcome}", { outcome: callOutcomeWord(call.outcome) })
        : t("Call ended");
    default:
      return callStateWord(call.state);
  }
}

/** The timer: talk time while on the line, waiting time in the queue. */
function timer(call) {
  let since = null;
  let label = "";
  if (TALKING.has(call.state) && call.answered_at) {
    since = call.answered_at;
    label = t("Talk time");
  } else if (call.state === "queued" && (call.queued_at || call.started_at)) {
    since = call.queued_at || call.started_at;
    label = t("Waiting time");
  }
  if (!since) return null;
  return h(
    "span",
    { class: "call-timer", role: "timer", "aria-label": label, dataset: { since } },
    formatClock(secondsSince(since)),
  );
}

/** Waited, talked, the menu choice: what is known of the call so far. */
function facts(call) {
  const parts = [];
  if (call.state === "ended" && call.talk_seconds) {
    parts.push(t("{time} talk", { time: formatClock(call.talk_seconds) }));
  }
  if (call.wait_seconds && call.state !== "queued") {
    parts.push(t("waited {time}", { time: formatClock(call.wait_seconds) }));
  }
  if (call.ivr_choice) parts.push(t("menu: {choice}", { choice: call.ivr_choice }));
  return parts.length ? h("span", { class: "call-facts muted" }, parts.join(" · ")) : null;
}

/** Draw `call` (null: hide the bar). `onChanged` runs after a control answered. */
export function renderCallBar(bar, call, conversationId, onChanged) {
  if (!bar) return;
  // A control pressed keeps the keyboard in the bar (Hold becomes Resume).
  const hadFocus = bar.contains(document.activeElement) || bar.dataset.refocus === "true";
  delete bar.dataset.refocus;
  if (!call) {
    bar.hidden = true;
    delete bar.dataset.callState;
    delete bar.dataset.callId;
    fill(bar);
    return;
  }
  bar.hidden = false;
  bar.dataset.callId = String(call.id);
  bar.dataset.callState = call.state || "";
  bar.dataset.callDirection = call.direction || "in";
  const control = (name, text, danger) =>
    h(
      "button",
      {
        type: "button",
        class: `call-${name}${danger ? " danger" : ""}`,
        dataset: { action: name },
        onclick: () => controlCall(bar, conversationId, name, onChanged),
      },
      text,
    );
  const controls = [];
  if (call.can_control) {
    if (call.state === "connected") controls.push(control("hold", t("Hold")));
    if (call.state === "on_hold") controls.push(control("resume", t("Resume")));
    if (HANG_UP.has(call.state)) controls.push(control("hangup", t("Hang up"), true));
  }
  fill(
    bar,
    h(
      "div",
      { class: "call-main" },
      directionIcon(call.direction),
      h("strong", { class: "call-party" }, callParty(call.direction, call.from, call.to)),
      h("span", { class: "call-state", dataset: { callState: call.state || "" } }, stateText(call)),
      timer(call),
      facts(call),
    ),
    controls.length ? h("div", { class: "call-controls", role: "group", "aria-label": t("Call controls") }, controls) : null,
  );
  if (hadFocus) {
    const next = bar.querySelector("button");
    if (next) next.focus();
    else {
      bar.setAttribute("tabindex", "-1");
      bar.focus();
    }
  }
  if (bar.querySelector(".call-timer[data-since]") && ticking === null) ticking = setInterval(tick, 1000);
}

async function controlCall(bar, conversationId, verb, onChanged) {
  if (bar.contains(document.activeElement)) bar.dataset.refocus = "true";
  for (const button of bar.querySelectorAll("button")) button.disabled = true;
  const done = { hold: t("The caller is on hold"), resume: t("Back with the caller"), hangup: t("Call ended") };
  let call = null;
  try {
    call = await post(`/api/v1/conversations/${conversationId}/call/${verb}`);
    toast(done[verb]);
  } catch (error) {
    toast(error.message, "error");
  }
  if (call && call.id !== undefined) renderCallBar(bar, call, conversationId, onChanged);
  if (onChanged) await onChanged(verb);
}

// ----- the timeline -----

/** The line under a call interaction: "Call from +49… · answered · 3:12 talk · waited 0:40 ·
 *  menu: sales"; null when the interaction carries no call facts. */
export function callSummary(item) {
  const call = item.meta && item.meta.call;
  if (!call) return null;
  const direction = call.direction || item.direction;
  const parts = [callParty(direction, call.from, call.to)];
  if (call.outcome) parts.push(callOutcomeWord(call.outcome));
  else if (call.state) parts.push(callStateWord(call.state));
  if (call.talk_seconds) parts.push(t("{time} talk", { time: formatClock(call.talk_seconds) }));
  else if (call.duration_seconds && call.outcome !== "answered") {
    parts.push(t("{time} in all", { time: formatClock(call.duration_seconds) }));
  }
  if (call.wait_seconds) parts.push(t("waited {time}", { time: formatClock(call.wait_seconds) }));
  if (call.ivr_choice) parts.push(t("menu: {choice}", { choice: call.ivr_choice }));
  if (call.operator_id) parts.push(t("with {name}", { name: operatorName(call.operator_id) }));
  return h(
    "div",
    {
      class: "call-summary",
      dataset: { callOutcome: call.outcome || "", callState: call.state || "", direction: direction || "" },
    },
    parts.join(" · "),
  );
}
