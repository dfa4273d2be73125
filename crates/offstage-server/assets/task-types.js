// Task types (`#/task-types`): every type a node or worker serves (or that stored tasks
// name), who serves it, its tasks by status, for a type with a limit per concurrency key its
// top keys (running and queued each), and Pause / Resume, which hold its queued tasks on every
// node or let them go.

import { api, session, watch } from "./api.js";
import { badge, h, setCell, tell, throttled, timeEl } from "./ui.js";

const TYPE_MARK = { active: "▶", paused: "❚❚" };

export function taskTypesView(main) {
  document.title = "Task types · Offstage";
  const canControl = session.can("control");
  const enc = encodeURIComponent;
  let types = [];
  let stopped = false;
  const rows = new Map();

  const tbody = h("tbody");
  const table = h("table", { class: "grid task-types" },
    h("caption", { class: "sr-only" }, "Task types, by name"),
    h("thead", {}, h("tr", {},
      ["Name", "Served by", "Queued", "Running", "Keys", "State"]
        .concat(canControl ? ["Actions"] : [])
        .map((label) => h("th", { scope: "col" }, label)))),
    tbody);
  const empty = h("p", { class: "empty", hidden: true },
    "No task types: no node or worker serves any, and no task names one.");
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  main.append(
    h("div", { class: "page-head" }, h("div", { class: "title" }, h("h1", {}, "Task types"))),
    h("p", { class: "muted" }, "A paused type takes launches, but its queued tasks wait, on "
      + "every node, until it is resumed; its running tasks go on."),
    problem, table, empty);

  function renderRow(type) {
    let row = rows.get(type.name);
    if (!row) {
      const cells = ["name", "served", "queued", "running", "keys", "state"]
        .map((cell) => h("td", { class: cell }));
      cells[0].append(h("a", { href: `#/?name=${enc(type.name)}`, title: `Tasks of type ${type.name}` },
        type.name));
      if (canControl) {
        const toggle = h("button", { type: "button", class: "compact toggle" });
        toggle.addEventListener("click", () => setPaused(type.name, toggle));
        cells.push(h("td", { class: "controls" }, h("div", { class: "row-actions" }, toggle)));
      }
      row = h("tr", { "data-name": type.name }, cells);
      rows.set(type.name, row);
    }
    const state = type.paused ? "paused" : "active";
    row.dataset.state = state;
    const cell = (name) => row.querySelector(`td.${name}`);
    const served = type.workers.concat(type.isolated ? ["isolated"] : []);
    setCell(cell("served"), served.join(","), () => served.length
      ? served.join(", ") : h("span", { class: "muted" }, "nothing: its tasks wait"));
    setCell(cell("queued"), String(type.counts.queued), () => String(type.counts.queued));
    setCell(cell("running"), String(type.counts.running), () => String(type.counts.running));
    const keys = type.concurrency_keys || [];
    setCell(cell("keys"), JSON.stringify([type.concurrency_per_key, keys]), () => {
      if (!type.concurrency_per_key) return h("span", { class: "muted" }, "—");
      const list = h("ul", { class: "keys" }, keys.map((k) => h("li", { "data-key": k.key },
        h("span", { class: "key" }, k.key), " ",
        h("span", { class: "counts" }, `${k.running} running, ${k.queued} queued`))));
      return [h("span", { class: "muted per-key" },
        `${type.concurrency_per_key} per key (${type.concurrency_key}); top ${keys.length}:`),
        keys.length ? list : h("span", { class: "muted" }, " none with work")];
    });
    setCell(cell("state"), `${state}|${type.paused_at}`, () => [badge(state, TYPE_MARK[state]),
      type.paused_at && [h("span", { class: "muted" }, " since "), timeEl(type.paused_at)]]);
    const toggle = row.querySelector("button.toggle");
    if (toggle) {
      toggle.dataset.action = type.paused ? "resume" : "pause";
      toggle.textContent = type.paused ? "Resume" : "Pause";
      toggle.setAttribute("aria-label", `${toggle.textContent} ${type.name}`);
    }
    return row;
  }

  function render() {
    const names = new Set(types.map((type) => type.name));
    for (const [name, row] of rows) {
      if (!names.has(name)) { row.remove(); rows.delete(name); }
    }
    const ordered = types.map(renderRow);
    const inOrder = ordered.length === tbody.children.length
      && ordered.every((row, i) => tbody.children[i] === row);
    if (!inOrder) tbody.replaceChildren(...ordered);
    empty.hidden = types.length > 0;
    table.hidden = types.length === 0;
  }

  let reads = 0;
  async function load() {
    const read = ++reads;
    try {
      const body = await api("api/task-types");
      if (stopped || read !== reads) return;
      types = body.task_types;
      render();
      problem.hidden = true;
    } catch (error) {
      if (!stopped) tell(problem, error.message);
    }
  }
  const reread = throttled(load);

  // Counts move with every launch, start and end: re-read (at most once a second).
  const stream = watch("api/events", {
    load,
    keep: (type) => type === "launched" || type === "started" || type === "finished",
    apply: () => reread.soon(),
    reload: reread.soon,
    failed: (error) => tell(problem, error.message),
  });

  async function setPaused(name, button) {
    const action = button.dataset.action;
    button.disabled = true;
    try {
      await api(`api/task-types/${enc(name)}/${action}`, { method: "POST" });
      problem.hidden = true;
    } catch (error) {
      tell(problem, error.message);
    } finally {
      button.disabled = false;
    }
    await reread.now();
  }

  return {
    stop() {
      stopped = true;
      reread.stop();
      stream.stop();
    },
  };
}
