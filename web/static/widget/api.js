// The server's widget API, <server>/webchat/<account>/: JSON requests with the visitor's
// token, and the live socket (new messages, the team typing), reconnected with backoff.

export class ApiError extends Error {
  /** `status` 0: no answer (network). `fields`: field → message, in the visitor's language. */
  constructor(status, error) {
    super((error && error.message) || "");
    this.status = status;
    this.fields = (error && error.fields) || {};
  }

  get retryable() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

export function client(base, account) {
  const root = `${base}/webchat/${encodeURIComponent(account)}/`;
  const api = { token: null };
  const auth = () => (api.token ? { Authorization: `Bearer ${api.token}` } : {});

  /** The answer's JSON (null when it has none); ApiError otherwise. `body`: an object
   *  (JSON) or FormData. */
  api.call = async (method, path, body) => {
    const headers = path === "session" ? {} : auth();
    if (body && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(root + path, { method, headers, body, credentials: "omit" });
    } catch {
      throw new ApiError(0);
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data && data.error);
    return data;
  };

  /** An attachment as an object URL: a plain link cannot carry the token. Its `url` is a
   *  path on the server (below a `public_url` prefix, if any) or a whole address. */
  api.file = async ({ url, content_type }) => {
    const response = await fetch(/^https?:/.test(url) ? url : base + url, { headers: auth(), credentials: "omit" });
    if (!response.ok) throw new ApiError(response.status);
    return URL.createObjectURL(new Blob([await response.blob()], { type: content_type }));
  };

  /** The live socket: `onEvent(event)` for each event, `onOpen()` on each (re)connection
   *  (fetch what was missed). Waits 1 s doubling to 30 s between attempts, with jitter. */
  api.live = (onEvent, onOpen) => {
    let delay = 1000;
    const open = () => {
      const url = `${root.replace(/^http/, "ws")}live?token=${encodeURIComponent(api.token)}`;
      const socket = new WebSocket(url);
      let since = 0;
      socket.onopen = () => {
        since = Date.now();
        onOpen();
      };
      socket.onmessage = (message) => {
        try {
          onEvent(JSON.parse(message.data));
        } catch (error) {
          console.error(error);
        }
      };
      socket.onclose = () => {
        // A connection that lasted starts the backoff again; one refused at once does not.
        if (since && Date.now() - since > 10000) delay = 1000;
        setTimeout(open, delay * (0.5 + Math.random()));
        delay = Math.min(delay * 2, 30000);
      };
    };
    open();
  };
  return api;
}
