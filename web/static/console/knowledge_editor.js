// The knowledge base's article editor (knowledge.js opens it in the article dialog): a new
// article, another language of one, or a change to one. A change names the version it was
// made on; if someone saved a newer one meanwhile (409), the form says who and when and keeps
// the operator's text until they choose theirs or the newer one. The API's per-field errors
// show beside their fields.
import { ApiError, get, patch, post } from "../common/api.js";
import { fill, formatTime, h, toast } from "../common/dom.js";
import { currentLocale, t } from "../common/i18n.js";

const API = "/api/v1/knowledge/articles";
const FIELDS = ["slug", "language", "title", "tags", "visibility", "body"];

export function visibilityLabel(visibility) {
  return visibility === "public" ? t("Public") : t("Internal");
}

/** What a version changed, in words ("text, tags", "archived"). */
export function changesText(changes) {
  const words = {
    created: t("written"),
    title: t("title"),
    body: t("text"),
    tags: t("tags"),
    visibility: t("visibility"),
    archived: t("archived"),
    restored: t("restored"),
  };
  return changes.map((change) => words[change] || change).join(", ");
}

function contentChanges(before, after) {
  const fields = ["title", "body", "tags", "visibility"];
  return fields.filter((name) => JSON.stringify(before[name]) !== JSON.stringify(after[name]));
}

function field(name, label, control, hint) {
  control.id = `kb-edit-${name}`;
  control.name = name;
  control.setAttribute("aria-describedby", `kb-edit-${name}-error${hint ? ` kb-edit-${name}-hint` : ""}`);
  return h(
    "div",
    { class: `kb-field kb-field-${name}` },
    h("label", { for: control.id }, label),
    control,
    hint ? h("span", { class: "hint muted", id: `kb-edit-${name}-hint` }, hint) : null,
    h("p", { class: "field-error", id: `kb-edit-${name}-error`, role: "alert" }),
  );
}

/**
 * The editor: `article` to change it, else a new article (`from`: another language of it).
 * Calls `onSaved(saved, editing)` after a save, `onCancel()`, and `onShowLatest(latest)` when
 * the operator gives up their edit for someone else's newer one. Returns the form and what
 * to focus once it is shown.
 */
export function articleForm({ article = null, from = null, onSaved, onCancel, onShowLatest }) {
  const source = article || from;
  const editing = article !== null;
  const form = h("form", { class: "kb-form", novalidate: true });
  const controls = {
    slug: h("input", {
      type: "text",
      maxlength: 100,
      required: true,
      autocomplete: "off",
      spellcheck: "false",
      value: source ? source.slug : "",
      disabled: editing,
    }),
    language: h("input", {
      type: "text",
      maxlength: 16,
      required: true,
      autocomplete: "off",
      spellcheck: "false",
      value: editing ? article.language : from ? "" : currentLocale(),
      disabled: editing,
    }),
    title: h("input", {
      type: "text",
      maxlength: 300,
      required: true,
      autocomplete: "off",
      value: source ? source.title : "",
    }),
    tags: h("input", { type: "text", autocomplete: "off", value: source ? source.tags.join(", ") : "" }),
    visibility: h(
      "select",
      {},
      ["internal", "public"].map((value) =>
        h("option", { value, selected: (source ? source.visibility : "internal") === value }, visibilityLabel(value)),
      ),
    ),
    body: h("textarea", { rows: 14, maxlength: 100000, required: true }),
  };
  controls.body.value = source ? source.body : "";
  const conflict = h("div", { class: "kb-conflict", role: "alert", hidden: true });
  const error = h("p", { class: "field-error", role: "alert" });
  const heading = editing
    ? t("Edit “{title}”", { title: article.title })
    : from
      ? t("Another language of “{title}”", { title: from.title })
      : t("New article");
  const fixedHint = editing ? t("Fixed once saved: links to it keep working.") : null;
  fill(
    form,
    h("h2", { id: "kb-dialog-title" }, heading),
    conflict,
    h(
      "div",
      { class: "kb-fields" },
      field(
        "slug",
        t("Address name (slug)"),
        controls.slug,
        fixedHint || t("a-z, 0-9 and hyphens; shared by its languages"),
      ),
      field("language", t("Language"), controls.language, editing ? null : t("e.g. en, de, ru, pt-BR")),
      field("title", t("Title"), controls.title),
      field("tags", t("Tags"), controls.tags, t("separated by commas")),
      field(
        "visibility",
        t("Visibility"),
        controls.visibility,
        t("Public articles are on the help page and can be sent as a link."),
      ),
      field("body", t("Text"), controls.body, t("A blank line starts a new paragraph.")),
    ),
    error,
    h(
      "div",
      { class: "dialog-actions" },
      h("button", { type: "submit", class: "primary" }, t("Save")),
      h("button", { type: "button", onclick: () => onCancel() }, t("Cancel")),
    ),
  );
  let version = editing ? article.version : null;
  const values = () => ({
    title: controls.title.value,
    body: controls.body.value,
    tags: controls.tags.value.split(",").map((tag) => tag.trim()).filter(Boolean),
    visibility: controls.visibility.value,
  });
  const save = async () => {
    clearErrors(form, error);
    let saved;
    try {
      saved = editing
        ? await patch(`${API}/${article.id}`, { version, ...values() })
        : await post(API, { slug: controls.slug.value, language: controls.language.value, ...values() });
    } catch (failure) {
      if (editing && failure instanceof ApiError && failure.status === 409 && failure.fields.version) {
        await showConflict(conflict, article, onShowLatest, (latest) => {
          version = latest;
          save();
        });
      } else {
        showErrors(form, error, failure);
      }
      return;
    }
    toast(editing ? t("Saved as version {version}", { version: saved.version }) : t("Article saved"));
    onSaved(saved, editing);
  };
  form.addEventListener("input", () => {
    form.dataset.dirty = "true";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save();
  });
  return { form, focus: editing ? controls.title : controls.slug };
}

