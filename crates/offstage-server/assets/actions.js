// The operator's verbs over many tasks, and their record:
//
//   actionsView   #/actions   every bulk action, newest first: who did what, how far it got
//   bulkPanel     on the task list: "select all matching this filter" shows the counts (dry
//                 runs) before anything happens, then Kill / Purge / Rerun with a confirmation
//                 and the action's progress
//   rerunPanel    on a finished task's page: Rerun, with its args in an editor to change first
//
// No stream carries an action's progress (the event stream is about tasks), so a running
// action is read again every half second, and the list every second while one runs.

import { api, session } from "./api.js";
import { confirmDialog, go, h, pretty, readJson, shortId, tell, timeEl } from "./ui.js";

const POLL_MS = 500;

/** The list filter's fields as a bulk action's filter (only those set). */
function bulkFilter(filter) {
  const out = {};
  for (const key of ["name", "status", "owner", "key", "launched_after", "launched_before"]) {
    if (filter[key]) out[key] = filter[key];
  }
  return out;
}

/** An action's filter, as `name=x owner=y`. */
function describeFilter(filter) {
  const parts = Object.entries(filter || {}).filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(" ") : "every task";
}

/** An action's progress: a bar of done and failed over matched, with its label. */
function actionProgress(action) {
  const handled = action.done + action.failed;
  const total = Math.max(action.matched, handled, 1);
  const label = `${action.done} of ${action.matched}${action.failed ? `, ${action.failed} failed` : ""}`;
  return h("span", { class: "progress" },
    h("progress", {
      max: total, value: handled, "aria-label": `${action.verb} progress`, "aria-valuetext": label,
    }),
    h("span", { class: "progress-label" }, label));
}

function actionBadge(action) {
  const mark = { running: "●", completed: "✓", failed: "✕" }[action.status] || "·";
  return h("span", { class: `badge s-${action.status}`, "data-status": action.status },
    h("span", { class: "mark", "aria-hidden": "true" }, mark), action.status);
}

/** Follows action `id` until it ends, calling `show(action)` with each read. */
function follow(id, show, fail) {
  let stopped = false;
  let timer = null;
  const read = async () => {
    if (stopped) return;
    try {
      const action = await api(`api/actions/${id}`);
      show(action);
      if (action.status === "running" && !stopped) timer = setTimeout(read, POLL_MS);
    } catch (error) {
      fail(error);
    }
  };
  read();
  return () => { stopped = true; clearTimeout(timer); };
}

// ---------------------------------------------------------------------------------------------
// #/actions

export function actionsView(main) {
  const tbody = h("tbody");
  const table = h("table", { class: "grid actions-table" },
    h("caption", { class: "sr-only" }, "Bulk actions, newest first"),
    h("thead", {}, h("tr", {},
      ["Status", "Verb", "Tasks", "Progress", "By", "Started", "Ended", "Id"].map(
        (label) => h("th", { scope: "col" }, label)))),
    tbody);
  const empty = h("p", { class: "empty", hidden: true },
    "No bulk actions yet. On the task list, filter the tasks, then \"Select all matching\".");
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Actions")),
    h("p", { class: "muted" }, "Kills, purges and reruns of every task matching a filter: who asked, and how far each got."),
    problem, h("div", { class: "table-wrap" }, table), empty);
  document.title = "Actions · Offstage";

  let timer = null;
  let stopped = false;
  async function load() {
    try {
      const page = await api("api/actions?limit=100");
      tbody.replaceChildren(...page.actions.map((a) => h("tr", {
        "data-id": a.id, "data-status": a.status, "data-verb": a.verb,
      },
      h("td", {}, actionBadge(a)),
      h("td", {}, a.verb, a.per_s ? h("span", { class: "muted small" }, ` ${a.per_s}/s`) : ""),
      h("td", { class: "filter" }, h("code", {}, describeFilter(a.filter))),
      h("td", {}, actionProgress(a),
        a.error ? h("p", { class: "muted small error-line" }, a.error) : ""),
      h("td", { class: "actor" }, a.actor),
      h("td", {}, timeEl(a.started_at)),
      h("td", {}, timeEl(a.ended_at)),
      h("td", { class: "id" }, h("code", { title: a.id }, shortId(a.id))))));
      empty.hidden = page.actions.length > 0;
      table.hidden = page.actions.length === 0;
      problem.hidden = true;
      if (!stopped && page.actions.some((a) => a.status === "running")) {
        timer = setTimeout(load, 2 * POLL_MS);
      }
    } catch (error) {
      tell(problem, error.message);
    }
  }
  load();
  return { stop() { stopped = true; clearTimeout(timer); } };
}

