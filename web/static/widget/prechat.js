// The pre-chat form: name, email, phone and, when the widget has a consent text, a consent
// checkbox. Each error shows beside its field (aria-describedby), in the visitor's language
// as the server words it; what the visitor typed stays.

import { t } from "./i18n.js";
import { h, problem } from "./view.js";

/** `intro`: a line above the fields (or null); `submit(values)` resolves, or rejects with an
 *  ApiError whose `fields` name the fields at fault. */
export function prechatForm({ intro, action, consentText, visitor, submit }) {
  const inputs = {};
  const errors = {};
  const field = (name, label, attrs) => {
    inputs[name] = h("input", { id: `pc-${name}`, name, value: visitor[name] || null, ...attrs });
    errors[name] = h("p", { class: "error", id: `pc-${name}-error`, hidden: true });
    return h("div", { class: "field" }, h("label", { for: `pc-${name}` }, label), inputs[name], errors[name]);
  };
  const general = h("p", { class: "error", role: "alert", hidden: true });
  const button = h("button", { class: "primary", type: "submit" }, action);
  const form = h(
    "form",
    { class: "prechat", "data-webchat": "prechat", novalidate: true },
    intro ? h("p", { class: "intro" }, intro) : null,
    field("name", t("Name"), { autocomplete: "name", maxlength: "200" }),
    field("email", t("Email"), { type: "email", autocomplete: "email" }),
    field("phone", t("Phone"), { type: "tel", autocomplete: "tel" }),
    consentText
      ? h(
          "div",
          { class: "consent" },
          (inputs.consent = h("input", { type: "checkbox", id: "pc-consent", name: "consent" })),
          h("label", { for: "pc-consent" }, consentText),
          (errors.consent = h("p", { class: "error", id: "pc-consent-error", hidden: true })),
        )
      : null,
    general,
    button,
  );

  const show = (element, text) => {
    element.textContent = text || "";
    element.hidden = !text;
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const [name, input] of Object.entries(inputs)) {
      show(errors[name], "");
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
    show(general, "");
    button.disabled = true;
    try {
      await submit({
        name: inputs.name.value.trim(),
        email: inputs.email.value.trim(),
        phone: inputs.phone.value.trim(),
        consent: Boolean(inputs.consent && inputs.consent.checked),
      });
    } catch (error) {
      let first = null;
      const other = [];
      for (const [name, message] of Object.entries(error.fields || {})) {
        if (!inputs[name]) {
          other.push(message);
          continue;
        }
        show(errors[name], message);
        inputs[name].setAttribute("aria-invalid", "true");
        inputs[name].setAttribute("aria-describedby", errors[name].id);
        first = first || inputs[name];
      }
      if (!first || other.length) show(general, other.join(" ") || problem(error));
      if (first) first.focus();
    } finally {
      button.disabled = false;
    }
  });
  return { form, focus: () => inputs.name.focus() };
}
