// The Offstage dashboard: every task, live, with kill, logs and a launch form; the schedules,
// with pause, resume, delete and a form to add one; the shared documents, live, with an editor.
//
// No framework and no build step: this file is served as is, compiled into the `offstage` binary.
// It reads the same JSON API and event stream as every other client. Views are routes in the URL
// hash (`#/`, `#/tasks/<id>`, `#/launch`, `#/schedules`, `#/shared`, `#/shared/<name>`), so a
// reload or a shared link shows the same thing.
// Every URL starts from the base the server put in the page, so it works wherever the router is
// mounted.
"use strict";

const BASE = document.querySelector('meta[name="offstage-base"]')?.content || "";

// ---------------------------------------------------------------------------------------------
// Small DOM helpers. Data is only ever put in the page as text, never parsed as HTML.

/** Builds an element: `h("a", {href: "#/"}, "text", child)`. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const $ = (selector, root = document) => root.querySelector(selector);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Formatting.

const STATUSES = ["queued", "running", "completed", "failed", "killed", "missing"];
const STATUS_MARK = {
  queued: "○", running: "●", completed: "✓", failed: "✕", killed: "■", missing: "?",
};

function badge(status) {
  return h("span", { class: `badge s-${status}`, "data-status": status },
    h("span", { class: "mark", "aria-hidden": "true" }, STATUS_MARK[status] || "·"), status);
}

const timeOfDay = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const dayAndTime = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

function fmtTime(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  const today = new Date().toDateString() === at.toDateString();
  return (today ? timeOfDay : dayAndTime).format(at);
}

function timeEl(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso, title: iso }, fmtTime(iso));
}

function fmtDuration(ms) {
  ms = Math.max(0, ms);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const pad = (n) => String(Math.floor(n)).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)} m ${pad(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${pad((s % 3600) / 60)} m`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** How long a task ran, or has been running: ticks while it runs (see `tick`). */
function durationEl(task) {
  const since = task.started_at;
  if (!since) return h("span", { class: "muted" }, task.status === "queued" ? "waiting" : "—");
  if (task.finished_at) {
    return h("span", {}, fmtDuration(Date.parse(task.finished_at) - Date.parse(since)));
  }
  const el = h("span", { class: "ticking", "data-since": since });
  el.textContent = fmtDuration(Date.now() - Date.parse(since));
  return el;
}

/** "in 4 s", "in 2 m 05 s", or "due now" once the time has come. */
function fmtUntil(ms) {
  if (ms <= 0) return "due now";
  const s = Math.ceil(ms / 1000);
  return `in ${s < 60 ? `${s} s` : fmtDuration(s * 1000)}`;
}

/** "just now", "12 s ago", "3 m 05 s ago". */
function fmtAgo(ms) {
  const s = Math.floor(Math.max(0, ms) / 1000);
  if (s < 1) return "just now";
  return `${s < 60 ? `${s} s` : fmtDuration(s * 1000)} ago`;
}

/** A time relative to now, `until` it or `ago`; ticks each second (see `tick`). */
function relativeEl(iso, kind) {
  const el = h("span", { class: "relative", [`data-${kind}`]: iso });
  const ms = Date.parse(iso) - Date.now();
  el.textContent = kind === "until" ? fmtUntil(ms) : fmtAgo(-ms);
  return el;
}

function tick() {
  const now = Date.now();
  const set = (el, text) => { if (el.textContent !== text) el.textContent = text; };
  for (const el of document.querySelectorAll("[data-since]")) {
    set(el, fmtDuration(now - Date.parse(el.dataset.since)));
  }
  for (const el of document.querySelectorAll("[data-until]")) {
    set(el, fmtUntil(Date.parse(el.dataset.until) - now));
  }
  for (const el of document.querySelectorAll("[data-ago]")) {
    set(el, fmtAgo(now - Date.parse(el.dataset.ago)));
  }
}
setInterval(tick, 1000);

/** The progress convention the CLI draws too: `{done, total}`, or `{progress}` in 0..1. */
function progressOf(state) {
  if (!state || typeof state !== "object") return null;
  if (typeof state.progress === "number" && Number.isFinite(state.progress)) {
    const fraction = Math.min(1, Math.max(0, state.progress));
    return { fraction, label: `${Math.round(fraction * 100)}%` };
  }
  if (typeof state.done === "number" && typeof state.total === "number" && state.total > 0) {
    const fraction = Math.min(1, Math.max(0, state.done / state.total));
    return { fraction, label: `${state.done} of ${state.total}` };
  }
  return null;
}

function progressEl(task, label) {
  const progress = progressOf(task.state);
  if (!progress) return h("span", { class: "muted" }, "—");
  return h("span", { class: "progress" },
    h("progress", {
      max: 1, value: progress.fraction,
      "aria-label": `${label || task.name} progress`, "aria-valuetext": progress.label,
    }),
    h("span", { class: "progress-label" }, progress.label));
}

const pretty = (value) => JSON.stringify(value, null, 2);
const shortId = (id) => id.slice(-12);

// ---------------------------------------------------------------------------------------------
// Session: the bearer token (kept for this browser tab only) and what it may do.

const ROLE_RANK = { read: 0, launch: 1, control: 2 };
const session = {
  token: sessionStorage.getItem("offstage.token"),
  role: null,
  authRequired: false,
  can(role) {
    return this.role in ROLE_RANK && ROLE_RANK[this.role] >= ROLE_RANK[role];
  },
};

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function authHeaders(extra) {
  const headers = { ...extra };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  return headers;
}

