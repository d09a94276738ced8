// The widget's DOM. Text is always set as text, never parsed as HTML. Test hooks: the
// `data-webchat` attributes (and `data-direction`, `data-state` on messages).

import { fileSize, shortTime, t, when } from "./i18n.js";

/** h("button", {class: "x", onclick: fn}, "text", node): null/false attributes and children
 *  are left out. */
export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children.flat().filter((child) => child !== null && child !== false && child !== undefined));
  return element;
}

/** What to tell the visitor about a failed request: the server's words, else ours. */
export function problem(error) {
  if (error && error.message) return error.message;
  return error && error.status === 0 ? t("No connection. Please try again.") : t("Something went wrong. Please try again.");
}

const ICONS = {
  chat: "M4 5h16v11H9l-5 4z",
  down: "M6 9l6 6 6-6",
  close: "M6 6l12 12M18 6 6 18",
  send: "M4 12 20 4l-5 16-3-7z",
  clip: "M15 7l-6.5 6.5a2 2 0 0 0 3 3L18 10a4 4 0 0 0-6-6l-7 7a6 6 0 0 0 9 9l5-5",
  more: "M5 12h.01M12 12h.01M19 12h.01",
};

export function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(svg.namespaceURI, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

/** The bubble and the panel; the parts the controller drives, by name. */
export function skeleton() {
  const v = {};
  v.badge = h("span", { class: "badge", hidden: true });
  v.bubble = h(
    "button",
    { class: "bubble", type: "button", "data-webchat": "bubble", "aria-expanded": "false", "aria-controls": "panel" },
    icon("chat"),
    icon("down"),
    v.badge,
  );
  v.title = h("h2", { id: "title" });
  v.status = h("p", { class: "status", "data-webchat": "status" });
  v.more = h("button", { class: "icon", type: "button", "aria-label": t("More options"), "aria-expanded": "false", "aria-controls": "menu", hidden: true }, icon("more"));
  v.transcript = h("button", { type: "button" }, t("Email me this chat"));
  v.menu = h("div", { class: "menu", id: "menu", hidden: true }, v.transcript);
  v.close = h("button", { class: "icon", type: "button", "aria-label": t("Close") }, icon("close"));
  v.log = h("div", { class: "log", role: "log", "aria-live": "polite", "data-webchat": "log" });
  v.typing = h("p", { class: "typing", "data-webchat": "typing", hidden: true });
  v.notice = h("p", { class: "notice", role: "status" });
  v.details = h("button", { class: "link details", type: "button", "aria-expanded": "false", "aria-controls": "details", hidden: true }, t("Leave your details"));
  v.form = h("div", { id: "details" });
  v.input = h("textarea", { id: "input", rows: "1", maxlength: "5000", "data-webchat": "input", placeholder: t("Write a message…") });
  v.file = h("input", { type: "file", hidden: true, tabindex: "-1", "data-webchat": "file" });
  v.attach = h("button", { class: "icon", type: "button", "aria-label": t("Attach a file"), hidden: true }, icon("clip"));
  v.send = h("button", { class: "icon send", type: "submit", "aria-label": t("Send"), "data-webchat": "send" }, icon("send"));
  v.composer = h(
    "form",
    { class: "composer" },
    h("label", { class: "vh", for: "input" }, t("Message")),
    v.input,
    v.file,
    v.attach,
    v.send,
  );
  v.panel = h(
    "section",
    { class: "panel", id: "panel", role: "dialog", "aria-labelledby": "title", "data-webchat": "panel", hidden: true },
    h("header", {}, h("div", { class: "heading" }, v.title, v.status), v.more, v.close, v.menu),
    v.log,
    v.typing,
    v.notice,
    v.details,
    v.form,
    v.composer,
  );
  return v;
}

/** Initials of a name, for the avatar circle. */
function initials(name) {
  const words = (name || "").trim().split(/\s+/).filter(Boolean);
  return words.length ? words.slice(0, 2).map((word) => [...word][0].toUpperCase()).join("") : "?";
}

const LINK = /\bhttps?:\/\/[^\s<>"]*[^\s<>".,;:!?)\]'"]/g;

function linkified(text) {
  const parts = [];
  let last = 0;
  for (const found of text.matchAll(LINK)) {
    parts.push(text.slice(last, found.index));
    parts.push(h("a", { href: found[0], target: "_blank", rel: "noopener noreferrer nofollow" }, found[0]));
    last = found.index + found[0].length;
  }
  parts.push(text.slice(last));
  return parts;
}

/** One message. `m.state`: "sent", "pending" or "failed" (then `m.error`, an ApiError).
 *  `on`: {retry(m), remove(m), download(attachment), preview(attachment, img)}. */
export function messageItem(m, on) {
  const out = m.direction === "out";
  const state = m.state || "sent";
  const files = (m.attachments || []).map((file) => {
    const name = file.url
      ? h("button", { class: "link", type: "button", onclick: () => on.download(file) }, file.name)
      : h("span", {}, file.name);
    const image = file.url && /^image\//.test(file.content_type) ? h("img", { alt: file.name, hidden: true }) : null;
    if (image) on.preview(file, image);
    return h("div", { class: "file" }, image, name, " ", h("span", { class: "size" }, fileSize(file.size)));
  });
  const failed =
    state === "failed"
      ? h(
          "p",
          { class: "failed" },
          m.error && !m.error.retryable && m.error.message ? m.error.message : t("Not sent."),
          " ",
          m.error && !m.error.retryable
            ? h("button", { class: "link", type: "button", onclick: () => on.remove(m) }, t("Remove"))
            : h("button", { class: "link", type: "button", onclick: () => on.retry(m) }, t("Retry")),
        )
      : null;
  return h(
    "div",
    { class: `message ${m.direction} ${state}`, "data-webchat": "message", "data-direction": m.direction, "data-state": state, "data-id": m.id || null },
    out ? h("span", { class: "avatar", "aria-hidden": "true" }, initials(m.author)) : null,
    h(
      "div",
      { class: "body" },
      h(
        "p",
        { class: "meta" },
        h("span", { class: out ? "who" : "vh" }, out ? m.author || t("Team") : t("You")),
        " ",
        state === "pending" ? t("Sending…") : h("time", { datetime: m.at, title: when(m.at, { dateStyle: "full", timeStyle: "short" }) }, shortTime(m.at)),
      ),
      m.text ? h("p", { class: "text" }, linkified(m.text)) : null,
      files,
      failed,
    ),
  );
}
