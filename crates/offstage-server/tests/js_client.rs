//! The browser client (`clients/js/offstage.js`, served at `/offstage.js`) in a real browser:
//! headless Chromium, driven over WebDriver, against a real `offstage serve --demo` process.
//!
//! Runs when `OFFSTAGE_TEST_BROWSER` is set; `tests/common/browser.rs` has the harness. Each test
//! opens a page of the server's own origin, imports the module there as an app's page would, and
//! runs a script in it (`ClientPage::run`) that answers with what it saw; the test then checks
//! that. Scripts wait for events (a handler, a watch's `done`), never for time.

mod common;

use common::browser::{require_browser, Browser, SERIAL};
use common::{Api, Server};
use offstage::testing::conformance::{Backend, SqliteBackend};
use serde_json::{json, Value};

/// One test's page: an `offstage serve --demo` process with the tokens `r` (role read), `l`
/// (launch) and `c` (control), and a headless Chromium on a page of its origin. Everything
/// stops when it is dropped, a failing test too.
struct ClientPage {
    browser: Browser,
    api: Api,
    server: Server,
    _one: tokio::sync::MutexGuard<'static, ()>,
}

impl ClientPage {
    async fn start() -> ClientPage {
        ClientPage::start_with(&[]).await
    }

    async fn start_with(extra: &[&str]) -> ClientPage {
        require_browser();
        let one = SERIAL.lock().await;
        let mut args = vec![
            "--token",
            "read:r",
            "--token",
            "launch:l",
            "--token",
            "control:c",
        ];
        args.extend_from_slice(extra);
        let server = Server::start(&SqliteBackend.new_database(), &args);
        let api = Api::new(&server, Some("c"));
        let browser = Browser::open(&server.url, (800, 600)).await;
        // Any page of the server's origin will do: the module and the API are then same-origin.
        browser.goto("healthz").await;
        ClientPage {
            browser,
            api,
            server,
            _one: one,
        }
    }

    /// Runs `body`, the body of an async function, in the page with `Offstage` and
    /// `OffstageError` imported from the server's `/offstage.js` and `args` in scope; answers
    /// what it returns (or `{"thrown": ...}`).
    async fn run(&self, body: &str, args: Value) -> Value {
        let script = format!(
            r#"
            const args = arguments[0];
            const answer = arguments[arguments.length - 1];
            (async () => {{
                const {{ Offstage, OffstageError, SseParser }} = await import("/offstage.js");
                {body}
            }})().then(answer, (e) => answer({{ thrown: String(e), stack: String(e && e.stack) }}));
            "#
        );
        let value = self
            .browser
            .client
            .execute_async(&script, vec![args])
            .await
            .expect("the script answers");
        assert!(value.get("thrown").is_none(), "the script threw: {value}");
        value
    }

    /// Ends a test that passed: no JavaScript error in the page (a handler that threw, a module
    /// that did not load).
    async fn close(self) {
        let errors = self.browser.js_errors().await;
        self.browser.close().await;
        assert_eq!(
            errors,
            Vec::<String>::new(),
            "JavaScript errors in the page"
        );
    }
}