async function api(path, { method = "GET", body } = {}) {
  const headers = authHeaders(body === undefined ? {} : { "Content-Type": "application/json" });
  let response;
  try {
    response = await fetch(BASE + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, "unreachable", "The server did not answer. Is it still running?");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: reported below */ }
  if (!response.ok) {
    const error = data && data.error;
    const failure = new ApiError(response.status, error ? error.code : `http_${response.status}`,
      error ? error.message : `${response.status} ${response.statusText}`);
    if (response.status === 401) signIn(failure.message);
    throw failure;
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events over fetch: `EventSource` cannot send a bearer token. Reconnects with
// backoff and resumes after the last event it saw (`Last-Event-ID`).

class EventStream {
  /**
   * @param {string} path the stream's URL
   * @param {object} handlers `open()` runs each time the stream is (re)connected, before any
   *   event is delivered: read the current state there, and nothing between is missed.
   *   `event(type, data)` gets each event; `ended()` runs when the server ends the stream.
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
          const body = await response.json().catch(() => null);
          const message = body && body.error ? body.error.message : response.statusText;
          if (response.status === 401) signIn(message);
          if (response.status < 500) {
            setLive("off");
            this.handlers.failed?.(new ApiError(response.status, body?.error?.code, message));
            return;
          }
          throw new Error(message);
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

function setLive(state) {
  const el = $("#live");
  el.dataset.state = state;
  el.textContent = {
    live: "Live", reconnecting: "Reconnecting…", ended: "Task over", off: "Offline", idle: "",
  }[state];
}

/**
 * Events waiting to be shown. They are applied many per frame, not one repaint each (a busy
 * server sends thousands a second), and held while a view reads its snapshot, so none that
 * arrive meanwhile are lost. A backlog too long to be worth replaying (a hidden tab gets no
 * frames) collapses into one `gap`, and the view reads a fresh snapshot instead.
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

// ---------------------------------------------------------------------------------------------
// Routing. One view at a time; leaving a view stops its streams.

let current = { stop() {} };

function parseRoute() {
  const hash = location.hash.startsWith("#/") ? location.hash.slice(1) : "/";
  const [path, query = ""] = hash.split("?");
  return { path, params: new URLSearchParams(query) };
}

function go(path, params) {
  const query = params && [...params].length ? `?${params}` : "";
  location.hash = `#${path}${query}`;
}

async function route() {
  if (!location.hash.startsWith("#/") && location.hash !== "") return;
  current.stop();
  setLive("idle");
  document.title = "Offstage";
  const main = $("#main");
  main.replaceChildren();
  const { path, params } = parseRoute();
  const section = path === "/launch" ? "launch"
    : path === "/schedules" ? "schedules"
      : path === "/shared" || path.startsWith("/shared/") ? "shared" : "tasks";
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const task = path.match(/^\/tasks\/([0-9a-fA-F-]{36})$/);
  const shared = path.match(/^\/shared\/(.+)$/);
  if (task) current = taskView(main, task[1]);
  else if (path === "/launch") current = launchView(main, params);
  else if (path === "/schedules") current = schedulesView(main);
  else if (path === "/shared") current = sharedListView(main);
  else if (shared) current = sharedView(main, decodeName(shared[1]));
  else current = listView(main, params);
}

/** A name from a route: names are put in links with `encodeURIComponent`. */
function decodeName(text) {
  try { return decodeURIComponent(text); } catch { return text; }
}

/** Asks before something that cannot be undone; true if the user confirmed. */
function confirmDialog({ title, text, keep, confirm }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-keep").textContent = keep;
  $("#confirm-ok").textContent = confirm;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"),
      { once: true });
    dialog.showModal();
  });
}

/** Calls `run` soon, at most once a second, never twice at once. */
function throttled(run) {
  let last = 0;
  let timer = null;
  let running = false;
  let again = false;
  const go = async () => {
    clearTimeout(timer);
    timer = null;
    if (running) { again = true; return; }
    running = true;
    last = Date.now();
    try { await run(); } finally {
      running = false;
      if (again) { again = false; soon(); }
    }
  };
  const soon = () => {
    if (timer) return;
    timer = setTimeout(go, Math.max(0, last + 1000 - Date.now()));
  };
  return { soon, now: go, stop() { clearTimeout(timer); } };
}

// ---------------------------------------------------------------------------------------------
// The task list: newest first, filtered, paginated, live.

const PAGE = 50;

function matches(task, filter) {
  return (!filter.name || task.name === filter.name)
    && (!filter.status || task.status === filter.status)
    && (!filter.owner || task.owner === filter.owner);
}

