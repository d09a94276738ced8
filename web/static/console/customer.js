// The customer card: identities, orders and stock (the ERP bridge, orders.js), tags, owner,
// custom fields, leads, past conversations, editing, and merge suggestions.
import { ApiError, get, patch, post, withQuery } from "../common/api.js";
import { byId, fill, formatTime, h, toast } from "../common/dom.js";
import { channelLabel } from "../common/channels.js";
import { t } from "../common/i18n.js";
import { channelIcon } from "../common/icons.js";
import { erpPanel } from "./orders.js";
import { isSupervisor, operatorName, signal, state, statusLabel } from "./state.js";

const IDENTITY_LABELS = {
  email: () => t("Email"),
  phone: () => t("Phone"),
  telegram: () => "Telegram",
  whatsapp: () => "WhatsApp",
  web: () => t("Web visitor"),
  external: () => t("External id"),
};

let extras = { contactId: null, leads: [], suggestions: [], conversations: [] };

export async function renderCustomer() {
  const contact = state.contact;
  const aside = byId("customer");
  if (!contact) {
    fill(aside);
    return;
  }
  aside.setAttribute("tabindex", "-1");
  if (extras.contactId !== contact.id) {
    extras = { contactId: contact.id, leads: [], suggestions: [], conversations: [] };
    drawCard(aside, contact);
    await loadExtras(contact.id);
    if (state.contact && state.contact.id === contact.id) drawCard(aside, state.contact);
  } else {
    drawCard(aside, contact);
  }
}

async function loadExtras(contactId) {
  const [leads, suggestions, conversations] = await Promise.all([
    loadLeads(contactId),
    loadSuggestions(contactId),
    loadConversations(contactId),
  ]);
  if (extras.contactId === contactId) Object.assign(extras, { leads, suggestions, conversations });
}

async function quietly(call, fallback) {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ApiError && [400, 403, 404].includes(error.status)) return fallback;
    throw error;
  }
}

function loadLeads(contactId) {
  return quietly(async () => {
    const page = await get(withQuery("/api/v1/leads", { contact_id: contactId, limit: 20 }));
    return page.items.filter((lead) => lead.contact_id === contactId);
  }, []);
}

function loadSuggestions(contactId) {
  return get(`/api/v1/contacts/${contactId}/merge-suggestions`).then((data) => data.items);
}

function loadConversations(contactId) {
  return quietly(async () => {
    const page = await get(
      withQuery("/api/v1/conversations", { contact_id: contactId, limit: 20 }),
    );
    return page.items.filter((c) => c.contact_id === contactId);
  }, null);
}

function drawCard(aside, contact) {
  // The ERP panel is one element kept across redraws: a search being typed in it keeps focus.
  const erp = erpPanel(contact);
  const focused = erp.contains(document.activeElement) ? document.activeElement : null;
  fill(
    aside,
    h(
      "div",
      { class: "card" },
      h(
        "div",
        { class: "card-head" },
        h("h2", { id: "customer-name" }, contact.display_name || t("Contact {id}", { id: contact.id })),
        h(
          "button",
          { type: "button", class: "close-customer", "aria-label": t("Close the customer card"), onclick: () => signal("customer-close") },
          "×",
        ),
      ),
      h(
        "p",
        { class: "muted" },
        contact.priority_tier && contact.priority_tier !== "standard"
          ? [h("span", { class: "pill tier" }, contact.priority_tier), " "]
          : null,
        [
          contact.language ? t("language {language}", { language: contact.language }) : null,
          t("customer since {time}", { time: formatTime(contact.created_at) }),
        ]
          .filter(Boolean)
          .join(" · "),
      ),
      section("identities", t("Identities"), identities(contact)),
      erp,
      section("owner", t("Owner"), h("p", {}, contact.owner_id ? operatorName(contact.owner_id) : t("no owner"))),
      section("tags", t("Tags"), tags(contact)),
      section("custom-fields", t("Custom fields"), customFields(contact)),
      section("leads", t("Leads"), leads()),
      section("past-conversations", t("Past conversations"), pastConversations()),
      extras.suggestions.length ? section("possible-duplicates", t("Possible duplicates"), suggestions(contact)) : null,
      h("details", { class: "edit-contact" }, h("summary", {}, t("Edit customer")), editForm(contact)),
    ),
  );
  if (focused && focused.isConnected && document.activeElement !== focused) focused.focus({ preventScroll: true });
}

function section(key, title, content) {
  const id = `card-${key}`;
  return h("section", { class: "card-section", "aria-labelledby": id }, h("h3", { id }, title), content);
}

function identities(contact) {
  if (!contact.identities.length) return h("p", { class: "muted" }, t("none"));
  return h(
    "ul",
    { class: "identities" },
    contact.identities.map((identity) =>
      h(
        "li",
        {},
        h("span", { class: "muted" }, `${IDENTITY_LABELS[identity.kind] ? IDENTITY_LABELS[identity.kind]() : identity.kind}: `),
        identity.address,
      ),
    ),
  );
}

function tags(contact) {
  if (!contact.tags.length) return h("p", { class: "muted" }, t("none"));
  return h("ul", { class: "tags" }, contact.tags.map((tag) => h("li", { class: "pill" }, tag)));
}

