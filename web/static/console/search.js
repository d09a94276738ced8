// The search box: contacts and conversations (by their messages) as one types; arrows move,
// Enter opens the chosen result (the first one if none is chosen), Escape closes.
import { get, withQuery } from "../common/api.js";
import { byId, fill, formatTime, h, toast } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { channelIcon } from "../common/icons.js";
import { signal } from "./state.js";
import { contactAddresses, contactName, openContact } from "./views.js";

const DEBOUNCE_MS = 200;
const LIMIT = 8;

let timer = null;
let asked = 0;
let results = [];
let active = -1;

function input() {
  return byId("search");
}

function panel() {
  return byId("search-results");
}

function close() {
  panel().hidden = true;
  input().setAttribute("aria-expanded", "false");
  input().removeAttribute("aria-activedescendant");
  active = -1;
}

/** The words found, marked (as text nodes and <mark>s, never parsed HTML). */
function highlighted(snippet) {
  const parts = [];
  let at = 0;
  for (const [start, end] of snippet.highlights) {
    if (start < at) continue;
    parts.push(snippet.text.slice(at, start), h("mark", {}, snippet.text.slice(start, end)));
    at = end;
  }
  parts.push(snippet.text.slice(at));
  return parts;
}

async function run(query) {
  const mine = ++asked;
  if (!query.trim()) {
    results = [];
    close();
    return;
  }
  let body;
  try {
    body = await get(withQuery("/api/v1/search", { q: query, limit: LIMIT }));
  } catch (error) {
    if (mine === asked) toast(error.message, "error");
    return;
  }
  if (mine !== asked) return; // an older answer after a newer question
  results = [
    ...body.contacts.items.map((contact) => ({ kind: "contact", contact })),
    ...body.conversations.items.map((hit) => ({ kind: "conversation", hit })),
  ];
  active = -1;
  render(body);
}

function render(body) {
  const option = (result, index) => {
    const id = `search-option-${index}`;
    const attrs = {
      id,
      role: "option",
      class: "search-option",
      "aria-selected": index === active ? "true" : "false",
      dataset: { kind: result.kind },
      onmousedown: (event) => event.preventDefault(),
      onclick: () => choose(index),
    };
    if (result.kind === "contact") {
      const { contact } = result;
      return h(
        "li",
        attrs,
        h("strong", {}, contactName(contact)),
        h("span", { class: "muted" }, contactAddresses(contact)),
      );
    }
    const { hit } = result;
    return h(
      "li",
      attrs,
      h(
        "span",
        { class: "item-top" },
        channelIcon(hit.conversation.channel),
        h("strong", {}, hit.contact_display_name || t("Contact {id}", { id: hit.conversation.contact_id })),
        h("time", { datetime: hit.occurred_at }, formatTime(hit.occurred_at)),
      ),
      h("span", { class: "snippet" }, highlighted(hit.snippet)),
    );
  };
  const contacts = results.filter((result) => result.kind === "contact");
  const conversations = results.filter((result) => result.kind === "conversation");
  let index = 0;
  const group = (title, items) =>
    items.length
      ? [h("li", { role: "presentation", class: "search-group" }, title), items.map((item) => option(item, index++))]
      : [];
  fill(
    panel(),
    results.length
      ? [
          ...group(t("Contacts"), contacts),
          ...group(t("Conversations"), conversations),
          body.contacts.next_cursor || body.conversations.next_cursor
            ? h("li", { role: "presentation", class: "muted search-more" }, t("More results: type more words"))
            : null,
        ]
      : h("li", { role: "presentation", class: "muted search-none" }, t("Nothing found")),
  );
  panel().hidden = false;
  input().setAttribute("aria-expanded", "true");
}

function choose(index) {
  const result = results[index];
  if (!result) return;
  close();
  input().blur();
  if (result.kind === "contact") openContact(result.contact);
  else signal("open", { id: result.hit.conversation.id, focus: false });
}

function move(step) {
  if (!results.length) return;
  active = (active + step + results.length) % results.length;
  for (const element of panel().querySelectorAll(".search-option")) {
    const current = element.id === `search-option-${active}`;
    element.setAttribute("aria-selected", current ? "true" : "false");
    if (current) element.scrollIntoView({ block: "nearest" });
  }
  input().setAttribute("aria-activedescendant", `search-option-${active}`);
}

export function focusSearch() {
  input().focus();
  input().select();
}

export function startSearch() {
  const box = input();
  box.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => run(box.value), DEBOUNCE_MS);
  });
  box.addEventListener("keydown", async (event) => {
    if (event.key === "ArrowDown") {
      event.preventDefault();
      move(1);
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      move(-1);
    } else if (event.key === "Enter") {
      event.preventDefault();
      clearTimeout(timer);
      if (active === -1) await run(box.value); // Enter before the debounce: search now
      choose(active === -1 ? 0 : active);
    } else if (event.key === "Escape") {
      close();
      box.blur();
    }
  });
  box.addEventListener("blur", () => setTimeout(close, 150));
  box.addEventListener("focus", () => {
    if (results.length && box.value.trim()) {
      panel().hidden = false;
      box.setAttribute("aria-expanded", "true");
    }
  });
}
