// Operators: add, edit (role, skills, languages, capacity per kind of work, queues), reset a
// password, deactivate. Supervisors see the team; only admins change it.

import { get, patch, post } from "../common/api.js";
import { fill, h, toast } from "../common/dom.js";
import { t } from "../common/i18n.js";
import {
  FieldError,
  checkboxes,
  checkedValues,
  editor,
  field,
  formatLevels,
  parseLevels,
  sectionHeader,
  table,
  valueOf,
} from "./form.js";

// core/channels.py CAPACITY_KINDS: capacity is counted per kind of work, not per channel.
const CAPACITY_KINDS = [
  ["voice", () => t("Voice")],
  ["messaging", () => t("Messaging")],
  ["email", () => t("Email")],
];
const ROLES = [
  ["operator", () => t("Operator")],
  ["supervisor", () => t("Supervisor")],
  ["admin", () => t("Admin")],
];

export async function render(main, context) {
  const [operators, queues] = await Promise.all([get("/api/v1/operators"), get("/api/v1/queues")]);
  const queuesOf = new Map();
  for (const queue of queues) {
    for (const id of queue.operator_ids) queuesOf.set(id, [...(queuesOf.get(id) || []), queue]);
  }
  const slot = h("div");
  const reload = () => render(main, context);
  const close = () => fill(slot);
  const roleLabel = (role) => (ROLES.find(([value]) => value === role) || [role, () => role])[1]();

  const rows = operators.map((operator) =>
    h(
      "tr",
      { class: operator.active ? "" : "inactive", dataset: { operator: operator.id } },
      h("td", {}, operator.name),
      h("td", {}, operator.email),
      h("td", {}, roleLabel(operator.role)),
      h("td", {}, operator.active ? t("Active") : t("Deactivated")),
      h("td", {}, formatLevels(operator.capacity) || "—"),
      h("td", {}, (queuesOf.get(operator.id) || []).map((q) => q.name).join(", ") || "—"),
      h(
        "td",
        { class: "actions" },
        context.isAdmin
          ? [
              h("button", { type: "button", onclick: () => fill(slot, operatorEditor(operator)) }, t("Edit")),
              h("button", { type: "button", onclick: () => fill(slot, passwordEditor(operator)) }, t("Reset password")),
              operator.active && operator.id !== context.me.id
                ? h("button", { type: "button", class: "danger", onclick: () => deactivate(operator) }, t("Deactivate"))
                : null,
            ]
          : null,
      ),
    ),
  );

  function operatorEditor(operator) {
    const isNew = !operator;
    const current = operator || { skills: {}, languages: {}, capacity: {}, role: "operator" };
    const fields = [
      field({ name: "name", label: t("Name"), value: current.name, required: true }),
      isNew ? field({ name: "email", label: t("Email"), kind: "email", value: "", required: true }) : null,
      field({ name: "role", label: t("Role"), kind: "select", value: current.role, options: ROLES.map(([v, l]) => [v, l()]) }),
      isNew
        ? field({ name: "password", label: t("Password"), kind: "password", hint: t("Optional; at least 10 characters") })
        : null,
      field({ name: "skills", label: t("Skills"), value: formatLevels(current.skills), hint: t("e.g. {example}", { example: "billing=80, returns=50" }), wide: true }),
      field({ name: "languages", label: t("Languages"), value: formatLevels(current.languages), hint: t("e.g. {example}", { example: "de=100, en=80" }), wide: true }),
      ...CAPACITY_KINDS.map(([kind, label]) =>
        field({
          name: `capacity.${kind}`,
          label: t("Capacity: {kind}", { kind: label() }),
          kind: "number",
          value: current.capacity[kind],
          attrs: { min: 0, max: 1000 },
          hint: isNew ? t("Empty: the default") : t("How many at once"),
        }),
      ),
      field({ name: "total_capacity", label: t("Total capacity"), kind: "number", value: current.total_capacity, attrs: { min: 0, max: 1000 }, hint: t("Empty: no total limit") }),
      checkboxes({
        name: "queue_ids",
        legend: t("Queues"),
        items: queues.map((q) => [String(q.id), q.name]),
        checked: isNew ? [] : (queuesOf.get(operator.id) || []).map((q) => q.id),
      }),
      isNew ? null : field({ name: "active", label: t("Active (may sign in)"), kind: "checkbox", value: current.active }),
    ].filter(Boolean);
    return editor({
      title: isNew ? t("Add an operator") : t("Edit {name}", { name: current.name }),
      fields,
      submitLabel: isNew ? t("Add operator") : t("Save"),
      onCancel: close,
      onSubmit: async (form) => {
        const body = {
          name: valueOf(form, "name"),
          role: valueOf(form, "role"),
          skills: parseLevels(valueOf(form, "skills"), "skills"),
          languages: parseLevels(valueOf(form, "languages"), "languages"),
          total_capacity: valueOf(form, "total_capacity"),
          queue_ids: checkedValues(form, "queue_ids").map(Number),
        };
        const capacity = {};
        for (const [kind] of CAPACITY_KINDS) {
          const value = valueOf(form, `capacity.${kind}`);
          if (value !== null) capacity[kind] = value;
        }
        if (!isNew || Object.keys(capacity).length) body.capacity = capacity;
        if (isNew) {
          body.email = valueOf(form, "email");
          const password = valueOf(form, "password");
          if (password) body.password = password;
          if (!body.email) throw new FieldError({ email: t("Required") });
          await post("/api/v1/operators", body);
          toast(t("{name} was added", { name: body.name }));
        } else {
          body.active = valueOf(form, "active");
          await patch(`/api/v1/operators/${operator.id}`, body);
          toast(t("{name} was saved", { name: body.name }));
        }
        await reload();
      },
    });
  }

  function passwordEditor(operator) {
    return editor({
      title: t("New password for {name}", { name: operator.name }),
      fields: [field({ name: "password", label: t("New password"), kind: "password", hint: t("At least 10 characters; they are signed out everywhere") })],
      submitLabel: t("Set password"),
      onCancel: close,
      onSubmit: async (form) => {
        await post(`/api/v1/operators/${operator.id}/password`, { password: form.elements.namedItem("password").value });
        toast(t("The password of {name} was set", { name: operator.name }));
        close();
      },
    });
  }

  async function deactivate(operator) {
    if (!confirm(t("Deactivate {name}? They are signed out and cannot sign in.", { name: operator.name }))) return;
    try {
      await patch(`/api/v1/operators/${operator.id}`, { active: false });
      toast(t("{name} was deactivated", { name: operator.name }));
      await reload();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  fill(
    main,
    sectionHeader(
      t("Operators"),
      context.isAdmin
        ? h("button", { type: "button", class: "primary", onclick: () => fill(slot, operatorEditor(null)) }, t("Add operator"))
        : null,
    ),
    context.isAdmin ? null : h("p", { class: "muted" }, t("Only admins can change the team.")),
    slot,
    table(
      t("Operators"),
      [t("Name"), t("Email"), t("Role"), t("State"), t("Capacity"), t("Queues"), h("span", { class: "visually-hidden" }, t("Actions"))],
      rows,
    ),
  );
}
