// Why a task waits (the `waiting` of `GET /api/tasks/{id}`): the sentence on the task page,
// kept current while the task is queued or running. The reason depends on other tasks and on
// the nodes, so no event of this task announces a change: the page re-reads it.

import { api } from "./api.js";
import { h } from "./ui.js";

/** How often a queued or running task's reason is read again. */
const EVERY_MS = 3000;

/** The notice that shows `waiting` (`{code, message}`), hidden when there is none. */
export function waitingEl() {
  return h("p", { class: "notice waiting", role: "status", hidden: true });
}

/** Shows `waiting` in `el`. */
export function showWaiting(el, waiting) {
  el.hidden = !waiting;
  if (!waiting) { el.replaceChildren(); return; }
  el.dataset.code = waiting.code;
  el.replaceChildren(h("strong", {}, waiting.code === "kill_overdue" ? "Still running: "
    : "Waiting: "), h("span", { class: "message" }, waiting.message));
}

/** Re-reads task `id`'s reason while `live()` says it may have one; `stop()` ends it. */
export function followWaiting(el, id, live) {
  const timer = setInterval(async () => {
    if (!live()) return;
    try {
      const task = await api(`api/tasks/${id}`);
      showWaiting(el, task.waiting);
    } catch { /* the page's own stream reports problems */ }
  }, EVERY_MS);
  return { stop: () => clearInterval(timer) };
}
