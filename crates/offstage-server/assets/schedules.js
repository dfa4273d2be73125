// Schedules (`#/schedules`): what launches by itself, when it next will, and what it launched
// last; pause, resume and delete, and a form to add or change one.

import { api, session, watch } from "./api.js";
import {
  badge, confirmDialog, fillTaskTypes, h, readJson, relativeEl, setCell, shortId, tell,
  throttled, timeEl,
} from "./ui.js";

const SCHEDULE_MARK = { active: "▶", paused: "❚❚" };

function scheduleBadge(schedule) {
  const state = schedule.paused ? "paused" : "active";
  return badge(state, SCHEDULE_MARK[state]);
}

export function schedulesView(main) {
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

  const showProblem = (error) => tell(problem, error.message);

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
  const stream = watch("api/events", {
    load,
    keep: (type) => type === "launched",
    apply(batch) {
      const types = new Set(schedules.map((schedule) => schedule.task));
      if (batch.some(([, event]) => types.has(event.task.name))) reread.soon();
    },
    reload: reread.soon,
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
      const args = readJson(argsInput, formProblem, "The args are", "null");
      if (args === undefined) return;
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

    fillTaskTypes(typeSelect, { problem: formProblem, submit });

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