#[tokio::test]
#[cfg_attr(
    not(offstage_test_browser),
    ignore = "needs headless Chromium: set OFFSTAGE_TEST_BROWSER=1 (see tests/common/browser.rs)"
)]
async fn watch_delivers_every_state_once_and_in_order_across_a_dropped_connection() {
    let page = ClientPage::start().await;
    let seen = page
        .run(
            r#"
            const launcher = new Offstage(undefined, { token: "l" });
            const reader = new Offstage(undefined, { token: "r" });
            const task = await launcher.launch("demo.count", { to: 12, interval_ms: 100 });
            // A second watch of the same task says when the task has counted past the point
            // where the first one's connection is cut: only then may the first reconnect, so
            // the counts in between happen while it is away and must come from the replay.
            let release;
            const released = new Promise((resolve) => { release = resolve; });
            let observed = null;
            const observer = reader.watch(task.id, {
                state(state) { if (state.done >= 6 && observed === null) { observed = state.done; release(); } },
            });
            const states = [];
            const logs = [];
            let finished = 0;
            let dropped = false;
            const watch = reader.watch(task.id, {
                state(state) {
                    states.push({ done: state.done ?? null, connection: watch.connections });
                    if (state.done === 3 && !dropped) {
                        dropped = true;
                        watch._dropConnection(released);
                    }
                },
                log(line) { logs.push({ message: line.message, connection: watch.connections }); },
                finished() { finished += 1; },
            });
            const final = await watch.done;
            await observer.done;
            return { states, logs, finished, final, observed, connections: watch.connections,
                     lastEventId: watch.lastEventId };
            "#,
            json!({}),
        )
        .await;
    let states = seen["states"].as_array().unwrap();
    // The first state is the snapshot: `{}` if the task had not counted yet when the watch
    // read its record, else its count then.
    let counts: Vec<u64> = states.iter().filter_map(|s| s["done"].as_u64()).collect();
    assert_eq!(counts, (1..=12).collect::<Vec<_>>(), "{seen}");
    assert!(
        states.len() <= 13 && states[1..].iter().all(|s| s["done"].is_u64()),
        "{seen}"
    );
    assert_eq!(seen["connections"], 2, "one reconnect: {seen}");
    for state in states {
        let done = state["done"].as_u64().unwrap_or(0);
        let expected = if done <= 3 { 1 } else { 2 };
        assert_eq!(state["connection"], expected, "count {done}: {seen}");
    }
    // The counts the observer saw before the reconnect was allowed reached the watch through
    // the reconnected stream: the server replayed them after `Last-Event-ID`.
    let observed = seen["observed"].as_u64().unwrap();
    assert!(observed >= 6, "{seen}");
    assert!(
        states
            .iter()
            .any(|s| s["done"] == 4 && s["connection"] == 2),
        "{seen}"
    );
    let logs: Vec<&str> = seen["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    // Log lines come from the moment the stream opened (a slow browser may open it after the
    // first count), then each once, in order, across the reconnect.
    let first = 13_usize.saturating_sub(logs.len()).max(1);
    assert!(first <= 3, "the lines before the drop too: {seen}");
    let expected: Vec<String> = (first..=12).map(|n| format!("counted {n} of 12")).collect();
    assert_eq!(logs, expected, "every log line once, in order: {seen}");
    assert_eq!(seen["finished"], 1, "{seen}");
    assert_eq!(seen["final"]["status"], "completed", "{seen}");
    assert_eq!(seen["final"]["return_value"], 12, "{seen}");
    assert_eq!(seen["final"]["is_running"], false, "{seen}");
    assert_eq!(seen["final"]["state"], json!({ "done": 12, "total": 12 }));
    page.close().await;
}

#[tokio::test]
#[cfg_attr(
    not(offstage_test_browser),
    ignore = "needs headless Chromium: set OFFSTAGE_TEST_BROWSER=1 (see tests/common/browser.rs)"
)]
async fn signal_approves_a_watched_task_and_a_finished_one_is_a_conflict() {
    let page = ClientPage::start().await;
    let id = page
        .api
        .launch(json!({ "name": "demo.approval", "args": {} }))
        .await;
    let seen = page
        .run(
            r#"
            const control = new Offstage(undefined, { token: "c" });
            let watch;
            // Approve once the task says it waits: an Approve button.
            const waiting = new Promise((resolve) => {
                watch = control.watch(args.id, {
                    snapshot(task) { if (task.waiting_for === "approve") resolve(); },
                    log(line) { if (line.message.startsWith("waiting for signal")) resolve(); },
                });
            });
            await waiting;
            const sent = await control.signal(args.id, "approve", { approved: true, by: "js" });
            const final = await watch.done;
            let refused = null;
            try { await control.signal(args.id, "approve", true); } catch (error) {
                refused = { code: error.code, status: error.status, message: error.message };
            }
            return { sent, final, refused };
            "#,
            json!({ "id": id }),
        )
        .await;
    assert_eq!(seen["sent"]["name"], "approve", "{seen}");
    assert_eq!(seen["sent"]["payload"]["by"], "js", "{seen}");
    assert_eq!(seen["final"]["status"], "completed", "{seen}");
    assert_eq!(seen["final"]["return_value"]["approved_by"], "js", "{seen}");
    assert_eq!(seen["refused"]["code"], "conflict", "{seen}");
    assert_eq!(seen["refused"]["status"], 409, "{seen}");
    page.close().await;
}

