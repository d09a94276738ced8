// Administration: one section per kind of thing an admin manages, chosen by the address's
// hash (#operators, #queues, ...). Supervisors see the sections they may use; the server
// checks every call again.

import { get, logout } from "../common/api.js";
import { byId, fill, h, toast } from "../common/dom.js";
import { t, translatePage, useLocale } from "../common/i18n.js";
import * as audit from "./audit.js";
import * as canned from "./canned.js";
import * as channelAccounts from "./channel_accounts.js";
import * as forms from "./forms.js";
import * as operators from "./operators.js";
import * as pipelines from "./pipelines.js";
import * as queues from "./queues.js";
import * as routingRules from "./routing_rules.js";
import * as tokens from "./tokens.js";

// [hash, title, module, roles that see it]
const SECTIONS = [
  ["operators", () => t("Operators"), operators, ["admin", "supervisor"]],
  ["queues", () => t("Queues"), queues, ["admin", "supervisor"]],
  ["routing", () => t("Routing rules"), routingRules, ["admin"]],
  ["forms", () => t("Web forms"), forms, ["admin", "supervisor"]],
  ["pipelines", () => t("Pipelines"), pipelines, ["admin"]],
  ["channels", () => t("Channel accounts"), channelAccounts, ["admin"]],
  ["canned", () => t("Canned responses"), canned, ["admin", "supervisor"]],
  ["tokens", () => t("API tokens"), tokens, ["admin"]],
  ["audit", () => t("Audit log"), audit, ["admin"]],
];

const context = { me: null, isAdmin: false };

function visibleSections() {
  return SECTIONS.filter(([, , , roles]) => roles.includes(context.me.role));
}

function renderNav(current) {
  fill(
    byId("admin-nav"),
    h(
      "ul",
      {},
      visibleSections().map(([hash, title]) =>
        h(
          "li",
          {},
          h("a", { href: `#${hash}`, "aria-current": hash === current ? "page" : null }, title()),
        ),
      ),
    ),
  );
}

async function show() {
  const sections = visibleSections();
  const wanted = location.hash.replace(/^#/, "");
  const section = sections.find(([hash]) => hash === wanted) || sections[0];
  const [hash, title, module] = section;
  renderNav(hash);
  document.title = `${title()} · omnicrm`;
  const main = byId("admin-main");
  main.dataset.section = hash;
  document.body.dataset.ready = "false";
  fill(main, h("p", { class: "muted" }, t("Loading…")));
  try {
    await module.render(main, context);
  } catch (error) {
    fill(main, h("p", { class: "error-text", role: "alert" }, error.message || String(error)));
    toast(error.message || String(error), "error");
  }
  document.body.dataset.ready = "true";
}

async function start() {
  const [me, prefs] = await Promise.all([get("/api/v1/auth/me"), get("/api/v1/auth/me/preferences")]);
  await useLocale(prefs.locale, prefs.time_zone);
  translatePage();
  context.me = me;
  context.isAdmin = me.role === "admin";
  byId("me-name").textContent = me.name;
  byId("brand-part").textContent = t("admin");
  byId("console-link").textContent = t("Console");
  byId("monitor-link").textContent = t("Monitor");
  byId("logout-button").textContent = t("Sign out");
  byId("logout-button").addEventListener("click", () => logout());
  window.addEventListener("hashchange", show);
  await show();
}

start();
