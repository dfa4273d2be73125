// The API and event-stream client: the session (this tab's bearer token and what it may do),
// JSON requests, and the live data of a view (`watch`), read the one way that misses nothing.
//
// Every URL starts from the base the server put in the page, so the dashboard works wherever the
// router is mounted. This module draws nothing but the live indicator, and imports no other: on
// a 401 it calls the handler that app.js gives `onSignInNeeded`.

const BASE = document.querySelector('meta[name="offstage-base"]')?.content || "";

const ROLE_RANK = { read: 0, launch: 1, control: 2 };

/** The bearer token (kept for this browser tab only) and the role the server gave it. */
export const session = {
  token: sessionStorage.getItem("offstage.token"),
  role: null,
  authRequired: false,
  /** The tracing backend's page of a trace, `{trace_id}` in it (`--trace-url`), or null. */
  traceUrl: null,
  can(role) {
    return this.role in ROLE_RANK && ROLE_RANK[this.role] >= ROLE_RANK[role];
  },
};

/** What the server said no with: its status, the API's error code and its message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let signInNeeded = () => {};

/** `handler(reason)` runs when the server refuses the token (401): app.js shows its sign-in. */
export function onSignInNeeded(handler) {
  signInNeeded = handler;
}

function authHeaders(extra) {
  const headers = { ...extra };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  return headers;
}

/** The ApiError an answer that is not OK carries: the API's `{"error": {code, message}}`. */
async function failure(response) {
  let error = null;
  try { error = JSON.parse(await response.text()).error; } catch { /* not JSON: the status */ }
  return new ApiError(response.status, error ? error.code : `http_${response.status}`,
    error ? error.message : `${response.status} ${response.statusText}`);
}

/**
 * `method path` with a JSON `body`: the JSON answer, or an ApiError. A 401 also asks for a
 * token (`onSignInNeeded`), unless `signIn` is false: the sign-in form asks itself.
 */
export async function api(path, { method = "GET", body, signIn = true } = {}) {
  const headers = authHeaders(body === undefined ? {} : { "Content-Type": "application/json" });
  let response;
  try {
    response = await fetch(BASE + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, "unreachable", "The server did not answer. Is it still running?");
  }
  if (!response.ok) {
    const refused = await failure(response);
    if (response.status === 401 && signIn) signInNeeded(refused.message);
    throw refused;
  }
  const text = await response.text();
  try { return text ? JSON.parse(text) : null; } catch { return null; }
}

/** Asks the server what the token may do (`GET api/me`), into `session`. */
export async function whoAmI() {
  const me = await api("api/me", { signIn: false });
  session.role = me.role;
  session.authRequired = me.auth_required;
  session.traceUrl = me.trace_url || null;
}

/** The live indicator in the header: `live`, `reconnecting`, `ended`, `off` or `idle`. */
export function setLive(state) {
  const el = document.querySelector("#live");
  el.dataset.state = state;
  el.textContent = {
    live: "Live", reconnecting: "Reconnecting…", ended: "Task over", off: "Offline", idle: "",
  }[state];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Server-Sent Events over fetch: `EventSource` cannot send a bearer token. Reconnects with
 * backoff and resumes after the last event it saw (`Last-Event-ID`).
 */
class EventStream {
  /**
   * @param {string} path the stream's URL
   * @param {object} handlers `open()` runs each time the stream is (re)connected, before any
   *   event is delivered: read the current state there, and nothing between is missed.
   *   `event(type, data)` gets each event; `ended()` runs when the server ends the stream;
   *   `failed(error)` when the server refuses it (a 4xx: no retry).
   */
  constructor(path, handlers) {
    this.path = path;
    this.handlers = handlers;
    this.lastId = handlers.lastId ?? null;
    this.controller = new AbortController();
    this.stopped = false;
    this.run();
  }

  stop() {
    this.stopped = true;
    this.controller.abort();
  }

  async run() {
    let delay = 250;
    while (!this.stopped) {
      try {
        const headers = authHeaders({ Accept: "text/event-stream" });
        if (this.lastId !== null) headers["Last-Event-ID"] = String(this.lastId);
        const response = await fetch(BASE + this.path, {
          headers, signal: this.controller.signal,
        });
        if (!response.ok) {
          const refused = await failure(response);
          if (response.status === 401) signInNeeded(refused.message);
          if (response.status < 500) {
            setLive("off");
            this.handlers.failed?.(refused);
            return;
          }
          throw refused;
        }
        setLive("live");
        delay = 250;
        await this.handlers.open?.();
        if (await this.read(response.body)) {
          this.handlers.ended?.();
          return;
        }
      } catch (error) {
        if (this.stopped) return;
      }
      if (this.stopped) return;
      setLive("reconnecting");
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  /** Reads until the server ends the stream (true) or the connection drops (throws). */
  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return !this.stopped;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        this.dispatch(block);
      }
    }
  }

  dispatch(block) {
    let type = "message";
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
    if (id !== null) this.lastId = id;
    if (!data.length || this.stopped) return;
    let payload;
    try { payload = JSON.parse(data.join("\n")); } catch { return; }
    this.handlers.event(type, payload);
  }
}

/**
 * Events waiting to be shown. They are applied many per frame, not one repaint each (a busy
 * server sends thousands a second), and held while a view reads its snapshot, so none that
 * arrive meanwhile are lost. A backlog too long to be worth replaying (a hidden tab gets no
 * frames) collapses into one `gap`, always first in its batch.
 */
function eventQueue(apply) {
  const MAX = 5000;
  let queue = [];
  let scheduled = false;
  let open = false;
  const schedule = () => {
    if (scheduled || !open || !queue.length) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      const batch = queue;
      queue = [];
      apply(batch);
    });
  };
  return {
    push(item) {
      queue.push(item);
      if (queue.length > MAX) queue = [["gap", {}]];
      schedule();
    },
    hold() { open = false; },
    release() { open = true; schedule(); },
  };
}

/** Holds `queue` while `load` reads a snapshot, then applies what arrived meanwhile. */
async function reading(queue, load) {
  queue.hold();
  try { await load(); } finally { queue.release(); }
}

/**
 * A view's live data: the stream at `path`, and a snapshot read with `load` each time the
 * stream (re)connects, while the events that arrive meanwhile wait. Then `apply(batch)` gets
 * them, `[[type, data], …]`, many at a time. After a backlog too long to replay, `reload` runs
 * instead (by default `load` again, holding the events the same way).
 *
 * `keep(type)` says which events to queue at all (every one by default); `lastId`, `ended` and
 * `failed` go to the stream as they are. Returns the stream: `stop()` it when the view goes.
 */
export function watch(path, { load, apply, reload, keep = () => true, ...handlers }) {
  const queue = eventQueue((batch) => {
    if (batch[0][0] !== "gap") apply(batch);
    else if (reload) reload();
    else reading(queue, load);
  });
  return new EventStream(path, {
    ...handlers,
    open: () => reading(queue, load),
    event: (type, data) => { if (keep(type)) queue.push([type, data]); },
  });
}