function listView(main, params) {
  const filter = {
    name: params.get("name") || "",
    status: params.get("status") || "",
    owner: params.get("owner") || "",
    before: params.get("before") || "",
  };
  const tasks = new Map();
  const rows = new Map();
  let nextBefore = null;

  const nameInput = h("input", {
    id: "f-name", name: "name", value: filter.name, list: "task-types", placeholder: "any",
    autocomplete: "off",
  });
  const statusSelect = h("select", { id: "f-status", name: "status" },
    h("option", { value: "" }, "any"),
    STATUSES.map((s) => h("option", { value: s, selected: s === filter.status }, s)));
  const ownerInput = h("input", {
    id: "f-owner", name: "owner", value: filter.owner, placeholder: "any", autocomplete: "off",
  });
  const applyFilters = (event) => {
    event?.preventDefault();
    const next = new URLSearchParams();
    for (const [key, input] of [["name", nameInput], ["status", statusSelect],
      ["owner", ownerInput]]) {
      if (input.value.trim()) next.set(key, input.value.trim());
    }
    go("/", next);
  };
  statusSelect.addEventListener("change", applyFilters);

  const findInput = h("input", {
    id: "f-id", name: "id", placeholder: "task id", autocomplete: "off", spellcheck: "false",
  });
  const findError = h("p", { class: "field-error", id: "f-id-error", role: "alert" });
  const find = (event) => {
    event.preventDefault();
    const id = findInput.value.trim();
    if (/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(id)) {
      go(`/tasks/${id.toLowerCase()}`);
    } else {
      findError.textContent = "A task id looks like 019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b.";
      findInput.setAttribute("aria-invalid", "true");
    }
  };

  const tbody = h("tbody");
  const table = h("table", { class: "grid tasks" },
    h("caption", { class: "sr-only" }, "Tasks, newest first"),
    h("thead", {}, h("tr", {},
      ["Status", "Task", "Progress", "Started", "Duration", "Owner", "Id"].map(
        (label) => h("th", { scope: "col" }, label)))),
    tbody);
  const empty = h("div", { class: "empty", hidden: true });
  const older = h("a", { class: "button ghost", hidden: true }, "Older →");
  const newest = h("a", { class: "button ghost", hidden: !filter.before }, "← Newest");
  const newestParams = new URLSearchParams(params);
  newestParams.delete("before");
  newest.href = `#/${newestParams.size ? `?${newestParams}` : ""}`;
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  const summary = h("nav", { class: "summary", "aria-label": "Tasks by status" });

  main.append(
    h("div", { class: "page-head" },
      h("h1", {}, "Tasks"),
      session.can("launch") && h("a", { class: "button primary", href: "#/launch" }, "Launch a task")),
    h("div", { class: "toolbar" },
      h("form", { class: "filters", onsubmit: applyFilters, "aria-label": "Filter tasks" },
        h("label", { for: "f-name" }, "Name", nameInput),
        h("label", { for: "f-status" }, "Status", statusSelect),
        h("label", { for: "f-owner" }, "Owner", ownerInput),
        h("button", { type: "submit" }, "Filter"),
        (filter.name || filter.status || filter.owner)
          && h("a", { class: "button ghost", href: "#/" }, "Clear")),
      h("form", { class: "find", onsubmit: find, "aria-label": "Find a task by id" },
        h("label", { for: "f-id" }, "Find by id", findInput),
        h("button", { type: "submit" }, "Open"),
        findError)),
    h("datalist", { id: "task-types" }),
    summary,
    problem,
    h("div", { class: "table-wrap" }, table),
    empty,
    h("nav", { class: "pager", "aria-label": "Pages" }, newest, older));

  // How many tasks there are of each status (of the filtered task type, if one is): read with
  // the task types, and again at most once a second while tasks start and end.
  let countsTimer = null;
  async function refreshCounts() {
    let body;
    try { body = await api("api/task-types"); } catch { return; }
    $("#task-types")?.replaceChildren(
      ...body.task_types.map((type) => h("option", { value: type.name })));
    const totals = Object.fromEntries(STATUSES.map((status) => [status, 0]));
    for (const type of body.task_types) {
      if (filter.name && type.name !== filter.name) continue;
      for (const status of STATUSES) totals[status] += type.counts[status] || 0;
    }
    const link = (status, label, count) => {
      const next = new URLSearchParams();
      if (filter.name) next.set("name", filter.name);
      if (filter.owner) next.set("owner", filter.owner);
      if (status) next.set("status", status);
      return h("a", {
        class: `chip${status ? ` s-${status}` : ""}`, href: `#/${next.size ? `?${next}` : ""}`,
        "aria-current": (filter.status || "") === status ? "true" : null,
        "data-status": status || "all",
      }, status && h("span", { class: "mark", "aria-hidden": "true" }, STATUS_MARK[status]),
      h("span", { class: "count" }, count.toLocaleString()), ` ${label}`);
    };
    const all = STATUSES.reduce((sum, status) => sum + totals[status], 0);
    summary.replaceChildren(link("", "all", all),
      ...STATUSES.map((status) => link(status, status, totals[status])));
  }
  const refreshCountsSoon = () => {
    if (countsTimer) return;
    countsTimer = setTimeout(() => { countsTimer = null; refreshCounts(); }, 1000);
  };
  refreshCounts();

  /** The row for `task`, made or brought up to date. Only the cells that can change are
   *  replaced, so a link under the pointer is never swapped out mid-click. */
  function renderRow(task) {
    const changing = () => [
      badge(task.status),
      progressEl(task),
      task.started_at || task.status !== "queued" ? timeEl(task.started_at)
        : h("span", { class: "muted" }, "at ", timeEl(task.run_at)),
      durationEl(task),
      task.owner || h("span", { class: "muted" }, "—"),
    ];
    const row = rows.get(task.id);
    if (row) {
      const cells = row.querySelectorAll("td[data-live]");
      changing().forEach((content, i) => cells[i].replaceChildren(content));
      row.dataset.status = task.status;
      return row;
    }
    const [status, progress, started, duration, owner] = changing();
    const fresh = h("tr", { "data-id": task.id, "data-status": task.status },
      h("td", { "data-live": "" }, status),
      h("td", { class: "name" }, h("a", { href: `#/tasks/${task.id}` }, task.name)),
      h("td", { "data-live": "" }, progress),
      h("td", { "data-live": "" }, started),
      h("td", { class: "num", "data-live": "" }, duration),
      h("td", { "data-live": "" }, owner),
      h("td", { class: "id" }, h("code", { title: task.id }, shortId(task.id))));
    rows.set(task.id, fresh);
    return fresh;
  }

  function showEmpty() {
    const none = tasks.size === 0;
    empty.hidden = !none;
    table.hidden = none;
    if (none) {
      const filtered = filter.name || filter.status || filter.owner;
      empty.replaceChildren(
        h("p", {}, filtered ? "No tasks match these filters." : "No tasks yet."),
        !filtered && session.can("launch")
          && h("a", { class: "button primary", href: "#/launch" }, "Launch the first one"));
    }
  }

  async function load() {
    const query = new URLSearchParams({ limit: String(PAGE) });
    for (const key of ["name", "status", "owner", "before"]) {
      if (filter[key]) query.set(key, filter[key]);
    }
    try {
      const page = await api(`api/tasks?${query}`);
      tasks.clear();
      rows.clear();
      for (const task of page.tasks) tasks.set(task.id, task);
      tbody.replaceChildren(...page.tasks.map(renderRow));
      nextBefore = page.next_before;
      problem.hidden = true;
    } catch (error) {
      problem.textContent = error.message;
      problem.hidden = false;
    }
    if (nextBefore) {
      const next = new URLSearchParams(params);
      next.set("before", nextBefore);
      older.href = `#/?${next}`;
    }
    older.hidden = !nextBefore;
    showEmpty();
  }

  /** Puts `task` in its place: ids are time-ordered, so newest first is descending id order. */
  function place(task) {
    const known = tasks.has(task.id);
    tasks.set(task.id, task);
    const row = renderRow(task);
    if (known) return;
    let before = null;
    for (const other of tbody.children) {
      if (other.dataset.id < task.id) { before = other; break; }
    }
    tbody.insertBefore(row, before);
    while (tbody.children.length > PAGE) {
      const last = tbody.lastElementChild;
      tasks.delete(last.dataset.id);
      rows.delete(last.dataset.id);
      last.remove();
      older.hidden = false;
      const next = new URLSearchParams(params);
      next.set("before", tbody.lastElementChild.dataset.id);
      older.href = `#/?${next}`;
    }
  }

  const queue = eventQueue((batch) => {
    for (const [type, event] of batch) {
      const known = tasks.get(event.task_id);
      if (type === "state") {
        if (known) { known.state = event.state; renderRow(known); }
      } else if (type === "launched" || type === "started" || type === "finished") {
        refreshCountsSoon();
        const task = event.task;
        if (known) { Object.assign(known, task); renderRow(known); continue; }
        // New rows appear only on the first page, and only if they belong on it.
        if (filter.before || !matches(task, filter)) continue;
        const oldest = tbody.lastElementChild?.dataset.id;
        if (tasks.size < PAGE || !oldest || task.id > oldest) place(task);
      } else if (type === "gap") {
        reading(queue, load);
        return;
      }
    }
    showEmpty();
  });

  const stream = new EventStream("api/events", {
    open: () => reading(queue, load),
    event: (type, data) => queue.push([type, data]),
    failed: (error) => { problem.textContent = error.message; problem.hidden = false; },
  });
  return {
    stop() {
      stream.stop();
      clearTimeout(countsTimer);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// One task: everything about it, live, with its log and a Kill button.

const LOG_KEEP = 5000;

function taskView(main, id) {
  let task = null;
  let lastLog = 0;
  let follow = true;

  const title = h("h1", {}, "Task");
  const status = h("span", { class: "status-slot" });
  const killButton = h("button", { type: "button", class: "danger", hidden: true }, "Kill");
  const progress = h("div", { class: "big-progress" });
  const outcome = h("div", { class: "outcome", role: "status", "aria-live": "polite" });
  const facts = h("dl", { class: "facts" });
  const args = h("pre", { class: "json", tabindex: "0", "aria-label": "Args" });
  const state = h("pre", { class: "json", tabindex: "0", "aria-label": "State" });
  const stateNote = h("span", { class: "muted small" });
  const log = h("ol", { class: "log", "aria-label": "Log lines" });
  const logBox = h("div", { class: "log-box", tabindex: "0" }, log);
  const logNote = h("p", { class: "muted small" });
  const followBox = h("input", { type: "checkbox", id: "follow", checked: true });
  followBox.addEventListener("change", () => {
    follow = followBox.checked;
    if (follow) logBox.scrollTop = logBox.scrollHeight;
  });
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });

  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← All tasks")),
    h("div", { class: "page-head" }, h("div", { class: "title" }, title, status), killButton),
    problem,
    progress,
    outcome,
    h("div", { class: "detail" },
      h("section", { class: "card", "aria-labelledby": "h-facts" },
        h("h2", { id: "h-facts" }, "Details"), facts),
      h("section", { class: "card", "aria-labelledby": "h-args" },
        h("h2", { id: "h-args" }, "Args"), args),
      h("section", { class: "card", "aria-labelledby": "h-state" },
        h("h2", { id: "h-state" }, "State ", stateNote), state)),
    h("section", { class: "card logs", "aria-labelledby": "h-log" },
      h("div", { class: "card-head" },
        h("h2", { id: "h-log" }, "Log"),
        h("label", { class: "toggle", for: "follow" }, followBox, "Follow")),
      logBox, logNote));

  function fact(label, value) {
    return [h("dt", {}, label), h("dd", {}, value)];
  }

  function render() {
    title.textContent = task.name;
    document.title = `${task.name} · Offstage`;
    status.replaceChildren(badge(task.status));
    killButton.hidden = !(session.can("control") && task.is_running);
    progress.replaceChildren(progressOf(task.state) ? progressEl(task) : "");
    facts.replaceChildren(
      ...fact("Id", h("code", {}, task.id)),
      ...fact("Launched", timeEl(task.launched_at)),
      ...fact("Started", timeEl(task.started_at)),
      ...fact("Finished", timeEl(task.finished_at)),
      ...fact("Duration", durationEl(task)),
      ...fact("Attempt", String(task.attempt)),
      ...fact("Owner", task.owner || "—"),
      ...fact("Key", task.key || "—"),
      ...fact("Priority", String(task.priority)),
      ...fact("Timeout", task.timeout_s ? fmtDuration(task.timeout_s * 1000) : "none"),
      ...fact("Node", task.node ? h("code", {}, task.node) : "—"),
      ...fact("Isolated", task.isolated ? "yes, in a worker process of its own" : "no"),
      ...(task.run_at !== task.launched_at ? fact("Run at", timeEl(task.run_at)) : []));
    args.textContent = pretty(task.args);
    state.textContent = pretty(task.state);
    stateNote.textContent = task.is_running ? "live" : "final";
    renderOutcome();
  }

  function renderOutcome() {
    outcome.className = `outcome o-${task.status}`;
    if (task.status === "completed") {
      outcome.replaceChildren(h("h2", {}, "Return value"),
        h("pre", { class: "json", tabindex: "0" }, pretty(task.return_value)));
    } else if (task.error) {
      outcome.replaceChildren(
        h("h2", {}, task.status === "failed" ? "Error" : `Ended ${task.status}`),
        h("p", { class: "error-line" }, h("code", { class: "kind" }, task.error.kind), " ",
          h("span", { class: "message" }, task.error.message)),
        task.error.detail != null
          ? h("pre", { class: "json", tabindex: "0" }, pretty(task.error.detail)) : "");
    } else {
      outcome.replaceChildren();
    }
  }

  function appendLines(lines) {
    const fresh = lines.filter((line) => line.seq > lastLog);
    if (!fresh.length) return;
    lastLog = fresh[fresh.length - 1].seq;
    log.append(...fresh.map((line) => h("li", { class: `l-${line.level}`, "data-seq": line.seq },
      h("time", { datetime: line.at, title: line.at }, fmtTime(line.at)),
      h("span", { class: "level" }, line.level),
      h("span", { class: "msg" }, line.message))));
    let dropped = 0;
    while (log.children.length > LOG_KEEP) { log.firstElementChild.remove(); dropped += 1; }
    if (dropped) {
      logNote.textContent = `Showing the last ${LOG_KEEP} lines; \`offstage logs ${id}\` has them all.`;
    }
    if (follow) logBox.scrollTop = logBox.scrollHeight;
  }

  async function load() {
    try {
      task = await api(`api/tasks/${id}`);
      render();
      for (;;) {
        const page = await api(`api/tasks/${id}/logs?after=${lastLog}&limit=5000`);
        appendLines(page.lines);
        if (page.lines.length < 5000) break;
      }
      if (!log.children.length) logNote.textContent = "No log lines yet.";
      problem.hidden = true;
    } catch (error) {
      showProblem(error);
    }
  }

  function showProblem(error) {
    if (error.status === 404) {
      main.replaceChildren(h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← All tasks")),
        h("h1", {}, "No such task"),
        h("p", {}, `There is no task with id ${id}. It may have been purged.`));
      document.title = "No such task · Offstage";
      stream.stop();
      return;
    }
    problem.textContent = error.message;
    problem.hidden = false;
  }

  const queue = eventQueue((batch) => {
    if (!task) return;
    const lines = [];
    for (const [type, event] of batch) {
      if (type === "state") task.state = event.state;
      else if (type === "log") lines.push(event.line);
      else if (type === "started" || type === "finished" || type === "launched") {
        task = { ...task, ...event.task, ...derived(event.task) };
      } else if (type === "gap") {
        reading(queue, load);
        return;
      }
    }
    if (lines.length) { logNote.textContent = ""; appendLines(lines); }
    render();
  });

  // The stream starts from the task's launch (`Last-Event-ID: 0`): the events the server still
  // buffers include log lines not yet saved, which the snapshot cannot have.
  const stream = new EventStream(`api/tasks/${id}/events`, {
    lastId: 0,
    open: () => reading(queue, load),
    event: (type, data) => queue.push([type, data]),
    ended: () => setLive("ended"),
    failed: showProblem,
  });

  killButton.addEventListener("click", () => {
    const dialog = $("#kill-dialog");
    $("#kill-text").textContent = `${task.name} (${id}) gets the grace period to stop by `
      + "itself, then it is aborted. It ends killed, keeping its last state and log.";
    dialog.returnValue = "";
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "kill") return;
      killButton.disabled = true;
      killButton.textContent = "Killing…";
      try {
        await api(`api/tasks/${id}/kill`, { method: "POST" });
      } catch (error) {
        showProblem(error);
        killButton.disabled = false;
        killButton.textContent = "Kill";
      }
    }, { once: true });
    dialog.showModal();
  });

  return { stop: () => stream.stop() };
}

