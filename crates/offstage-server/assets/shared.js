// One shared document (`#/shared/<name>`): its value and version, live, who holds its lock, and
// an editor that saves by version, so a change saved meanwhile is never overwritten.

import { api, session, watch } from "./api.js";
import { fact, h, lockEl, pretty, readJson, tell, throttled, timeEl } from "./ui.js";

export function sharedView(main, name) {
  document.title = `${name} · Shared state · Offstage`;
  const canControl = session.can("control");
  const path = `api/shared/${encodeURIComponent(name)}`;
  // The document as last read or heard of; null until then, `absent` if nobody wrote it yet.
  let doc = null;
  let absent = false;
  // The editor: the version its text started from, and whether the user has changed it since.
  let editingVersion = null;
  let dirty = false;

  const version = h("span", { class: "version-chip", hidden: true });
  const missing = h("div", { class: "notice", id: "sh-missing", hidden: true },
    h("p", {}, h("strong", {}, `No shared document is named ${name} yet.`),
      " It appears here as soon as something writes it."),
    canControl && h("p", { class: "small" }, "Saving a value below creates it."));
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  const facts = h("dl", { class: "facts" });
  const value = h("pre", { class: "json", tabindex: "0", "aria-label": "Value" });
  const valueCard = h("div", { class: "doc", hidden: true },
    h("section", { class: "card", "aria-labelledby": "h-doc-facts" },
      h("h2", { id: "h-doc-facts" }, "Details"), facts),
    h("section", { class: "card", "aria-labelledby": "h-doc-value" },
      h("h2", { id: "h-doc-value" }, "Value ", h("span", { class: "muted small" }, "live")),
      value));

  const editor = canControl ? makeEditor() : null;

  main.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/shared" }, "← Shared state")),
    h("div", { class: "page-head" },
      h("div", { class: "title" }, h("h1", {}, name), version)),
    problem,
    missing,
    valueCard,
    editor ? editor.el : h("p", { class: "muted small" },
      `Your token has role ${session.role}: changing shared state needs role control.`));

  function render() {
    const exists = Boolean(doc);
    missing.hidden = !absent || exists;
    valueCard.hidden = !exists;
    version.hidden = !exists;
    if (exists) {
      version.textContent = `version ${doc.version}`;
      version.dataset.version = doc.version;
      value.textContent = pretty(doc.value);
      facts.replaceChildren(
        ...fact("Version", h("span", { class: "num", id: "sh-version" }, String(doc.version))),
        ...fact("Updated", doc.updated_at ? timeEl(doc.updated_at) : "—"),
        ...fact("Lock", lockEl(doc.locked_by, true)));
    }
    editor?.sync();
  }

  /** Takes `record` if it is not older than what is shown. */
  function accept(record) {
    if (doc && record.version < doc.version) return;
    doc = { ...doc, ...record };
    absent = false;
    render();
  }

  async function load() {
    try {
      accept(await api(path));
      problem.hidden = true;
    } catch (error) {
      if (error.status === 404) {
        if (!doc) { absent = true; render(); }
      } else {
        tell(problem, error.message);
      }
    }
  }
  // A change event carries the value and version; the time and the lock come from a re-read.
  const reread = throttled(load);

  const stream = watch(`${path}/events`, {
    load,
    apply(batch) {
      for (const [type, change] of batch) {
        if (type === "change" && (!doc || change.version > doc.version)) {
          accept({ value: change.value, version: change.version });
          reread.soon();
        }
      }
    },
    failed: (error) => tell(problem, error.message),
  });

  function makeEditor() {
    const input = h("textarea", {
      id: "sh-value", name: "value", rows: 4, spellcheck: "false",
      "aria-describedby": "sh-help",
    });
    const help = h("p", { id: "sh-help", class: "muted small" });
    const stale = h("p", { class: "notice", id: "sh-stale", hidden: true });
    const conflict = h("div", { class: "notice error", role: "alert", id: "sh-error", hidden: true });
    const reload = h("button", { type: "button", id: "sh-reload", hidden: true },
      "Load the latest");
    const status = h("p", { class: "muted small", role: "status", id: "sh-status" });
    const discard = h("button", { type: "button", class: "ghost", hidden: true }, "Discard changes");
    const save = h("button", { type: "submit", class: "primary", id: "sh-save" }, "Save");

    input.addEventListener("input", () => {
      dirty = true;
      status.textContent = "";
      sync();
    });

    /** Shows the latest value in the editor, unless the user is changing it. */
    function sync() {
      const latest = doc ? doc.version : 0;
      if (!dirty) {
        input.value = doc ? pretty(doc.value) : "{}";
        input.rows = Math.min(18, Math.max(4, input.value.split("\n").length + 1));
        editingVersion = latest;
      }
      help.textContent = editingVersion === 0
        ? "Saving creates the document, unless something else writes it first."
        : `Saving writes version ${editingVersion + 1}, if the document is still at version `
          + `${editingVersion}: a change saved meanwhile is never overwritten.`;
      // Once a save was refused, the refusal says it all.
      stale.hidden = !dirty || latest === editingVersion || !conflict.hidden;
      stale.textContent = `Version ${latest} was saved after the one you are editing `
        + `(${editingVersion}): saving will be refused. Load the latest to start again from it.`;
      discard.hidden = !dirty;
    }

    async function loadLatest() {
      await load();
      dirty = false;
      conflict.hidden = true;
      reload.hidden = true;
      input.removeAttribute("aria-invalid");
      sync();
      status.textContent = doc ? `Loaded version ${doc.version}.` : "";
      input.focus();
    }
    reload.addEventListener("click", loadLatest);
    discard.addEventListener("click", () => {
      dirty = false;
      input.removeAttribute("aria-invalid");
      conflict.hidden = true;
      sync();
      input.focus();
    });

    async function submit(event) {
      event.preventDefault();
      conflict.hidden = true;
      reload.hidden = true;
      status.textContent = "";
      input.removeAttribute("aria-invalid");
      const parsed = readJson(input, conflict, "The value is");
      if (parsed === undefined) return;
      save.disabled = true;
      try {
        const record = await api(path, {
          method: "PUT", body: { value: parsed, version: editingVersion },
        });
        dirty = false;
        accept(record);
        sync();
        status.textContent = `Saved version ${record.version}.`;
      } catch (error) {
        const changed = error.code === "version_conflict";
        conflict.replaceChildren(h("strong", {},
          changed ? "Not saved: it changed meanwhile. " : "Not saved. "), error.message);
        conflict.hidden = false;
        reload.hidden = !changed;
        if (changed) conflict.append(" ", reload);
        sync();
      } finally {
        save.disabled = false;
      }
    }

    const el = h("section", { class: "card editor", "aria-labelledby": "h-edit" },
      h("h2", { id: "h-edit" }, "Edit"),
      h("form", { onsubmit: submit },
        h("label", { for: "sh-value" }, "Value (JSON)", input),
        help,
        stale,
        conflict,
        h("div", { class: "actions" }, status, discard, save)));
    return { el, sync };
  }

  return { stop() { stream.stop(); reread.stop(); } };
}