// ---------------------------------------------------------------------------------------------
// On the task list: select all matching this filter.

/** The bulk bar for the list's `filter`, or nothing for a token without the control role. */
export function bulkPanel(filter) {
  if (!session.can("control")) return { el: null, stop() {} };
  const selectAll = h("button", { type: "button", id: "bulk-select", class: "ghost" },
    "Select all matching this filter");
  const panel = h("div", { class: "bulk card", id: "bulk", hidden: true, role: "region",
    "aria-label": "Bulk actions on every task matching the filter" });
  const el = h("div", { class: "bulk-wrap" }, selectAll, panel);
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  let unfollow = () => {};
  const body = bulkFilter(filter);
  const scope = describeFilter(body);

  // A status filter decides the side: a finished status matches no live task, and the server
  // refuses to count a kill of it (and the other way round), so that side is 0 unasked.
  const live = !body.status || ["queued", "running"].includes(body.status);
  const dryRun = (verb) => {
    if (body.status && (verb === "kill") !== live) return Promise.resolve(0);
    return api("api/actions", { method: "POST", body: { verb, filter: body, dry_run: true } })
      .then((answer) => answer.matched);
  };

  async function open() {
    selectAll.disabled = true;
    panel.hidden = false;
    panel.replaceChildren(h("p", { class: "muted" }, "Counting…"));
    let liveCount;
    let finished;
    try {
      [liveCount, finished] = await Promise.all([dryRun("kill"), dryRun("purge")]);
    } catch (error) {
      panel.replaceChildren(problem);
      tell(problem, error.message);
      selectAll.disabled = false;
      return;
    }
    const perS = h("input", {
      id: "bulk-per-s", name: "per_s", type: "number", min: "0", step: "any",
      inputmode: "decimal", placeholder: "no limit",
    });
    const button = (verb, count, label, kind) => h("button", {
      type: "button", class: kind, id: `bulk-${verb}`, "data-verb": verb,
      disabled: count === 0, onclick: () => run(verb, count, perS),
    }, label);
    panel.replaceChildren(
      h("p", { id: "bulk-count" },
        h("strong", { id: "bulk-live" }, liveCount.toLocaleString()), " live and ",
        h("strong", { id: "bulk-finished" }, finished.toLocaleString()),
        ` finished tasks match ${scope}. Nothing has changed yet.`),
      h("div", { class: "actions bulk-buttons" },
        button("kill", liveCount, `Kill ${liveCount.toLocaleString()} live`, "danger"),
        button("purge", finished, `Purge ${finished.toLocaleString()} finished`, "danger"),
        h("label", { for: "bulk-per-s", class: "small" }, "Reruns a second ", perS),
        button("rerun", finished, `Rerun ${finished.toLocaleString()} finished`, "primary"),
        h("button", { type: "button", class: "ghost", onclick: close }, "Cancel")),
      problem);
  }

  function close() {
    unfollow();
    panel.hidden = true;
    panel.replaceChildren();
    selectAll.disabled = false;
  }

  async function run(verb, count, perS) {
    const texts = {
      kill: [`Kill ${count} live tasks?`, `Every queued or running task matching ${scope} gets the grace period to stop, then is aborted.`, "Kill them"],
      purge: [`Purge ${count} finished tasks?`, `Every finished task matching ${scope} is deleted with its log. This cannot be undone.`, "Purge them"],
      rerun: [`Rerun ${count} finished tasks?`, `Each finished task matching ${scope} is launched again as a new task, with the same args.`, "Rerun them"],
    };
    const [title, text, confirm] = texts[verb];
    if (!await confirmDialog({ title, text, keep: "Cancel", confirm })) return;
    const request = { verb, filter: body };
    if (verb === "rerun" && perS.value.trim()) request.per_s = Number(perS.value);
    let action;
    try {
      action = await api("api/actions", { method: "POST", body: request });
    } catch (error) {
      tell(problem, error.message);
      return;
    }
    const status = h("p", { id: "bulk-status", role: "status", "aria-live": "polite" });
    panel.replaceChildren(status, h("p", { class: "small" },
      h("a", { href: "#/actions" }, "All actions →")), problem);
    const show = (a) => {
      status.dataset.status = a.status;
      status.replaceChildren(actionBadge(a), ` ${a.verb} `, actionProgress(a),
        a.error ? h("span", { class: "muted small" }, ` ${a.error}`) : "");
    };
    show(action);
    unfollow = follow(action.id, show, (error) => tell(problem, error.message));
  }

  selectAll.addEventListener("click", open);
  return { el, stop: () => unfollow() };
}