#[tokio::test]
#[cfg_attr(
    not(offstage_test_browser),
    ignore = "needs headless Chromium: set OFFSTAGE_TEST_BROWSER=1 (see tests/common/browser.rs)"
)]
async fn kill_ends_a_watched_task_killed_with_its_finished_event_once() {
    let page = ClientPage::start().await;
    let id = page
        .api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 60 } }))
        .await;
    let seen = page
        .run(
            r#"
            const reader = new Offstage(undefined, { token: "r" });
            const control = new Offstage(undefined, { token: "c" });
            const snapshots = [];
            let finished = 0;
            let killed = null;
            let watch;
            // Kill once the watch is live and has shown the task's state: a Stop button.
            const shown = new Promise((resolve) => {
                watch = reader.watch(args.id, {
                    snapshot(task) { snapshots.push(task.status); },
                    state(state) { if (state.sleeping_s) resolve(state); },
                    finished() { finished += 1; },
                });
            });
            const state = await shown;
            // A read token may not kill: the error says so and changes nothing.
            let refused = null;
            try { await reader.kill(args.id); } catch (error) {
                refused = { isError: error instanceof OffstageError, name: error.name,
                            code: error.code, status: error.status, message: error.message };
            }
            killed = await control.kill(args.id);
            const final = await watch.done;
            return { state, snapshots, refused, killed: killed.id, finished, final };
            "#,
            json!({ "id": id }),
        )
        .await;
    assert_eq!(seen["state"]["sleeping_s"].as_f64(), Some(60.0), "{seen}");
    assert_eq!(seen["refused"]["isError"], true, "{seen}");
    assert_eq!(seen["refused"]["name"], "OffstageError", "{seen}");
    assert_eq!(seen["refused"]["code"], "forbidden", "{seen}");
    assert_eq!(seen["refused"]["status"], 403, "{seen}");
    assert!(
        seen["refused"]["message"]
            .as_str()
            .unwrap()
            .contains("role control"),
        "{seen}"
    );
    assert_eq!(seen["killed"], id.as_str());
    assert_eq!(seen["finished"], 1, "{seen}");
    assert_eq!(seen["final"]["status"], "killed", "{seen}");
    assert_eq!(seen["final"]["termination_status"], "killed", "{seen}");
    assert_eq!(page.api.finished(&id).await["status"], "killed");
    page.close().await;
}

#[tokio::test]
#[cfg_attr(
    not(offstage_test_browser),
    ignore = "needs headless Chromium: set OFFSTAGE_TEST_BROWSER=1 (see tests/common/browser.rs)"
)]
async fn get_list_and_a_finished_task_watch_answer_what_the_api_has() {
    let page = ClientPage::start().await;
    let first = page
        .api
        .launch(json!({ "name": "demo.echo", "args": { "value": "one" }, "owner": "ann" }))
        .await;
    let second = page
        .api
        .launch(json!({ "name": "demo.echo", "args": { "value": "two" }, "owner": "bob" }))
        .await;
    page.api.finished(&first).await;
    page.api.finished(&second).await;
    let seen = page
        .run(
            r#"
            const reader = new Offstage(undefined, { token: "r" });
            const task = await reader.get(args.first);
            const all = await reader.list();
            const ann = await reader.list({ owner: "ann" });
            const page1 = await reader.list({ name: "demo.echo", limit: 1 });
            const page2 = await reader.list({ name: "demo.echo", limit: 1, before: page1.next_before });
            // Watching a task that has finished: its state, then `finished`, once, and the end.
            const events = [];
            const watch = reader.watch(args.first, {
                state(state) { events.push(["state", state]); },
                finished(task) { events.push(["finished", task.return_value]); },
            });
            const final = await watch.done;
            return {
                task, final, events,
                all: all.tasks.map((t) => t.id),
                ann: ann.tasks.map((t) => t.id),
                pages: [page1.tasks.map((t) => t.id), page2.tasks.map((t) => t.id)],
            };
            "#,
            json!({ "first": first }),
        )
        .await;
    assert_eq!(seen["task"]["id"], first.as_str());
    assert_eq!(seen["task"]["status"], "completed");
    assert_eq!(seen["task"]["return_value"], "one");
    assert_eq!(seen["all"], json!([second, first]), "newest first");
    assert_eq!(seen["ann"], json!([first]));
    assert_eq!(seen["pages"], json!([[second], [first]]));
    assert_eq!(
        seen["events"],
        json!([["state", {}], ["finished", "one"]]),
        "{seen}"
    );
    assert_eq!(seen["final"]["status"], "completed");
    page.close().await;
}

