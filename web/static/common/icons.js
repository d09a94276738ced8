// Channel and kind icons, drawn as inline SVG (no icon font, nothing fetched).
import { s } from "./dom.js";

const PATHS = {
  email: ["M3 6h18v12H3z", "M3 6l9 7 9-7"],
  webform: ["M6 3h9l3 3v15H6z", "M9 9h6", "M9 13h6", "M9 17h4"],
  sms: ["M4 5h16v11H9l-5 4z", "M8 10.5h.01", "M12 10.5h.01", "M16 10.5h.01"],
  voice: [
    "M6 3l3 1 1 4-2 1.5a11 11 0 0 0 6.5 6.5L16 14l4 1 1 3-2 3C11 21 3 13 3 5z",
  ],
  messenger: ["M12 4c5 0 8 3 8 7s-3 7-8 7c-1 0-2 0-3-.4L5 20l1-4c-1.3-1.3-2-3-2-5 0-4 3-7 8-7z"],
  telegram: ["M3 11l18-7-3 16-6-5-3 3v-5l9-7-11 6z"],
  api: ["M8 8l-4 4 4 4", "M16 8l4 4-4 4", "M13 6l-2 12"],
  note: ["M5 4h14v12l-4 4H5z", "M15 20v-4h4", "M8 9h8", "M8 13h5"],
  event: ["M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z", "M12 7v5l3 3"],
  offer: ["M12 3l2.5 5.5L20 9l-4 4 1 6-5-3-5 3 1-6-4-4 5.5-.5z"],
};

const ALIASES = {
  form: "webform",
  call: "voice",
  phone: "voice",
  whatsapp: "messenger",
  chat: "messenger",
  internal: "note",
  system: "event",
  routing: "event",
};

const LABELS = {
  email: "Email",
  webform: "Web form",
  sms: "SMS",
  voice: "Call",
  messenger: "Messenger",
  whatsapp: "WhatsApp",
  telegram: "Telegram",
  api: "API",
  note: "Internal note",
  event: "System event",
  offer: "Offer",
};

export function iconName(name) {
  const key = ALIASES[name] || name;
  return PATHS[key] ? key : "messenger";
}

export function channelLabel(name) {
  return LABELS[name] || LABELS[iconName(name)] || name;
}

/** An icon; `label` (default: the channel's name) is what screen readers hear. */
export function icon(name, label = channelLabel(name)) {
  const key = iconName(name);
  return s(
    "svg",
    {
      class: `icon icon-${key}`,
      viewBox: "0 0 24 24",
      width: 18,
      height: 18,
      role: "img",
      "aria-label": label,
      dataset: { channel: name },
    },
    s("title", {}, label),
    PATHS[key].map((d) => s("path", { d })),
  );
}
