// The knowledge base: articles the team writes once and uses in replies (core/knowledge.py).
//
//   the Knowledge tab   search (every word in the title, body, slug or a tag), a language,
//                       archived ones too; the list, last changed first, paged
//                       (GET /api/v1/knowledge/articles).
//   the article dialog  an article to read: its text, tags, other languages and, when public,
//                       the link to send (copied, or put into the reply). Supervisors and
//                       admins also edit it (PATCH with the version they edited: someone
//                       else's newer save is shown as a conflict, nothing is lost), write a
//                       new article or another language of one, archive and restore it, and
//                       bring back an earlier version from its history (POST .../revert).
//
// Operators read everything and change nothing; the server refuses them too.
import { ApiError, get, post, withQuery } from "../common/api.js";
import { byId, fill, formatTime, h, toast } from "../common/dom.js";
import { currentLocale, t } from "../common/i18n.js";
import { articleForm, changesText, visibilityLabel } from "./knowledge_editor.js";
import { isSupervisor, signal, state } from "./state.js";

const API = "/api/v1/knowledge/articles";
const PAGE = 50;

// `asked` counts the loads: an answer to an older one than the latest is dropped.
const list = { q: "", language: "", archived: false, items: [], nextCursor: null, asked: 0 };
// The open dialog's article (null while writing a new one).
let current = null;

function languageName(tag) {
  try {
    const names = new Intl.DisplayNames([currentLocale()], { type: "language" });
    return names.of(tag) || tag;
  } catch {
    return tag;
  }
}

function pills(article) {
  return [
    h("span", { class: `pill kb-${article.visibility}` }, visibilityLabel(article.visibility)),
    article.archived ? h("span", { class: "pill kb-archived" }, t("Archived")) : null,
  ];
}

// ----- the list -----

async function fetchPage(cursor) {
  return get(
    withQuery(API, {
      q: list.q.trim(),
      language: list.language.trim(),
      include_archived: list.archived ? "true" : "",
      limit: PAGE,
      cursor,
    }),
  );
}

export async function loadKnowledge() {
  const box = byId("kb-list");
  if (!box) return;
  box.setAttribute("aria-busy", "true");
  const ticket = ++list.asked;
  try {
    const page = await fetchPage(null);
    if (ticket !== list.asked) return;
    list.items = page.items;
    list.nextCursor = page.next_cursor;
    renderList();
  } catch (error) {
    if (ticket !== list.asked) return;
    const fields = error instanceof ApiError ? error.fields : {};
    const message = fields.language || fields.q || error.message;
    fill(box, h("p", { class: "empty", role: "alert" }, message));
  } finally {
    if (ticket === list.asked) box.setAttribute("aria-busy", "false");
  }
}

async function loadMore() {
  const page = await fetchPage(list.nextCursor);
  list.items = list.items.concat(page.items);
  list.nextCursor = page.next_cursor;
  renderList();
}

function renderList() {
  const box = byId("kb-list");
  if (!list.items.length) {
    const searching = list.q.trim() || list.language.trim();
    fill(box, h("p", { class: "empty muted" }, searching ? t("No article matches.") : t("No articles yet.")));
    return;
  }
  fill(
    box,
    h("ul", { class: "kb-list" }, list.items.map((item) => h("li", {}, listItem(item)))),
    list.nextCursor
      ? h("button", { type: "button", class: "load-more", onclick: () => loadMore().catch(showError) }, t("Load more"))
      : null,
  );
}

function listItem(item) {
  return h(
    "button",
    {
      type: "button",
      class: `kb-item${item.archived ? " archived" : ""}`,
      dataset: { articleId: item.id },
      onclick: () => openArticle(item.id),
    },
    h("span", { class: "kb-item-title", lang: item.language }, item.title),
    h(
      "span",
      { class: "kb-item-meta" },
      h("span", { class: "pill", title: languageName(item.language) }, item.language),
      pills(item),
      item.tags.map((tag) => h("span", { class: "tag" }, tag)),
    ),
    h("span", { class: "preview", lang: item.language }, item.excerpt),
  );
}

// ----- the dialog -----

function dialogElement() {
  let element = byId("knowledge-dialog");
  if (!element) {
    element = h("dialog", {
      id: "knowledge-dialog",
      class: "knowledge-dialog",
      "aria-labelledby": "kb-dialog-title",
    });
    element.addEventListener("close", () => {
      current = null;
    });
    // Esc would throw away an edit in progress.
    element.addEventListener("cancel", (event) => {
      if (element.querySelector("form.kb-form[data-dirty]")) {
        event.preventDefault();
        toast(t("Save or cancel your changes first"));
      }
    });
    document.body.append(element);
  }
  return element;
}

