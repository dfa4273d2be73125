// The shared documents (`#/shared`): named JSON documents that tasks and handlers change under
// a lock held across all nodes, with their versions and who holds each lock; open one by name.

import { api } from "./api.js";
import { fmtTime, h, lockEl, tell, timeEl } from "./ui.js";

const sharedHref = (name) => `#/shared/${encodeURIComponent(name)}`;

export function sharedListView(main) {
  document.title = "Shared state · Offstage";
  let stopped = false;
  const tbody = h("tbody");
  const table = h("table", { class: "grid shared", hidden: true },
    h("caption", { class: "sr-only" }, "Shared documents, by name"),
    h("thead", {}, h("tr", {},
      ["Name", "Version", "Updated", "Lock"].map((label) => h("th", { scope: "col" }, label)))),
    tbody);
  const empty = h("div", { class: "empty", hidden: true },
    h("p", {}, "No shared documents yet."),
    h("p", { class: "small" }, "Tasks make them with ctx.shared(name); a PUT to "
      + "/api/shared/NAME, or opening a name below, does too."));
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  const status = h("span", { class: "muted small", role: "status" });
  const openInput = h("input", {
    id: "sh-open", name: "name", required: true, autocomplete: "off", spellcheck: "false",
  });
  const open = (event) => {
    event.preventDefault();
    if (openInput.value.trim()) location.hash = sharedHref(openInput.value.trim());
  };

  async function load() {
    try {
      const body = await api("api/shared");
      if (stopped) return;
      tbody.replaceChildren(...body.shared.map((doc) =>
        h("tr", { "data-name": doc.name },
          h("td", { class: "name" }, h("a", { href: sharedHref(doc.name) }, doc.name)),
          h("td", { class: "num version" }, String(doc.version)),
          h("td", {}, timeEl(doc.updated_at)),
          h("td", {}, lockEl(doc.locked_by, false)))));
      table.hidden = body.shared.length === 0;
      empty.hidden = body.shared.length > 0;
      status.textContent = `As of ${fmtTime(new Date().toISOString())}`;
      problem.hidden = true;
    } catch (error) {
      tell(problem, error.message);
    }
  }

  main.append(
    h("div", { class: "page-head" }, h("h1", {}, "Shared state"),
      h("div", { class: "row-actions" }, status,
        h("button", { type: "button", id: "sh-list-reload", onclick: load }, "Reload"))),
    h("div", { class: "toolbar" },
      h("p", { class: "muted small lede" }, "Named JSON documents that tasks and handlers "
        + "change under a lock held across all nodes. Open one to watch it live."),
      h("form", { class: "find", onsubmit: open, "aria-label": "Open a document by name" },
        h("label", { for: "sh-open" }, "Open by name", openInput),
        h("button", { type: "submit" }, "Open"))),
    problem,
    h("div", { class: "table-wrap" }, table),
    empty);
  load();
  return { stop() { stopped = true; } };
}

