// The routing settings kept in the database: the rules that match work to queues and the
// rules that give leads an owner (docs/routing.md), edited as JSON and checked by the server.

import { ApiError, api, get, put } from "../common/api.js";
import { fill, h, toast } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { FieldError, editor, field, sectionHeader } from "./form.js";

const RULE_SETS = [
  ["queue-rules", () => t("Queue rules"), () => t("Which queue new work goes to.")],
  ["lead-rules", () => t("Lead rules"), () => t("Who owns a new sales lead.")],
];

export async function render(main, context) {
  const stored = await Promise.all(RULE_SETS.map(([path]) => get(`/api/v1/routing/${path}`)));
  const reload = () => render(main, context);
  const editors = RULE_SETS.map(([path, title, hint], index) =>
    editor({
      title: title(),
      fields: [
        field({
          name: "rules",
          label: t("Rules (JSON)"),
          kind: "textarea",
          value: stored[index].rules ? JSON.stringify(stored[index].rules, null, 2) : "",
          hint: `${hint()} ${t("Empty: no rules.")}`,
          wide: true,
          attrs: { class: "code", rows: 10 },
        }),
      ],
      onSubmit: async (form) => {
        const text = form.elements.namedItem("rules").value.trim();
        if (!text) {
          await api("DELETE", `/api/v1/routing/${path}`);
        } else {
          let rules;
          try {
            rules = JSON.parse(text);
          } catch {
            throw new FieldError({ rules: t("Not valid JSON") });
          }
          try {
            await put(`/api/v1/routing/${path}`, { rules });
          } catch (error) {
            // The one field here holds the whole rule set: every problem is about it, by
            // where in it ("rules.0.queue_id", "rule_set", "lead_rules").
            if (!(error instanceof ApiError) || !Object.keys(error.fields).length) throw error;
            const fields = {};
            for (const [key, message] of Object.entries(error.fields)) {
              fields[key === "rules" || key.startsWith("rules.") ? key : `rules.${key}`] = message;
            }
            throw new FieldError(fields);
          }
        }
        toast(t("{what} saved", { what: title() }));
        await reload();
      },
    }),
  );
  fill(main, sectionHeader(t("Routing rules")), h("p", { class: "muted" }, t("Settings stored in the database; every change is audited.")), ...editors);
}