/** The fields the API derives from a record, for records that arrive in events. */
function derived(record) {
  const terminal = !["queued", "running"].includes(record.status);
  return { termination_status: terminal ? record.status : null, is_running: !terminal };
}

// ---------------------------------------------------------------------------------------------
// Launch a task: pick a type, give JSON args, see why the server said no.

function launchView(main, params) {
  if (!session.can("launch")) {
    main.append(h("h1", {}, "Launch"),
      h("p", {}, `Your token has role ${session.role}: launching needs role launch or control.`));
    return { stop() {} };
  }
  const typeSelect = h("select", { id: "l-name", name: "name", required: true });
  const argsInput = h("textarea", {
    id: "l-args", name: "args", rows: 8, spellcheck: "false", "aria-describedby": "l-args-help",
  });
  argsInput.value = params.get("args") || "{}";
  // The args each type takes (its JSON Schema's properties) and an example to start from.
  const argsHelp = h("p", { id: "l-args-help", class: "muted small" },
    "The task type checks them before anything runs; if they do not fit, it says why.");
  const argsFields = h("dl", { class: "args-fields small", id: "l-args-fields", hidden: true });
  let typesByName = new Map();
  let edited = params.has("args");
  argsInput.addEventListener("input", () => { edited = true; });
  function describeType() {
    const type = typesByName.get(typeSelect.value);
    const schema = type && type.args_schema;
    if (type && type.args_example !== undefined && type.args_example !== null && !edited) {
      argsInput.value = JSON.stringify(type.args_example, null, 2);
    }
    const properties = (schema && schema.properties) || {};
    const required = new Set((schema && schema.required) || []);
    const names = Object.keys(properties);
    argsFields.replaceChildren(...names.flatMap((name) => {
      const property = properties[name] || {};
      const kind = [].concat(property.type || []).join(" or ") || "any JSON";
      return [h("dt", {}, h("code", {}, name), required.has(name) ? "" : " (optional)"),
        h("dd", {}, kind, property.description ? ` · ${property.description}` : "")];
    }));
    argsFields.hidden = names.length === 0;
  }
  typeSelect.addEventListener("change", () => { edited = false; describeType(); });
  const ownerInput = h("input", { id: "l-owner", name: "owner", autocomplete: "off" });
  const keyInput = h("input", { id: "l-key", name: "key", autocomplete: "off" });
  const conflictSelect = h("select", { id: "l-conflict", name: "on_conflict" },
    h("option", { value: "" }, "launch anyway"),
    h("option", { value: "reject" }, "refuse"),
    h("option", { value: "existing" }, "open the live one"),
    h("option", { value: "supersede" }, "kill it, then launch"));
  const timeoutInput = h("input", {
    id: "l-timeout", name: "timeout_s", type: "number", min: "0", step: "any",
    inputmode: "decimal",
  });
  const priorityInput = h("input", {
    id: "l-priority", name: "priority", type: "number", step: "1", inputmode: "numeric",
  });
  const delayInput = h("input", {
    id: "l-delay", name: "delay_s", type: "number", min: "0", step: "any", inputmode: "decimal",
  });
  const problem = h("div", { class: "notice error", role: "alert", id: "l-error", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Launch");

  async function launch(event) {
    event.preventDefault();
    problem.hidden = true;
    argsInput.removeAttribute("aria-invalid");
    let args;
    try {
      args = JSON.parse(argsInput.value || "{}");
    } catch (error) {
      argsInput.setAttribute("aria-invalid", "true");
      problem.textContent = `The args are not JSON: ${error.message}`;
      problem.hidden = false;
      argsInput.focus();
      return;
    }
    const body = { name: typeSelect.value, args };
    if (ownerInput.value.trim()) body.owner = ownerInput.value.trim();
    if (keyInput.value.trim()) body.key = keyInput.value.trim();
    if (body.key && conflictSelect.value) body.on_conflict = conflictSelect.value;
    if (timeoutInput.value) body.timeout_s = Number(timeoutInput.value);
    if (priorityInput.value) body.priority = Number(priorityInput.value);
    if (delayInput.value) body.delay_s = Number(delayInput.value);
    submit.disabled = true;
    try {
      const task = await api("api/tasks", { method: "POST", body });
      go(`/tasks/${task.id}`);
    } catch (error) {
      problem.replaceChildren(h("strong", {}, "Not launched. "), error.message);
      problem.hidden = false;
      if (error.code === "invalid_args") argsInput.setAttribute("aria-invalid", "true");
    } finally {
      submit.disabled = false;
    }
  }

  main.append(
    h("h1", {}, "Launch a task"),
    h("form", { class: "launch card", onsubmit: launch },
      h("label", { for: "l-name" }, "Task type", typeSelect),
      h("label", { for: "l-args" }, "Args (JSON)", argsInput),
      argsFields,
      argsHelp,
      h("details", {},
        h("summary", {}, "Options"),
        h("div", { class: "options" },
          h("label", { for: "l-owner" }, "Owner", ownerInput),
          h("label", { for: "l-key" }, "Key", keyInput),
          h("label", { for: "l-conflict" }, "If one with this key is live", conflictSelect),
          h("label", { for: "l-timeout" }, "Timeout (s)", timeoutInput),
          h("label", { for: "l-priority" }, "Priority", priorityInput),
          h("label", { for: "l-delay" }, "Start in (s)", delayInput))),
      problem,
      h("div", { class: "actions" }, submit)));

  api("api/task-types").then((body) => {
    const wanted = params.get("name");
    typesByName = new Map(body.task_types.map((type) => [type.name, type]));
    typeSelect.replaceChildren(...body.task_types.map((type) =>
      h("option", { value: type.name, selected: type.name === wanted }, type.name)));
    describeType();
    if (!body.task_types.length) {
      problem.textContent = "This server has no task types registered.";
      problem.hidden = false;
      submit.disabled = true;
    }
  }).catch((error) => { problem.textContent = error.message; problem.hidden = false; });
  return { stop() {} };
}

// ---------------------------------------------------------------------------------------------
// Schedules: what launches by itself, when it next will, and what it launched last.

const SCHEDULE_MARK = { active: "▶", paused: "❚❚" };

function scheduleBadge(schedule) {
  const state = schedule.paused ? "paused" : "active";
  return h("span", { class: `badge s-${state}` },
    h("span", { class: "mark", "aria-hidden": "true" }, SCHEDULE_MARK[state]), state);
}

/** Replaces what `cell` shows only when `key` changed, so a link or button under the pointer
 *  is not swapped out for an identical one. */
function setCell(cell, key, make) {
  if (cell.dataset.key === key) return;
  cell.dataset.key = key;
  cell.replaceChildren(...[make()].flat(Infinity).filter((child) => child));
}

function schedulesView(main) {
  document.title = "Schedules · Offstage";
  const canControl = session.can("control");
  const enc = encodeURIComponent;
  let schedules = [];
  let stopped = false;
  const rows = new Map();

  const tbody = h("tbody");
  const table = h("table", { class: "grid schedules" },
    h("caption", { class: "sr-only" }, "Schedules, by name"),
    h("thead", {}, h("tr", {},
      ["Name", "Cron (UTC)", "Task type", "Next tick", "Last tick", "State"]
        .concat(canControl ? ["Actions"] : [])
        .map((label) => h("th", { scope: "col" }, label)))),
    tbody);
  const empty = h("div", { class: "empty", hidden: true },
    h("p", {}, "No schedules yet."),
    canControl && h("p", { class: "small" }, "Add one with the form below, "
      + "or declare it in the app with RuntimeBuilder::schedule."));
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });

  function showProblem(error) {
    problem.textContent = error.message;
    problem.hidden = false;
  }

  function renderRow(schedule) {
    let row = rows.get(schedule.name);
    if (!row) {
      const cells = ["name", "cron", "task", "next", "last", "state"]
        .map((cell) => h("td", { class: cell }));
      cells[0].append(schedule.name);
      if (canControl) {
        const toggle = h("button", { type: "button", class: "compact toggle" });
        toggle.addEventListener("click", () => setPaused(schedule.name, toggle));
        const remove = h("button", {
          type: "button", class: "compact delete", "aria-label": `Delete ${schedule.name}`,
          onclick: () => removeSchedule(schedule.name),
        }, "Delete");
        cells.push(h("td", { class: "controls" }, h("div", { class: "row-actions" }, toggle, remove)));
      }
      row = h("tr", { "data-name": schedule.name }, cells);
      rows.set(schedule.name, row);
    }
    row.dataset.state = schedule.paused ? "paused" : "active";
    const cell = (name) => row.querySelector(`td.${name}`);
    setCell(cell("cron"), schedule.cron, () => h("code", {}, schedule.cron));
    setCell(cell("task"), schedule.task, () =>
      h("a", { href: `#/?name=${enc(schedule.task)}`, title: `Tasks of type ${schedule.task}` },
        schedule.task));
    setCell(cell("next"), `${schedule.paused}|${schedule.next_tick_at}`, () => {
      if (schedule.paused) return h("span", { class: "muted" }, "paused");
      if (!schedule.next_tick_at) return h("span", { class: "muted" }, "none to come");
      return [relativeEl(schedule.next_tick_at, "until"), h("span", { class: "muted" }, " · "),
        timeEl(schedule.next_tick_at)];
    });
    setCell(cell("last"), `${schedule.last_tick_at}|${schedule.last_task_id}`, () => {
      if (!schedule.last_tick_at) return h("span", { class: "muted" }, "never");
      return [relativeEl(schedule.last_tick_at, "ago"), h("span", { class: "muted" }, " · "),
        timeEl(schedule.last_tick_at),
        schedule.last_task_id && [h("span", { class: "muted" }, " · "),
          h("a", { class: "last-task", href: `#/tasks/${schedule.last_task_id}`,
            title: `The task this schedule launched last: ${schedule.last_task_id}` },
          "task ", h("code", {}, shortId(schedule.last_task_id)))]];
    });
    setCell(cell("state"), String(schedule.paused), () => scheduleBadge(schedule));
    const toggle = row.querySelector("button.toggle");
    if (toggle) {
      const action = schedule.paused ? "resume" : "pause";
      toggle.dataset.action = action;
      toggle.textContent = schedule.paused ? "Resume" : "Pause";
      toggle.setAttribute("aria-label", `${toggle.textContent} ${schedule.name}`);
    }
    return row;
  }

  function render() {
    const names = new Set(schedules.map((schedule) => schedule.name));
    for (const [name, row] of rows) {
      if (!names.has(name)) { row.remove(); rows.delete(name); }
    }
    const ordered = schedules.map(renderRow);
    const inOrder = ordered.length === tbody.children.length
      && ordered.every((row, i) => tbody.children[i] === row);
    if (!inOrder) tbody.replaceChildren(...ordered);
    empty.hidden = schedules.length > 0;
    table.hidden = schedules.length === 0;
  }

  // Reads may overlap (the stream reconnecting, a re-read after an action): the latest wins.
  let reads = 0;
  async function load() {
    const read = ++reads;
    try {
      const body = await api("api/schedules");
      if (stopped || read !== reads) return;
      schedules = body.schedules;
      render();
      problem.hidden = true;
    } catch (error) {
      if (!stopped) showProblem(error);
    }
  }
  const reread = throttled(load);

  // A tick shows up as the `launched` event of its task: re-read then (at most once a second).
  const queue = eventQueue((batch) => {
    const types = new Set(schedules.map((schedule) => schedule.task));
    for (const [type, event] of batch) {
      if (type === "gap" || (type === "launched" && types.has(event.task.name))) {
        reread.soon();
        return;
      }
    }
  });
  const stream = new EventStream("api/events", {
    open: () => reading(queue, load),
    event: (type, data) => { if (type === "launched") queue.push([type, data]); },
    failed: showProblem,
  });
  // A tick that launches nothing sends no event (the previous launch with its key is still
  // live, or no node serves the task type): re-read once when a shown tick is 2 s past.
  let readAt = 0;
  const overdue = setInterval(() => {
    const now = Date.now();
    const past = schedules.some((schedule) => {
      const next = Date.parse(schedule.next_tick_at);
      return !schedule.paused && next + 2000 < now && readAt < next + 2000;
    });
    if (past) { readAt = now; reread.soon(); }
  }, 1000);

  async function setPaused(name, button) {
    const action = button.dataset.action;
    button.disabled = true;
    try {
      await api(`api/schedules/${enc(name)}/${action}`, { method: "POST" });
      problem.hidden = true;
    } catch (error) {
      showProblem(error);
    } finally {
      button.disabled = false;
    }
    await reread.now();
  }

  async function removeSchedule(name) {
    const sure = await confirmDialog({
      title: `Delete schedule ${name}?`,
      text: "It launches nothing more, on any node. The tasks it launched stay. "
        + "A schedule the app declares in its code comes back when a node with it starts.",
      keep: "Keep it",
      confirm: "Delete",
    });
    if (!sure || stopped) return;
    try {
      await api(`api/schedules/${enc(name)}`, { method: "DELETE" });
      problem.hidden = true;
    } catch (error) {
      showProblem(error);
    }
    await reread.now();
  }

  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Schedules")),
    h("p", { class: "muted small lede" }, "Each schedule launches its task type on every tick "
      + "of its cron expression, once across all nodes. Ticks that pass while it is paused are "
      + "not made up."),
    problem,
    h("div", { class: "table-wrap" }, table),
    empty,
    canControl ? scheduleForm() : h("p", { class: "muted small" },
      `Your token has role ${session.role}: pausing, deleting and adding schedules needs `
      + "role control."));

  function scheduleForm() {
    const nameInput = h("input", {
      id: "s-name", name: "name", required: true, maxlength: "200", autocomplete: "off",
      spellcheck: "false", "aria-describedby": "s-name-help",
    });
    const cronInput = h("input", {
      id: "s-cron", name: "cron", required: true, autocomplete: "off", spellcheck: "false",
      placeholder: "*/5 * * * *", "aria-describedby": "s-cron-help",
    });
    const typeSelect = h("select", { id: "s-task", name: "task", required: true });
    const argsInput = h("textarea", {
      id: "s-args", name: "args", rows: 3, spellcheck: "false", "aria-describedby": "s-args-help",
    });
    argsInput.value = "{}";
    const formProblem = h("div", { class: "notice error", role: "alert", id: "s-error", hidden: true });
    const status = h("p", { class: "muted small", role: "status", id: "s-status" });
    const submit = h("button", { type: "submit", class: "primary" }, "Save schedule");

    async function save(event) {
      event.preventDefault();
      formProblem.hidden = true;
      status.textContent = "";
      for (const input of [cronInput, argsInput]) input.removeAttribute("aria-invalid");
      let args;
      try {
        args = JSON.parse(argsInput.value.trim() || "null");
      } catch (error) {
        argsInput.setAttribute("aria-invalid", "true");
        formProblem.textContent = `The args are not JSON: ${error.message}`;
        formProblem.hidden = false;
        argsInput.focus();
        return;
      }
      const name = nameInput.value.trim();
      // Saving over a schedule changes it: it keeps its launch options (and its pause).
      const existing = schedules.find((schedule) => schedule.name === name);
      const body = {
        cron: cronInput.value.trim(), task: typeSelect.value, args,
        options: existing ? existing.options : {},
      };
      submit.disabled = true;
      try {
        await api(`api/schedules/${enc(name)}`, { method: "PUT", body });
        status.textContent = `Saved schedule ${name}.`;
        nameInput.value = "";
        cronInput.value = "";
        await reread.now();
      } catch (error) {
        formProblem.replaceChildren(h("strong", {}, "Not saved. "), error.message);
        formProblem.hidden = false;
        if (error.message.includes("cron expression")) cronInput.setAttribute("aria-invalid", "true");
        if (error.code === "invalid_args") argsInput.setAttribute("aria-invalid", "true");
      } finally {
        submit.disabled = false;
      }
    }

    api("api/task-types").then((body) => {
      typeSelect.replaceChildren(...body.task_types.map((type) =>
        h("option", { value: type.name }, type.name)));
      if (!body.task_types.length) {
        formProblem.textContent = "This server has no task types registered.";
        formProblem.hidden = false;
        submit.disabled = true;
      }
    }).catch((error) => { formProblem.textContent = error.message; formProblem.hidden = false; });

    return h("section", { class: "card schedule-form", "aria-labelledby": "s-title" },
      h("h2", { id: "s-title" }, "Add or change a schedule"),
      h("form", { onsubmit: save },
        h("div", { class: "fields" },
          h("label", { for: "s-name" }, "Name", nameInput),
          h("label", { for: "s-cron" }, "Cron expression", cronInput),
          h("label", { for: "s-task" }, "Task type", typeSelect)),
        h("p", { id: "s-name-help", class: "muted small" },
          "A name that exists changes that schedule; it keeps its launch options and its pause."),
        h("p", { id: "s-cron-help", class: "muted small" },
          "Five fields, minute hour day-of-month month day-of-week (*/5 * * * *: every five "
          + "minutes), or six with seconds first; times are UTC."),
        h("label", { for: "s-args" }, "Args (JSON)", argsInput),
        h("p", { id: "s-args-help", class: "muted small" },
          "Every launch gets these; the task type checks them now."),
        formProblem,
        h("div", { class: "actions" }, status, submit)));
  }

  return {
    stop() {
      stopped = true;
      stream.stop();
      reread.stop();
      clearInterval(overdue);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Shared state: named JSON documents that tasks and handlers change under a lock.

function lockEl(lock, long) {
  if (!lock) {
    return h("span", { class: "lock free" },
      h("span", { class: "mark", "aria-hidden": "true" }, "○"), "free");
  }
  // A task names itself `task <id> (<name>)`: link to it.
  const task = lock.holder.match(/^task ([0-9a-f-]{36})\b/);
  const holder = h("strong", {}, lock.holder);
  return h("span", { class: "lock held", title: `Node ${lock.node}, since ${lock.locked_at}` },
    h("span", { class: "mark", "aria-hidden": "true" }, "◆"), "held by ",
    task ? h("a", { href: `#/tasks/${task[1]}`, class: "holder" }, holder) : holder,
    long && [" on node ", h("code", {}, shortId(lock.node)), " since ", timeEl(lock.locked_at)]);
}

const sharedHref = (name) => `#/shared/${encodeURIComponent(name)}`;

function sharedListView(main) {
  document.title = "Shared state · Offstage";
  let stopped = false;
  const tbody = h("tbody");
  const table = h("table", { class: "grid shared", hidden: true },
    h("caption", { class: "sr-only" }, "Shared documents, by name"),
    h("thead", {}, h("tr", {},
      ["Name", "Version", "Updated", "Lock"].map((label) => h("th", { scope: "col" }, label)))),
    tbody);
  const empty = h("div", { class: "empty", hidden: true },
    h("p", {}, "No shared documents yet."),
    h("p", { class: "small" }, "Tasks make them with ctx.shared(name); a PUT to "
      + "/api/shared/NAME, or opening a name below, does too."));
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  const status = h("span", { class: "muted small", role: "status" });
  const openInput = h("input", {
    id: "sh-open", name: "name", required: true, autocomplete: "off", spellcheck: "false",
  });
  const open = (event) => {
    event.preventDefault();
    if (openInput.value.trim()) location.hash = sharedHref(openInput.value.trim());
  };

  async function load() {
    try {
      const body = await api("api/shared");
      if (stopped) return;
      tbody.replaceChildren(...body.shared.map((doc) =>
        h("tr", { "data-name": doc.name },
          h("td", { class: "name" }, h("a", { href: sharedHref(doc.name) }, doc.name)),
          h("td", { class: "num version" }, String(doc.version)),
          h("td", {}, timeEl(doc.updated_at)),
          h("td", {}, lockEl(doc.locked_by, false)))));
      table.hidden = body.shared.length === 0;
      empty.hidden = body.shared.length > 0;
      status.textContent = `As of ${fmtTime(new Date().toISOString())}`;
      problem.hidden = true;
    } catch (error) {
      problem.textContent = error.message;
      problem.hidden = false;
    }
  }

  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Shared state"),
      h("div", { class: "row-actions" }, status,
        h("button", { type: "button", id: "sh-list-reload", onclick: load }, "Reload"))),
    h("div", { class: "toolbar" },
      h("p", { class: "muted small lede" }, "Named JSON documents that tasks and handlers "
        + "change under a lock held across all nodes. Open one to watch it live."),
      h("form", { class: "find", onsubmit: open, "aria-label": "Open a document by name" },
        h("label", { for: "sh-open" }, "Open by name", openInput),
        h("button", { type: "submit" }, "Open"))),
    problem,
    h("div", { class: "table-wrap" }, table),
    empty);
  load();
  return { stop() { stopped = true; } };
}

