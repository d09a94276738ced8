// The operator's own language and time zone: read at start-up (everything after is shown in
// them) and changed in a small dialog opened from the top bar; saving reloads the console in
// the new language. The same dialog holds the phone calls ring on (`voice_device`: "+E.164"
// or "sip:user@host", empty for none), shown once the server knows that preference; the
// server's complaint about it is shown beside it.
import { get, patch } from "../common/api.js";
import { byId, fill, h, toast } from "../common/dom.js";
import { currentLocale, formatDateTime, t, translatePage, useLocale } from "../common/i18n.js";

const PATH = "/api/v1/auth/me/preferences";
const VOICE = "voice_device";

let mounted = null; // the preferences the dialog edits

/** Whether the server keeps the phone preference (a server before it has no such key). */
function knowsVoice(prefs) {
  return Object.prototype.hasOwnProperty.call(prefs, VOICE);
}

/** Fetch the signed-in operator's preferences and switch the page to their language and zone. */
export async function loadPreferences() {
  const prefs = await get(PATH);
  await useLocale(prefs.locale, prefs.time_zone);
  translatePage();
  return prefs;
}

// A language's name in itself ("Deutsch", "Русский"), so anyone finds their own.
function autonym(code) {
  try {
    const name = new Intl.DisplayNames([code], { type: "language" }).of(code);
    return name ? name.charAt(0).toLocaleUpperCase(code) + name.slice(1) : code;
  } catch {
    return code;
  }
}

function timeZones(current) {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return [...new Set(["UTC", ...(current ? [current] : []), ...zones])].sort();
}

async function availableLocales() {
  // Every catalogue names the languages there are; English's is the smallest.
  const catalogue = await get("/i18n/en.json");
  return catalogue.locales || ["en"];
}

/** Add the "Preferences" button to the top bar and its dialog to the page. */
export function mountPreferences(prefs) {
  mounted = prefs;
  const dialog = h(
    "dialog",
    { id: "preferences-dialog", "aria-labelledby": "preferences-title" },
    h(
      "form",
      { id: "preferences-form", class: "form-grid", onsubmit: (event) => save(event, prefs) },
      h("h2", { id: "preferences-title" }, t("Preferences")),
      h(
        "div",
        { class: "field" },
        h("label", { for: "preferences-locale" }, t("Language")),
        h("select", { id: "preferences-locale", name: "locale" }),
      ),
      h(
        "div",
        { class: "field" },
        h("label", { for: "preferences-zone" }, t("Time zone")),
        h("select", { id: "preferences-zone", name: "time_zone" }),
      ),
      h("p", { id: "preferences-now", class: "muted" }),
      h(
        "div",
        { class: "field voice-device-field", hidden: !knowsVoice(prefs) },
        h("label", { for: "preferences-voice-device" }, t("Phone for calls")),
        h("input", {
          id: "preferences-voice-device",
          name: VOICE,
          type: "text",
          autocomplete: "tel",
          maxlength: 200,
          spellcheck: "false",
          placeholder: "+49 30 1234567",
          "aria-describedby": "preferences-voice-device-hint preferences-voice-device-error",
        }),
        h(
          "p",
          { id: "preferences-voice-device-hint", class: "muted hint" },
          t("Calls you accept and callbacks you make ring here: a number (+49 30 1234567) or a SIP address (sip:anna@pbx.example). Empty: no calls."),
        ),
        h("p", { id: "preferences-voice-device-error", class: "field-error", role: "alert" }),
      ),
      h(
        "div",
        { class: "dialog-buttons" },
        h("button", { type: "submit", class: "primary" }, t("Save")),
        h("button", { type: "button", onclick: () => dialog.close() }, t("Cancel")),
      ),
    ),
  );
  document.body.append(dialog);
  const button = h(
    "button",
    {
      id: "preferences-button",
      type: "button",
      "aria-haspopup": "dialog",
      "aria-controls": "preferences-dialog",
      onclick: () => open(prefs),
    },
    t("Preferences"),
  );
  const anchor = byId("me-name");
  anchor.parentElement.insertBefore(button, anchor);
}

/** Open the dialog; `focus` names a field to put the cursor in ("voice_device"). */
export async function openPreferences({ focus } = {}) {
  if (!mounted) return;
  await open(mounted);
  if (focus === VOICE && knowsVoice(mounted)) byId("preferences-voice-device").focus();
}

async function open(prefs) {
  const locales = await availableLocales();
  fill(
    byId("preferences-locale"),
    locales.map((code) => h("option", { value: code, selected: code === prefs.locale }, autonym(code))),
  );
  fill(
    byId("preferences-zone"),
    [
      h(
        "option",
        { value: "", selected: !prefs.time_zone },
        t("This computer's ({zone})", { zone: Intl.DateTimeFormat().resolvedOptions().timeZone }),
      ),
      ...timeZones(prefs.time_zone).map((zone) =>
        h("option", { value: zone, selected: zone === prefs.time_zone }, zone),
      ),
    ],
  );
  byId("preferences-now").textContent = t("Now: {time}", { time: formatDateTime(new Date()) });
  const voice = byId("preferences-voice-device");
  voice.closest(".field").hidden = !knowsVoice(prefs);
  voice.value = prefs[VOICE] || "";
  voice.removeAttribute("aria-invalid");
  byId("preferences-voice-device-error").textContent = "";
  if (!byId("preferences-dialog").open) byId("preferences-dialog").showModal();
}

async function save(event, prefs) {
  event.preventDefault();
  const locale = byId("preferences-locale").value;
  const timeZone = byId("preferences-zone").value;
  const changes = { locale, time_zone: timeZone };
  const voice = byId("preferences-voice-device");
  const voiceError = byId("preferences-voice-device-error");
  voiceError.textContent = "";
  voice.removeAttribute("aria-invalid");
  if (knowsVoice(prefs)) changes[VOICE] = voice.value.trim();
  try {
    const saved = await patch(PATH, changes);
    Object.assign(prefs, saved);
    if (changes[VOICE] && !saved[VOICE]) {
      // The server answered without keeping the phone (it ignored the key): say so here.
      voiceError.textContent = t("The server did not keep this phone; ask an administrator.");
      voice.setAttribute("aria-invalid", "true");
      voice.focus();
      return;
    }
    byId("preferences-dialog").close();
    if (saved.locale !== currentLocale()) {
      // Every text of the console follows the language: start it again in the new one.
      location.reload();
      return;
    }
    await useLocale(saved.locale, saved.time_zone);
    toast(t("Preferences saved"));
  } catch (error) {
    // The server's words about the phone go beside it (the key, or a dotted path ending in it).
    const fields = error.fields || {};
    const key = Object.keys(fields).find((name) => name === VOICE || name.endsWith(`.${VOICE}`));
    if (key) {
      voiceError.textContent = fields[key];
      voice.setAttribute("aria-invalid", "true");
      voice.focus();
      return;
    }
    toast(error.message, "error");
  }
}
