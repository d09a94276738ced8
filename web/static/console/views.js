// The left column's other tabs: conversation views (status tabs, filters, saved views) and
// the contacts list. Every list pages with "load more" until the server says it is the end.
import { api, get, patch, post, withQuery } from "../common/api.js";
import { channelLabel, conversationChannels } from "../common/channels.js";
import { byId, fill, h, toast } from "../common/dom.js";
import { t, tn } from "../common/i18n.js";
import { normalizeItem, renderItem } from "./inbox.js";
import { signal, state } from "./state.js";

const PAGE = 50;
const STATUSES = [
  ["open", () => t("Open")],
  ["pending", () => t("Pending")],
  ["snoozed", () => t("Snoozed")],
  ["resolved", () => t("Resolved")],
  ["all", () => t("All")],
];
const SCOPES = [
  ["all", () => t("Everything I may see")],
  ["mine", () => t("Assigned to me")],
  ["queues", () => t("My queues: colleagues'")],
  ["unassigned", () => t("Unassigned in my queues")],
];
const FILTER_KEYS = ["scope", "status", "channel", "queue_id", "assignee", "tag", "since", "until"];

const view = {
  filters: { scope: "all", status: "open" },
  items: [],
  nextCursor: null,
  total: 0,
  saved: [],
  savedId: null,
};

const contacts = { q: "", tag: "", channel: "", items: [], nextCursor: null };

// ----- tabs -----

export function showTab(name) {
  for (const tab of document.querySelectorAll(".nav-tab")) {
    const current = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", current ? "true" : "false");
    tab.tabIndex = current ? 0 : -1;
  }
  for (const panel of document.querySelectorAll(".nav-panel")) {
    panel.hidden = panel.dataset.tab !== name;
  }
  if (name === "views") loadView();
  if (name === "contacts") loadContacts();
  if (name === "tasks") signal("tasks-shown");
}

// ----- views -----

function queryOf(filters) {
  const query = {};
  for (const key of FILTER_KEYS) {
    const value = filters[key];
    if (value === undefined || value === null || value === "") continue;
    query[key] = key === "since" || key === "until" ? dayStart(value, key === "until") : value;
  }
  return query;
}

// A date input's day as the instant it starts in the browser's zone ("until" includes the day).
function dayStart(value, after) {
  const date = new Date(`${value.slice(0, 10)}T00:00`);
  if (after) date.setDate(date.getDate() + 1);
  return date.toISOString();
}

async function fetchView(cursor, limit) {
  return get(withQuery("/api/v1/views/conversations", { ...queryOf(view.filters), cursor, limit }));
}

export async function loadView() {
  const wanted = Math.max(PAGE, view.items.length);
  try {
    const page = await fetchView(null, Math.min(200, wanted));
    view.items = page.items.map(normalizeItem);
    view.nextCursor = page.next_cursor;
    view.total = page.total;
  } catch (error) {
    toast(error.message, "error");
  }
  renderView();
}

async function moreOfView() {
  try {
    const page = await fetchView(view.nextCursor, PAGE);
    const known = new Set(view.items.map((item) => item.id));
    view.items.push(...page.items.map(normalizeItem).filter((item) => !known.has(item.id)));
    view.nextCursor = page.next_cursor;
    view.total = page.total;
  } catch (error) {
    toast(error.message, "error");
  }
  renderView();
}

function setFilter(key, value) {
  view.filters = { ...view.filters, [key]: value };
  view.items = [];
  view.savedId = null;
  renderSaved();
  loadView();
}

function renderStatusTabs() {
  fill(
    byId("view-statuses"),
    STATUSES.map(([status, label]) =>
      h(
        "button",
        {
          type: "button",
          class: "status-tab",
          "aria-pressed": (view.filters.status || "all") === status ? "true" : "false",
          dataset: { status },
          onclick: () => setFilter("status", status),
        },
        label(),
      ),
    ),
  );
}

function option(value, label, selected) {
  return h("option", { value, selected: String(selected ?? "") === String(value) }, label);
}

