// Signals on the task page: the "Send signal" button and its form (name prefilled with what the
// task waits for, a JSON payload), shown to a role that may send one (control) while the task
// is queued or running; and `isSignalLine`, which tells the views when a task began or ended a
// wait, so they re-read its record.

import { api, session } from "./api.js";
import { h, readJson, tell } from "./ui.js";

/** True for the log lines a task writes when it begins to wait for a signal or receives one. */
export function isSignalLine(line) {
  return /^(waiting for signal|received signal) "/.test(line.message);
}

/** The marker of a task that waits for a signal, as lists and headers show it. */
export function waitingMark(task) {
  if (!task.waiting_for) return "";
  return h("span", { class: "waiting-mark", title: "It holds no slot while it waits" },
    `waiting for ${JSON.stringify(task.waiting_for)}`);
}

/** The Send signal button and form; `update(task)` after every change of the task. */
export function signalPanel() {
  const button = h("button", { type: "button", id: "signal", hidden: true }, "Send signal");
  const nameInput = h("input", {
    id: "signal-name", name: "name", required: true, maxlength: "200", autocomplete: "off",
    "aria-describedby": "signal-help",
  });
  const payloadInput = h("textarea", {
    id: "signal-payload", name: "payload", rows: 5, spellcheck: "false",
  });
  const problem = h("p", { class: "notice error", role: "alert", id: "signal-error", hidden: true });
  const sent = h("p", { class: "notice", role: "status", id: "signal-sent", hidden: true });
  const submit = h("button", { type: "submit", class: "primary", id: "signal-submit" }, "Send");
  const form = h("form", { class: "card editor", id: "signal-form", hidden: true },
    h("h2", {}, "Send a signal"),
    h("p", { id: "signal-help", class: "muted small" },
      "Kept until the task waits for a signal of this name (ctx.wait_signal), then handed to "
      + "it with the payload. A task that waits shows the name it waits for."),
    h("label", { for: "signal-name" }, "Name", nameInput),
    h("label", { for: "signal-payload" }, "Payload (JSON)", payloadInput),
    problem,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "ghost", onclick: () => { form.hidden = true; } },
        "Cancel"),
      submit));
  let task = null;
  button.addEventListener("click", () => {
    nameInput.value = task.waiting_for || nameInput.value || "";
    if (!payloadInput.value) payloadInput.value = "{}";
    payloadInput.removeAttribute("aria-invalid");
    problem.hidden = true;
    sent.hidden = true;
    form.hidden = false;
    (nameInput.value ? payloadInput : nameInput).focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const payload = readJson(payloadInput, problem, "The payload is", "null");
    if (payload === undefined) return;
    const name = nameInput.value;
    submit.disabled = true;
    try {
      const signal = await api(`api/tasks/${task.id}/signals/${encodeURIComponent(name)}`,
        { method: "POST", body: payload });
      form.hidden = true;
      tell(sent, `Sent signal ${JSON.stringify(signal.name)}: the task receives it when it `
        + "waits for it.");
    } catch (error) {
      tell(problem, error.message);
    } finally {
      submit.disabled = false;
    }
  });
  return {
    button,
    form,
    sent,
    update(next) {
      task = next;
      button.hidden = !(session.can("control") && task.is_running);
      if (!task.is_running) form.hidden = true;
      if (!form.hidden && task.waiting_for && !nameInput.value) nameInput.value = task.waiting_for;
    },
  };
}