#[tokio::test]
#[cfg_attr(
    not(offstage_test_browser),
    ignore = "needs headless Chromium: set OFFSTAGE_TEST_BROWSER=1 (see tests/common/browser.rs)"
)]
async fn refusals_arrive_as_offstage_errors_with_code_status_and_message() {
    let page = ClientPage::start().await;
    let seen = page
        .run(
            r#"
            const failure = async (promise) => {
                try { await promise; return { resolved: true }; } catch (error) {
                    return { isError: error instanceof OffstageError, code: error.code,
                             status: error.status, message: error.message };
                }
            };
            const reader = new Offstage(undefined, { token: "r" });
            const unknown = "01890a5d-ac96-774b-bcce-b302099a8057";
            const watchFailure = (client, id) => new Promise((resolve) => {
                const watch = client.watch(id, {
                    error(error) { resolve({ isError: error instanceof OffstageError,
                        code: error.code, status: error.status, ended: watch.done }); },
                });
            }).then(async (seen) => ({ ...seen, ended: await seen.ended }));
            return {
                notFound: await failure(reader.get(unknown)),
                badId: await failure(reader.get("nope")),
                noToken: await failure(new Offstage().get(unknown)),
                badToken: await failure(new Offstage(undefined, { token: "wrong" }).list()),
                cannotLaunch: await failure(reader.launch("demo.echo", { value: 1 })),
                unreachable: await failure(new Offstage("http://127.0.0.1:9", { token: "r" }).get(unknown)),
                watchUnknown: await watchFailure(reader, unknown),
                watchBadToken: await watchFailure(new Offstage(undefined, { token: "wrong" }), unknown),
            };
            "#,
            json!({}),
        )
        .await;
    let expect = |name: &str, code: &str, status: u16| {
        let error = &seen[name];
        assert_eq!(error["isError"], true, "{name}: {seen}");
        assert_eq!(error["code"], code, "{name}: {seen}");
        assert_eq!(error["status"], status, "{name}: {seen}");
    };
    expect("notFound", "not_found", 404);
    expect("badId", "invalid_id", 400);
    expect("noToken", "unauthorized", 401);
    expect("badToken", "unauthorized", 401);
    expect("cannotLaunch", "forbidden", 403);
    expect("unreachable", "unreachable", 0);
    expect("watchUnknown", "not_found", 404);
    expect("watchBadToken", "unauthorized", 401);
    assert_eq!(seen["watchUnknown"]["ended"], Value::Null);
    assert!(seen["noToken"]["message"]
        .as_str()
        .unwrap()
        .contains("Authorization: Bearer"));
    page.close().await;
}