function renderFilters() {
  const f = view.filters;
  fill(byId("view-scope"), SCOPES.map(([value, label]) => option(value, label(), f.scope)));
  fill(
    byId("view-channel"),
    option("", t("Any channel"), f.channel),
    conversationChannels().map((channel) => option(channel.name, channelLabel(channel.name), f.channel)),
  );
  fill(
    byId("view-queue"),
    option("", t("Any queue"), f.queue_id),
    [...state.queues.values()].map((queue) => option(queue.id, queue.name, f.queue_id)),
  );
  fill(
    byId("view-assignee"),
    option("", t("Anyone"), f.assignee),
    option("me", t("Me"), f.assignee),
    option("none", t("Nobody"), f.assignee),
    [...state.operators.values()].map((operator) => option(operator.id, operator.name, f.assignee)),
  );
  byId("view-tag").value = f.tag || "";
  byId("view-since").value = f.since || "";
  byId("view-until").value = f.until || "";
}

function renderView() {
  renderStatusTabs();
  const list = byId("view-list");
  list.setAttribute("aria-busy", "false");
  fill(
    list,
    h("p", { class: "muted view-count" }, tn("{n} conversation", "{n} conversations", view.total)),
    view.items.length
      ? h("ul", { class: "inbox-list" }, view.items.map(renderItem))
      : h("p", { class: "muted empty" }, t("No conversations match.")),
    view.nextCursor
      ? h(
          "button",
          { type: "button", class: "load-more", onclick: moreOfView },
          t("Load more ({shown} of {total})", { shown: view.items.length, total: view.total }),
        )
      : null,
  );
}

// ----- saved views -----

async function loadSaved() {
  try {
    view.saved = (await get("/api/v1/saved-views")).items;
  } catch (error) {
    view.saved = [];
    toast(error.message, "error");
  }
  renderSaved();
}

function renderSaved() {
  const select = byId("saved-views");
  fill(
    select,
    option("", view.saved.length ? t("Saved views…") : t("No saved views yet"), view.savedId || ""),
    view.saved.map((saved) => option(saved.id, saved.name, view.savedId || "")),
  );
  byId("delete-view").hidden = !view.savedId;
}

function useSaved(id) {
  const saved = view.saved.find((item) => String(item.id) === String(id));
  if (!saved) {
    view.savedId = null;
    renderSaved();
    return;
  }
  const filters = { ...saved.filters };
  if (filters.since) filters.since = toLocalInput(new Date(filters.since));
  if (filters.until) {
    const day = new Date(filters.until);
    day.setDate(day.getDate() - 1);
    filters.until = toLocalInput(day);
  }
  view.filters = filters;
  view.savedId = saved.id;
  view.items = [];
  renderFilters();
  renderSaved();
  loadView();
}

function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

async function saveView(event) {
  event.preventDefault();
  const dialog = byId("save-view-dialog");
  const name = byId("save-view-name").value.trim();
  if (!name) return;
  const filters = queryOf(view.filters);
  if (filters.queue_id) filters.queue_id = Number(filters.queue_id);
  if (filters.assignee && /^\d+$/.test(filters.assignee)) filters.assignee = Number(filters.assignee);
  const existing = view.saved.find((item) => item.name === name);
  try {
    const saved = existing
      ? await patch(`/api/v1/saved-views/${existing.id}`, { filters })
      : await post("/api/v1/saved-views", { name, filters });
    dialog.close();
    toast(t("View “{name}” saved", { name: saved.name }));
    await loadSaved();
    view.savedId = saved.id;
    renderSaved();
  } catch (error) {
    byId("save-view-error").textContent = error.message;
  }
}

async function deleteView() {
  const saved = view.saved.find((item) => item.id === view.savedId);
  if (!saved) return;
  try {
    await api("DELETE", `/api/v1/saved-views/${saved.id}`);
    toast(t("View “{name}” deleted", { name: saved.name }));
  } catch (error) {
    toast(error.message, "error");
  }
  view.savedId = null;
  await loadSaved();
}

// ----- contacts -----

async function fetchContacts(cursor) {
  return get(
    withQuery("/api/v1/contacts", {
      q: contacts.q,
      tag: contacts.tag,
      channel: contacts.channel,
      cursor,
      limit: PAGE,
    }),
  );
}

export async function loadContacts() {
  try {
    const page = await fetchContacts(null);
    contacts.items = page.items;
    contacts.nextCursor = page.next_cursor;
  } catch (error) {
    toast(error.message, "error");
  }
  renderContacts();
}

