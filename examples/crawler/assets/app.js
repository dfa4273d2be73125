// The crawler's page: start a crawl, watch it live over Server-Sent Events, stop it, search.
// Plain JavaScript, no build step. Every request carries the session cookie, so the server
// knows which crawls are this browser's.
"use strict";

const $ = (id) => document.getElementById(id);

/** The crawl this page follows: its id and its event stream. */
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

/** Follows crawl `task` (a task record): its status, progress and log, live. */
function follow(task) {
  unfollow();
  $("crawl").hidden = false;
  $("crawl").dataset.task = task.id;
  $("task").textContent = `task ${task.id}`;
  $("log").replaceChildren();
  showStatus(task.status);
  showProgress(task.state);
  const source = new EventSource(`/crawls/${task.id}/events`);
  following = { id: task.id, source };
  source.addEventListener("snapshot", (e) => {
    const record = JSON.parse(e.data);
    showStatus(record.status);
    showProgress(record.state);
  });
  source.addEventListener("state", (e) => showProgress(JSON.parse(e.data)));
  source.addEventListener("log", (e) => addLog(JSON.parse(e.data)));
  source.addEventListener("finished", (e) => {
    const record = JSON.parse(e.data);
    source.close();
    showStatus(record.status);
    showProgress(record.state);
    if (record.error && record.status !== "killed") say(record.error.message);
    refreshCount();
  });
  // Events were missed: start over from a fresh snapshot.
  source.addEventListener("gap", () => follow({ ...task, status: "running" }));
}

function unfollow() {
  if (following) following.source.close();
  following = null;
}

async function refreshCount() {
  const current = await api("GET", "/crawls/current");
  $("pages").textContent = current.pages;
  return current;
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

$("stop").addEventListener("click", async () => {
  if (!following) return;
  $("stop").disabled = true;
  try {
    const record = await api("POST", `/crawls/${following.id}/stop`);
    showStatus(record.status);
    showProgress(record.state);
    refreshCount();
  } catch (error) {
    say(error.message);
    $("stop").disabled = false;
  }
});

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
refreshCount()
  .then((current) => {
    if (current.task) follow(current.task);
  })
  .catch((error) => say(error.message));
