// Delivery status of outbound messages, for every channel: queued, sending, sent, delivered,
// read or failed (with the provider's error), a retry for failed ones, live over the
// "delivery.updated" event. And what may be sent now: a channel's reply window (WhatsApp's 24
// hours) with the time left, opted-out numbers, and the approved templates offered outside
// the window. conversation.js calls in here; the rest of the console does not need to know.
import { get, post, withQuery } from "../common/api.js";
import { serverNow } from "../common/clock.js";
import { formatDuration, formatTime, h, toast } from "../common/dom.js";
import { t } from "../common/i18n.js";

// The delivery states are the data's (data-delivery keeps them); these are their names shown.
const WORDS = {
  queued: () => t("queued"),
  sending: () => t("sending…"),
  sent: () => t("sent"),
  delivered: () => t("delivered"),
  read: () => t("read"),
  failed: () => t("failed"),
};

function stateWord(state) {
  return WORDS[state] ? WORDS[state]() : state;
}

// Outbox rows by interaction id, for the conversations whose messages are in view.
const byInteraction = new Map();

/** Load the delivery status of the outbound messages of these conversations. */
export async function loadDelivery(conversationIds) {
  const pages = await Promise.all(
    [...new Set(conversationIds)].map((id) =>
      get(withQuery(`/api/v1/conversations/${id}/outbox`, { limit: 200 })).catch(() => null),
    ),
  );
  for (const page of pages) {
    if (!page) continue;
    for (const row of page.items) {
      if (row.interaction_id !== null) byInteraction.set(row.interaction_id, row);
    }
  }
}

/** The status badge of an outbound interaction (and its retry button when it failed). */
export function deliveryBadge(item, onChanged) {
  const row = byInteraction.get(item.id);
  if (!row) return null;
  const state = row.delivery;
  const parts = [
    h(
      "span",
      {
        class: `delivery delivery-${state}`,
        dataset: { delivery: state, outboxId: row.id },
        title: row.receipt_at ? `${stateWord(state)} ${formatTime(row.receipt_at)}` : stateWord(state),
      },
      stateWord(state),
    ),
  ];
  if (state === "failed") {
    const reason = row.last_error || t("the provider did not deliver it");
    parts.push(h("span", { class: "delivery-error", role: "note" }, reason));
    parts.push(
      h(
        "button",
        {
          type: "button",
          class: "delivery-retry",
          onclick: async (event) => {
            event.target.disabled = true;
            try {
              const updated = await post(`/api/v1/outbox/${row.id}/retry`);
              byInteraction.set(item.id, updated);
              toast(t("Sending again"));
            } catch (error) {
              toast(error.message, "error");
            }
            onChanged();
          },
        },
        t("Retry"),
      ),
    );
  } else if (state === "sending" && row.last_error) {
    parts.push(
      h(
        "span",
        { class: "delivery-error muted", role: "note" },
        t("retrying {time}: {reason}", { time: formatTime(row.next_attempt_at), reason: row.last_error }),
      ),
    );
  }
  return h("span", { class: "delivery-status" }, ...parts);
}

// ----- what may be sent now -----

let options = null; // the conversation's reply options (GET .../reply-options)

export async function loadReplyOptions(conversationId) {
  try {
    options = await get(`/api/v1/conversations/${conversationId}/reply-options`);
  } catch {
    options = null;
  }
  return options;
}

function optionFor(channel) {
  return options ? options.options.find((item) => item.channel === channel) || null : null;
}

/** Fill `box` with what the chosen channel allows now: the window's time left, an opt-out,
 * and a template picker with its variables when the window is closed (or templates exist). */
export function renderReplyRules(box, channel) {
  const option = optionFor(channel);
  box.replaceChildren();
  box.hidden = true;
  if (!option) return;
  const lines = [];
  if (option.opted_out) {
    lines.push(
      h("p", { class: "reply-rule error-text", role: "alert" }, t("{recipient} unsubscribed ({how}): nothing can be sent on {channel}.", {
        recipient: option.recipient,
        how: option.opted_out,
        channel: option.label,
      })),
    );
  }
  const window = option.window;
  if (window) {
    const left = window.closes_at ? (new Date(window.closes_at) - serverNow()) / 1000 : 0;
    lines.push(
      left > 0
        ? h(
            "p",
            { class: "reply-rule reply-window", dataset: { window: "open" } },
            t("{channel} reply window: {duration} left (closes {time})", {
              channel: option.label,
              duration: formatDuration(left),
              time: formatTime(window.closes_at),
            }),
          )
        : h(
            "p",
            { class: "reply-rule reply-window", dataset: { window: "closed" } },
            t("Outside the {channel} reply window: free text cannot be sent, pick an approved template.", {
              channel: option.label,
            }),
          ),
    );
  }
  if (option.templates.length) {
    const select = h(
      "select",
      { id: "reply-template", name: "template" },
      h("option", { value: "" }, t("No template (free text)")),
      option.templates.map((item) => h("option", { value: item.name }, item.name)),
    );
    const variables = h("div", { class: "template-variables" });
    const preview = h("p", { class: "template-preview muted" });
    const show = () => {
      const chosen = option.templates.find((item) => item.name === select.value);
      variables.replaceChildren(
        ...(chosen
          ? chosen.variables.map((label, index) =>
              h(
                "label",
                {},
                `{{${index + 1}}} ${label} `,
                h("input", { type: "text", name: `variable-${index + 1}`, dataset: { variable: index + 1 } }),
              ),
            )
          : []),
      );
      preview.textContent = chosen ? chosen.text : "";
    };
    select.addEventListener("change", show);
    if (window && !(window.closes_at && new Date(window.closes_at) > serverNow())) {
      select.value = option.templates[0].name;
    }
    show();
    lines.push(
      h("div", { class: "reply-rule template-picker" }, h("label", { for: "reply-template" }, `${t("Template")} `), select, preview, variables),
    );
  }
  box.replaceChildren(...lines);
  box.hidden = lines.length === 0;
}

/** The template chosen in `box`, as the reply API takes it, or null for free text. */
export function chosenTemplate(box) {
  const select = box.querySelector("#reply-template");
  if (!select || !select.value) return null;
  const variables = {};
  for (const input of box.querySelectorAll("input[data-variable]")) {
    variables[input.dataset.variable] = input.value;
  }
  return { template: select.value, variables };
}