#[tokio::test]
#[cfg_attr(
    not(offstage_test_browser),
    ignore = "needs headless Chromium: set OFFSTAGE_TEST_BROWSER=1 (see tests/common/browser.rs)"
)]
async fn the_sse_parser_reads_frames_as_the_standard_says() {
    let page = ClientPage::start().await;
    // Each case: chunks as they may arrive, and the events they make.
    let seen = page
        .run(
            r#"
            const parse = (chunks) => {
                const events = [];
                const parser = new SseParser((event) => events.push(event));
                for (const chunk of chunks) parser.feed(chunk);
                return { events, lastId: parser.lastId, retry: parser.retry };
            };
            return {
                multiline: parse(["id: 7\nevent: state\ndata: {\"a\":\ndata: 1}\n\n"]),
                comments: parse([": keep-alive\n\n", ":x\nevent: log\ndata: x\n\n"]),
                crlfSplit: parse(["id: 1\r", "\ndata: a\r\n\r", "\ndata: b\r\rid: 2\n\n"]),
                idOnly: parse(["id: 9\n\n", "data: after\n\n"]),
                noSpace: parse(["data:x\nevent:gap\nretry: 1500\n\n"]),
                unfinished: parse(["data: not yet\n"]),
                splitLine: parse(["da", "ta: joined", "\n", "\n"]),
            };
            "#,
            json!({}),
        )
        .await;
    let event =
        |type_: &str, data: &str, id: Value| json!({ "type": type_, "data": data, "id": id });
    assert_eq!(
        seen["multiline"]["events"],
        json!([event("state", "{\"a\":\n1}", json!("7"))])
    );
    assert_eq!(
        seen["comments"]["events"],
        json!([event("log", "x", Value::Null)])
    );
    assert_eq!(
        seen["crlfSplit"]["events"],
        json!([
            event("message", "a", json!("1")),
            event("message", "b", json!("1"))
        ])
    );
    assert_eq!(seen["crlfSplit"]["lastId"], "2");
    assert_eq!(
        seen["idOnly"]["events"],
        json!([event("message", "after", json!("9"))])
    );
    assert_eq!(
        seen["noSpace"]["events"],
        json!([event("gap", "x", Value::Null)])
    );
    assert_eq!(seen["noSpace"]["retry"], 1500);
    assert_eq!(seen["unfinished"]["events"], json!([]));
    assert_eq!(
        seen["splitLine"]["events"],
        json!([event("message", "joined", Value::Null)])
    );
    page.close().await;
}

/// The issue's cross-origin case: a page on another origin (`localhost` against the server's
/// `127.0.0.1`) watches its own task with a scoped token the app minted, and a second user's
/// token sees nothing of it.
#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn a_page_on_another_origin_watches_its_task_with_a_scoped_token() {
    let page = ClientPage::start_with(&["--cors-origin", "*"]).await;
    let port = page.server.url.rsplit(':').next().unwrap().to_owned();
    page.browser
        .client
        .goto(&format!("http://localhost:{port}/healthz"))
        .await
        .unwrap();
    let mine = page
        .api
        .launch(
            json!({ "name": "demo.count", "args": { "to": 5, "interval_ms": 50 }, "owner": "ann" }),
        )
        .await;
    let theirs = page
        .api
        .launch(json!({ "name": "demo.echo", "args": { "value": 1 }, "owner": "bob" }))
        .await;
    let mint = |owner: &str| {
        let body = json!({ "scope": { "owner": owner }, "rights": ["read"], "ttl_s": 60 });
        page.api
            .request(reqwest::Method::POST, "/api/tokens")
            .json(&body)
            .send()
    };
    let ann: Value = mint("ann").await.unwrap().json().await.unwrap();
    let bob: Value = mint("bob").await.unwrap().json().await.unwrap();
    let script = format!(
        r#"
        const answer = arguments[arguments.length - 1];
        (async () => {{
            const server = "{url}";
            const {{ Offstage }} = await import(server + "/offstage.js");
            const ann = new Offstage(server, {{ token: "{ann}" }});
            const bob = new Offstage(server, {{ token: "{bob}" }});
            const counts = [];
            const watch = ann.watch("{mine}", {{ state(s) {{ if (s.done) counts.push(s.done); }} }});
            const final = await watch.done;
            let hidden = null;
            try {{ await bob.get("{mine}"); }} catch (e) {{ hidden = e.status; }}
            const listed = (await bob.list()).tasks.map((t) => t.id);
            return {{ counts, status: final.status, hidden, listed }};
        }})().then(answer, (e) => answer({{ thrown: String(e) }}));
        "#,
        url = page.server.url,
        ann = ann["token"].as_str().unwrap(),
        bob = bob["token"].as_str().unwrap(),
    );
    let seen = page
        .browser
        .client
        .execute_async(&script, vec![])
        .await
        .unwrap();
    // The watch starts with the state current when the page got there (the task was already
    // counting), then every change after it, each once: a gapless run that ends at 5.
    let counts: Vec<u64> = serde_json::from_value(seen["counts"].clone()).unwrap();
    let first = *counts.first().expect("at least the final count");
    assert_eq!(counts, (first..=5).collect::<Vec<_>>(), "{seen}");
    assert_eq!(seen["status"], "completed", "{seen}");
    assert_eq!(seen["hidden"], 404, "{seen}");
    assert_eq!(seen["listed"], json!([theirs]), "{seen}");
    page.close().await;
}