function customFields(contact) {
  const entries = Object.entries(contact.custom_fields || {});
  if (!entries.length) return h("p", { class: "muted" }, t("none"));
  return h(
    "dl",
    { class: "fields" },
    entries.map(([key, value]) => [
      h("dt", {}, key),
      h("dd", {}, typeof value === "object" ? JSON.stringify(value) : String(value)),
    ]),
  );
}

function leads() {
  if (!extras.leads.length) return h("p", { class: "muted" }, t("none"));
  return h(
    "ul",
    { class: "leads" },
    extras.leads.map((lead) =>
      h(
        "li",
        {},
        h("span", { class: "pill" }, lead.stage),
        ` ${lead.source}`,
        lead.value ? ` · ${lead.value} ${lead.currency || ""}` : "",
        lead.owner_id ? ` · ${operatorName(lead.owner_id)}` : "",
      ),
    ),
  );
}

function pastConversations() {
  // The conversations list, or else the conversations seen in the loaded timeline.
  let rows = extras.conversations;
  if (!rows) {
    const seen = new Map();
    for (const item of state.timelineItems || []) {
      if (!item.conversation_id || seen.has(item.conversation_id)) continue;
      seen.set(item.conversation_id, {
        id: item.conversation_id,
        channel: item.channel,
        subject: item.subject,
        status: "",
        updated_at: item.occurred_at,
      });
    }
    rows = [...seen.values()];
  }
  const others = rows.filter((c) => c.id !== state.conversationId);
  if (!others.length) return h("p", { class: "muted" }, t("none"));
  return h(
    "ul",
    { class: "past" },
    others.map((c) =>
      h(
        "li",
        {},
        h(
          "a",
          {
            href: `#c=${c.id}`,
            onclick: (event) => {
              event.preventDefault();
              signal("open", { id: c.id });
            },
          },
          channelIcon(c.channel),
          ` #${c.id} ${c.subject || channelLabel(c.channel)}`,
        ),
        h("span", { class: "muted" }, ` · ${c.status ? `${statusLabel(c.status)} · ` : ""}${formatTime(c.updated_at)}`),
      ),
    ),
  );
}

function suggestions(contact) {
  return h(
    "ul",
    { class: "suggestions" },
    extras.suggestions.map((suggestion) => {
      const other = suggestion.contact;
      const otherId = other.id;
      const name = other.display_name || t("Contact {id}", { id: otherId });
      const reasons = suggestion.because;
      return h(
        "li",
        { dataset: { contactId: otherId } },
        h("strong", {}, name),
        reasons.length ? h("span", { class: "muted" }, ` · ${reasons.join(", ")}`) : null,
        isSupervisor()
          ? h(
              "button",
              {
                type: "button",
                class: "merge",
                onclick: () => merge(contact, otherId, name),
              },
              t("Merge into this customer"),
            )
          : h("span", { class: "muted" }, ` ${t("(a supervisor can merge)")}`),
      );
    }),
  );
}

async function merge(contact, otherId, name) {
  if (!window.confirm(t("Merge {name} into {target}? Their history moves here.", { name, target: contact.display_name }))) return;
  try {
    state.contact = await post(`/api/v1/contacts/${contact.id}/merge`, { merge_id: otherId });
    extras.contactId = null;
    toast(t("{name} merged", { name }));
    signal("conversation-changed");
  } catch (error) {
    toast(error.message, "error");
  }
}

function editForm(contact) {
  const name = h("input", { id: "edit-name", name: "display_name", value: contact.display_name, maxlength: 200 });
  const tagInput = h("input", {
    id: "edit-tags",
    name: "tags",
    value: contact.tags.join(", "),
    "aria-describedby": "edit-tags-help",
  });
  const fieldKey = h("input", { id: "edit-field-key", name: "field_key", maxlength: 100 });
  const fieldValue = h("input", { id: "edit-field-value", name: "field_value" });
  const form = h(
    "form",
    {
      class: "form-grid",
      onsubmit: async (event) => {
        event.preventDefault();
        const body = {
          display_name: name.value.trim(),
          tags: tagInput.value
            .split(",")
            .map((tag) => tag.trim())
            .filter(Boolean),
        };
        if (fieldKey.value.trim()) {
          // An empty value deletes the field.
          body.custom_fields = { [fieldKey.value.trim()]: fieldValue.value.trim() || null };
        }
        try {
          state.contact = await patch(`/api/v1/contacts/${contact.id}`, body);
          toast(t("Customer saved"));
          drawCard(byId("customer"), state.contact);
        } catch (error) {
          const fields = Object.values(error.fields || {}).join("; ");
          toast(fields ? `${error.message}: ${fields}` : error.message, "error");
        }
      },
    },
    h("div", { class: "field" }, h("label", { for: "edit-name" }, t("Name")), name),
    h("div", { class: "field" }, h("label", { for: "edit-tags" }, t("Tags")), tagInput),
    h("small", { id: "edit-tags-help", class: "muted" }, t("Separate tags with commas.")),
    h("div", { class: "field" }, h("label", { for: "edit-field-key" }, t("Custom field")), fieldKey),
    h("div", { class: "field" }, h("label", { for: "edit-field-value" }, t("Value (empty deletes the field)")), fieldValue),
    h("button", { type: "submit", class: "primary" }, t("Save customer")),
  );
  return form;
}
