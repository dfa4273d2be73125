// Offstage's browser client: read, watch and stop tasks of an Offstage server from a web page.
//
// One ES module with no build step and no dependencies. A page loads it from the server it talks
// to (`import { Offstage } from "https://offstage.example/offstage.js"`) or from a copy of this
// file. Events are read with `fetch` and a streaming reader, not `EventSource`, so the token
// travels in the `Authorization` header, never in a URL (where logs and `Referer` would keep it).
//
//     const offstage = new Offstage("https://offstage.example", { token });
//     const watch = offstage.watch(taskId, {
//       state: (state) => bar.value = state.done / state.total,
//       finished: (task) => label.textContent = task.status,
//       error: (error) => label.textContent = error.message,
//     });
//     stopButton.onclick = () => offstage.kill(taskId);
//
// What `watch` promises: the task's current state first (read from its record), then every
// change after it, in order, each once, across dropped connections (it reconnects with backoff
// and `Last-Event-ID`), and `finished` exactly once, after which it stops.

/** What the server (or the network) said no with. */
export class OffstageError extends Error {
  /**
   * @param {string} code the API's error code (`not_found`, `unauthorized`, ...), or
   *   `unreachable` when no answer came, `bad_response` when the answer was not the API's
   * @param {string} message what went wrong and how to fix it, as the server says it
   * @param {number} status the HTTP status, 0 when there was no answer
   */
  constructor(code, message, status, options) {
    super(message, options);
    this.name = "OffstageError";
    this.code = code;
    this.status = status;
  }
}

/** The server this module was loaded from, when it was loaded from one. */
function defaultBase() {
  try {
    const here = new URL(".", import.meta.url);
    return here.protocol === "http:" || here.protocol === "https:" ? here.href : "";
  } catch {
    return "";
  }
}

/** The OffstageError a refused answer carries: the API's `{"error": {code, message}}`. */
async function refusal(response) {
  let error = null;
  try {
    error = JSON.parse(await response.text()).error;
  } catch {
    // Not the API's JSON (a proxy's page, say): the status says what there is to say.
  }
  if (error && typeof error.code === "string") {
    return new OffstageError(error.code, String(error.message ?? error.code), response.status);
  }
  return new OffstageError(`http_${response.status}`,
    `the server answered ${response.status} ${response.statusText}`.trim(), response.status);
}

/** Refusals worth trying again: the server is busy or restarting, not saying no. */
function retryable(status) {
  return status === 0 || status === 408 || status === 429 || status >= 500;
}

/** Calls a user's handler; what it throws is reported, and does not stop the stream. */
function call(handler, ...args) {
  if (typeof handler !== "function") return;
  try {
    handler(...args);
  } catch (error) {
    setTimeout(() => { throw error; });
  }
}

/** A client of one Offstage server. */
export class Offstage {
  /**
   * @param {string} [baseUrl] where the server (or the router an app mounted) answers, such as
   *   `https://offstage.example` or `/offstage`; by default the server this module came from
   * @param {object} [options]
   * @param {string | (() => string | Promise<string>)} [options.token] the bearer token: a role
   *   token or a scoped one an app minted for this user; or a function that returns the current
   *   one (called before every request and every reconnect, so an expiring token can be renewed)
   * @param {typeof fetch} [options.fetch] the `fetch` to use (for tests, or another runtime)
   * @param {{initialMs?: number, maxMs?: number}} [options.retry] reconnection backoff
   */
  constructor(baseUrl, { token, fetch: fetchImpl, retry } = {}) {
    const base = baseUrl ?? defaultBase();
    this.baseUrl = base.endsWith("/") ? base.slice(0, -1) : base;
    this.token = token;
    this.fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
    this.retry = { initialMs: 250, maxMs: 10_000, ...retry };
  }

  /** The absolute or page-relative URL of an API path (`/api/...`). */
  url(path) {
    return this.baseUrl + path;
  }

  /** Headers with the bearer token, if there is one. */
  async headers(extra = {}) {
    const token = typeof this.token === "function" ? await this.token() : this.token;
    return token ? { ...extra, Authorization: `Bearer ${token}` } : { ...extra };
  }

