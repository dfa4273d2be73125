// The crawler's page: start a crawl, watch it live, stop it, search. Plain JavaScript, no build
// step. Offstage's browser client, served by the router the app mounts at /offstage, watches
// and stops the crawl with a scoped token the app mints for this browser's session: the
// session's crawls, read and kill, nothing else. Launching and search are the app's own routes,
// which know the session by its cookie.
import { Offstage } from "/offstage/offstage.js";

const $ = (id) => document.getElementById(id);

/** The crawl this page follows: its id and its watch. */
let following = null;

/** Lines of the log kept on screen. */
const LOG_LINES = 200;

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(data.error ? data.error.message : `${method} ${path}: ${response.status}`);
  }
  return data;
}

/** This session's token, as a promise, and when to ask for the next one. */
let token = null;

/** The current token, asked of `GET /token` again halfway through its life. */
function sessionToken() {
  if (!token || Date.now() >= token.renewAt) {
    const asked = Date.now();
    const next = { renewAt: Infinity };
    next.promise = api("GET", "/token").then((minted) => {
      next.renewAt = asked + minted.ttl_s * 500;
      return minted.token;
    });
    next.promise.catch(() => { if (token === next) token = null; });
    token = next;
  }
  return token.promise;
}

// ANCHOR: client
const offstage = new Offstage("/offstage", { token: sessionToken });
// ANCHOR_END: client

function say(text) {
  $("message").textContent = text || "";
  $("message").hidden = !text;
}

function showProgress(state) {
  const done = Number(state && state.done) || 0;
  const total = Number(state && state.total) || 0;
  $("progress-text").textContent = `${done} of ${total}`;
  $("bar").max = Math.max(total, 1);
  $("bar").value = done;
}

function showStatus(status) {
  $("status").textContent = status;
  $("status").dataset.status = status;
  const running = status === "queued" || status === "running";
  $("stop").disabled = !running;
  $("run").disabled = running;
}

function addLog(line) {
  const item = document.createElement("li");
  item.textContent = line.message;
  item.dataset.level = line.level;
  $("log").append(item);
  while ($("log").children.length > LOG_LINES) $("log").firstElementChild.remove();
  // Follow the newest line without scrolling the page itself.
  $("log").scrollTop = $("log").scrollHeight;
}

// ANCHOR: follow
/** Follows crawl `task` (a task record): its status, progress and log, live. */
function follow(task) {
  unfollow();
  $("crawl").hidden = false;
  $("crawl").dataset.task = task.id;
  $("task").textContent = `task ${task.id}`;
  $("log").replaceChildren();
  showStatus(task.status);
  showProgress(task.state);
  // The record first, then each change, each once, across reconnects and token renewals.
  const watch = offstage.watch(task.id, {
    snapshot: (record) => showStatus(record.status),
    state: showProgress,
    log: addLog,
    finished: (record) => {
      showStatus(record.status);
      if (record.error && record.status !== "killed") say(record.error.message);
      refreshCount();
    },
    error: (error) => say(error.message),
  });
  following = { id: task.id, watch };
}
// ANCHOR_END: follow

function unfollow() {
  if (following) following.watch.close();
  following = null;
}

async function refreshCount() {
  $("pages").textContent = (await api("GET", "/pages")).count;
}

/** This session's newest crawl still running, if any: its token sees only this session's. */
async function runningCrawl() {
  const { tasks } = await offstage.list({ name: "crawler.crawl", limit: 20 });
  return tasks.find((task) => task.status === "queued" || task.status === "running");
}

$("crawl-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  say("");
  try {
    follow(await api("POST", "/crawls", { sitemap: $("sitemap").value }));
  } catch (error) {
    say(error.message);
  }
});

// ANCHOR: stop
$("stop").addEventListener("click", async () => {
  if (!following) return;
  $("stop").disabled = true;
  try {
    // The token's kill right: the watch's `finished` shows the outcome.
    await offstage.kill(following.id);
  } catch (error) {
    say(error.message);
    $("stop").disabled = false;
  }
});
// ANCHOR_END: stop

/** Appends `snippet` to `parent`, the words between \u0002 and \u0003 marked. */
function appendSnippet(parent, snippet) {
  snippet.split("\u0002").forEach((part, i) => {
    const [marked, rest] = i === 0 ? ["", part] : part.split("\u0003");
    if (marked) {
      const mark = document.createElement("mark");
      mark.textContent = marked;
      parent.append(mark);
    }
    if (rest) parent.append(rest);
  });
}

$("search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const q = $("q").value.trim();
  try {
    const { hits } = await api("GET", `/search?q=${encodeURIComponent(q)}`);
    $("results").replaceChildren(
      ...hits.map((hit) => {
        const item = document.createElement("li");
        const link = document.createElement("a");
        link.href = hit.url;
        link.textContent = hit.title;
        const snippet = document.createElement("p");
        appendSnippet(snippet, hit.snippet);
        item.append(link, snippet);
        return item;
      }),
    );
    $("summary").textContent = q
      ? `${hits.length} ${hits.length === 1 ? "page" : "pages"} for “${q}”`
      : "";
  } catch (error) {
    say(error.message);
  }
});

// On load: reattach to this session's crawl if one is still running.
refreshCount().catch((error) => say(error.message));
runningCrawl()
  .then((task) => {
    if (task) follow(task);
  })
  .catch((error) => say(error.message));