function sharedView(main, name) {
  document.title = `${name} · Shared state · Offstage`;
  const canControl = session.can("control");
  const path = `api/shared/${encodeURIComponent(name)}`;
  // The document as last read or heard of; null until then, `absent` if nobody wrote it yet.
  let doc = null;
  let absent = false;
  // The editor: the version its text started from, and whether the user has changed it since.
  let editingVersion = null;
  let dirty = false;

  const version = h("span", { class: "version-chip", hidden: true });
  const missing = h("div", { class: "notice", id: "sh-missing", hidden: true },
    h("p", {}, h("strong", {}, `No shared document is named ${name} yet.`),
      " It appears here as soon as something writes it."),
    canControl && h("p", { class: "small" }, "Saving a value below creates it."));
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  const facts = h("dl", { class: "facts" });
  const value = h("pre", { class: "json", tabindex: "0", "aria-label": "Value" });
  const valueCard = h("div", { class: "doc", hidden: true },
    h("section", { class: "card", "aria-labelledby": "h-doc-facts" },
      h("h2", { id: "h-doc-facts" }, "Details"), facts),
    h("section", { class: "card", "aria-labelledby": "h-doc-value" },
      h("h2", { id: "h-doc-value" }, "Value ", h("span", { class: "muted small" }, "live")),
      value));

  const editor = canControl ? makeEditor() : null;

  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/shared" }, "← Shared state")),
    h("div", { class: "page-head" },
      h("div", { class: "title" }, h("h1", {}, name), version)),
    problem,
    missing,
    valueCard,
    editor ? editor.el : h("p", { class: "muted small" },
      `Your token has role ${session.role}: changing shared state needs role control.`));

  function fact(label, content) {
    return [h("dt", {}, label), h("dd", {}, content)];
  }

  function render() {
    const exists = Boolean(doc);
    missing.hidden = !absent || exists;
    valueCard.hidden = !exists;
    version.hidden = !exists;
    if (exists) {
      version.textContent = `version ${doc.version}`;
      version.dataset.version = doc.version;
      value.textContent = pretty(doc.value);
      facts.replaceChildren(
        ...fact("Version", h("span", { class: "num", id: "sh-version" }, String(doc.version))),
        ...fact("Updated", doc.updated_at ? timeEl(doc.updated_at) : "—"),
        ...fact("Lock", lockEl(doc.locked_by, true)));
    }
    editor?.sync();
  }

  /** Takes `record` if it is not older than what is shown. */
  function accept(record) {
    if (doc && record.version < doc.version) return;
    doc = { ...doc, ...record };
    absent = false;
    render();
  }

  async function load() {
    try {
      accept(await api(path));
      problem.hidden = true;
    } catch (error) {
      if (error.status === 404) {
        if (!doc) { absent = true; render(); }
      } else {
        problem.textContent = error.message;
        problem.hidden = false;
      }
    }
  }
  // A change event carries the value and version; the time and the lock come from a re-read.
  const reread = throttled(load);

  const queue = eventQueue((batch) => {
    for (const [type, change] of batch) {
      if (type === "gap") { reading(queue, load); return; }
      if (type === "change" && (!doc || change.version > doc.version)) {
        accept({ value: change.value, version: change.version });
        reread.soon();
      }
    }
  });
  const stream = new EventStream(`${path}/events`, {
    open: () => reading(queue, load),
    event: (type, data) => queue.push([type, data]),
    failed: (error) => { problem.textContent = error.message; problem.hidden = false; },
  });

  function makeEditor() {
    const input = h("textarea", {
      id: "sh-value", name: "value", rows: 4, spellcheck: "false",
      "aria-describedby": "sh-help",
    });
    const help = h("p", { id: "sh-help", class: "muted small" });
    const stale = h("p", { class: "notice", id: "sh-stale", hidden: true });
    const conflict = h("div", { class: "notice error", role: "alert", id: "sh-error", hidden: true });
    const reload = h("button", { type: "button", id: "sh-reload", hidden: true },
      "Load the latest");
    const status = h("p", { class: "muted small", role: "status", id: "sh-status" });
    const discard = h("button", { type: "button", class: "ghost", hidden: true }, "Discard changes");
    const save = h("button", { type: "submit", class: "primary", id: "sh-save" }, "Save");

    input.addEventListener("input", () => {
      dirty = true;
      status.textContent = "";
      sync();
    });

    /** Shows the latest value in the editor, unless the user is changing it. */
    function sync() {
      const latest = doc ? doc.version : 0;
      if (!dirty) {
        input.value = doc ? pretty(doc.value) : "{}";
        input.rows = Math.min(18, Math.max(4, input.value.split("\n").length + 1));
        editingVersion = latest;
      }
      help.textContent = editingVersion === 0
        ? "Saving creates the document, unless something else writes it first."
        : `Saving writes version ${editingVersion + 1}, if the document is still at version `
          + `${editingVersion}: a change saved meanwhile is never overwritten.`;
      // Once a save was refused, the refusal says it all.
      stale.hidden = !dirty || latest === editingVersion || !conflict.hidden;
      stale.textContent = `Version ${latest} was saved after the one you are editing `
        + `(${editingVersion}): saving will be refused. Load the latest to start again from it.`;
      discard.hidden = !dirty;
    }

    async function loadLatest() {
      await load();
      dirty = false;
      conflict.hidden = true;
      reload.hidden = true;
      input.removeAttribute("aria-invalid");
      sync();
      status.textContent = doc ? `Loaded version ${doc.version}.` : "";
      input.focus();
    }
    reload.addEventListener("click", loadLatest);
    discard.addEventListener("click", () => {
      dirty = false;
      input.removeAttribute("aria-invalid");
      conflict.hidden = true;
      sync();
      input.focus();
    });

    async function submit(event) {
      event.preventDefault();
      conflict.hidden = true;
      reload.hidden = true;
      status.textContent = "";
      input.removeAttribute("aria-invalid");
      let parsed;
      try {
        parsed = JSON.parse(input.value);
      } catch (error) {
        input.setAttribute("aria-invalid", "true");
        conflict.replaceChildren(`The value is not JSON: ${error.message}`);
        conflict.hidden = false;
        input.focus();
        return;
      }
      save.disabled = true;
      try {
        const record = await api(path, {
          method: "PUT", body: { value: parsed, version: editingVersion },
        });
        dirty = false;
        accept(record);
        sync();
        status.textContent = `Saved version ${record.version}.`;
      } catch (error) {
        const changed = error.code === "version_conflict";
        conflict.replaceChildren(h("strong", {},
          changed ? "Not saved: it changed meanwhile. " : "Not saved. "), error.message);
        conflict.hidden = false;
        reload.hidden = !changed;
        if (changed) conflict.append(" ", reload);
        sync();
      } finally {
        save.disabled = false;
      }
    }

    const el = h("section", { class: "card editor", "aria-labelledby": "h-edit" },
      h("h2", { id: "h-edit" }, "Edit"),
      h("form", { onsubmit: submit },
        h("label", { for: "sh-value" }, "Value (JSON)", input),
        help,
        stale,
        conflict,
        h("div", { class: "actions" }, status, discard, save)));
    return { el, sync };
  }

  return { stop() { stream.stop(); reread.stop(); } };
}

