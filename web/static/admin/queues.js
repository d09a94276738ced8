// Queues with their members and routing configuration (docs/routing.md). The API checks the
// configuration as a whole; its per-field errors ("config.sla.first_response_minutes") appear
// beside the fields. Settings without a field here (business hours, escalation) are edited as
// JSON, and keys this page does not know are kept.

import { get, patch, post, put } from "../common/api.js";
import { fill, h, toast } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { FieldError, checkboxes, checkedValues, editor, field, sectionHeader, table, valueOf } from "./form.js";

const NUMBERS = [
  ["offer_timeout_seconds", () => t("Offer timeout (seconds)"), () => t("Empty: assign without an offer")],
  ["max_wait_seconds", () => t("Longest wait (seconds)"), () => t("Then it overflows")],
  ["sticky_max_wait_seconds", () => t("Wait for the last operator (seconds)"), () => t("With the sticky strategy")],
  ["sla.first_response_minutes", () => t("SLA: first response (minutes)"), null],
  ["sla.resolution_minutes", () => t("SLA: resolution (minutes)"), null],
];
const JSON_KEYS = ["business_hours", "escalation"];

function pick(config, path) {
  return path.split(".").reduce((value, key) => (value == null ? undefined : value[key]), config);
}

function place(config, path, value) {
  const keys = path.split(".");
  let target = config;
  for (const key of keys.slice(0, -1)) {
    target[key] = { ...(target[key] || {}) };
    target = target[key];
  }
  if (value === null || value === "" || value === undefined) delete target[keys.at(-1)];
  else target[keys.at(-1)] = value;
  if (keys.length > 1 && !Object.keys(config[keys[0]]).length) delete config[keys[0]];
}

export async function render(main, context) {
  const [queues, operators] = await Promise.all([get("/api/v1/queues"), get("/api/v1/operators")]);
  const names = new Map(operators.map((o) => [o.id, o.name]));
  const slot = h("div");
  const close = () => fill(slot);
  const reload = () => render(main, context);

  function queueEditor(queue) {
    const isNew = !queue;
    const config = queue ? queue.config || {} : {};
    const others = queues.filter((q) => !queue || q.id !== queue.id);
    const fields = [
      field({ name: "name", label: t("Name"), value: queue?.name, required: true }),
      field({ name: "description", label: t("Description"), value: queue?.description }),
      field({
        name: "config.strategies",
        label: t("Strategies, in order"),
        value: (config.strategies || []).join(", "),
        hint: t("e.g. {example}", { example: "sticky, skills_match, least_busy" }),
        wide: true,
      }),
      field({
        name: "config.required_skills",
        label: t("Required skills"),
        value: config.required_skills || "",
        hint: t("An expression, e.g. {example}", { example: 'language == "de" and billing >= 2' }),
        wide: true,
      }),
      ...NUMBERS.map(([path, label, hint]) =>
        field({ name: `config.${path}`, label: label(), kind: "number", value: pick(config, path), attrs: { min: 0 }, hint: hint ? hint() : null }),
      ),
      field({
        name: "config.overflow_queue_id",
        label: t("Overflow queue"),
        kind: "select",
        value: config.overflow_queue_id ?? "",
        options: [["", t("None")], ...others.map((q) => [String(q.id), q.name])],
      }),
      ...JSON_KEYS.map((key) =>
        field({
          name: `config.${key}`,
          label: key === "business_hours" ? t("Business hours (JSON)") : t("Escalation (JSON)"),
          kind: "textarea",
          value: config[key] ? JSON.stringify(config[key], null, 2) : "",
          wide: true,
          attrs: { class: "code", rows: 3 },
        }),
      ),
      checkboxes({
        name: "operator_ids",
        legend: t("Members"),
        items: operators.filter((o) => o.active).map((o) => [String(o.id), o.name]),
        checked: queue ? queue.operator_ids : [],
      }),
    ];
    return editor({
      title: isNew ? t("Add a queue") : t("Edit {name}", { name: queue.name }),
      fields,
      submitLabel: isNew ? t("Add queue") : t("Save"),
      onCancel: close,
      onSubmit: async (form) => {
        const next = structuredClone(config);
        const strategies = valueOf(form, "config.strategies").split(",").map((s) => s.trim()).filter(Boolean);
        place(next, "strategies", strategies.length ? strategies : null);
        place(next, "required_skills", valueOf(form, "config.required_skills"));
        for (const [path] of NUMBERS) place(next, path, valueOf(form, `config.${path}`));
        const overflow = valueOf(form, "config.overflow_queue_id");
        place(next, "overflow_queue_id", overflow ? Number(overflow) : null);
        for (const key of JSON_KEYS) {
          const text = valueOf(form, `config.${key}`);
          if (!text) {
            place(next, key, null);
            continue;
          }
          try {
            place(next, key, JSON.parse(text));
          } catch {
            throw new FieldError({ [`config.${key}`]: t("Not valid JSON") });
          }
        }
        const body = { name: valueOf(form, "name"), description: valueOf(form, "description"), config: next };
        const saved = isNew ? await post("/api/v1/queues", body) : await patch(`/api/v1/queues/${queue.id}`, body);
        await put(`/api/v1/queues/${saved.id}/members`, { operator_ids: checkedValues(form, "operator_ids").map(Number) });
        toast(t("Queue {name} was saved", { name: saved.name }));
        await reload();
      },
    });
  }

  const rows = queues.map((queue) =>
    h(
      "tr",
      { dataset: { queue: queue.id } },
      h("td", {}, queue.name),
      h("td", {}, queue.description || "—"),
      h("td", {}, queue.operator_ids.map((id) => names.get(id) || `#${id}`).join(", ") || "—"),
      h("td", {}, Object.keys(queue.config || {}).length ? h("pre", { class: "json" }, JSON.stringify(queue.config, null, 1)) : t("Defaults")),
      h(
        "td",
        { class: "actions" },
        context.isAdmin ? h("button", { type: "button", onclick: () => fill(slot, queueEditor(queue)) }, t("Edit")) : null,
      ),
    ),
  );
  fill(
    main,
    sectionHeader(
      t("Queues"),
      context.isAdmin ? h("button", { type: "button", class: "primary", onclick: () => fill(slot, queueEditor(null)) }, t("Add queue")) : null,
    ),
    context.isAdmin ? null : h("p", { class: "muted" }, t("Only admins can change queues.")),
    slot,
    table(t("Queues"), [t("Name"), t("Description"), t("Members"), t("Routing"), h("span", { class: "visually-hidden" }, t("Actions"))], rows),
  );
}
