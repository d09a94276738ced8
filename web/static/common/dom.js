// Small DOM helpers. Text is always set as text (never parsed as HTML), so whatever a
// customer wrote is shown, not run.

import { serverNow } from "./clock.js";
import { formatDate, formatDateTime, t } from "./i18n.js";

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * h("button", {class: "x", onclick: fn, "aria-label": "Close"}, "child", otherNode)
 * Attributes: `class`, `text`, `dataset` (object), `on<event>` (function), booleans
 * (true sets the attribute, false/null/undefined leave it out), anything else as an attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  applyAttributes(element, attrs);
  append(element, children);
  return element;
}

/** The same for SVG elements (charts, icons). */
export function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  applyAttributes(element, attrs);
  append(element, children);
  return element;
}

function applyAttributes(element, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") {
      element.textContent = String(value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "value" && "value" in element && element.namespaceURI !== SVG_NS) {
      element.value = String(value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export function byId(id) {
  return document.getElementById(id);
}

const CLOCK = { dateStyle: undefined, timeStyle: undefined, hour: "2-digit", minute: "2-digit" };
const DAY_AND_CLOCK = { ...CLOCK, day: "numeric", month: "short" };

/** A short time: hh:mm today, else day, month and time; in the operator's language and time
 *  zone (common/i18n.js). */
export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const now = new Date(serverNow());
  return formatDate(date) === formatDate(now)
    ? formatDateTime(date, CLOCK)
    : formatDateTime(date, DAY_AND_CLOCK);
}

/** A duration in seconds as "45 s", "12 min", "3 h 05 min", "2 d 4 h" (in the operator's
 *  language). */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const total = Math.max(0, Math.round(seconds));
  if (total < 60) return t("{s} s", { s: total });
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return t("{m} min", { m: minutes });
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return t("{h} h {m} min", { h: hours, m: String(minutes % 60).padStart(2, "0") });
  return t("{d} d {h} h", { d: Math.floor(hours / 24), h: hours % 24 });
}

/** A running time as a clock reads it: "0:40", "3:12", "1:02:05" (calls). */
export function formatClock(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const total = Math.max(0, Math.floor(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  return hours ? `${hours}:${pad(minutes)}:${pad(total % 60)}` : `${minutes}:${pad(total % 60)}`;
}

/** Seconds since an ISO time, by the server's clock. */
export function secondsSince(iso) {
  return iso ? (serverNow() - new Date(iso).getTime()) / 1000 : null;
}

/** `date` as the value of an <input type="datetime-local"> (local time, minutes). */
export function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

/** Announce a message to screen readers and show it briefly. */
export function toast(message, kind = "info") {
  let region = byId("toasts");
  if (!region) {
    region = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  const item = h("div", { class: `toast toast-${kind}` }, message);
  region.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}