  /** `method path` with an optional JSON body: the JSON answer, or an OffstageError. */
  async request(method, path, body) {
    const headers = await this.headers(body === undefined ? {} : { "Content-Type": "application/json" });
    let response;
    try {
      response = await this.fetch(this.url(path), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (cause) {
      throw new OffstageError("unreachable",
        `the Offstage server at ${this.url("")} did not answer: is it running, and does it allow this origin?`,
        0, { cause });
    }
    if (!response.ok) throw await refusal(response);
    const text = await response.text();
    try {
      return text ? JSON.parse(text) : null;
    } catch (cause) {
      throw new OffstageError("bad_response", `${path} did not answer JSON`, response.status, { cause });
    }
  }

  /** The task `id`'s record (404 `not_found` for an id the token may not see or that is gone). */
  get(id) {
    return this.request("GET", `/api/tasks/${encodeURIComponent(id)}`);
  }

  /**
   * Tasks, newest first: `{tasks, next_before}`. Pass `next_before` as `before` for the next
   * page. `filter` takes `name`, `status`, `owner`, `key`, `parent`, `limit` and `before`.
   */
  list(filter = {}) {
    const query = new URLSearchParams();
    for (const [field, value] of Object.entries(filter)) {
      if (value !== undefined && value !== null) query.set(field, String(value));
    }
    const text = query.toString();
    return this.request("GET", `/api/tasks${text ? `?${text}` : ""}`);
  }

  /**
   * Launches task type `name` with `args` (a token with the `launch` role):
   * `options` are the API's (`key`, `on_conflict`, `timeout_s`, `priority`, `run_at`, `owner`,
   * `parent`, `detached`).
   */
  launch(name, args = {}, options = {}) {
    return this.request("POST", "/api/tasks", { ...options, name, args });
  }

  /**
   * Asks the server to kill task `id` (the `kill` right, or the `control` role); resolves with
   * its record once the kill is under way. The task's `finished` event follows.
   * `options.grace_s` overrides the server's grace period.
   */
  kill(id, options) {
    return this.request("POST", `/api/tasks/${encodeURIComponent(id)}/kill`, options);
  }

  /**
   * Sends task `id` the signal `name` with `payload` (any JSON value; the `signal` right, or
   * the `control` role): kept until the task waits for it. Resolves with the signal as the
   * server keeps it; a task that has ended is an `OffstageError` with code `conflict`.
   */
  signal(id, name, payload = null) {
    return this.request("POST",
      `/api/tasks/${encodeURIComponent(id)}/signals/${encodeURIComponent(name)}`, payload);
  }

  /** Up to `limit` log lines of task `id` after line `after`: `{lines, next_after}`. */
  logs(id, { after = 0, limit } = {}) {
    const query = new URLSearchParams({ after: String(after) });
    if (limit !== undefined) query.set("limit", String(limit));
    return this.request("GET", `/api/tasks/${encodeURIComponent(id)}/logs?${query}`);
  }

  /**
   * Watches task `id`: its current state (from its record) first, then each change, in order,
   * each once, reconnecting after a dropped connection, until it finishes.
   *
   * Handlers (all optional): `snapshot(task)` with the record each time one is read (at the
   * start, and after a gap); `state(state, event)` with the whole state, each time it changes;
   * `log(line, event)`; `finished(task, event)` once, with the final record, after which the
   * watch ends; `error(OffstageError)` when the server refuses the watch (a bad or expired
   * token, an unknown id), which ends it too; `event(type, data)` for every event, the
   * `launched`, `started` and `gap` ones included; `connection(status)` with `live`,
   * `reconnecting` or `ended`.
   *
   * Returns a {@link Watch}: `close()` it when the page no longer shows the task.
   */
  watch(id, handlers = {}) {
    return new Watch(this, `/api/tasks/${encodeURIComponent(id)}/events`, handlers, String(id));
  }

  /**
   * Watches every task the token may see (`/api/events`), from now on: the same handlers as
   * {@link Offstage#watch}, each event with its `task_id`, and `launched(task, event)`,
   * `started(task, event)`. A `gap` event (`event("gap", {first, last})`) means events were
   * lost to the server's replay buffer: re-read what is shown. It never ends by itself.
   */
  watchAll(handlers = {}) {
    return new Watch(this, "/api/events", handlers, null);
  }
}

/**
 * Server-Sent Events, parsed as the HTML standard says: lines end in CR, LF or CRLF (also across
 * chunks), `:` starts a comment, `data` lines join with newlines, `id` is remembered for the
 * reconnect even on events without data, and a blank line ends an event.
 */
export class SseParser {
  /** @param {(event: {type: string, data: string, id: string | null}) => void} onEvent */
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.skipLf = false;
    this.type = "";
    this.data = [];
    this.id = null;
    this.lastId = null;
    this.retry = null;
  }

  /** Feeds decoded text; dispatches each event it completes. */
  feed(text) {
    let start = 0;
    for (let i = 0; i < text.length; i += 1) {
      const c = text.charCodeAt(i);
      if (c === 10 && this.skipLf && i === start && this.buffer === "") {
        // The LF of a CRLF whose CR ended the previous line (maybe in the previous chunk).
        this.skipLf = false;
        start = i + 1;
        continue;
      }
      this.skipLf = false;
      if (c === 13 || c === 10) {
        this.line(this.buffer + text.slice(start, i));
        this.buffer = "";
        this.skipLf = c === 13;
        start = i + 1;
      }
    }
    this.buffer += text.slice(start);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }

  dispatch() {
    const { type, data } = this;
    this.type = "";
    this.data = [];
    if (!data.length) return;
    this.onEvent({ type: type || "message", data: data.join("\n"), id: this.lastId });
  }
}

/**
 * A live watch of one task or of all tasks: what {@link Offstage#watch} and
 * {@link Offstage#watchAll} return.
 */
export class Watch {
  constructor(client, path, handlers, taskId) {
    this.client = client;
    this.path = path;
    this.handlers = handlers;
    this.taskId = taskId;
    /** The id of the last event read: what a reconnect sends as `Last-Event-ID`. */
    this.lastEventId = null;
    /** How many times the stream connected (1 until a connection drops). */
    this.connections = 0;
    this.closed = false;
    this.controller = null;
    this.resumeAfter = null;
    // Events read but not handed out yet: held while a snapshot is being read.
    this.queue = [];
    this.holding = false;
    // The last state handed out, as JSON: a state event that repeats it says nothing new.
    this.lastState = undefined;
    /** Resolves with the final record once the task finished, or null if the watch ended otherwise. */
    this.done = new Promise((resolve) => { this.resolveDone = resolve; });
    this.run();
  }

