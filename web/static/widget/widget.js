// The website chat widget. A site shows it with one tag:
//   <script type="module" src="https://crm.example.com/static/widget/widget.js?account=shop"></script>
// It finds the server and the account in its own address and draws itself in the open shadow
// root of one element (#omnicrm-webchat) appended to the page: the site's styles cannot reach
// it and it touches nothing of the site's. A site may set the colour on that element:
//   #omnicrm-webchat { --omnicrm-webchat-accent: #0a7d3b; }

import { start } from "./chat.js";

const script = new URL(import.meta.url);
const account = script.searchParams.get("account");
const base = script.origin + script.pathname.replace(/\/static\/widget\/[^/]*$/, "");

function mount() {
  const host = document.createElement("omnicrm-webchat");
  host.id = "omnicrm-webchat";
  const shadow = host.attachShadow({ mode: "open" });
  const root = document.createElement("div");
  root.className = "root";
  root.hidden = true; // until the styles are in
  const styles = document.createElement("link");
  styles.rel = "stylesheet";
  styles.href = new URL("widget.css", import.meta.url).href;
  styles.addEventListener("load", () => (root.hidden = false));
  styles.addEventListener("error", () => console.warn("omnicrm chat: no styles (the site's Content-Security-Policy?)"));
  // Keys typed into the chat are not the site's shortcuts.
  for (const type of ["keydown", "keyup", "keypress"]) root.addEventListener(type, (event) => event.stopPropagation());
  shadow.append(styles, root);
  document.body.append(host);
  return root;
}

async function boot() {
  if (!account) {
    console.warn("omnicrm chat: the script's address needs ?account=<the widget account's name>");
    return;
  }
  if (!document.body) await new Promise((resolve) => addEventListener("DOMContentLoaded", resolve, { once: true }));
  if (document.getElementById("omnicrm-webchat")) return; // already on the page
  await start({ base, account, mount });
}

boot();
