// Typing in a live chat (the website chat widget): the operator's console tells the visitor
// when an answer is being written, and shows when the visitor is writing.
//
//   watchTyping(composer, id)   POST /api/v1/conversations/{id}/typing while the operator types
//                               a reply on the website chat (at most every 3 s; "stopped" after
//                               5 s without a key, or when the reply is sent: the Send
//                               button or Ctrl+Enter)
//   showCustomerTyping(line, typing)   the "Customer is typing…" line (hidden again after 8 s
//                               without news, so a lost "stopped" never leaves it on)
import { post } from "../common/api.js";

const LIVE_CHANNELS = new Set(["webchat"]);
const REPEAT_MS = 3000;
const IDLE_MS = 5000;
const SHOWN_MS = 8000;

export function watchTyping(composer, id) {
  let lastSent = 0;
  let idle = null;
  const tell = (typing) => post(`/api/v1/conversations/${id}/typing`, { typing }).catch(() => {});
  const stop = () => {
    clearTimeout(idle);
    idle = null;
    if (lastSent) tell(false);
    lastSent = 0;
  };
  composer.textarea.addEventListener("input", () => {
    const replying = composer.form.dataset.mode === "reply";
    if (!replying || !LIVE_CHANNELS.has(composer.channel.value)) return;
    const now = Date.now();
    if (now - lastSent > REPEAT_MS) {
      lastSent = now;
      tell(true);
    }
    clearTimeout(idle);
    idle = setTimeout(stop, IDLE_MS);
  });
  composer.form.addEventListener("submit", stop);
  // Ctrl+Enter sends without a submit event (conversation.js): it ends the typing too.
  composer.textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) stop();
  });
}

const timers = new WeakMap();

export function showCustomerTyping(line, typing) {
  if (!line) return;
  clearTimeout(timers.get(line));
  line.hidden = !typing;
  if (typing) timers.set(line, setTimeout(() => (line.hidden = true), SHOWN_MS));
}
