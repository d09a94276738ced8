// Web forms: add, change, deactivate or reactivate, and the snippet to embed each in a website.
// Supervisors see them; only admins change them.

import { api, get, patch, post } from "../common/api.js";
import { fill, h, toast } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { checkboxes, checkedValues, copy, editor, field, sectionHeader, table, valueOf } from "./form.js";

const FIELDS = ["name", "email", "phone", "message"];

export async function render(main, context) {
  const [forms, queues] = await Promise.all([get("/api/v1/forms"), get("/api/v1/queues")]);
  const queueNames = new Map(queues.map((q) => [q.id, q.name]));
  const slot = h("div");
  const close = () => fill(slot);
  const reload = () => render(main, context);

  function formEditor(form) {
    const isNew = !form;
    return editor({
      title: isNew ? t("Add a web form") : t("Edit {name}", { name: form.slug }),
      fields: [
        isNew ? field({ name: "slug", label: t("Address"), hint: t("The form is at /forms/<address>"), required: true }) : null,
        field({ name: "title", label: t("Title"), value: form ? form.title : t("Contact us") }),
        field({
          name: "queue_id",
          label: t("Queue"),
          kind: "select",
          value: form?.queue_id ?? "",
          options: [["", t("None (routing rules decide)")], ...queues.map((q) => [String(q.id), q.name])],
        }),
        field({ name: "thank_you_url", label: t("Thank-you address"), kind: "url", value: form?.thank_you_url ?? "", hint: t("Empty: the built-in thank-you page") }),
        field({ name: "create_lead", label: t("Each submission opens a sales lead"), kind: "checkbox", value: form?.create_lead }),
        checkboxes({ name: "required_fields", legend: t("Required fields"), items: FIELDS.map((f) => [f, f]), checked: form ? form.required_fields : ["email", "message"] }),
      ].filter(Boolean),
      submitLabel: isNew ? t("Add form") : t("Save"),
      onCancel: close,
      onSubmit: async (element) => {
        const queue = valueOf(element, "queue_id");
        const body = {
          title: valueOf(element, "title"),
          queue_id: queue ? Number(queue) : null,
          thank_you_url: valueOf(element, "thank_you_url") || null,
          create_lead: valueOf(element, "create_lead"),
          required_fields: checkedValues(element, "required_fields"),
        };
        if (isNew) await post("/api/v1/forms", { slug: valueOf(element, "slug"), ...body });
        else await patch(`/api/v1/forms/${form.id}`, body);
        toast(t("Form saved"));
        await reload();
      },
    });
  }

  async function setActive(form, active) {
    try {
      if (active) await patch(`/api/v1/forms/${form.id}`, { active: true });
      else await api("DELETE", `/api/v1/forms/${form.id}`);
      await reload();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  const rows = forms.map((form) =>
    h(
      "tr",
      { class: form.active ? "" : "inactive", dataset: { form: form.id } },
      h("td", {}, h("a", { href: form.url, target: "_blank", rel: "noopener" }, form.slug)),
      h("td", {}, form.title),
      h("td", {}, form.queue_id ? queueNames.get(form.queue_id) || `#${form.queue_id}` : "—"),
      h("td", {}, form.active ? t("Active") : t("Deactivated")),
      h(
        "td",
        {},
        h("textarea", { class: "snippet", readonly: true, rows: 2, "aria-label": t("Embed snippet of {name}", { name: form.slug }) }, form.embed_snippet),
        h("button", { type: "button", onclick: () => copy(form.embed_snippet) }, t("Copy snippet")),
      ),
      h(
        "td",
        { class: "actions" },
        context.isAdmin
          ? [
              h("button", { type: "button", onclick: () => fill(slot, formEditor(form)) }, t("Edit")),
              form.active
                ? h("button", { type: "button", class: "danger", onclick: () => setActive(form, false) }, t("Deactivate"))
                : h("button", { type: "button", onclick: () => setActive(form, true) }, t("Reactivate")),
            ]
          : null,
      ),
    ),
  );
  fill(
    main,
    sectionHeader(t("Web forms"), context.isAdmin ? h("button", { type: "button", class: "primary", onclick: () => fill(slot, formEditor(null)) }, t("Add form")) : null),
    slot,
    table(t("Web forms"), [t("Address"), t("Title"), t("Queue"), t("State"), t("Embed"), h("span", { class: "visually-hidden" }, t("Actions"))], rows),
  );
}