function show(...children) {
  const element = dialogElement();
  fill(element, ...children);
  if (!element.open) element.showModal();
  return element;
}

function closeDialog() {
  const element = byId("knowledge-dialog");
  if (element && element.open) element.close();
}

function showError(error) {
  toast(error.message, "error");
}

export async function openArticle(id) {
  try {
    current = await get(`${API}/${id}`);
  } catch (error) {
    showError(error);
    return;
  }
  renderArticle();
}

function renderArticle() {
  const article = current;
  const supervisor = isSupervisor();
  const editable = supervisor && !article.archived;
  const updated = t("Version {version}, saved {time} by {name}", {
    version: article.version,
    time: formatTime(article.updated_at),
    name: article.updated_by_name || t("someone"),
  });
  show(
    h(
      "article",
      { class: "kb-article", lang: article.language },
      h("h2", { id: "kb-dialog-title" }, article.title),
      h(
        "p",
        { class: "kb-meta muted", lang: currentLocale() },
        h("code", {}, article.slug),
        ` · ${languageName(article.language)} · ${updated} `,
        pills(article),
      ),
      h("div", { class: "kb-body" }, article.body),
      article.tags.length
        ? h("p", { class: "kb-tags" }, article.tags.map((tag) => h("span", { class: "tag" }, tag)))
        : null,
    ),
    publicLink(article),
    article.translations.length
      ? h(
          "p",
          { class: "kb-translations" },
          t("Other languages:"),
          " ",
          article.translations.map((other) =>
            h(
              "button",
              {
                type: "button",
                class: "link-button",
                lang: other.language,
                title: other.title,
                onclick: () => openArticle(other.id),
              },
              languageName(other.language),
            ),
          ),
        )
      : null,
    h(
      "div",
      { class: "dialog-actions" },
      editable
        ? h("button", { type: "button", class: "primary", onclick: () => renderForm(article) }, t("Edit"))
        : null,
      editable ? h("button", { type: "button", onclick: () => renderForm(null, article) }, t("Add a language")) : null,
      supervisor
        ? h(
            "button",
            { type: "button", onclick: () => setArchived(!article.archived) },
            article.archived ? t("Restore") : t("Archive"),
          )
        : null,
      h("button", { type: "button", onclick: () => renderHistory() }, t("History")),
      h("button", { type: "button", onclick: closeDialog }, t("Close")),
    ),
  );
}

function publicLink(article) {
  if (!article.public_url) return null;
  const url = article.public_url;
  return h(
    "p",
    { class: "kb-link" },
    h("span", { class: "muted" }, t("Public link:")),
    " ",
    h("a", { href: url, target: "_blank", rel: "noopener" }, url),
    " ",
    h(
      "button",
      {
        type: "button",
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(url);
            toast(t("Link copied"));
          } catch {
            toast(t("The link could not be copied; select it instead"), "error");
          }
        },
      },
      t("Copy link"),
    ),
    state.conversationId !== null
      ? h(
          "button",
          {
            type: "button",
            onclick: () => {
              closeDialog();
              signal("insert-into-reply", url);
            },
          },
          t("Put the link into the reply"),
        )
      : null,
  );
}

async function setArchived(archived) {
  try {
    current = await post(`${API}/${current.id}/${archived ? "archive" : "restore"}`, { version: current.version });
    toast(archived ? t("Article archived") : t("Article restored"));
  } catch (error) {
    showError(error);
    if (error instanceof ApiError && error.status === 409) await openArticle(current.id);
    return;
  }
  renderArticle();
  loadKnowledge();
}

/** The editor in the dialog: `article` to change, else a new one (`from`: a language of). */
function renderForm(article, from = null) {
  const source = article || from;
  const { form, focus } = articleForm({
    article,
    from,
    onSaved: (saved) => {
      current = saved;
      renderArticle();
      loadKnowledge();
    },
    onCancel: () => (source ? openArticle(source.id) : closeDialog()),
    onShowLatest: (latest) => {
      current = latest;
      renderArticle();
      loadKnowledge();
    },
  });
  show(form);
  focus.focus();
}

// ----- history -----

