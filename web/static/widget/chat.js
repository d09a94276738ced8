// The chat: the session, the messages (history, live, sending with retries), the panel.

import { client } from "./api.js";
import { fileSize, shortTime, t, useLocale } from "./i18n.js";
import { prechatForm } from "./prechat.js";
import { h, messageItem, problem, skeleton } from "./view.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const PAGE = 100;

/** Read (`value` undefined), write or (null) remove a stored string; storage may be off. */
function stored(kind, key, value) {
  try {
    if (value === undefined) return window[kind].getItem(key);
    if (value === null) window[kind].removeItem(key);
    else window[kind].setItem(key, value);
  } catch {
    return null;
  }
  return null;
}

/** A message's client id (the server stores a message once per id): 32 hex digits. */
const clientId = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");

/** Open the session, then draw the widget into `mount()`'s element. Nothing is shown when the
 *  server refuses (an origin the widget is not allowed on, an unknown account). */
export async function start({ base, account, mount }) {
  const key = `omnicrm-webchat:${base}:${account}`;
  const api = client(base, account);
  let session;
  for (let attempt = 0; !session; attempt++) {
    try {
      session = await api.call("POST", "session", {
        visitor_token: stored("localStorage", key) || null,
        languages: navigator.languages && navigator.languages.length ? [...navigator.languages] : [navigator.language],
        page: location.href,
      });
    } catch (error) {
      if (!error.retryable || attempt >= 3) {
        console.warn(`omnicrm chat: ${error.message || `no session (${error.status})`}`);
        return;
      }
      await sleep(1000 * 2 ** attempt);
    }
  }
  api.token = session.visitor_token;
  stored("localStorage", key, api.token);
  useLocale(session.locale, session.messages);

  const config = session.config || {};
  const online = Boolean(session.online);
  let visitor = session.visitor || {};
  const byId = new Map();
  const byClient = new Map();
  let lastId = 0;
  let readUpTo = 0;
  let open = false;
  let live = false;
  let detailsOpen = false;
  let form = null;

  const v = skeleton();
  const root = mount();
  root.lang = session.locale || "en";
  root.append(v.bubble, v.panel);
  const title = config.title || t("Chat with us");
  v.title.textContent = title;

  // The status line: online, or away (and why).
  const reason =
    session.offline_reason === "closed" && session.opens_at
      ? t("We're back {time}", { time: shortTime(session.opens_at, true) })
      : session.offline_reason === "nobody"
        ? t("Leave a message and we'll get back to you")
        : "";
  v.status.dataset.online = String(online);
  v.status.append(online ? t("We're online") : t("We're away"), reason ? h("span", { class: "reason" }, reason) : "");
  if (config.greeting) {
    v.log.append(h("div", { class: "message out greeting" }, h("div", { class: "body" }, h("p", { class: "text" }, config.greeting))));
  }

  let noticeTimer;
  const notify = (text) => {
    v.notice.textContent = text;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => (v.notice.textContent = ""), 10000);
  };
  const quiet = (path, body) => api.call("POST", path, body).catch(() => null);

  // Unread answers: the bubble's badge and accessible name.
  function renderBadge() {
    let count = 0;
    for (const m of byId.values()) if (m.direction === "out" && !m.read && m.id > readUpTo) count++;
    if (open) count = 0;
    v.badge.hidden = !count;
    v.badge.textContent = count > 9 ? "9+" : String(count);
    v.bubble.setAttribute("aria-label", count ? t("{title}, new messages: {count}", { title, count }) : title);
  }

  let readTimer;
  function markRead() {
    clearTimeout(readTimer);
    readTimer = setTimeout(() => {
      if (!open || document.visibilityState !== "visible") return;
      let top = 0;
      for (const m of byId.values()) if (m.direction === "out" && !m.read && m.id > readUpTo) top = Math.max(top, m.id);
      if (!top) return;
      readUpTo = top;
      renderBadge();
      quiet("read", { up_to: top });
    }, 300);
  }
  document.addEventListener("visibilitychange", markRead);

  // Attachments are fetched with the token, once each, and shown from object URLs.
  const blobs = new Map();
  const blobUrl = (file) => {
    if (!blobs.has(file.url)) {
      const url = api.file(file);
      url.catch(() => blobs.delete(file.url));
      blobs.set(file.url, url);
    }
    return blobs.get(file.url);
  };
  const handlers = {
    retry: (m) => {
      v.input.focus(); // the button is redrawn
      deliver(m);
    },
    remove: (m) => {
      v.input.focus();
      m.el.remove();
      byClient.delete(m.client_id);
    },
    preview: (file, img) => {
      if (file.size > 5e6) return;
      blobUrl(file)
        .then((url) => {
          img.src = url;
          img.hidden = false;
        })
        .catch(() => null);
    },
    download: (file) =>
      blobUrl(file)
        .then((url) => {
          const link = h("a", { href: url, download: file.name, hidden: true });
          v.panel.append(link);
          link.click();
          link.remove();
        })
        .catch((error) => notify(problem(error))),
  };

  /** Draw a message in id order (those still sending last). */
  function render(m) {
    const stick = m.direction === "in" || v.log.scrollHeight - v.log.scrollTop - v.log.clientHeight < 40;
    if (m.el) m.el.remove();
    m.el = messageItem(m, handlers);
    let before = null;
    const last = v.log.lastElementChild;
    if (m.id && last && !(Number(last.dataset.id) < m.id)) {
      for (const other of v.log.querySelectorAll("[data-webchat=message]")) {
        if (!other.dataset.id || Number(other.dataset.id) > m.id) {
          before = other;
          break;
        }
      }
    }
    v.log.insertBefore(m.el, before);
    if (stick) v.log.scrollTop = v.log.scrollHeight;
  }

  /** A message from the server (an answer, a reply to a send, from the socket or another
   *  tab): the same id or client id is the same message. */
  function receive(data) {
    if (!data || typeof data.id !== "number") return;
    const m = byId.get(data.id) || (data.client_id && byClient.get(data.client_id)) || {};
    Object.assign(m, data, { state: "sent", error: null, file: null });
    byId.set(m.id, m);
    if (m.client_id) byClient.set(m.client_id, m);
    lastId = Math.max(lastId, m.id);
    if (m.direction === "out") showTyping({ typing: false });
    render(m);
    renderBadge();
    markRead();
    startLive();
  }

  let fetching = null;
  let again = false;
  /** Everything after the last message known, page by page; runs once at a time. */
  function fetchNew() {
    if (fetching) {
      again = true;
      return fetching;
    }
    fetching = (async () => {
      do {
        again = false;
        for (;;) {
          const from = lastId;
          const page = await api.call("GET", `messages?after=${from}`);
          const items = (page && page.items) || [];
          items.forEach(receive);
          if (items.length < PAGE || lastId === from) break;
        }
      } while (again);
    })()
      .catch((error) => console.warn("omnicrm chat:", error.message || error.status))
      .finally(() => (fetching = null));
    return fetching;
  }

  // The socket opens once there is a chat; each (re)connection fetches what was missed.
  function startLive() {
    if (live) return;
    live = true;
    api.live((event) => {
      if (event.type === "message") receive(event.message);
      else if (event.type === "typing") showTyping(event);
    }, fetchNew);
  }

  let typingTimer;
  function showTyping(event) {
    clearTimeout(typingTimer);
    v.typing.hidden = !event.typing;
    v.typing.textContent = !event.typing ? "" : event.author ? t("{name} is typing…", { name: event.author }) : t("Typing…");
    if (event.typing) typingTimer = setTimeout(() => showTyping({ typing: false }), 15000);
  }

  // The visitor typing: true at most every 3 s while they type, false after 5 s idle or on send.
  let typingSince = 0;
  let idle;
  function stopTyping() {
    clearTimeout(idle);
    if (typingSince) quiet("typing", { typing: false });
    typingSince = 0;
  }
  function typed() {
    clearTimeout(idle);
    if (!v.input.value.trim()) return stopTyping();
    if (Date.now() - typingSince > 3000) {
      typingSince = Date.now();
      quiet("typing", { typing: true });
    }
    idle = setTimeout(stopTyping, 5000);
  }

  function post(text, file) {
    const m = {
      client_id: clientId(),
      direction: "in",
      text,
      file,
      at: new Date().toISOString(),
      attachments: file ? [{ name: file.name, size: file.size, content_type: file.type, url: null }] : [],
    };
    byClient.set(m.client_id, m);
    stopTyping();
    deliver(m);
  }

  /** Send (again) with the same client id: after a lost answer the server keeps it once. Two
   *  quiet retries after a network error, then "Not sent" with a Retry button. */
  async function deliver(m) {
    m.state = "pending";
    m.error = null;
    render(m);
    for (let attempt = 0; !m.id; attempt++) {
      let body = { client_id: m.client_id, text: m.text };
      if (m.file) {
        body = new FormData();
        body.append("client_id", m.client_id);
        body.append("file", m.file, m.file.name);
        if (m.text) body.append("text", m.text);
      }
      try {
        receive(await api.call("POST", m.file ? "attachments" : "messages", body));
      } catch (error) {
        if (m.id) return; // it came over the socket meanwhile
        if (error.retryable && attempt < 2) {
          await sleep(1500 * 2 ** attempt);
          continue;
        }
        m.state = "failed";
        m.error = error;
        render(m);
        return;
      }
    }
  }
  window.addEventListener("online", () => {
    for (const m of byClient.values()) if (m.state === "failed" && m.error.retryable) deliver(m);
  });

  // The composer: Enter sends, Shift+Enter is a new line.
  const grow = () => {
    v.input.style.height = "auto";
    v.input.style.height = `${Math.min(v.input.scrollHeight, 120)}px`;
  };
  v.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = v.input.value.trim();
    if (!text) return;
    v.input.value = "";
    grow();
    post(text, null);
    v.input.focus();
  });
  v.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      v.send.click();
    }
  });
  v.input.addEventListener("input", () => {
    grow();
    typed();
  });

  const types = config.attachment_types || [];
  const maxBytes = config.max_attachment_bytes || 0;
  if (maxBytes > 0 && types.length) {
    v.attach.hidden = false;
    v.file.accept = types.join(",");
  }
  v.attach.addEventListener("click", () => v.file.click());
  v.file.addEventListener("change", () => {
    const file = v.file.files[0];
    v.file.value = "";
    if (!file) return;
    const type = (file.type || "").toLowerCase();
    if (!types.some((allowed) => allowed === type || (allowed.endsWith("/*") && type.startsWith(allowed.slice(0, -1))))) {
      notify(t("Files of this type cannot be sent: {name}", { name: file.name }));
    } else if (file.size > maxBytes) {
      notify(t("This file is too large. Files of up to {size} can be sent.", { size: fileSize(maxBytes) }));
    } else {
      post("", file);
    }
  });

  // The pre-chat form: before the first message when required or when nobody is there to
  // answer (then an email or phone is a must); otherwise behind "Leave your details".
  const hasAddress = () => Boolean(visitor.email || visitor.phone);
  const gated = () => (!online && !hasAddress()) || (config.prechat === "required" && (!hasAddress() || !visitor.name));
  function renderForm() {
    const gate = gated();
    v.composer.hidden = gate;
    v.details.hidden = gate || config.prechat !== "optional" || hasAddress();
    const shown = gate || (detailsOpen && !v.details.hidden);
    v.details.setAttribute("aria-expanded", String(shown && !gate));
    if (!shown) {
      v.form.replaceChildren();
      form = null;
    }
    if (!shown || form) return;
    form = prechatForm({
      intro: !online
        ? t("We're away right now. Leave your email or phone number and we'll answer you there.")
        : gate
          ? t("Please introduce yourself before we start.")
          : null,
      action: gate ? t("Start chat") : t("Save"),
      consentText: config.consent_text,
      visitor,
      submit: async (values) => {
        visitor = (await api.call("POST", "prechat", values)).visitor || visitor;
        detailsOpen = false;
        renderForm();
        v.more.hidden = !visitor.email;
        notify(t("Thank you! We have your details."));
        if (!v.composer.hidden) v.input.focus();
      },
    });
    v.form.append(form.form);
  }
  v.details.addEventListener("click", () => {
    detailsOpen = !detailsOpen;
    renderForm();
    if (form) form.focus();
  });

  // The menu: "Email me this chat", offered once the visitor gave an email.
  v.more.hidden = !visitor.email;
  const menu = (show) => {
    v.menu.hidden = !show;
    v.more.setAttribute("aria-expanded", String(show));
    if (show) v.transcript.focus();
  };
  v.more.addEventListener("click", () => menu(v.menu.hidden));
  v.panel.addEventListener("click", (event) => {
    if (!v.menu.contains(event.target) && !v.more.contains(event.target)) menu(false);
  });
  v.transcript.addEventListener("click", async () => {
    menu(false);
    v.more.focus();
    try {
      await api.call("POST", "transcript", {});
      notify(t("We'll email this chat to {email}.", { email: visitor.email }));
    } catch (error) {
      notify(problem(error));
    }
  });

  // Open and close: the state lives in this tab's session storage, across the site's pages.
  const openKey = `${key}:open`;
  function setOpen(value, focus) {
    open = value;
    v.panel.hidden = !open;
    v.bubble.setAttribute("aria-expanded", String(open));
    stored("sessionStorage", openKey, open ? "1" : null);
    renderBadge();
    if (open) {
      renderForm();
      v.log.scrollTop = v.log.scrollHeight;
      markRead();
      if (focus) (v.composer.hidden && form ? form.focus() : v.input.focus());
    } else {
      menu(false);
      stopTyping();
      if (focus) v.bubble.focus();
    }
  }
  v.bubble.addEventListener("click", () => setOpen(!open, true));
  v.close.addEventListener("click", () => setOpen(false, true));
  v.panel.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    event.preventDefault();
    if (!v.menu.hidden) {
      menu(false);
      v.more.focus();
    } else setOpen(false, true);
  });

  renderBadge();
  await fetchNew();
  if (stored("sessionStorage", openKey)) setOpen(true, false);
}
