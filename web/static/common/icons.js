// Icons drawn as inline SVG (no icon font, nothing fetched). Which icon a channel shows, and
// its label, come from the server (common/channels.js); this module only draws them.
import { channelIconName, channelLabel } from "./channels.js";
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
  // Calls by direction (the handset with an arrow in its corner) and tasks.
  call_in: [
    "M6 3l3 1 1 4-2 1.5a11 11 0 0 0 6.5 6.5L16 14l4 1 1 3-2 3C11 21 3 13 3 5z",
    "M21 3l-5.5 5.5",
    "M15 4v5h5",
  ],
  call_out: [
    "M6 3l3 1 1 4-2 1.5a11 11 0 0 0 6.5 6.5L16 14l4 1 1 3-2 3C11 21 3 13 3 5z",
    "M15 9l6-6",
    "M16 3h5v5",
  ],
  task: ["M5 4h14v16H5z", "M8 9l2 2 4-4", "M8 15h8"],
  // The generic icon: a channel the server does not describe, or an icon it does not draw.
  channel: ["M4 7h16v10H4z", "M8 12h.01", "M12 12h.01", "M16 12h.01"],
};

// Other names for the drawings above.
const ALIASES = {
  form: "webform",
  call: "voice",
  phone: "voice",
  callback: "call_out",
  follow_up: "task",
  whatsapp: "messenger",
  chat: "messenger",
  internal: "note",
  system: "event",
  routing: "event",
};

export function iconName(name) {
  const key = ALIASES[name] || name;
  return PATHS[key] ? key : "channel";
}

/** The icon `name` (a drawing, not a channel); `label` is what screen readers hear. */
export function icon(name, label, dataset = {}) {
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
      dataset,
    },
    s("title", {}, label),
    PATHS[key].map((d) => s("path", { d })),
  );
}

/** A channel's icon, labelled with the channel's label (its name if the server does not run
 *  it: old data). */
export function channelIcon(channel) {
  return icon(channelIconName(channel), channelLabel(channel), { channel });
}
