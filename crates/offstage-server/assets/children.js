// A task's family on its page: the path up to the root (its ancestors, as links) and its
// children, live (new ones appear, statuses and progress change as the events arrive).

import { api, watch } from "./api.js";
import { STATUSES, badge, h, progressEl, setCell, shortId, timeEl } from "./ui.js";

/** How many children the page shows, newest first; `offstage list --parent` has them all. */
const SHOWN = 100;
/** How far up the path to the root the page reads. */
const MAX_DEPTH = 20;

/**
 * The crumbs above a task's title: "All tasks", then each ancestor from the root down (links),
 * then the task itself. Reads the parents one by one, up to `MAX_DEPTH`.
 */
export function crumbsEl() {
  const el = h("nav", { class: "crumbs", "aria-label": "Path to the root task" });
  const all = h("a", { href: "#/" }, "← All tasks");
  el.append(all);
  return {
    el,
    async show(task) {
      const path = [];
      let parent = task.parent;
      while (parent && path.length < MAX_DEPTH) {
        let record;
        try {
          record = await api(`api/tasks/${parent}`);
        } catch {
          // Purged, or out of this token's scope: the path stops at what can be read.
          path.unshift({ id: parent, name: "…" });
          break;
        }
        path.unshift(record);
        parent = record.parent;
      }
      const parts = [all];
      for (const ancestor of path) {
        parts.push(h("span", { class: "sep", "aria-hidden": "true" }, " / "),
          h("a", { href: `#/tasks/${ancestor.id}`, class: "ancestor", "data-id": ancestor.id },
            ancestor.name, " ", h("code", { class: "muted" }, shortId(ancestor.id))));
      }
      if (path.length) {
        parts.push(h("span", { class: "sep", "aria-hidden": "true" }, " / "),
          h("span", { "aria-current": "page" }, task.name));
      }
      el.replaceChildren(...parts);
    },
  };
}

/**
 * The "Children" card of task `id`: counts by status and a table of the newest children, kept
 * live from the all-tasks event stream (a child's `launched`, `started` and `finished` events
 * carry its record, `parent` included). Returns `{ el, stop }`.
 */
export function childrenPanel(id) {
  const children = new Map();
  const counts = h("p", { class: "child-counts muted", "aria-live": "polite" });
  const tbody = h("tbody");
  const table = h("table", { class: "grid", "aria-label": "Children" },
    h("thead", {}, h("tr", {},
      h("th", {}, "Name"), h("th", {}, "Status"), h("th", {}, "Progress"),
      h("th", {}, "Launched"), h("th", {}, "Id"))),
    tbody);
  const note = h("p", { class: "muted small" });
  const el = h("section", { class: "card children", "aria-labelledby": "h-children", hidden: true },
    h("h2", { id: "h-children" }, "Children"), counts, h("div", { class: "table-wrap" }, table),
    note);

  // One row per child, kept across renders and changed cell by cell (`setCell`), so a link
  // under the pointer is never swapped for an identical one.
  const rows = new Map();
  function row(child) {
    let tr = rows.get(child.id);
    if (!tr) {
      tr = h("tr", { "data-id": child.id },
        h("td", { class: "name" }), h("td", {}), h("td", {}), h("td", {}), h("td", { class: "id" }));
      rows.set(child.id, tr);
    }
    tr.dataset.status = child.status;
    const [name, status, progress, launched, ident] = tr.children;
    setCell(name, `${child.name} ${child.detached}`, () => [
      h("a", { href: `#/tasks/${child.id}` }, child.name),
      child.detached ? h("span", { class: "muted small" }, " detached") : null]);
    setCell(status, child.status, () => badge(child.status));
    setCell(progress, JSON.stringify(child.state ?? null), () => progressEl(child));
    setCell(launched, child.launched_at, () => timeEl(child.launched_at));
    setCell(ident, child.id, () => h("code", {}, shortId(child.id)));
    return tr;
  }

  function render() {
    el.hidden = children.size === 0;
    const sorted = [...children.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
    const tally = new Map();
    for (const child of sorted) tally.set(child.status, (tally.get(child.status) || 0) + 1);
    const parts = STATUSES.filter((s) => tally.has(s)).map((s) => `${tally.get(s)} ${s}`);
    counts.textContent = `${children.size}${full ? "+" : ""} children: ${parts.join(", ")}`;
    const shown = sorted.slice(0, SHOWN).map(row);
    // Moved, not rebuilt: the same rows in their new order.
    shown.forEach((tr, i) => { if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null); });
    while (tbody.children.length > shown.length) tbody.lastElementChild.remove();
    note.textContent = children.size > SHOWN || full
      ? `Showing the newest ${SHOWN}; \`offstage list --parent ${id}\` lists them all.` : "";
  }

  let full = false;
  async function load() {
    const page = await api(`api/tasks?parent=${id}&limit=1000`);
    children.clear();
    rows.clear();
    tbody.replaceChildren();
    for (const child of page.tasks) children.set(child.id, child);
    full = page.next_before != null;
    render();
  }

  const stream = watch("api/events", {
    load,
    keep: (type) => type !== "log",
    apply(batch) {
      let changed = false;
      for (const [type, event] of batch) {
        if (type === "state") {
          const child = children.get(event.task_id);
          if (child) { child.state = event.state; changed = true; }
        } else if (event.task && event.task.parent === id) {
          const known = children.get(event.task.id);
          children.set(event.task.id, known ? { ...known, ...event.task } : event.task);
          changed = true;
        }
      }
      if (changed) render();
    },
    failed(error) {
      el.hidden = false;
      note.textContent = `Children are not shown live: ${error.message}`;
    },
  });
  return { el, stop: () => stream.stop() };
}
