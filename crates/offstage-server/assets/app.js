// The Offstage dashboard: every task, live, with kill, logs and a launch form; the schedules,
// with pause, resume, delete and a form to add one; the shared documents, live, with an editor.
//
// No framework and no build step: these files are ES modules served as they are, compiled into
// the `offstage` binary. They read the same JSON API and event stream as every other client.
// This one starts the page: it asks who the token is, then shows the view the URL hash names,
// one at a time (leaving a view stops its streams), or the sign-in form when a token is needed.
//
//   api.js          the session, JSON requests, event streams, a view's live data (`watch`)
//   ui.js           building elements, formatting, badges, progress bars, dialogs, routes
//   task-list.js    #/                the tasks, filtered, paginated, live
//   task.js         #/tasks/<id>      one task, its log and Kill
//   launch.js       #/launch          the launch form
//   schedules.js    #/schedules       the schedules, and a form to add one
//   shared-list.js  #/shared          the shared documents
//   shared.js       #/shared/<name>   one shared document, live, with its editor
//   charts.js       #/charts          what each task type did over the last hour or day
//   chart.js        the SVG line charts charts.js draws
//   task-types.js   #/task-types      the task types, with Pause and Resume
//   nodes.js        #/nodes           the nodes, their workers and isolated processes
//   waiting.js      (task.js)         why a task waits
//   actions.js      #/actions         bulk actions (who did what); the list's select-all and
//                                     a task's Rerun

import { actionsView } from "./actions.js";
import { onSignInNeeded, session, setLive, whoAmI } from "./api.js";
import { $, decodeName, h, parseRoute, tell } from "./ui.js";
import { chartsView } from "./charts.js";
import { launchView } from "./launch.js";
import { schedulesView } from "./schedules.js";
import { sharedListView } from "./shared-list.js";
import { sharedView } from "./shared.js";
import { taskListView } from "./task-list.js";
import { taskView } from "./task.js";
import { taskTypesView } from "./task-types.js";
import { nodesView } from "./nodes.js";

/** The view on show: `stop()` ends its streams and timers. */
let current = { stop() {} };

/** Shows the view the URL hash names. */
function route() {
  if (!location.hash.startsWith("#/") && location.hash !== "") return;
  current.stop();
  setLive("idle");
  document.title = "Offstage";
  const main = $("#main");
  main.replaceChildren();
  const { path, params } = parseRoute();
  const section = path === "/launch" ? "launch"
    : path === "/schedules" ? "schedules"
      : path === "/shared" || path.startsWith("/shared/") ? "shared"
        : path === "/charts" ? "charts"
        : path === "/task-types" ? "task-types"
        : path === "/nodes" ? "nodes"
        : path === "/actions" ? "actions" : "tasks";
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const task = path.match(/^\/tasks\/([0-9a-fA-F-]{36})$/);
  const shared = path.match(/^\/shared\/(.+)$/);
  if (task) current = taskView(main, task[1]);
  else if (path === "/launch") current = launchView(main, params);
  else if (path === "/schedules") current = schedulesView(main);
  else if (path === "/charts") current = chartsView(main, params);
  else if (path === "/actions") current = actionsView(main);
  else if (path === "/shared") current = sharedListView(main);
  else if (shared) current = sharedView(main, decodeName(shared[1]));
  else if (path === "/task-types") current = taskTypesView(main);
  else if (path === "/nodes") current = nodesView(main);
  else current = taskListView(main, params);
}

// ---------------------------------------------------------------------------------------------
// Signing in, when the server needs a token.

let signingIn = false;

/** Stops the view and asks for a token; `reason` says why, if there is more to say. */
function signIn(reason) {
  if (signingIn) return;
  signingIn = true;
  current.stop();
  current = { stop() {} };
  setLive("idle");
  session.token = null;
  session.role = null;
  sessionStorage.removeItem("offstage.token");
  updateChrome();
  const input = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "current-password",
    required: true, spellcheck: "false",
  });
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  const submit = async (event) => {
    event.preventDefault();
    session.token = input.value.trim();
    try {
      await whoAmI();
      sessionStorage.setItem("offstage.token", session.token);
      signingIn = false;
      updateChrome();
      route();
    } catch (error) {
      signingIn = true;
      session.token = null;
      tell(problem, error.status === 401
        ? "That token is not one this server knows. Check it and try again." : error.message);
      input.focus();
    }
  };
  $("#main").replaceChildren(h("div", { class: "signin card" },
    h("h1", {}, "Sign in"),
    h("p", {}, "This server needs a token. It is kept in this browser tab only."),
    reason && h("p", { class: "muted small" }, reason),
    h("form", { onsubmit: submit },
      h("label", { for: "token" }, "Token", input),
      problem,
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")))));
  input.focus();
}

/** The header as the token allows: Launch only for launch and control, who is signed in. */
function updateChrome() {
  $('[data-nav="launch"]').hidden = !session.can("launch");
  const who = $("#who");
  if (session.authRequired && session.role) {
    who.replaceChildren(h("span", { class: `role r-${session.role}` },
      session.role === "read" ? "read-only" : session.role));
    who.title = `Signed in with a ${session.role} token`;
  } else {
    who.replaceChildren();
  }
  $("#signout").hidden = !(session.authRequired && session.role);
}

async function start() {
  onSignInNeeded(signIn);
  $("#signout").addEventListener("click", () => signIn("Signed out."));
  document.querySelector("[data-skip]").addEventListener("click", (event) => {
    event.preventDefault();
    $("#main").focus();
  });
  window.addEventListener("hashchange", () => { if (!signingIn) route(); });
  try {
    await whoAmI();
  } catch (error) {
    if (error.status === 401) { signIn(); return; }
    $("#main").replaceChildren(h("p", { class: "notice error", role: "alert" }, error.message));
    return;
  }
  updateChrome();
  route();
}

start();
