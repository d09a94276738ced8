// The live event stream (/ws): ids of what changed; the pages fetch the rest over the API.
// Reconnects with backoff; every (re)connection starts with a "hello", after which a page
// reloads what it shows, since events may have been missed while it was away.

export function connectLive({ onEvent, onState }) {
  let socket = null;
  let attempt = 0;
  let stopped = false;

  function open() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/ws`);
    socket.addEventListener("open", () => {
      attempt = 0;
      onState("live");
    });
    socket.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      onEvent(event);
    });
    socket.addEventListener("close", () => {
      onState("reconnecting");
      if (stopped) return;
      const delay = Math.min(30000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt += 1;
      setTimeout(open, delay);
    });
  }

  open();
  return {
    close() {
      stopped = true;
      if (socket) socket.close();
    },
  };
}

/** Call `fn` at most once per `ms`, with the latest call winning (bursts of events). */
export function coalesce(fn, ms = 150) {
  let timer = null;
  let running = null;
  let again = false;
  const run = async () => {
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = Promise.resolve()
      .then(fn)
      .catch((error) => console.error(error))
      .finally(() => {
        running = null;
        if (again) {
          again = false;
          schedule();
        }
      });
  };
  const schedule = () => {
    if (timer === null) timer = setTimeout(run, ms);
  };
  return schedule;
}