// ---------------------------------------------------------------------------------------------
// Signing in, when the server needs a token.

let signingIn = false;

function signIn(reason) {
  if (signingIn) return;
  signingIn = true;
  current.stop();
  current = { stop() {} };
  setLive("idle");
  session.token = null;
  session.role = null;
  sessionStorage.removeItem("offstage.token");
  updateChrome();
  const input = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "current-password",
    required: true, spellcheck: "false",
  });
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  const submit = async (event) => {
    event.preventDefault();
    session.token = input.value.trim();
    try {
      await whoAmI();
      sessionStorage.setItem("offstage.token", session.token);
      signingIn = false;
      updateChrome();
      route();
    } catch (error) {
      signingIn = true;
      session.token = null;
      problem.textContent = error.status === 401
        ? "That token is not one this server knows. Check it and try again." : error.message;
      problem.hidden = false;
      input.focus();
    }
  };
  $("#main").replaceChildren(h("div", { class: "signin card" },
    h("h1", {}, "Sign in"),
    h("p", {}, "This server needs a token. It is kept in this browser tab only."),
    reason && h("p", { class: "muted small" }, reason),
    h("form", { onsubmit: submit },
      h("label", { for: "token" }, "Token", input),
      problem,
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")))));
  input.focus();
}

async function whoAmI() {
  const response = await fetch(`${BASE}api/me`, { headers: authHeaders() });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, body?.error?.code, body?.error?.message
      || `${response.status} ${response.statusText}`);
  }
  session.role = body.role;
  session.authRequired = body.auth_required;
}

function updateChrome() {
  $('[data-nav="launch"]').hidden = !session.can("launch");
  const who = $("#who");
  if (session.authRequired && session.role) {
    who.replaceChildren(h("span", { class: `role r-${session.role}` },
      session.role === "read" ? "read-only" : session.role));
    who.title = `Signed in with a ${session.role} token`;
  } else {
    who.replaceChildren();
  }
  $("#signout").hidden = !(session.authRequired && session.role);
}

async function start() {
  $("#signout").addEventListener("click", () => signIn("Signed out."));
  document.querySelector("[data-skip]").addEventListener("click", (event) => {
    event.preventDefault();
    $("#main").focus();
  });
  window.addEventListener("hashchange", () => { if (!signingIn) route(); });
  try {
    await whoAmI();
  } catch (error) {
    if (error.status === 401) { signIn(); return; }
    $("#main").replaceChildren(h("p", { class: "notice error", role: "alert" }, error.message));
    return;
  }
  updateChrome();
  route();
}

start();
