// The task list (`#/`): newest first, filtered by name, status and owner, a page of 50 at a
// time, live, with how many tasks there are of each status.

import { bulkPanel } from "./actions.js";
import { isSignalLine, waitingMark } from "./signal.js";
import { api, session, watch } from "./api.js";
import {
  $, badge, durationEl, go, h, href, progressEl, shortId, STATUS_MARK, STATUSES, tell, throttled,
  timeEl,
} from "./ui.js";

const PAGE = 50;

function matches(task, filter) {
  return (!filter.name || task.name === filter.name)
    && (!filter.status || task.status === filter.status)
    && (!filter.owner || task.owner === filter.owner);
}

export function taskListView(main, params) {
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
  newest.href = href("/", newestParams);
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  const summary = h("nav", { class: "summary", "aria-label": "Tasks by status" });
  const bulk = bulkPanel(filter);

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
    bulk.el,
    problem,
    h("div", { class: "table-wrap" }, table),
    empty,
    h("nav", { class: "pager", "aria-label": "Pages" }, newest, older));

  // How many tasks there are of each status (of the filtered task type, if one is): read with
  // the task types, and again at most once a second while tasks start and end.
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
        class: `chip${status ? ` s-${status}` : ""}`, href: href("/", next),
        "aria-current": (filter.status || "") === status ? "true" : null,
        "data-status": status || "all",
      }, status && h("span", { class: "mark", "aria-hidden": "true" }, STATUS_MARK[status]),
      h("span", { class: "count" }, count.toLocaleString()), ` ${label}`);
    };
    const all = STATUSES.reduce((sum, status) => sum + totals[status], 0);
    summary.replaceChildren(link("", "all", all),
      ...STATUSES.map((status) => link(status, status, totals[status])));
  }
  const counts = throttled(refreshCounts);
  counts.now();

  /** The row for `task`, made or brought up to date. Only the cells that can change are
   *  replaced, so a link under the pointer is never swapped out mid-click. */
  function renderRow(task) {
    const changing = () => [
      h("span", {}, badge(task.status), task.waiting_for ? [" ", waitingMark(task)] : ""),
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

  async function refreshRow(task) {
    try {
      const fresh = await api(`api/tasks/${task.id}`);
      if (!tasks.has(task.id)) return;
      Object.assign(task, { waiting_for: fresh.waiting_for, waiting_until: fresh.waiting_until });
      renderRow(task);
    } catch { /* the stream reports problems */ }
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

  /** Links "Older →" to the page after the task `before`, or hides it when there is none. */
  function showOlder(before) {
    older.hidden = !before;
    if (!before) return;
    const next = new URLSearchParams(params);
    next.set("before", before);
    older.href = href("/", next);
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
      tell(problem, error.message);
    }
    showOlder(nextBefore);
    showEmpty();
  }

  /** Adds the row of a task new to the page in its place: ids are time-ordered, so newest
   *  first is descending id order. The page keeps its 50 newest. */
  function place(task) {
    tasks.set(task.id, task);
    let before = null;
    for (const other of tbody.children) {
      if (other.dataset.id < task.id) { before = other; break; }
    }
    tbody.insertBefore(renderRow(task), before);
    while (tbody.children.length > PAGE) {
      const last = tbody.lastElementChild;
      tasks.delete(last.dataset.id);
      rows.delete(last.dataset.id);
      last.remove();
      showOlder(tbody.lastElementChild.dataset.id);
    }
  }

  const stream = watch("api/events", {
    load,
    apply(batch) {
      for (const [type, event] of batch) {
        const known = tasks.get(event.task_id);
        if (type === "state") {
          if (known) { known.state = event.state; renderRow(known); }
        } else if (type === "log") {
          // A wait for a signal began or ended: the record says what it waits for.
          if (known && isSignalLine(event.line)) refreshRow(known);
        } else if (type === "launched" || type === "started" || type === "finished") {
          counts.soon();
          const task = event.task;
          if (known) { Object.assign(known, task); renderRow(known); continue; }
          // New rows appear only on the first page, and only if they belong on it.
          if (filter.before || !matches(task, filter)) continue;
          const oldest = tbody.lastElementChild?.dataset.id;
          if (tasks.size < PAGE || !oldest || task.id > oldest) place(task);
        }
      }
      showEmpty();
    },
    failed: (error) => tell(problem, error.message),
  });
  return {
    stop() {
      stream.stop();
      counts.stop();
      bulk.stop();
    },
  };
}
