// Launch a task (`#/launch`): pick a type, give JSON args (starting from the type's example,
// with the fields its schema describes), see why the server said no.

import { api, session } from "./api.js";
import { fillTaskTypes, go, h, readJson } from "./ui.js";

export function launchView(main, params) {
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
  // The args each type takes (its JSON Schema's properties) and an example to start from.
  const argsHelp = h("p", { id: "l-args-help", class: "muted small" },
    "The task type checks them before anything runs; if they do not fit, it says why.");
  const argsFields = h("dl", { class: "args-fields small", id: "l-args-fields", hidden: true });
  let typesByName = new Map();
  let edited = params.has("args");
  argsInput.addEventListener("input", () => { edited = true; });
  function describeType() {
    const type = typesByName.get(typeSelect.value);
    const schema = type && type.args_schema;
    if (type && type.args_example !== undefined && type.args_example !== null && !edited) {
      argsInput.value = JSON.stringify(type.args_example, null, 2);
    }
    const properties = (schema && schema.properties) || {};
    const required = new Set((schema && schema.required) || []);
    const names = Object.keys(properties);
    argsFields.replaceChildren(...names.flatMap((name) => {
      const property = properties[name] || {};
      const kind = [].concat(property.type || []).join(" or ") || "any JSON";
      return [h("dt", {}, h("code", {}, name), required.has(name) ? "" : " (optional)"),
        h("dd", {}, kind, property.description ? ` · ${property.description}` : "")];
    }));
    argsFields.hidden = names.length === 0;
  }
  typeSelect.addEventListener("change", () => { edited = false; describeType(); });
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
  const delayInput = h("input", {
    id: "l-delay", name: "delay_s", type: "number", min: "0", step: "any", inputmode: "decimal",
  });
  const problem = h("div", { class: "notice error", role: "alert", id: "l-error", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, "Launch");

  async function launch(event) {
    event.preventDefault();
    problem.hidden = true;
    argsInput.removeAttribute("aria-invalid");
    const args = readJson(argsInput, problem, "The args are", "{}");
    if (args === undefined) return;
    const body = { name: typeSelect.value, args };
    if (ownerInput.value.trim()) body.owner = ownerInput.value.trim();
    if (keyInput.value.trim()) body.key = keyInput.value.trim();
    if (body.key && conflictSelect.value) body.on_conflict = conflictSelect.value;
    if (timeoutInput.value) body.timeout_s = Number(timeoutInput.value);
    if (priorityInput.value) body.priority = Number(priorityInput.value);
    if (delayInput.value) body.delay_s = Number(delayInput.value);
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
      argsFields,
      argsHelp,
      h("details", {},
        h("summary", {}, "Options"),
        h("div", { class: "options" },
          h("label", { for: "l-owner" }, "Owner", ownerInput),
          h("label", { for: "l-key" }, "Key", keyInput),
          h("label", { for: "l-conflict" }, "If one with this key is live", conflictSelect),
          h("label", { for: "l-timeout" }, "Timeout (s)", timeoutInput),
          h("label", { for: "l-priority" }, "Priority", priorityInput),
          h("label", { for: "l-delay" }, "Start in (s)", delayInput))),
      problem,
      h("div", { class: "actions" }, submit)));

  fillTaskTypes(typeSelect, { problem, submit, selected: params.get("name") }).then((types) => {
    typesByName = new Map(types.map((type) => [type.name, type]));
    describeType();
  });
  return { stop() {} };
}