async function moreContacts() {
  try {
    const page = await fetchContacts(contacts.nextCursor);
    contacts.items.push(...page.items);
    contacts.nextCursor = page.next_cursor;
  } catch (error) {
    toast(error.message, "error");
  }
  renderContacts();
}

/** Open a contact's newest conversation (that the caller may see). */
export async function openContact(contact) {
  try {
    const page = await get(withQuery("/api/v1/conversations", { contact_id: contact.id, limit: 1 }));
    if (page.items.length) {
      signal("open", { id: page.items[0].id, focus: false });
    } else {
      toast(t("{name} has no conversation you may open", { name: contactName(contact) }));
    }
  } catch (error) {
    toast(error.message, "error");
  }
}

export function contactName(contact) {
  return contact.display_name || t("Contact {id}", { id: contact.id });
}

export function contactAddresses(contact) {
  return (contact.identities || []).map((identity) => identity.address).join(" · ");
}

function renderContacts() {
  const list = byId("contact-list");
  list.setAttribute("aria-busy", "false");
  fill(
    list,
    contacts.items.length
      ? h(
          "ul",
          { class: "inbox-list" },
          contacts.items.map((contact) =>
            h(
              "li",
              {},
              h(
                "button",
                {
                  type: "button",
                  class: "contact-item",
                  dataset: { contactId: contact.id },
                  onclick: () => openContact(contact),
                },
                h("strong", { class: "name" }, contactName(contact)),
                h("span", { class: "preview" }, contactAddresses(contact)),
                contact.tags.length
                  ? h("span", { class: "tags" }, contact.tags.map((tag) => h("span", { class: "tag" }, tag)))
                  : null,
              ),
            ),
          ),
        )
      : h("p", { class: "muted empty" }, t("No contacts match.")),
    contacts.nextCursor
      ? h("button", { type: "button", class: "load-more", onclick: moreContacts }, t("Load more"))
      : null,
  );
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// ----- start -----

export function startViews() {
  for (const tab of document.querySelectorAll(".nav-tab")) {
    tab.addEventListener("click", () => showTab(tab.dataset.tab));
    tab.addEventListener("keydown", (event) => {
      const tabs = [...document.querySelectorAll(".nav-tab")].filter((one) => !one.hidden);
      const index = tabs.indexOf(tab);
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(index + step + tabs.length) % tabs.length];
      next.focus();
      showTab(next.dataset.tab);
    });
  }
  const bind = (id, key, event = "change") =>
    byId(id).addEventListener(event, (e) => setFilter(key, e.target.value));
  bind("view-scope", "scope");
  bind("view-channel", "channel");
  bind("view-queue", "queue_id");
  bind("view-assignee", "assignee");
  bind("view-since", "since");
  bind("view-until", "until");
  byId("view-tag").addEventListener(
    "input",
    debounce((e) => setFilter("tag", e.target.value.trim()), 300),
  );
  byId("saved-views").addEventListener("change", (e) => useSaved(e.target.value));
  byId("save-view").addEventListener("click", () => {
    const saved = view.saved.find((item) => item.id === view.savedId);
    byId("save-view-name").value = saved ? saved.name : "";
    byId("save-view-error").textContent = "";
    byId("save-view-dialog").showModal();
  });
  byId("save-view-form").addEventListener("submit", saveView);
  byId("save-view-cancel").addEventListener("click", () => byId("save-view-dialog").close());
  byId("delete-view").addEventListener("click", deleteView);
  const reloadContacts = debounce(loadContacts, 250);
  byId("contact-q").addEventListener("input", (e) => {
    contacts.q = e.target.value;
    reloadContacts();
  });
  byId("contact-tag").addEventListener("input", (e) => {
    contacts.tag = e.target.value.trim();
    reloadContacts();
  });
  byId("contact-channel").addEventListener("change", (e) => {
    contacts.channel = e.target.value;
    loadContacts();
  });
  fill(
    byId("contact-channel"),
    option("", t("Any channel"), ""),
    conversationChannels().map((channel) => option(channel.name, channelLabel(channel.name), "")),
  );
  renderFilters();
  renderStatusTabs();
  loadSaved();
}

/** Live events: the views tab redraws only while it is shown. */
export function viewsVisible() {
  const panel = document.querySelector('.nav-panel[data-tab="views"]');
  return panel && !panel.hidden;
}
