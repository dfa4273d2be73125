//! Shared state over HTTP and the CLI, against a real `offstage serve` process on a free port.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use offstage::testing::conformance::{Backend, SqliteBackend};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{call, code, message, stderr, stdout, Api, Server, Sse, BIN, LIMIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_and_watch_shared_state_over_http() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);

    let (status, body) = call(&api, Method::GET, "/api/shared/counter", None).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    assert!(message(&body).contains("a PUT creates it"), "{body}");
    assert_eq!(api.get("/api/shared").await, json!({ "shared": [] }));

    // A watch on a document nobody wrote yet starts with its first change.
    let mut watch = Sse::open(&api, "/api/shared/counter/events", None).await;
    let (status, saved) = call(
        &api,
        Method::PUT,
        "/api/shared/counter",
        Some(r#"{"value": {"n": 1}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(
        (saved["version"].clone(), saved["value"].clone()),
        (json!(1), json!({ "n": 1 }))
    );
    assert_eq!(saved["locked_by"], Value::Null);
    let (id, kind, change) = watch.next().await;
    assert_eq!((id.as_str(), kind.as_str()), ("1", "change"));
    assert_eq!(
        change,
        json!({ "name": "counter", "value": { "n": 1 }, "version": 1 })
    );

    let shown = api.get("/api/shared/counter").await;
    assert_eq!(
        (shown["version"].clone(), shown["value"].clone()),
        (json!(1), json!({ "n": 1 }))
    );

    // Read-modify-write from a client: a stale version is refused and changes nothing.
    let (status, body) = call(
        &api,
        Method::PUT,
        "/api/shared/counter",
        Some(r#"{"value": {"n": 7}, "version": 0}"#),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "version_conflict")
    );
    assert!(message(&body).contains("version 1"), "{body}");
    let (status, saved) = call(
        &api,
        Method::PUT,
        "/api/shared/counter",
        Some(r#"{"value": {"n": 2}, "version": 1}"#),
    )
    .await;
    assert_eq!(
        (status, saved["version"].clone()),
        (StatusCode::OK, json!(2))
    );
    let (id, _, change) = watch.next().await;
    assert_eq!(
        (id.as_str(), change["value"].clone()),
        ("2", json!({ "n": 2 }))
    );

    // A new watcher first gets the current value; one that has it (Last-Event-ID) does not.
    let mut fresh = Sse::open(&api, "/api/shared/counter/events", None).await;
    let (id, _, current) = fresh.next().await;
    assert_eq!(
        (id.as_str(), current["value"].clone()),
        ("2", json!({ "n": 2 }))
    );
    let mut resumed = Sse::open(&api, "/api/shared/counter/events", Some(2)).await;
    call(
        &api,
        Method::PUT,
        "/api/shared/counter",
        Some(r#"{"value": 3}"#),
    )
    .await;
    let (id, _, change) = resumed.next().await;
    assert_eq!((id.as_str(), change["value"].clone()), ("3", json!(3)));

    let list = api.get("/api/shared").await;
    let listed = &list["shared"][0];
    assert_eq!(
        (listed["name"].as_str(), listed["version"].as_u64()),
        (Some("counter"), Some(3))
    );
    assert!(
        listed.get("value").is_none(),
        "the list leaves values out: {list}"
    );

    // Bad requests are 4xx that say how to fix them.
    for (body, status, expected, hint) in [
        (
            "{\"value\": ",
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "one JSON object",
        ),
        (
            "{\"version\": 1}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "value",
        ),
        (
            "{\"value\": 1, \"extra\": 2}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "extra",
        ),
    ] {
        let (got, error) = call(&api, Method::PUT, "/api/shared/counter", Some(body)).await;
        assert_eq!((got, code(&error)), (status, expected), "{body}: {error}");
        assert!(message(&error).contains(hint), "{body}: {error}");
    }
    let long = format!("/api/shared/{}", "x".repeat(201));
    let (status, error) = call(&api, Method::GET, &long, None).await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::BAD_REQUEST, "invalid_argument")
    );
    assert!(message(&error).contains("200 characters"), "{error}");
    assert_eq!(
        api.get("/api/shared/counter").await["version"],
        3,
        "nothing changed"
    );

    let openapi = api.get("/api/openapi.json").await;
    for path in [
        "/api/shared",
        "/api/shared/{name}",
        "/api/shared/{name}/events",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} is documented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_reads_shared_state_and_cannot_write_it() {
    let server = Server::with_three_roles();
    let put = Some(r#"{"value": {"paused": true}}"#);
    let control = Api::new(&server, Some("c"));
    let (status, _) = call(&control, Method::PUT, "/api/shared/flags", put).await;
    assert_eq!(status, StatusCode::OK);
    for token in ["r", "l"] {
        let api = Api::new(&server, Some(token));
        let (status, body) = call(&api, Method::PUT, "/api/shared/flags", put).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{token}"
        );
        assert!(message(&body).contains("role control"), "{body}");
        let (status, body) = call(&api, Method::GET, "/api/shared/flags", None).await;
        assert_eq!(
            (status, body["value"].clone()),
            (StatusCode::OK, json!({ "paused": true }))
        );
    }
    let anonymous = Api::new(&server, None);
    let (status, _) = call(&anonymous, Method::GET, "/api/shared", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn the_cli_lists_gets_sets_and_watches_shared_state() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let set = server.cli(&["shared", "set", "crawl.settings", r#"{"depth": 2}"#]);
    assert_eq!(set.status.code(), Some(0), "{}", stderr(&set));
    assert_eq!(stdout(&set).trim(), "crawl.settings version 1");

    let got = server.cli(&["shared", "get", "crawl.settings"]);
    let value: Value = serde_json::from_str(&stdout(&got)).unwrap();
    assert_eq!(value, json!({ "depth": 2 }));
    let listed = server.cli(&["shared", "list"]);
    assert!(
        stdout(&listed).contains("crawl.settings"),
        "{}",
        stdout(&listed)
    );

    let stale = server.cli(&["shared", "set", "crawl.settings", "3", "--version", "0"]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(stderr(&stale).contains("HTTP 409"), "{}", stderr(&stale));
    let bad = server.cli(&["shared", "set", "crawl.settings", "{depth"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("is not JSON"), "{}", stderr(&bad));
    let absent = server.cli(&["shared", "get", "nothing"]);
    assert!(stderr(&absent).contains("HTTP 404"), "{}", stderr(&absent));

    // `watch` prints the current value, then each change, as they come.
    let mut watch = Command::new(BIN)
        .args(["shared", "watch", "crawl.settings"])
        .env("OFFSTAGE_SERVER", &server.url)
        .env_remove("OFFSTAGE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    let output = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let next = || lines.recv_timeout(LIMIT).expect("watch prints a line");
    assert_eq!(next(), r#"1 {"depth":2}"#);
    let set = server.cli(&["shared", "set", "crawl.settings", r#"{"depth": 3}"#]);
    assert_eq!(set.status.code(), Some(0), "{}", stderr(&set));
    assert_eq!(next(), r#"2 {"depth":3}"#);
    watch.kill().unwrap();
    watch.wait().unwrap();
}
