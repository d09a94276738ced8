// The admin pages' forms: fields with a label, a hint and an error line each, and the API's
// per-field validation errors (error.fields, dotted keys such as "config.sla.resolution_minutes"
// or "settings.imap_host") shown beside the field they are about. Field boxes may nest (a list
// "stages" whose rows hold "stages.0.key", ...): an error goes to the innermost box named by it.

import { ApiError } from "../common/api.js";
import { h, toast } from "../common/dom.js";
import { t } from "../common/i18n.js";

let counter = 0;

/**
 * A labelled field. `name` is the API's field name (dotted for nested ones): errors for it, or
 * for anything under it ("skills.billing" goes to "skills"), appear in its error line.
 * kind: text | email | password | number | url | textarea | select | checkbox
 */
/** Put `text` on the clipboard, saying whether it worked. */
export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast(t("Copied"));
  } catch {
    toast(t("Select the text and copy it"), "error");
  }
}

export function field({ name, label, kind = "text", value, hint, options, required, wide, attrs }) {
  const id = `f${++counter}`;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const described = [hintId, errorId].filter(Boolean).join(" ");
  let control;
  if (kind === "textarea") {
    control = h("textarea", { id, name, rows: 4, "aria-describedby": described, ...attrs });
    control.value = value ?? "";
  } else if (kind === "select") {
    control = h(
      "select",
      { id, name, "aria-describedby": described, ...attrs },
      (options || []).map(([optionValue, text]) =>
        h("option", { value: optionValue, selected: String(value ?? "") === String(optionValue) }, text),
      ),
    );
  } else if (kind === "checkbox") {
    control = h("input", { id, name, type: "checkbox", checked: Boolean(value), "aria-describedby": described, ...attrs });
  } else {
    control = h("input", { id, name, type: kind, value: value ?? "", required, "aria-describedby": described, ...attrs });
  }
  const labelNode = h("label", { for: id }, label);
  const parts =
    kind === "checkbox"
      ? [h("span", { class: "check" }, control, labelNode)]
      : [labelNode, control];
  return h(
    "div",
    { class: wide ? "field wide" : "field", dataset: { field: name } },
    ...parts,
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    h("p", { class: "error-text", id: errorId, role: "alert" }),
  );
}

/** A group of checkboxes (queues, members, required fields) named `name`. */
export function checkboxes({ name, legend, items, checked }) {
  const chosen = new Set((checked || []).map(String));
  const errorId = `f${++counter}-error`;
  return h(
    "fieldset",
    { class: "wide", dataset: { field: name }, "aria-describedby": errorId },
    h("legend", {}, legend),
    items.length
      ? items.map(([value, text]) =>
          h(
            "label",
            { class: "check" },
            h("input", { type: "checkbox", name, value, checked: chosen.has(String(value)) }),
            text,
          ),
        )
      : h("span", { class: "muted" }, t("None yet")),
    h("p", { class: "error-text full", id: errorId, role: "alert" }),
  );
}

/** The values of the checked boxes named `name` in `form`. */
export function checkedValues(form, name) {
  return [...form.querySelectorAll(`input[type=checkbox][name="${name}"]:checked`)].map((box) => box.value);
}

/** The value of the control named `name` (trimmed text, a number or null, a boolean). */
export function valueOf(form, name) {
  const control = form.elements.namedItem(name);
  if (!control) return undefined;
  if (control.type === "checkbox") return control.checked;
  if (control.type === "number") return control.value === "" ? null : Number(control.value);
  return control.value.trim();
}

/** An editor panel: a form with the fields, a form-wide error line and the buttons. */
export function editor({ title, fields, submitLabel, onSubmit, onCancel }) {
  const form = h(
    "form",
    { class: "form-grid", novalidate: true },
    ...fields,
    h("p", { class: "form-error error-text", role: "alert" }),
    h(
      "div",
      { class: "form-buttons" },
      h("button", { type: "submit", class: "primary" }, submitLabel || t("Save")),
      onCancel ? h("button", { type: "button", onclick: onCancel }, t("Cancel")) : null,
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(form, () => onSubmit(form));
  });
  return h("section", { class: "editor", "aria-label": title }, h("h2", {}, title), form);
}

/** Run `work`; its ApiError's fields are shown beside the fields, its message otherwise. */
export async function submitting(form, work) {
  clearErrors(form);
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  try {
    await work();
  } catch (error) {
    if (error instanceof FieldError || error instanceof ApiError) showErrors(form, error);
    else throw error;
  } finally {
    if (button) button.disabled = false;
  }
}

/** A problem found in the browser before sending, e.g. a skills list that does not parse. */
export class FieldError extends Error {
  constructor(fields) {
    super(t("Please correct the fields marked."));
    this.fields = fields;
  }
}

export function clearErrors(form) {
  for (const line of form.querySelectorAll(".error-text")) line.textContent = "";
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

/** The field box of `form` that a dotted error key is about: the longest name that is the key
 *  or a prefix of it ("config.strategies.0" -> "config.strategies" or "config"). */
export function fieldFor(form, key) {
  const parts = key.split(".");
  for (let n = parts.length; n > 0; n--) {
    const name = parts.slice(0, n).join(".");
    const box = [...form.querySelectorAll("[data-field]")].find((el) => el.dataset.field === name);
    if (box) return box;
  }
  return null;
}

/** The elements of a field box matching `selector` that are its own, not those of a field box
 *  inside it (a list whose rows have fields: "stages" holds "stages.0.key"). */
function own(box, selector) {
  return [...box.querySelectorAll(selector)].filter((element) => element.closest("[data-field]") === box);
}

export function showErrors(form, error) {
  const unplaced = [];
  for (const [key, message] of Object.entries(error.fields || {})) {
    const box = fieldFor(form, key);
    if (!box) {
      unplaced.push(`${key}: ${message}`);
      continue;
    }
    const [line] = own(box, ".error-text");
    const tail = key === box.dataset.field ? "" : ` (${key.slice(box.dataset.field.length + 1)})`;
    line.textContent = line.textContent ? `${line.textContent}; ${message}${tail}` : `${message}${tail}`;
    for (const control of own(box, "input, select, textarea")) {
      control.setAttribute("aria-invalid", "true");
    }
  }
  const formError = form.querySelector(".form-error");
  const placed = Object.keys(error.fields || {}).length - unplaced.length;
  formError.textContent = unplaced.length || !placed ? [error.message, ...unplaced].join(" · ") : "";
  const first = form.querySelector("[aria-invalid=true]");
  if (first) first.focus();
  if (!placed) toast(error.message, "error");
}

/** "de=80, en=100" <-> {de: 80, en: 100}; a FieldError for `name` when it does not parse. */
export function parseLevels(text, name) {
  const levels = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const match = /^([^=\s]+)\s*=\s*(\d+)$/.exec(part);
    if (!match) {
      throw new FieldError({ [name]: t("Write name=level pairs separated by commas, e.g. {example}", { example: "de=80, en=100" }) });
    }
    levels[match[1]] = Number(match[2]);
  }
  return levels;
}

export function formatLevels(levels) {
  return Object.entries(levels || {})
    .map(([key, value]) => `${key}=${value}`)
    .join(", ");
}

/** A table with a header row; rows are arrays of cells (nodes or text). */
export function table(label, headers, rows) {
  return h(
    "table",
    { class: "admin-table", "aria-label": label },
    h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, rows),
  );
}

/** The section's heading with an optional button. */
export function sectionHeader(title, ...actions) {
  return h("header", {}, h("h1", {}, title), ...actions);
}