/// The module and its types are served by the server itself, to anyone (no token), to pages on
/// any origin, as JavaScript, and they are the files under `clients/js/`.
#[tokio::test]
async fn the_client_is_served_at_offstage_js_without_a_token() {
    let db = SqliteBackend.new_database();
    let server = Server::start(&db, &["--token", "read:r"]);
    let http = reqwest::Client::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/js");
    for (path, content_type) in [
        ("offstage.js", "text/javascript"),
        ("offstage.d.ts", "application/typescript"),
    ] {
        let response = http
            .get(format!("{}/{path}", server.url))
            .header("Origin", "http://app.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}: {headers:?}"
        );
        assert_eq!(headers["access-control-allow-origin"], "*", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let body = response.bytes().await.unwrap();
        assert_eq!(body, std::fs::read(root.join(path)).unwrap(), "{path}");
    }
    // The API itself still needs the token.
    let refused = http
        .get(format!("{}/api/tasks", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

/// `examples/js/plain.html` as its comment says to run it: served from another origin (here a
/// small static server in the test), the task and the server in its URL, a scoped token in its
/// fragment. It shows the task's progress to the end, and its Stop button kills another.
#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn the_plain_page_example_shows_a_task_to_its_end_and_stops_another() {
    const PLAIN: &str = include_str!("../../../examples/js/plain.html");
    let pages = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://127.0.0.1:{}", pages.local_addr().unwrap().port());
    let site = axum::Router::new().route(
        "/plain.html",
        axum::routing::get(|| async { axum::response::Html(PLAIN) }),
    );
    tokio::spawn(async move { axum::serve(pages, site).await });
    let page = ClientPage::start_with(&["--cors-origin", &origin]).await;
    let mint = |task: String| {
        let api = &page.api;
        async move {
            let body =
                json!({ "scope": { "task": task }, "rights": ["read", "kill"], "ttl_s": 300 });
            let answer = api
                .request(reqwest::Method::POST, "/api/tokens")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 201);
            let minted: Value = answer.json().await.unwrap();
            minted["token"].as_str().unwrap().to_owned()
        }
    };
    let open = |task: String, token: String| {
        let url = format!(
            "{origin}/plain.html?server={}&task={task}#token={token}",
            page.server.url
        );
        let client = page.browser.client.clone();
        async move { client.goto(&url).await.unwrap() }
    };

    let short = page
        .api
        .launch(json!({ "name": "demo.count", "args": { "to": 5, "interval_ms": 50 } }))
        .await;
    open(short.clone(), mint(short).await).await;
    page.browser
        .wait("#status", "text", json!("Finished: completed"))
        .await;
    assert_eq!(page.browser.text("#count").await, "5 of 5");
    assert!(page.browser.text("#log").await.contains("5"));

    let long = page
        .api
        .launch(json!({ "name": "demo.count", "args": { "to": 1000, "interval_ms": 50 } }))
        .await;
    open(long.clone(), mint(long.clone()).await).await;
    page.browser.wait("#count", "text", json!("of 1000")).await;
    page.browser.click("#stop").await;
    page.browser
        .wait("#status", "text", json!("Finished: killed"))
        .await;
    assert_eq!(page.api.finished(&long).await["status"], "killed");
    page.close().await;
}

/// `examples/js/react/useTask.js` in a page, with a stand-in for React's `useState` and
/// `useEffect` (a dozen lines, the hook's whole contract with React) mapped to `react` by an
/// import map: the component shows its task live to the end, and a token for another task gets
/// the server's refusal as `error`.
#[cfg_attr(
    not(offstage_test_browser),
    ignore = "set OFFSTAGE_TEST_BROWSER=1 to run (needs chromium and chromium-driver)"
)]
#[tokio::test]
async fn the_react_hook_example_follows_its_task_and_reports_a_refusal() {
    const USE_TASK: &str = include_str!("../../../examples/js/react/useTask.js");
    // Re-renders the one component whenever a state it uses is set; runs an effect when its
    // dependencies change, cleaning up the last one first.
    const REACT: &str = r#"
        let component, cursor = 0, queued = false;
        const slots = [];
        const rerender = () => { cursor = 0; component(); };
        export function useState(initial) {
          const i = cursor++;
          if (!(i in slots)) slots[i] = initial;
          const set = (next) => {
            slots[i] = typeof next === "function" ? next(slots[i]) : next;
            if (!queued) { queued = true; queueMicrotask(() => { queued = false; rerender(); }); }
          };
          return [slots[i], set];
        }
        export function useEffect(effect, deps) {
          const i = cursor++;
          const last = slots[i];
          if (last && deps.every((d, k) => d === last.deps[k])) return;
          if (last && last.cleanup) last.cleanup();
          slots[i] = { deps, cleanup: undefined };
          queueMicrotask(() => { slots[i].cleanup = effect(); });
        }
        export function render(c) { component = c; rerender(); }
    "#;
    const PAGE: &str = r##"<!doctype html>
        <script type="importmap">{ "imports": { "react": "/react.js" } }</script>
        <p id="out">…</p>
        <script type="module">
          import { useTask } from "/useTask.js";
          import { render } from "/react.js";
          const params = new URLSearchParams(location.search);
          const server = params.get("server");
          const { Offstage } = await import(`${server}/offstage.js`);
          const client = new Offstage(server, { token: params.get("token") });
          render(() => {
            const { task, error } = useTask(params.get("task"), { client });
            document.querySelector("#out").textContent = error
              ? `error ${error.code}`
              : task ? `${task.status} ${task.state.done ?? 0} of ${task.state.total ?? "?"}` : "…";
          });
        </script>"##;
    let pages = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://127.0.0.1:{}", pages.local_addr().unwrap().port());
    let module =
        |body: &'static str| move || async move { ([("content-type", "text/javascript")], body) };
    let site = axum::Router::new()
        .route(
            "/hook.html",
            axum::routing::get(|| async { axum::response::Html(PAGE) }),
        )
        .route("/react.js", axum::routing::get(module(REACT)))
        .route("/useTask.js", axum::routing::get(module(USE_TASK)));
    tokio::spawn(async move { axum::serve(pages, site).await });
    let page = ClientPage::start_with(&["--cors-origin", &origin]).await;
    let mint = |task: &str| {
        let body = json!({ "scope": { "task": task }, "rights": ["read"], "ttl_s": 300 });
        let request = page
            .api
            .request(reqwest::Method::POST, "/api/tokens")
            .json(&body);
        async move {
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), 201);
            let minted: Value = answer.json().await.unwrap();
            minted["token"].as_str().unwrap().to_owned()
        }
    };
    let open = |task: &str, token: &str| {
        let url = format!(
            "{origin}/hook.html?server={}&task={task}&token={token}",
            page.server.url
        );
        let client = page.browser.client.clone();
        async move { client.goto(&url).await.unwrap() }
    };

    let task = page
        .api
        .launch(json!({ "name": "demo.count", "args": { "to": 5, "interval_ms": 50 } }))
        .await;
    open(&task, &mint(&task).await).await;
    page.browser
        .wait("#out", "exact", json!("completed 5 of 5"))
        .await;

    let other = page
        .api
        .launch(json!({ "name": "demo.echo", "args": { "value": 1 } }))
        .await;
    // A token for `other` asking for `task`: outside its scope, so 404 as for an unknown id.
    open(&task, &mint(&other).await).await;
    page.browser
        .wait("#out", "exact", json!("error not_found"))
        .await;
    page.close().await;
}
