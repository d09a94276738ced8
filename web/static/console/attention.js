// Never miss work: a new offer (an incoming call), an @mention or a task coming due raises a
// desktop notification (the Notification
// API, once the operator allowed it), an optional sound, and a count in the tab's title.
// Each is the operator's choice, kept in their preferences (desktop_notifications, sound,
// title_count: GET/PATCH /api/v1/auth/me/preferences). While the console has the focus a
// desktop notification would repeat what the page shows, so only the sound and the title
// speak then.
import { patch } from "../common/api.js";
import { h, toast } from "../common/dom.js";
import { t } from "../common/i18n.js";

let prefs = { desktop_notifications: true, sound: false, title_count: true };
let baseTitle = document.title;
const unseen = { offers: 0, mentions: 0 };
// What was announced already, so a reload announces only what is new.
const announced = { offers: null, mentions: null };
// Tasks whose coming due was announced (by the "task.due" event or the notifications list).
const announcedTasks = new Set();
let audio = null;

export function useAttentionPreferences(preferences) {
  prefs = { ...prefs, ...preferences };
  renderTitle();
}

/** The tab's title without the count (pages that translate it call this). */
export function setBaseTitle(title) {
  baseTitle = title;
  renderTitle();
}

function renderTitle() {
  const count = unseen.offers + unseen.mentions;
  document.title = prefs.title_count && count > 0 ? `(${count}) ${baseTitle}` : baseTitle;
}

function consoleHasFocus() {
  return document.visibilityState === "visible" && document.hasFocus();
}

function chime() {
  try {
    audio = audio || new AudioContext();
    const now = audio.currentTime;
    for (const [offset, pitch] of [
      [0, 880],
      [0.16, 1320],
    ]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = pitch;
      gain.gain.setValueAtTime(0.0001, now + offset);
      gain.gain.exponentialRampToValueAtTime(0.2, now + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.14);
      tone.connect(gain).connect(audio.destination);
      tone.start(now + offset);
      tone.stop(now + offset + 0.15);
    }
    document.body.dataset.lastChime = String(Date.now());
  } catch {
    // No audio device, or the browser wants a gesture first: the title and toast still speak.
  }
}

function raise(title, body, tag, onOpen) {
  if (prefs.sound) chime();
  if (!prefs.desktop_notifications || consoleHasFocus()) return;
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const notification = new Notification(title, { body, tag, lang: document.documentElement.lang });
  notification.onclick = () => {
    window.focus();
    notification.close();
    if (onOpen) onOpen();
  };
}

/** The operator's pending offers now (`[{offer, contact, isCall}]`); new ones are announced,
 *  an incoming call as such. */
export function noticeOffers(offers, open) {
  unseen.offers = offers.length;
  renderTitle();
  const ids = new Set(offers.map(({ offer }) => offer.id));
  const first = announced.offers === null;
  const fresh = first ? [] : offers.filter(({ offer }) => !announced.offers.has(offer.id));
  announced.offers = ids;
  for (const { offer, contact, call, isCall } of fresh) {
    const number = call && call.from ? call.from : "";
    const name = contact ? contact.display_name || number || t("Contact {id}", { id: contact.id }) : number;
    if (isCall) {
      raise(t("Incoming call"), t("{name} is calling: accept or reject it", { name }), `offer-${offer.id}`, () =>
        open(offer.conversation_id),
      );
      continue;
    }
    raise(t("New offer"), t("{name} is waiting: accept or reject it", { name }), `offer-${offer.id}`, () =>
      open(offer.conversation_id),
    );
  }
}

/** The operator's mentions now (GET /api/v1/notifications); new unread ones are announced. */
export function noticeMentions(data, open) {
  unseen.mentions = data.unread_count;
  renderTitle();
  const unread = data.items.filter((item) => !item.read_at);
  const first = announced.mentions === null;
  const fresh = first ? [] : unread.filter((item) => !announced.mentions.has(item.id));
  announced.mentions = new Set([...(announced.mentions || []), ...unread.map((item) => item.id)]);
  for (const item of fresh) {
    if (item.kind === "task_due") {
      // Announced once, whether the event or the list told of it first.
      if (item.task_id !== undefined && item.task_id !== null) {
        if (announcedTasks.has(item.task_id)) continue;
        announcedTasks.add(item.task_id);
      }
      raise(
        t("Task due: {what}", { what: item.contact_display_name || item.conversation_subject || t("a task") }),
        item.excerpt || "",
        `task-${item.task_id ?? item.id}`,
        () => open(item.conversation_id),
      );
      continue;
    }
    raise(
      t("{name} mentioned you", { name: item.author_name || t("Someone") }),
      item.excerpt,
      `mention-${item.id}`,
      () => open(item.conversation_id),
    );
  }
}

/** A "task.due" event for this operator: `what` names the task, `body` says why; announced
 *  once (the notifications list may tell of it too). */
export function noticeTaskDue(taskId, what, body, onOpen) {
  if (announcedTasks.has(taskId)) return;
  announcedTasks.add(taskId);
  raise(t("Task due: {what}", { what }), body || "", `task-${taskId}`, onOpen);
}

function permissionWords() {
  if (!("Notification" in window)) return t("This browser cannot show desktop notifications.");
  if (Notification.permission === "granted") return t("Desktop notifications are allowed.");
  if (Notification.permission === "denied") {
    return t("Desktop notifications are blocked: allow them in the browser's site settings.");
  }
  return t("Desktop notifications need your permission.");
}

/** The "Alerts" dialog: the three choices and the browser's permission. */
export function buildAttentionSettings() {
  const status = h("p", { class: "muted", id: "attention-permission" }, permissionWords());
  const ask = h(
    "button",
    {
      type: "button",
      id: "attention-allow",
      hidden: !("Notification" in window) || Notification.permission !== "default",
      onclick: async () => {
        await Notification.requestPermission();
        status.textContent = permissionWords();
        ask.hidden = Notification.permission !== "default";
      },
    },
    t("Allow desktop notifications"),
  );
  const box = (name, label) =>
    h(
      "label",
      { class: "check" },
      h("input", {
        type: "checkbox",
        name,
        checked: Boolean(prefs[name]),
        onchange: async (event) => {
          const value = event.target.checked;
          try {
            useAttentionPreferences(await patch("/api/v1/auth/me/preferences", { [name]: value }));
            toast(t("Saved"));
          } catch (error) {
            event.target.checked = !value;
            toast(error.message, "error");
          }
        },
      }),
      " ",
      label,
    );
  const dialog = h(
    "dialog",
    { id: "attention-dialog", "aria-labelledby": "attention-title" },
    h("h2", { id: "attention-title" }, t("Alerts")),
    h(
      "p",
      { class: "muted" },
      t("New offers, incoming calls, @mentions and tasks coming due can reach you while you work in another window."),
    ),
    box("desktop_notifications", t("Desktop notification")),
    box("sound", t("Sound")),
    box("title_count", t("Count in the tab title")),
    status,
    ask,
    h("form", { method: "dialog" }, h("button", { class: "primary" }, t("Close"))),
  );
  const opener = h(
    "button",
    {
      type: "button",
      id: "attention-button",
      "aria-haspopup": "dialog",
      "aria-controls": "attention-dialog",
      title: t("Alerts for new offers and mentions"),
      onclick: () => {
        status.textContent = permissionWords();
        dialog.showModal();
      },
    },
    t("Alerts"),
  );
  return { opener, dialog };
}