// ---------------------------------------------------------------------------------------------
// On a task's page: Rerun, with an editor for the args.

/** The Rerun button and its editor for a task page; `update(task)` shows it as the task is. */
export function rerunPanel() {
  const button = h("button", { type: "button", id: "rerun", class: "primary", hidden: true },
    "Rerun");
  const argsInput = h("textarea", {
    id: "rerun-args", name: "args", rows: 8, spellcheck: "false",
    "aria-describedby": "rerun-help",
  });
  const fromCheckpoint = h("input", { type: "checkbox", id: "rerun-from-checkpoint",
    name: "from_checkpoint" });
  const checkpointChoice = h("label", { class: "toggle", for: "rerun-from-checkpoint",
    hidden: true }, fromCheckpoint,
  "Start from its last checkpoint (continue where it stopped, instead of from the top)");
  const problem = h("p", { class: "notice error", role: "alert", id: "rerun-error", hidden: true });
  const submit = h("button", { type: "submit", class: "primary", id: "rerun-submit" }, "Rerun");
  const form = h("form", { class: "card editor", id: "rerun-form", hidden: true },
    h("h2", {}, "Rerun"),
    h("p", { id: "rerun-help", class: "muted small" },
      "A new task of the same type and launch options, linked to this one. Change the args "
      + "first if you like; the task type checks them."),
    h("label", { for: "rerun-args" }, "Args", argsInput),
    checkpointChoice,
    problem,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "ghost", onclick: () => { form.hidden = true; } },
        "Cancel"),
      submit));
  let task = null;
  button.addEventListener("click", () => {
    argsInput.value = pretty(task.args);
    argsInput.removeAttribute("aria-invalid");
    // Offered only when the task saved one; a rerun starts from the top unless asked.
    checkpointChoice.hidden = task.checkpoint == null;
    fromCheckpoint.checked = false;
    problem.hidden = true;
    form.hidden = false;
    argsInput.focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const args = readJson(argsInput, problem, "The args are", "null");
    if (args === undefined) return;
    submit.disabled = true;
    try {
      const body = { args };
      if (fromCheckpoint.checked && task.checkpoint != null) body.from_checkpoint = true;
      const rerun = await api(`api/tasks/${task.id}/rerun`, { method: "POST", body });
      go(`/tasks/${rerun.id}`);
    } catch (error) {
      tell(problem, error.message);
    } finally {
      submit.disabled = false;
    }
  });
  return {
    button,
    form,
    update(next) {
      task = next;
      button.hidden = !(session.can("launch") && !task.is_running);
      if (task.is_running) form.hidden = true;
    },
  };
}

/** This task's reruns, newest first, as links (none: a dash). */
export async function rerunsOf(id) {
  const page = await api(`api/tasks?rerun_of=${id}&limit=20`);
  if (!page.tasks.length) return "—";
  return h("ul", { class: "reruns plain", id: "reruns" }, page.tasks.map((t) => h("li", {},
    h("a", { href: `#/tasks/${t.id}` }, h("code", {}, shortId(t.id))), " ", t.status)));
}
