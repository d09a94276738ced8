// The audit log, newest first: filter by who, what, which record and when; "Load more" pages.

import { get, withQuery } from "../common/api.js";
import { fill, h } from "../common/dom.js";
import { formatDateTime, t } from "../common/i18n.js";
import { field, table, sectionHeader, valueOf } from "./form.js";

const PAGE = 50;

/** Midnight at the start of a yyyy-mm-dd day in the browser's zone, as an ISO instant. */
function dayStart(day, plusDays = 0) {
  if (!day) return undefined;
  const [year, month, date] = day.split("-").map(Number);
  return new Date(year, month - 1, date + plusDays).toISOString();
}

export async function render(main, context) {
  const operators = await get("/api/v1/operators");
  const names = new Map(operators.map((o) => [o.id, o.name]));
  const body = h("tbody");
  const more = h("button", { type: "button", class: "more", hidden: true }, t("Load more"));
  const status = h("p", { class: "muted", role: "status" });
  let cursor = null;
  let filters = {};

  const form = h(
    "form",
    { class: "filters", "aria-label": t("Filters") },
    field({ name: "actor_id", label: t("Who"), kind: "select", value: "", options: [["", t("Anyone")], ...operators.map((o) => [String(o.id), o.name])] }),
    field({ name: "action", label: t("Action"), hint: null, attrs: { placeholder: "operator.update" } }),
    field({ name: "entity_type", label: t("Record type"), attrs: { placeholder: "queue" } }),
    field({ name: "entity_id", label: t("Record id") }),
    field({ name: "since", label: t("Since"), kind: "date" }),
    field({ name: "until", label: t("Until"), kind: "date" }),
    h("button", { type: "submit", class: "primary" }, t("Filter")),
  );

  async function load(reset) {
    if (reset) {
      cursor = null;
      body.replaceChildren();
    }
    const page = await get(withQuery("/api/v1/audit", { ...filters, cursor, limit: PAGE }));
    for (const entry of page.items) {
      body.append(
        h(
          "tr",
          { dataset: { audit: entry.id } },
          h("td", { class: "when" }, formatDateTime(entry.created_at)),
          h("td", {}, entry.actor_id ? names.get(entry.actor_id) || entry.actor_label : entry.actor_label),
          h("td", {}, entry.action),
          h("td", {}, `${entry.entity_type}${entry.entity_id ? ` ${entry.entity_id}` : ""}`),
          h("td", {}, Object.keys(entry.details || {}).length ? h("pre", { class: "json" }, JSON.stringify(entry.details, null, 1)) : "—"),
        ),
      );
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    status.textContent = body.children.length ? "" : t("No entries match.");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    filters = {
      actor_id: valueOf(form, "actor_id"),
      action: valueOf(form, "action"),
      entity_type: valueOf(form, "entity_type"),
      entity_id: valueOf(form, "entity_id"),
      since: dayStart(valueOf(form, "since")),
      until: dayStart(valueOf(form, "until"), 1),
    };
    await load(true);
  });
  more.addEventListener("click", () => load(false));

  const list = table(t("Audit log"), [t("When"), t("Who"), t("Action"), t("Record"), t("Details")], []);
  list.querySelector("tbody").replaceWith(body);
  fill(main, sectionHeader(t("Audit log")), form, list, status, more);
  await load(true);
}