async function renderHistory(selected = null) {
  const article = current;
  let page;
  try {
    page = await get(withQuery(`${API}/${article.id}/versions`, { limit: 200 }));
  } catch (error) {
    showError(error);
    return;
  }
  const detail = h("div", { class: "kb-version-detail", "aria-live": "polite" });
  const items = page.items.map((version) =>
    h(
      "li",
      {},
      h(
        "button",
        {
          type: "button",
          class: "link-button",
          dataset: { version: version.version },
          onclick: () => showVersion(detail, article, version.version),
        },
        t("Version {version}", { version: version.version }),
      ),
      " ",
      h(
        "span",
        { class: "muted" },
        `${formatTime(version.created_at)} · ${version.author_name || t("someone")} · ${changesText(version.changes)}`,
      ),
      version.version === article.version ? h("span", { class: "pill" }, t("current")) : null,
      version.archived ? h("span", { class: "pill kb-archived" }, t("Archived")) : null,
      h("div", { class: "kb-version-title" }, version.title),
    ),
  );
  show(
    h("h2", { id: "kb-dialog-title" }, t("History of “{title}”", { title: article.title })),
    h("ol", { class: "kb-versions", reversed: true }, items),
    page.next_cursor ? h("p", { class: "muted" }, t("Older versions are not shown.")) : null,
    detail,
    h(
      "div",
      { class: "dialog-actions" },
      h("button", { type: "button", onclick: () => renderArticle() }, t("Back to the article")),
      h("button", { type: "button", onclick: closeDialog }, t("Close")),
    ),
  );
  if (selected !== null) await showVersion(detail, article, selected);
}

async function showVersion(detail, article, number) {
  let version;
  try {
    version = await get(`${API}/${article.id}/versions/${number}`);
  } catch (error) {
    showError(error);
    return;
  }
  const mayRevert = isSupervisor() && !article.archived && number !== article.version;
  fill(
    detail,
    h("h3", {}, t("Version {version}", { version: number })),
    h(
      "p",
      { class: "muted" },
      visibilityLabel(version.visibility),
      version.tags.length ? ` · ${version.tags.join(", ")}` : "",
    ),
    h(
      "div",
      { class: "kb-article", lang: article.language },
      h("strong", {}, version.title),
      h("div", { class: "kb-body" }, version.body),
    ),
    mayRevert
      ? h("button", { type: "button", class: "primary", onclick: () => revert(number) }, t("Bring this version back"))
      : null,
  );
}

async function revert(number) {
  try {
    current = await post(`${API}/${current.id}/revert`, {
      version: number,
      current_version: current.version,
    });
  } catch (error) {
    showError(error);
    if (error instanceof ApiError && error.status === 409) await openArticle(current.id);
    return;
  }
  toast(t("Version {old} is back, as version {version}", { old: number, version: current.version }));
  renderArticle();
  loadKnowledge();
}

// ----- start -----

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Builds the Knowledge tab's panel; the list loads when the tab is first shown. */
export function startKnowledge() {
  const panel = byId("panel-knowledge");
  if (!panel) return;
  const reload = debounce(() => loadKnowledge(), 250);
  const search = h("input", { id: "kb-q", type: "search", maxlength: 200, autocomplete: "off" });
  const language = h("input", {
    id: "kb-language",
    type: "text",
    maxlength: 16,
    autocomplete: "off",
    placeholder: t("any"),
  });
  const archived = h("input", { id: "kb-archived", type: "checkbox" });
  search.addEventListener("input", () => {
    list.q = search.value;
    reload();
  });
  language.addEventListener("input", () => {
    list.language = language.value;
    reload();
  });
  archived.addEventListener("change", () => {
    list.archived = archived.checked;
    loadKnowledge();
  });
  fill(
    panel,
    h(
      "div",
      { class: "view-filters" },
      h("label", { for: "kb-q" }, t("Search articles")),
      search,
      h("label", { for: "kb-language" }, t("Language")),
      language,
    ),
    h(
      "div",
      { class: "kb-bar" },
      h("label", { class: "kb-check" }, archived, t("Show archived")),
      isSupervisor()
        ? h("button", { type: "button", id: "kb-new", onclick: () => renderForm(null) }, t("New article"))
        : null,
    ),
    h("div", { id: "kb-list", "aria-live": "polite", "aria-busy": "true" }),
  );
  // The tab shows the panel (views.js: showTab); the list is loaded each time it does.
  new MutationObserver(() => {
    if (!panel.hidden) loadKnowledge();
  }).observe(panel, { attributes: true, attributeFilter: ["hidden"] });
}
