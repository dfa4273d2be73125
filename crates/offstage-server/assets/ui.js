// What more than one view draws or does: building elements, formatting times and durations
// (ticking while they run), status badges, progress bars, dialogs, links between views, and
// the small form and timing helpers the views share.
//
// Data is only ever put in the page as text, never parsed as HTML.

import { api } from "./api.js";

/** Builds an element: `h("a", {href: "#/"}, "text", child)`. */
export function h(tag, attrs, ...children) {
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

export const $ = (selector, root = document) => root.querySelector(selector);

/** Puts `text` in the notice `el` (a `role="alert"` paragraph) and shows it. */
export function tell(el, text) {
  el.textContent = text;
  el.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Formatting.

export const STATUSES = ["queued", "running", "completed", "failed", "killed", "missing"];
export const STATUS_MARK = {
  queued: "○", running: "●", completed: "✓", failed: "✕", killed: "■", missing: "?",
};

/** A task's status (or a schedule's state, with its own `mark`), as a coloured badge. */
export function badge(status, mark = STATUS_MARK[status] || "·") {
  return h("span", { class: `badge s-${status}`, "data-status": status },
    h("span", { class: "mark", "aria-hidden": "true" }, mark), status);
}

const timeOfDay = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const dayAndTime = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

export function fmtTime(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  const today = new Date().toDateString() === at.toDateString();
  return (today ? timeOfDay : dayAndTime).format(at);
}

export function timeEl(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso, title: iso }, fmtTime(iso));
}

export function fmtDuration(ms) {
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
export function durationEl(task) {
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
export function relativeEl(iso, kind) {
  const el = h("span", { class: "relative", [`data-${kind}`]: iso });
  const ms = Date.parse(iso) - Date.now();
  el.textContent = kind === "until" ? fmtUntil(ms) : fmtAgo(-ms);
  return el;
}

/** Brings every running duration and relative time on the page up to now. */
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
export function progressOf(state) {
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

/** The task's progress bar with its label, or a dash when its state has no progress. */
export function progressEl(task, label) {
  const progress = progressOf(task.state);
  if (!progress) return h("span", { class: "muted" }, "—");
  return h("span", { class: "progress" },
    h("progress", {
      max: 1, value: progress.fraction,
      "aria-label": `${label || task.name} progress`, "aria-valuetext": progress.label,
    }),
    h("span", { class: "progress-label" }, progress.label));
}

export const pretty = (value) => JSON.stringify(value, null, 2);
export const shortId = (id) => id.slice(-12);

/** One entry of a `<dl class="facts">`: its term and its description. */
export function fact(label, content) {
  return [h("dt", {}, label), h("dd", {}, content)];
}

/** Who holds a shared document's lock (a task links to its page), or "free". */
export function lockEl(lock, long) {
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

/** Replaces what `cell` shows only when `key` changed, so a link or button under the pointer
 *  is not swapped out for an identical one. */
export function setCell(cell, key, make) {
  if (cell.dataset.key === key) return;
  cell.dataset.key = key;
  cell.replaceChildren(...[make()].flat(Infinity).filter((child) => child));
}

// ---------------------------------------------------------------------------------------------
// Routes: views are places in the URL hash (`#/`, `#/tasks/<id>`, `#/launch`, `#/schedules`,
// `#/shared`, `#/shared/<name>`), so a reload or a shared link shows the same thing.

/** The view's path and its query, from the URL hash. */
export function parseRoute() {
  const hash = location.hash.startsWith("#/") ? location.hash.slice(1) : "/";
  const [path, query = ""] = hash.split("?");
  return { path, params: new URLSearchParams(query) };
}

/** The link to the view at `path` with `params`: `#/?status=failed`. */
export function href(path, params) {
  const query = params && params.size ? `?${params}` : "";
  return `#${path}${query}`;
}

/** Shows the view at `path` with `params`. */
export function go(path, params) {
  location.hash = href(path, params);
}

/** A name from a route: names are put in links with `encodeURIComponent`. */
export function decodeName(text) {
  try { return decodeURIComponent(text); } catch { return text; }
}

// ---------------------------------------------------------------------------------------------
// Dialogs and forms.

/** Shows the modal `dialog`; true if it was closed with the button whose value is `yes`. */
export function ask(dialog, yes) {
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === yes), { once: true });
    dialog.showModal();
  });
}

/** Asks before something that cannot be undone; true if the user confirmed. */
export function confirmDialog({ title, text, keep, confirm }) {
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-keep").textContent = keep;
  $("#confirm-ok").textContent = confirm;
  return ask($("#confirm-dialog"), "confirm");
}

/**
 * The JSON in the form control `input` (`empty` when it is blank), or undefined once `problem`
 * says why `what` (such as "The args are") is not JSON, with the control marked and focused.
 */
export function readJson(input, problem, what, empty = "") {
  try {
    return JSON.parse(input.value.trim() || empty);
  } catch (error) {
    input.setAttribute("aria-invalid", "true");
    tell(problem, `${what} not JSON: ${error.message}`);
    input.focus();
    return undefined;
  }
}

/**
 * Fills `select` with the server's task types, `selected` chosen. When it has none, `problem`
 * says so and `submit` is turned off; when they cannot be read, `problem` says why. Resolves
 * to the task types (none on failure).
 */
export async function fillTaskTypes(select, { problem, submit, selected }) {
  try {
    const body = await api("api/task-types");
    select.replaceChildren(...body.task_types.map((type) =>
      h("option", { value: type.name, selected: type.name === selected }, type.name)));
    if (!body.task_types.length) {
      tell(problem, "This server has no task types registered.");
      submit.disabled = true;
    }
    return body.task_types;
  } catch (error) {
    tell(problem, error.message);
    return [];
  }
}

/** Calls `run` soon, at most once a second, never twice at once. */
export function throttled(run) {
  let last = 0;
  let timer = null;
  let running = false;
  let again = false;
  const now = async () => {
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
    timer = setTimeout(now, Math.max(0, last + 1000 - Date.now()));
  };
  return { soon, now, stop() { clearTimeout(timer); } };
}