  /** Stops watching: no handler is called after this. */
  close() {
    this.end(null);
  }

  /**
   * For tests: cuts the current connection, as a network failure would. The watch reconnects
   * (after `until` resolves, if given) and resumes after the last event it read.
   */
  _dropConnection(until) {
    this.resumeAfter = until ?? null;
    this.controller?.abort();
  }

  end(record) {
    if (this.closed) return;
    this.closed = true;
    this.controller?.abort();
    this.queue = [];
    this.resolveDone(record);
  }

  async run() {
    const { initialMs, maxMs } = this.client.retry;
    let delay = initialMs;
    let first = true;
    while (!this.closed) {
      if (!first) {
        call(this.handlers.connection, "reconnecting");
        const wait = this.resumeAfter ?? new Promise((resolve) => {
          setTimeout(resolve, delay * (0.8 + 0.4 * Math.random()));
        });
        this.resumeAfter = null;
        await Promise.resolve(wait).catch(() => {});
        delay = Math.min(delay * 2, maxMs);
        if (this.closed) return;
      }
      first = false;
      const controller = new AbortController();
      this.controller = controller;
      let response;
      try {
        const headers = await this.client.headers({ Accept: "text/event-stream" });
        if (this.lastEventId !== null) headers["Last-Event-ID"] = this.lastEventId;
        response = await this.client.fetch(this.client.url(this.path), {
          headers, signal: controller.signal, cache: "no-store",
        });
      } catch {
        continue;
      }
      if (!response.ok) {
        const refused = await refusal(response);
        if (retryable(response.status)) continue;
        this.fail(refused);
        return;
      }
      this.connections += 1;
      call(this.handlers.connection, "live");
      // A task's watch starts with its record: the stream is open first (the server has
      // subscribed), so nothing that happens after the record is read can be missed.
      if (this.taskId !== null && this.connections === 1) this.snapshot();
      try {
        const ended = await this.read(response.body, controller, () => { delay = initialMs; });
        if (ended && this.closed) return;
      } catch {
        // Dropped: reconnect.
      }
    }
  }

