// Canned responses: the shared ones (supervisors and admins manage them) and the caller's own.

import { api, get, patch, post } from "../common/api.js";
import { fill, h, toast } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { editor, field, sectionHeader, table, valueOf } from "./form.js";

export async function render(main, context) {
  const { items, placeholders } = await get("/api/v1/canned-responses");
  const slot = h("div");
  const close = () => fill(slot);
  const reload = () => render(main, context);

  function cannedEditor(canned) {
    const isNew = !canned;
    return editor({
      title: isNew ? t("Add a canned response") : t("Edit {name}", { name: canned.title }),
      fields: [
        field({ name: "title", label: t("Title"), value: canned?.title, required: true }),
        field({ name: "shortcut", label: t("Shortcut"), value: canned?.shortcut ?? "", hint: t("Typed as /shortcut in the composer") }),
        field({
          name: "body",
          label: t("Text"),
          kind: "textarea",
          value: canned?.body ?? "",
          wide: true,
          hint: t("Placeholders: {list}", { list: placeholders.map((p) => `{{${p}}}`).join(", ") }),
        }),
        isNew ? field({ name: "shared", label: t("Shared with everyone"), kind: "checkbox", value: true }) : null,
      ].filter(Boolean),
      submitLabel: isNew ? t("Add") : t("Save"),
      onCancel: close,
      onSubmit: async (form) => {
        const body = { title: valueOf(form, "title"), shortcut: valueOf(form, "shortcut") || null, body: form.elements.namedItem("body").value };
        if (isNew) await post("/api/v1/canned-responses", { ...body, shared: valueOf(form, "shared") });
        else await patch(`/api/v1/canned-responses/${canned.id}`, body);
        toast(t("Canned response saved"));
        await reload();
      },
    });
  }

  async function remove(canned) {
    if (!confirm(t("Delete the canned response {name}?", { name: canned.title }))) return;
    try {
      await api("DELETE", `/api/v1/canned-responses/${canned.id}`);
      await reload();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  const rows = items.map((canned) =>
    h(
      "tr",
      { dataset: { canned: canned.id } },
      h("td", {}, canned.title),
      h("td", {}, canned.shortcut ? `/${canned.shortcut}` : "—"),
      h("td", {}, canned.shared ? t("Shared") : t("Yours")),
      h("td", {}, canned.body.length > 120 ? `${canned.body.slice(0, 120)}…` : canned.body),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", onclick: () => fill(slot, cannedEditor(canned)) }, t("Edit")),
        h("button", { type: "button", class: "danger", onclick: () => remove(canned) }, t("Delete")),
      ),
    ),
  );
  fill(
    main,
    sectionHeader(t("Canned responses"), h("button", { type: "button", class: "primary", onclick: () => fill(slot, cannedEditor(null)) }, t("Add canned response"))),
    slot,
    table(t("Canned responses"), [t("Title"), t("Shortcut"), t("For"), t("Text"), h("span", { class: "visually-hidden" }, t("Actions"))], rows),
  );
}
