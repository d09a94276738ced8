// API tokens for other systems: create (the token is shown this once), list, revoke.

import { api, get, post } from "../common/api.js";
import { fill, h, toast } from "../common/dom.js";
import { formatDateTime, t } from "../common/i18n.js";
import { editor, field, sectionHeader, table, valueOf } from "./form.js";

const ROLES = [
  ["integration", () => t("Integration (ingest and read)")],
  ["operator", () => t("Operator")],
  ["supervisor", () => t("Supervisor")],
  ["admin", () => t("Admin")],
];

export async function render(main, context, created = null) {
  const tokens = await get("/api/v1/tokens");
  const slot = h("div");
  const close = () => fill(slot);

  const createEditor = () =>
    editor({
      title: t("Create an API token"),
      fields: [
        field({ name: "name", label: t("Name"), hint: t("Which system uses it"), required: true }),
        field({ name: "role", label: t("Role"), kind: "select", value: "integration", options: ROLES.map(([v, l]) => [v, l()]) }),
      ],
      submitLabel: t("Create token"),
      onCancel: close,
      onSubmit: async (form) => {
        const token = await post("/api/v1/tokens", { name: valueOf(form, "name"), role: valueOf(form, "role") });
        await render(main, context, token);
      },
    });

  async function revoke(token) {
    if (!confirm(t("Revoke the token {name}? Systems using it lose access.", { name: token.name }))) return;
    try {
      await api("DELETE", `/api/v1/tokens/${token.id}`);
      toast(t("Token revoked"));
      await render(main, context);
    } catch (error) {
      toast(error.message, "error");
    }
  }

  const rows = tokens.map((token) =>
    h(
      "tr",
      { class: token.revoked_at ? "inactive" : "", dataset: { token: token.id } },
      h("td", {}, token.name),
      h("td", {}, token.role),
      h("td", {}, formatDateTime(token.created_at)),
      h("td", {}, token.revoked_at ? t("Revoked {when}", { when: formatDateTime(token.revoked_at) }) : t("Active")),
      h(
        "td",
        { class: "actions" },
        token.revoked_at ? null : h("button", { type: "button", class: "danger", onclick: () => revoke(token) }, t("Revoke")),
      ),
    ),
  );
  fill(
    main,
    sectionHeader(t("API tokens"), h("button", { type: "button", class: "primary", onclick: () => fill(slot, createEditor()) }, t("Create token"))),
    created
      ? h(
          "div",
          { class: "secret-box", role: "status" },
          h("p", {}, t("Token {name} was created. Copy it now: it is shown only this once.", { name: created.name })),
          h("code", { id: "new-token" }, created.token),
        )
      : null,
    slot,
    table(t("API tokens"), [t("Name"), t("Role"), t("Created"), t("State"), h("span", { class: "visually-hidden" }, t("Actions"))], rows),
  );
}
