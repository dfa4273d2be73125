// The Offstage dashboard: every task, live, with kill, logs and a launch form.
//
// No framework and no build step: this file is served as is, compiled into the `offstage` binary.
// It reads the same JSON API and event stream as every other client. Views are routes in the URL
// hash (`#/`, `#/tasks/<id>`, `#/launch`), so a reload or a shared link shows the same thing.
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

function tick() {
  for (const el of document.querySelectorAll("[data-since]")) {
    el.textContent = fmtDuration(Date.now() - Date.parse(el.dataset.since));
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
  const main = $("#main");
  main.replaceChildren();
  const { path, params } = parseRoute();
  for (const link of document.querySelectorAll("[data-nav]")) {
    const active = (link.dataset.nav === "launch") === (path === "/launch");
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const task = path.match(/^\/tasks\/([0-9a-fA-F-]{36})$/);
  if (task) current = taskView(main, task[1]);
  else if (path === "/launch") current = launchView(main, params);
  else current = listView(main, params);
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
  const table = h("table", { class: "tasks" },
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
      ...fact("Timeout", task.timeout_ms ? fmtDuration(task.timeout_ms) : "none"),
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
      h("p", { id: "l-args-help", class: "muted small" },
        "The task type checks them before anything runs; if they do not fit, it says why."),
      h("details", {},
        h("summary", {}, "Options"),
        h("div", { class: "options" },
          h("label", { for: "l-owner" }, "Owner", ownerInput),
          h("label", { for: "l-key" }, "Key", keyInput),
          h("label", { for: "l-conflict" }, "If one with this key is live", conflictSelect),
          h("label", { for: "l-timeout" }, "Timeout (s)", timeoutInput),
          h("label", { for: "l-priority" }, "Priority", priorityInput))),
      problem,
      h("div", { class: "actions" }, submit)));

  api("api/task-types").then((body) => {
    const wanted = params.get("name");
    typeSelect.replaceChildren(...body.task_types.map((type) =>
      h("option", { value: type.name, selected: type.name === wanted }, type.name)));
    if (!body.task_types.length) {
      problem.textContent = "This server has no task types registered.";
      problem.hidden = false;
      submit.disabled = true;
    }
  }).catch((error) => { problem.textContent = error.message; problem.hidden = false; });
  return { stop() {} };
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
