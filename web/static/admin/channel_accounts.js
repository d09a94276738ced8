// Channel accounts: every channel's accounts with their health and last error; add one with
// the channel's own settings (its JSON schema from /api/v1/channel-settings makes the fields),
// test its connection, enable or disable it. Secrets are write-only. Admins only.

import { api, get, patch, post } from "../common/api.js";
import { fill, h, toast } from "../common/dom.js";
import { formatDateTime, t } from "../common/i18n.js";
import { FieldError, copy, editor, field, sectionHeader, table, valueOf } from "./form.js";

/** What a schema property is: {kind, options, list, json} after following $ref and anyOf. */
export function describeProperty(schema, property) {
  let prop = property;
  if (prop.$ref) prop = { ...prop, ...resolve(schema, prop.$ref) };
  if (prop.anyOf) {
    const real = prop.anyOf.filter((option) => option.type !== "null");
    if (real.length === 1) prop = { ...prop, ...(real[0].$ref ? resolve(schema, real[0].$ref) : real[0]) };
  }
  if (prop.enum) return { kind: "select", options: prop.enum };
  if (prop.type === "boolean") return { kind: "checkbox" };
  if (prop.type === "integer" || prop.type === "number") return { kind: "number" };
  if (prop.type === "array" && prop.items && prop.items.type === "string") return { kind: "textarea", list: true };
  if (prop.type === "string") return { kind: "text" };
  return { kind: "textarea", json: true };
}

function resolve(schema, ref) {
  const name = ref.split("/").at(-1);
  return (schema.$defs || {})[name] || {};
}

function settingsFields(channel, current) {
  const schema = channel.settings_schema;
  const required = new Set(schema.required || []);
  return Object.entries(schema.properties || {}).map(([name, prop]) => {
    const how = describeProperty(schema, prop);
    const secret = channel.secret_fields.includes(name);
    const title = prop.title || name.split("_").map((word) => word[0].toUpperCase() + word.slice(1)).join(" ");
    const label = `${title}${required.has(name) ? " *" : ""}`;
    const initial = current && name in current ? current[name] : prop.default;
    return field({
      name: `settings.${name}`,
      label,
      kind: secret ? "password" : how.kind,
      hint:
        secret && current && current[`${name}_set`]
          ? t("Set; leave empty to keep it")
          : prop.description || (how.list ? t("One per line") : how.json ? t("JSON") : null),
      options: how.options ? [["", "—"], ...how.options.map((o) => [o, o])] : undefined,
      value: secret ? "" : how.list ? (initial || []).join("\n") : how.json ? (initial === undefined ? "" : JSON.stringify(initial)) : initial,
      wide: how.kind === "textarea",
      attrs: { dataset: { how: JSON.stringify(how) }, autocomplete: secret ? "new-password" : "off" },
    });
  });
}

function readSettings(form, channel) {
  const settings = {};
  for (const name of Object.keys(channel.settings_schema.properties || {})) {
    const control = form.elements.namedItem(`settings.${name}`);
    const how = JSON.parse(control.dataset.how);
    const value = valueOf(form, `settings.${name}`);
    if (value === null || value === "") continue;
    if (how.list) settings[name] = value.split("\n").map((line) => line.trim()).filter(Boolean);
    else if (how.json) {
      try {
        settings[name] = JSON.parse(value);
      } catch {
        throw new FieldError({ [`settings.${name}`]: t("Not valid JSON") });
      }
    } else settings[name] = value;
  }
  return settings;
}

