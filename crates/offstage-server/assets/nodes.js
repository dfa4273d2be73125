// Nodes (`#/nodes`): every node sharing the store, as each last reported with its heartbeat:
// host, pid, start, last heartbeat, its slots and running tasks, the task types it serves, its
// connected workers and isolated processes. A node silent for longer than the node timeout is
// marked; recovery then removes it (its tasks read `missing`, or run again where they retry).

import { api } from "./api.js";
import { h, relativeEl, tell, timeEl } from "./ui.js";

/** How often the page re-reads the nodes: reports move with heartbeats, not events. */
const EVERY_MS = 2000;

export function nodesView(main) {
  document.title = "Nodes · Offstage";
  let stopped = false;
  const list = h("div", { class: "nodes" });
  const problem = h("p", { class: "notice error", role: "alert", hidden: true });
  main.append(
    h("div", { class: "page-head" }, h("div", { class: "title" }, h("h1", {}, "Nodes"))),
    h("p", { class: "muted" }, "Every runtime sharing this store, as it reported on its latest "
      + "heartbeat. A node that died stays until another node's recovery removes it."),
    problem, list);

  function names(items) {
    return items.length ? items.join(", ") : h("span", { class: "muted" }, "none");
  }

  function nodeCard(node, timeoutS) {
    const report = node.report;
    const silentS = (Date.now() - Date.parse(node.heartbeat_at)) / 1000;
    const dead = silentS > timeoutS;
    const facts = h("dl", { class: "facts" },
      h("dt", {}, "Host"), h("dd", { class: "host" }, node.host),
      h("dt", {}, "Pid"), h("dd", { class: "pid" }, String(node.pid)),
      h("dt", {}, "Started"), h("dd", {}, timeEl(node.started_at)),
      h("dt", {}, "Last heartbeat"), h("dd", { class: "heartbeat" },
        relativeEl(node.heartbeat_at, "ago"),
        dead && h("span", { class: "badge s-missing" }, " silent past the node timeout")),
      h("dt", {}, "Running"), h("dd", { class: "running" },
        report ? `${report.running} of ${report.slots} slots` : "—"),
      h("dt", {}, "Task types"), h("dd", { class: "types" },
        report ? names(report.task_types) : h("span", { class: "muted" }, "no report yet")));
    const workers = (report?.workers || []).map((worker) => h("li", { class: "worker" },
      h("strong", {}, worker.name), ` · ${worker.running} of ${worker.concurrency} running · `,
      names(worker.task_types), h("span", { class: "muted" }, " · connected "),
      timeEl(worker.connected_at)));
    const processes = (report?.isolated || []).map((process) => h("li", { class: "process" },
      `pid ${process.pid} · `, process.task_id
        ? h("a", { href: `#/tasks/${process.task_id}` }, "running ", h("code", {}, process.task_id))
        : h("span", { class: "muted" }, "idle")));
    return h("section", { class: "card node", "data-node": node.id, "data-dead": String(dead) },
      h("h2", {}, "Node ", h("code", {}, node.id)),
      facts,
      h("h3", {}, "Workers"),
      workers.length ? h("ul", { class: "workers" }, workers) : h("p", { class: "muted" }, "none connected"),
      h("h3", {}, "Isolated processes"),
      processes.length ? h("ul", { class: "processes" }, processes) : h("p", { class: "muted" }, "none"));
  }

  async function load() {
    try {
      const body = await api("api/nodes");
      if (stopped) return;
      list.replaceChildren(...body.nodes.map((node) => nodeCard(node, body.node_timeout_s)));
      if (!body.nodes.length) list.append(h("p", { class: "empty" }, "No node is registered."));
      problem.hidden = true;
    } catch (error) {
      if (!stopped) tell(problem, error.message);
    }
  }
  load();
  const timer = setInterval(load, EVERY_MS);

  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