  /** Reads one connection; true when the server ended it, throws when it dropped. */
  async read(body, controller, alive) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser((event) => {
      if (event.id !== null) this.lastEventId = event.id;
      this.queue.push(event);
    });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (controller.signal.aborted) throw new Error("dropped");
        if (done) {
          parser.feed(decoder.decode());
          this.pump();
          return true;
        }
        alive();
        parser.feed(decoder.decode(value, { stream: true }));
        if (parser.lastId !== null) this.lastEventId = parser.lastId;
        this.pump();
        if (controller.signal.aborted) throw new Error("dropped");
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  /**
   * Reads the task's record and hands out its state, holding the events that arrive meanwhile.
   * The record may already reflect some of them: state events up to the last one that equals
   * the record's state are dropped as already seen.
   */
  async snapshot() {
    this.holding = true;
    let record;
    try {
      record = await this.client.get(this.taskId);
    } catch (error) {
      if (error instanceof OffstageError && !retryable(error.status)) {
        this.fail(error);
        return;
      }
      // Unreachable for now: the stream's events still say what changes.
      this.holding = false;
      this.pump();
      return;
    }
    if (this.closed) return;
    const seen = JSON.stringify(record.state);
    let last = -1;
    this.queue.forEach((event, index) => {
      if (event.type === "state" && stateOf(event) === seen) last = index;
    });
    this.queue = this.queue.filter((event, index) => index > last || event.type !== "state");
    call(this.handlers.snapshot, record);
    this.deliverState(record.state, null);
    this.holding = false;
    this.pump();
  }

  deliverState(state, event) {
    const text = JSON.stringify(state);
    if (text === this.lastState) return;
    this.lastState = text;
    call(this.handlers.state, state, event);
  }

  /** Hands out the queued events, unless a snapshot is being read. */
  pump() {
    while (!this.holding && !this.closed && this.queue.length) {
      const raw = this.queue.shift();
      let data;
      try {
        data = JSON.parse(raw.data);
      } catch {
        continue;
      }
      this.deliver(raw.type, data);
    }
  }

  deliver(type, data) {
    const h = this.handlers;
    call(h.event, type, data);
    if (this.closed) return;
    switch (type) {
      case "state":
        this.deliverState(data.state, data);
        break;
      case "log":
        call(h.log, data.line, data);
        break;
      case "launched":
        call(h.launched, withDerived(data.task), data);
        break;
      case "started":
        call(h.started, withDerived(data.task), data);
        break;
      case "finished":
        data.task = withDerived(data.task);
        if (this.taskId !== null) {
          // The final record's state may be newer than the last state event (a state written
          // just before the end and saved with it): hand it out first.
          this.deliverState(data.task.state, data);
          call(h.finished, data.task, data);
          call(h.connection, "ended");
          this.end(data.task);
        } else {
          call(h.finished, data.task, data);
        }
        break;
      case "gap":
        // Events were lost to the server's replay buffer: read the record again.
        if (this.taskId !== null) this.snapshot();
        break;
      case "expired":
        // The scoped token ran out and the server ends the stream. With a token function the
        // next connection asks it for a fresh one and resumes with `Last-Event-ID`; a fixed
        // token would only be refused, so the watch ends here with the server's reason.
        if (typeof this.client.token !== "function") {
          this.fail(new OffstageError(data.code || "token_expired", data.message || "the token expired", 401));
        }
        break;
      default:
        break;
    }
  }

  fail(error) {
    if (this.closed) return;
    call(this.handlers.error, error);
    call(this.handlers.connection, "ended");
    this.end(null);
  }
}

/** An event's record with the fields the API adds to one (`GET /api/tasks/{id}` has them). */
function withDerived(record) {
  const running = record.status === "queued" || record.status === "running";
  return { ...record, termination_status: running ? null : record.status, is_running: running };
}

function stateOf(raw) {
  try {
    return JSON.stringify(JSON.parse(raw.data).state);
  } catch {
    return undefined;
  }
}