export async function render(main, context) {
  const [accounts, channels, queues] = await Promise.all([
    get("/api/v1/channel-accounts"),
    get("/api/v1/channel-settings"),
    get("/api/v1/queues"),
  ]);
  const queueNames = new Map(queues.map((q) => [q.id, q.name]));
  const labels = new Map(channels.map((c) => [c.channel, t(c.label)]));
  const channelOf = (account) => channels.find((c) => c.channel === account.channel);
  const slot = h("div");
  const close = () => fill(slot);
  const reload = () => render(main, context);

  function accountEditor(channel, account = null) {
    const isNew = !account;
    return editor({
      title: isNew
        ? t("Add a {channel} account", { channel: t(channel.label) })
        : t("Edit {name}", { name: `${t(channel.label)} ${account.name}` }),
      fields: [
        isNew ? field({ name: "name", label: t("Name"), hint: t("Unique within the channel"), required: true }) : null,
        field({
          name: "queue_id",
          label: t("Queue"),
          kind: "select",
          value: account?.queue_id ?? "",
          options: [["", t("None (routing rules decide)")], ...queues.map((q) => [String(q.id), q.name])],
        }),
        ...settingsFields(channel, account?.settings),
      ].filter(Boolean),
      submitLabel: isNew ? t("Add account") : t("Save"),
      onCancel: close,
      onSubmit: async (form) => {
        const queue = valueOf(form, "queue_id");
        const body = { queue_id: queue ? Number(queue) : null, settings: readSettings(form, channel) };
        if (isNew) {
          await post("/api/v1/channel-accounts", { channel: channel.channel, name: valueOf(form, "name"), ...body });
          toast(t("Account added"));
        } else {
          await patch(`/api/v1/channel-accounts/${account.id}`, body);
          toast(t("Account saved"));
        }
        await reload();
      },
    });
  }

  function chooseChannel() {
    const picker = h(
      "select",
      { "aria-label": t("Channel") },
      channels.map((c) => h("option", { value: c.channel }, t(c.label))),
    );
    const show = () => {
      const channel = channels.find((c) => c.channel === picker.value);
      fill(formSlot, accountEditor(channel));
    };
    picker.addEventListener("change", show);
    const formSlot = h("div");
    fill(slot, h("p", {}, h("label", {}, t("Channel"), " ", picker)), formSlot);
    show();
  }

  async function check(account, resultCell) {
    resultCell.textContent = t("Testing…");
    try {
      const result = await post(`/api/v1/channel-accounts/${account.id}/check`);
      resultCell.className = result.ok ? "health-ok" : "health-error";
      resultCell.textContent = result.ok ? t("Connection works: {message}", { message: result.message }) : t("Failed: {message}", { message: result.message });
    } catch (error) {
      resultCell.className = "health-error";
      resultCell.textContent = error.message;
    }
  }

  async function setEnabled(account, enabled) {
    try {
      if (enabled) await patch(`/api/v1/channel-accounts/${account.id}`, { enabled: true });
      else await api("DELETE", `/api/v1/channel-accounts/${account.id}`);
      await reload();
    } catch (error) {
      toast(error.message, "error");
    }
  }

  const rows = accounts.map((account) => {
    const result = h("p", { class: "muted", role: "status" });
    return h(
      "tr",
      { class: account.enabled ? "" : "inactive", dataset: { account: account.id } },
      h("td", {}, labels.get(account.channel) || account.channel),
      h(
        "td",
        {},
        account.name,
        account.from_config ? h("span", { class: "muted" }, ` (${t("config file")})`) : null,
        account.embed
          ? h(
              "div",
              { class: "embed" },
              h("textarea", { class: "snippet", readonly: true, rows: 2, "aria-label": t("Embed snippet of {name}", { name: account.name }) }, account.embed),
              h("button", { type: "button", onclick: () => copy(account.embed) }, t("Copy snippet")),
            )
          : null,
      ),
      h("td", {}, account.queue_id ? queueNames.get(account.queue_id) || `#${account.queue_id}` : "—"),
      h("td", { class: account.last_error ? "health-error" : account.health === "ok" ? "health-ok" : "" }, account.health),
      h(
        "td",
        {},
        account.last_error
          ? [account.last_error, h("br"), h("span", { class: "muted" }, formatDateTime(account.last_error_at))]
          : "—",
        result,
      ),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", onclick: () => check(account, result) }, t("Test connection")),
        account.from_config || !channelOf(account)
          ? null
          : h("button", { type: "button", onclick: () => fill(slot, accountEditor(channelOf(account), account)) }, t("Edit")),
        account.from_config
          ? null
          : account.enabled
            ? h("button", { type: "button", class: "danger", onclick: () => setEnabled(account, false) }, t("Disable"))
            : h("button", { type: "button", onclick: () => setEnabled(account, true) }, t("Enable")),
      ),
    );
  });
  fill(
    main,
    sectionHeader(t("Channel accounts"), channels.length ? h("button", { type: "button", class: "primary", onclick: chooseChannel }, t("Add account")) : null),
    slot,
    accounts.length
      ? table(t("Channel accounts"), [t("Channel"), t("Name"), t("Queue"), t("Health"), t("Last error"), h("span", { class: "visually-hidden" }, t("Actions"))], rows)
      : h("p", { class: "muted" }, t("No channel accounts yet.")),
  );
}
