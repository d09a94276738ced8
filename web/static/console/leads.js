// "Make a lead": the open conversation becomes a sales lead (POST /api/v1/leads), shown on
// the pipeline board (/pipeline/#lead=<id> opens it there). A conversation that has an open
// lead already says so, with a link to that lead when the operator may see it.
import { ApiError, get, post, withQuery } from "../common/api.js";
import { h, toast } from "../common/dom.js";
import { t } from "../common/i18n.js";

function leadLink(id, text) {
  return h("a", { href: `/pipeline/#lead=${id}`, class: "toast-link" }, text);
}

/** The open lead of `conversation`, if the operator may see it (for the link), else null. */
async function openLeadOf(conversation) {
  try {
    const page = await get(withQuery("/api/v1/leads", { contact_id: conversation.contact_id, limit: 50 }));
    return page.items.find((lead) => lead.conversation_id === conversation.id && lead.closed_at === null) || null;
  } catch {
    return null;
  }
}

export async function makeLead(conversation, button) {
  if (button) button.disabled = true;
  try {
    const lead = await post("/api/v1/leads", { conversation_id: conversation.id });
    toast(h("span", {}, t("Lead made."), " ", leadLink(lead.id, t("Open it on the pipeline"))));
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) {
      const lead = await openLeadOf(conversation);
      toast(
        h(
          "span",
          { dataset: { leadExists: "true" } },
          t("This conversation has a lead already."),
          lead ? [" ", leadLink(lead.id, t("Open it on the pipeline"))] : null,
        ),
      );
    } else {
      toast(error.message, "error");
    }
  } finally {
    if (button) button.disabled = false;
  }
}
