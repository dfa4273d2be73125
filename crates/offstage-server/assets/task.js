// One task (`#/tasks/<id>`): everything about it, live, with its log, a Kill button and, while
// it runs, Send signal.

import { rerunPanel, rerunsOf } from "./actions.js";
import { api, session, setLive, watch } from "./api.js";
import { childrenPanel, crumbsEl } from "./children.js";
import {
  $, ask, badge, durationEl, fact, fmtDuration, fmtTime, h, pretty, progressEl, progressOf,
  tell, timeEl,
} from "./ui.js";
import { isSignalLine, signalPanel, waitingMark } from "./signal.js";
import { followWaiting, showWaiting, waitingEl } from "./waiting.js";

/** The log lines the page keeps; `offstage logs` has them all. */
const LOG_KEEP = 5000;

export function taskView(main, id) {
  let task = null;
  let lastLog = 0;
  let follow = true;

  const title = h("h1", {}, "Task");
  const status = h("span", { class: "status-slot" });
  const killButton = h("button", { type: "button", class: "danger", hidden: true }, "Kill");
  const progress = h("div", { class: "big-progress" });
  const outcome = h("div", { class: "outcome", role: "status", "aria-live": "polite" });
  const waiting = waitingEl();
  const facts = h("dl", { class: "facts" });
  const args = h("pre", { class: "json", tabindex: "0", "aria-label": "Args" });
  const state = h("pre", { class: "json", tabindex: "0", "aria-label": "State" });
  const stateNote = h("span", { class: "muted small" });
  // The checkpoint: what the task saved to resume from (not what people see: that is the state).
  const checkpoint = h("pre", { class: "json", tabindex: "0", "aria-label": "Checkpoint",
    id: "checkpoint" });
  const checkpointNote = h("span", { class: "muted small", id: "checkpoint-note" });
  const log = h("ol", { class: "log", "aria-label": "Log lines" });
  const logBox = h("div", { class: "log-box", tabindex: "0" }, log);
  const logNote = h("p", { class: "muted small" });
  const followBox = h("input", { type: "checkbox", id: "follow", checked: true });
  followBox.addEventListener("change", () => {
    follow = followBox.checked;
    if (follow) logBox.scrollTop = logBox.scrollHeight;
  });
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  const rerun = rerunPanel();
  const signal = signalPanel();
  // This task's reruns (`?rerun_of=`), read with the task; its own original is in the record.
  let reruns = "—";
  // The path up to the root, read once (a parent never changes), and the children, live.
  const crumbs = crumbsEl();
  let crumbsShown = false;
  const family = childrenPanel(id);

  main.append(
    crumbs.el,
    h("div", { class: "page-head" }, h("div", { class: "title" }, title, status),
      h("div", { class: "head-buttons" }, rerun.button, signal.button, killButton)),
    problem,
    waiting,
    signal.sent,
    signal.form,
    progress,
    outcome,
    rerun.form,
    h("div", { class: "detail" },
      h("section", { class: "card", "aria-labelledby": "h-facts" },
        h("h2", { id: "h-facts" }, "Details"), facts),
      h("section", { class: "card", "aria-labelledby": "h-args" },
        h("h2", { id: "h-args" }, "Args"), args),
      h("section", { class: "card", "aria-labelledby": "h-state" },
        h("h2", { id: "h-state" }, "State ", stateNote), state),
      h("section", { class: "card", "aria-labelledby": "h-checkpoint" },
        h("h2", { id: "h-checkpoint" }, "Checkpoint ", checkpointNote), checkpoint)),
    family.el,
    h("section", { class: "card logs", "aria-labelledby": "h-log" },
      h("div", { class: "card-head" },
        h("h2", { id: "h-log" }, "Log"),
        h("label", { class: "toggle", for: "follow" }, followBox, "Follow")),
      logBox, logNote));

  function render() {
    title.textContent = task.name;
    document.title = `${task.name} · Offstage`;
    status.replaceChildren(badge(task.status), " ", waitingMark(task));
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
      ...(task.waiting_for ? fact("Waiting for", h("span", { id: "waiting-for" },
        h("code", {}, task.waiting_for), task.waiting_until ? [" until ", timeEl(task.waiting_until)]
          : " (no timeout)")) : []),
      ...(task.run_at !== task.launched_at ? fact("Run at", timeEl(task.run_at)) : []),
      ...(task.parent ? fact("Parent", h("span", {},
        h("a", { href: `#/tasks/${task.parent}`, id: "parent-link" }, h("code", {}, task.parent)),
        task.detached ? " (detached: left running when it ends)" : "")) : []),
      ...(task.rerun_of ? fact("Rerun of", h("a", { href: `#/tasks/${task.rerun_of}`, id: "rerun-of" },
        h("code", {}, task.rerun_of))) : []),
      ...fact("Reruns", reruns),
      ...fact("Trace", traceEl(task.trace_id)));
    rerun.update(task);
    signal.update(task);
    args.textContent = pretty(task.args);
    state.textContent = pretty(task.state);
    stateNote.textContent = task.is_running ? "live" : "final";
    renderCheckpoint();
    renderOutcome();
    showWaiting(waiting, task.waiting);
  }

  /** The trace id, linked to the tracing backend's page of it when the server names one. */
  function traceEl(traceId) {
    if (!traceId) return "—";
    const code = h("code", { id: "trace-id" }, traceId);
    if (!session.traceUrl) return code;
    const href = session.traceUrl.replaceAll("{trace_id}", encodeURIComponent(traceId));
    return h("a", { href, id: "trace-link", target: "_blank", rel: "noopener" }, code);
  }

  function renderCheckpoint() {
    if (task.checkpoint == null) {
      checkpoint.textContent = "—";
      checkpointNote.replaceChildren(task.is_running ? "none saved yet" : "none saved");
      return;
    }
    checkpoint.textContent = pretty(task.checkpoint);
    checkpointNote.replaceChildren("saved ", timeEl(task.checkpoint_at),
      task.is_running ? "; a retry starts from it" : "");
  }

  async function refreshWaiting() {
    try {
      const fresh = await api(`api/tasks/${id}`);
      if (!task.is_running) return;
      task = { ...task, waiting_for: fresh.waiting_for, waiting_until: fresh.waiting_until,
        waiting: fresh.waiting };
      render();
    } catch { /* the stream reports problems */ }
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
      reruns = await rerunsOf(id);
      render();
      if (!crumbsShown) {
        crumbsShown = true;
        crumbs.show(task);
      }
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
    tell(problem, error.message);
  }

  // The stream starts from the task's launch (`Last-Event-ID: 0`): the events the server still
  // buffers include log lines not yet saved, which the snapshot cannot have.
  const stream = watch(`api/tasks/${id}/events`, {
    lastId: 0,
    load,
    apply(batch) {
      if (!task) return;
      const lines = [];
      for (const [type, event] of batch) {
        if (type === "state") task.state = event.state;
        else if (type === "checkpoint") {
          task.checkpoint = event.checkpoint;
          task.checkpoint_at = event.at;
        }
        else if (type === "log") lines.push(event.line);
        else if (type === "started" || type === "finished" || type === "launched") {
          // Started or ended: no longer waiting (a kill overdue shows at the next re-read).
          const waitingNow = type === "launched" ? task.waiting : null;
          task = { ...task, ...event.task, ...derived(event.task), waiting: waitingNow };
        }
      }
      if (lines.length) { logNote.textContent = ""; appendLines(lines); }
      render();
      // A wait for a signal began or ended: what it waits for is in the record, not the event.
      if (lines.some(isSignalLine) && task.is_running) refreshWaiting();
    },
    ended: () => setLive("ended"),
    failed: showProblem,
  });

  killButton.addEventListener("click", async () => {
    $("#kill-text").textContent = `${task.name} (${id}) gets the grace period to stop by `
      + "itself, then it is aborted. It ends killed, keeping its last state and log.";
    if (!await ask($("#kill-dialog"), "kill")) return;
    killButton.disabled = true;
    killButton.textContent = "Killing…";
    try {
      await api(`api/tasks/${id}/kill`, { method: "POST" });
    } catch (error) {
      showProblem(error);
      killButton.disabled = false;
      killButton.textContent = "Kill";
    }
  });

  const reasons = followWaiting(waiting, id, () => task && task.is_running);
  return { stop: () => { stream.stop(); reasons.stop(); family.stop(); } };
}

/** The fields the API derives from a record, for records that arrive in events. */
function derived(record) {
  const terminal = !["queued", "running"].includes(record.status);
  return { termination_status: terminal ? record.status : null, is_running: !terminal };
}