function clearErrors(form, error) {
  error.textContent = "";
  for (const name of FIELDS) {
    const text = form.querySelector(`#kb-edit-${name}-error`);
    if (text) text.textContent = "";
    const control = form.querySelector(`#kb-edit-${name}`);
    if (control) control.removeAttribute("aria-invalid");
  }
}

/** The API's per-field errors beside their fields ("tags.3" is the tags field's). */
function showErrors(form, error, failure) {
  const fields = failure instanceof ApiError ? failure.fields : {};
  let placed = false;
  for (const [key, message] of Object.entries(fields)) {
    const name = key.split(".")[0];
    const text = form.querySelector(`#kb-edit-${name}-error`);
    if (!text) continue;
    text.textContent = message;
    form.querySelector(`#kb-edit-${name}`).setAttribute("aria-invalid", "true");
    placed = true;
  }
  if (!placed) error.textContent = failure.message;
  const first = form.querySelector("[aria-invalid=true]");
  if (first) first.focus();
}

/** Someone saved while this was being edited: say who and when; the text stays in the form
 *  until the operator picks theirs or the newer one. */
async function showConflict(box, article, onShowLatest, saveAnyway) {
  let latest;
  try {
    latest = await get(`${API}/${article.id}`);
  } catch (error) {
    toast(error.message, "error");
    return;
  }
  fill(
    box,
    h(
      "p",
      {},
      h("strong", {}, t("Not saved: this article changed while you were editing it.")),
      " ",
      t("{name} saved version {version} at {time}.", {
        name: latest.updated_by_name || t("Someone"),
        version: latest.version,
        time: formatTime(latest.updated_at),
      }),
      latest.archived ? ` ${t("It is archived now.")}` : "",
      contentChanges(article, latest).length
        ? ` ${t("Changed: {changes}.", { changes: changesText(contentChanges(article, latest)) })}`
        : "",
      " ",
      t("Your text is still here. Which one should stay?"),
    ),
    h(
      "div",
      { class: "dialog-actions" },
      h("button", { type: "button", onclick: () => onShowLatest(latest) }, t("Discard mine, show theirs")),
      h(
        "button",
        { type: "button", class: "danger", onclick: () => saveAnyway(latest.version) },
        t("Save mine over theirs"),
      ),
    ),
  );
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}
