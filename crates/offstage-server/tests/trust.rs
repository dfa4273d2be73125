//! Trust at the edge of the HTTP API: which hosts it answers to (DNS rebinding), which web
//! origins may change things (cross-site requests), tokens from a file or the environment, the
//! bearer scheme in any case, and limits on the text clients send, on both stores.
//!
//! Most tests drive the router in-process (`oneshot`); the flags are tested on a real
//! `offstage serve`. `bad_text_is_a_400_on_postgres` runs when `OFFSTAGE_TEST_POSTGRES` names
//! a database (it is ignored, with the reason, otherwise).

// The binary's demo task types (`offstage serve --demo`), compiled into this test: they are not
// library API.
#[path = "../src/demo.rs"]
mod demo;

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use offstage::testing::conformance::{Backend, PostgresBackend, SqliteBackend};
use offstage::{Runtime, Status};
use offstage_server::{app, AppState, Role, Tokens};
use serde_json::Value;
use tower::ServiceExt;

async fn runtime_on(database: &str) -> Runtime {
    demo::register(Runtime::builder().database(database))
        .build()
        .await
        .unwrap()
}

async fn runtime() -> Runtime {
    runtime_on(&SqliteBackend.new_database()).await
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

async fn launch_sleeper(app: &Router) -> String {
    let (status, task) = call(
        app,
        request(
            "POST",
            "/api/tasks",
            &[("content-type", "application/json")],
            r#"{"name":"demo.sleep","args":{"seconds":600}}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    task["id"].as_str().unwrap().to_owned()
}

/// A page on another origin sends the "simple" POST a form or a `no-cors` fetch sends: no
/// token (the server has none), `text/plain`. It was 202, and the task was killed.
#[tokio::test]
async fn a_cross_site_post_is_refused_even_without_tokens() {
    let rt = runtime().await;
    let app = app(AppState::new(rt.clone()));
    let id = launch_sleeper(&app).await;
    let kill = format!("/api/tasks/{id}/kill");
    let host = ("host", "127.0.0.1:7700");
    let text = ("content-type", "text/plain;charset=UTF-8");
    for headers in [
        vec![host, text, ("origin", "http://127.0.0.1:8000")],
        vec![host, text, ("origin", "https://evil.example")],
        vec![host, text, ("origin", "null")],
        vec![host, text, ("sec-fetch-site", "cross-site")],
        vec![host, text, ("sec-fetch-site", "same-site")],
    ] {
        let (status, body) = call(&app, request("POST", &kill, &headers, "")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}: {body}");
        assert_eq!(code(&body), "cross_site", "{body}");
        assert!(message(&body).contains("--allowed-origin"), "{body}");
    }
    for (method, uri) in [
        ("POST", "/api/schedules/nightly/pause"),
        ("POST", "/api/schedules/nightly/resume"),
        ("DELETE", "/api/tasks?finished_before=2100-01-01T00:00:00Z"),
        ("POST", "/api/tasks"),
        ("PUT", "/api/shared/doc"),
    ] {
        let headers = [host, text, ("origin", "http://evil.example")];
        let (status, body) = call(&app, request(method, uri, &headers, "")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {body}");
    }
    // A WebSocket upgrade is not covered by the same-origin policy: a page could serve as a
    // worker and be handed tasks' args.
    let upgrade = [
        host,
        ("origin", "http://evil.example"),
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let (status, body) = call(&app, request("GET", "/api/workers", &upgrade, "")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Reads from another origin pass: without CORS headers the page cannot read them.
    let read = [host, ("origin", "http://evil.example")];
    let (status, _) = call(&app, request("GET", &format!("/api/tasks/{id}"), &read, "")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        rt.record(id.parse().unwrap()).await.unwrap().status,
        Status::Running,
        "no cross-site request killed the task"
    );

    // The dashboard (same origin) and the CLI (no Origin) still kill.
    let same = [
        host,
        ("origin", "http://127.0.0.1:7700"),
        ("sec-fetch-site", "same-origin"),
    ];
    let (status, body) = call(&app, request("POST", &kill, &same, "")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = launch_sleeper(&app).await;
    let (status, _) = call(
        &app,
        request("POST", &format!("/api/tasks/{id}/kill"), &[host], ""),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // An allowed origin is an explicit choice.
    let allowing =
        offstage_server::app(AppState::new(rt.clone()).allow_origin("http://127.0.0.1:8000"));
    let id = launch_sleeper(&allowing).await;
    let from = [host, text, ("origin", "http://127.0.0.1:8000")];
    let (status, body) = call(
        &allowing,
        request("POST", &format!("/api/tasks/{id}/kill"), &from, ""),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// A DNS-rebinding page's requests are same-origin to it, so it could read, launch, kill and
/// purge; they say `Host: <its name>`, which the server now refuses on every route.
#[tokio::test]
async fn an_unknown_host_is_refused_on_every_route() {
    let rt = runtime().await;
    let app = app(AppState::new(rt.clone()));
    let rebound = [
        ("host", "rebind.evil.example:7700"),
        ("origin", "http://rebind.evil.example:7700"),
    ];
    for (method, uri) in [
        ("GET", "/api/tasks"),
        ("GET", "/api/events"),
        ("POST", "/api/tasks"),
        ("DELETE", "/api/tasks?finished_before=2100-01-01T00:00:00Z"),
        ("GET", "/"),
        ("GET", "/api/me"),
    ] {
        let (status, body) = call(&app, request(method, uri, &rebound, "")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {body}");
        assert_eq!(code(&body), "host_not_allowed", "{body}");
        assert!(
            message(&body).contains("--allowed-host rebind.evil.example"),
            "{body}"
        );
    }
    for host in [
        "127.0.0.1:7700",
        "localhost:7700",
        "[::1]:7700",
        "192.168.1.20:7700",
        "app.localhost",
    ] {
        let (status, body) = call(&app, request("GET", "/api/tasks", &[("host", host)], "")).await;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
    }
    // No Host at all (HTTP/1.0, a router driven in-process) is not a browser: it passes.
    let (status, _) = call(&app, request("GET", "/api/tasks", &[], "")).await;
    assert_eq!(status, StatusCode::OK);
    // A name the server is given.
    let named = offstage_server::app(AppState::new(rt).allow_host("offstage.internal.example"));
    let (status, _) = call(
        &named,
        request(
            "GET",
            "/api/tasks",
            &[("host", "Offstage.Internal.Example:443")],
            "",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let rt = runtime().await;
    let tokens = Tokens::new([(Role::Control, "c3".to_owned())]);
    let app = app(AppState::new(rt).with_tokens(tokens));
    for value in ["Bearer c3", "bearer c3", "BEARER c3", "bearer   c3"] {
        let (status, body) = call(
            &app,
            request("GET", "/api/me", &[("authorization", value)], ""),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{value}: {body}");
        assert_eq!(body["role"], "control");
    }
    for value in ["Basic c3", "Bearer c", "Bearer c3x", "c3"] {
        let (status, _) = call(
            &app,
            request("GET", "/api/me", &[("authorization", value)], ""),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_text_is_a_400_on_sqlite() {
    bad_text_is_a_400("sqlite", &SqliteBackend.new_database()).await;
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_text_is_a_400_on_postgres() {
    bad_text_is_a_400("postgres", &PostgresBackend::from_env().new_database()).await;
}

/// Keys, owners and names over HTTP: a NUL was a 500 on PostgreSQL (`invalid byte sequence for
/// encoding "UTF8": 0x00`) and stored on SQLite; a 100,000-character key was stored. Now both
/// stores answer 400 with the limit.
async fn bad_text_is_a_400(store: &str, database: &str) {
    let long_key = "k".repeat(100_000);
    let rt = runtime_on(database).await;
    let app = app(AppState::new(rt.clone()));
    let json = [("content-type", "application/json")];
    let launches = [
        serde_json::json!({ "name": "demo.echo", "args": { "value": 1 }, "key": "a\u{0}b" }),
        serde_json::json!({ "name": "demo.echo", "args": { "value": 1 }, "owner": "\u{0}" }),
        serde_json::json!({ "name": "demo.echo", "args": { "value": 1 }, "owner": "line\nbreak" }),
        serde_json::json!({ "name": "demo.echo", "args": { "value": 1 }, "key": long_key }),
        serde_json::json!({ "name": "demo.echo", "args": { "value": 1 }, "owner": "o".repeat(257) }),
        serde_json::json!({ "name": "demo.echo\u{0}", "args": { "value": 1 } }),
        serde_json::json!({ "name": "n".repeat(100_000), "args": { "value": 1 } }),
    ];
    for launch in launches {
        let (status, body) = call(
            &app,
            request("POST", "/api/tasks", &json, &launch.to_string()),
        )
        .await;
        let shown: String = launch.to_string().chars().take(80).collect();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{store}: {shown}: {body}");
        assert_eq!(code(&body), "invalid_argument", "{store}: {body}");
        assert!(message(&body).contains("at most"), "{store}: {body}");
        assert!(
            message(&body).len() < 400,
            "{store}: the value is not echoed whole"
        );
    }
    for query in ["owner=%00", "key=%00", "name=%00", "owner=a%0Ab"] {
        let (status, body) = call(
            &app,
            request("GET", &format!("/api/tasks?{query}"), &[], ""),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{store}: {query}: {body}");
        assert!(
            message(&body).contains("control character"),
            "{store}: {body}"
        );
    }
    let schedule = serde_json::json!({ "cron": "0 0 * * *", "task": "demo.echo", "options": { "owner": "\u{0}" } });
    let (status, body) = call(
        &app,
        request(
            "PUT",
            "/api/schedules/nightly",
            &json,
            &schedule.to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{store}: {body}");
    let (status, body) = call(&app, request("GET", "/api/shared/a%00b", &[], "")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{store}: {body}");
    // At the limits, both keep the text whole.
    let launch = serde_json::json!({
        "name": "demo.echo", "args": { "value": 1 },
        "key": "é".repeat(1024), "owner": "ö".repeat(256),
    });
    let (status, body) = call(
        &app,
        request("POST", "/api/tasks", &json, &launch.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{store}: {body}");
    assert_eq!(body["key"].as_str().unwrap().chars().count(), 1024);
    rt.shutdown().await.unwrap();
}

/// `offstage serve --allowed-host/--allowed-origin/--token-file` and `OFFSTAGE_TOKENS`, on a
/// real server: tokens that never appear in `ps`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_hosts_origins_and_tokens_from_a_file_or_the_environment() {
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("offstage-trust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tokens");
    std::fs::write(
        &file,
        "# operators\ncontrol:file-secret-c\n\nread:file-secret-r\n",
    )
    .unwrap();
    let db = SqliteBackend.new_database();
    let mut command = Command::new(common::BIN);
    command
        .args(["serve", "--demo", "--addr", "127.0.0.1:0", "--db", &db])
        .args([
            "--allowed-host",
            "offstage.test",
            "--allowed-origin",
            "http://app.test:3000",
        ])
        .arg("--token-file")
        .arg(&file)
        .env(
            "OFFSTAGE_TOKENS",
            "launch:env-secret-l, worker:env-secret-w",
        )
        .stderr(Stdio::null());
    let server = common::Server::spawn(command, &db);
    let url = server.url.clone();
    let port = url.rsplit(':').next().unwrap().to_owned();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.child.id())).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("secret"),
        "no secret in ps"
    );

    let http = reqwest::Client::new();
    let me = |token: &str, host: String| {
        http.get(format!("{url}/api/me"))
            .header("host", host)
            .header("authorization", format!("bearer {token}"))
            .send()
    };
    for (token, role) in [
        ("file-secret-c", "control"),
        ("file-secret-r", "read"),
        ("env-secret-l", "launch"),
        ("env-secret-w", "worker"),
    ] {
        let response = me(token, format!("127.0.0.1:{port}")).await.unwrap();
        assert_eq!(response.status(), 200, "{token}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["role"], role);
    }
    let named = me("file-secret-r", format!("offstage.test:{port}"))
        .await
        .unwrap();
    assert_eq!(named.status(), 200, "--allowed-host");
    let other = me("file-secret-r", format!("other.test:{port}"))
        .await
        .unwrap();
    assert_eq!(other.status(), 403);

    let launch = |origin: &str| {
        http.post(format!("{url}/api/tasks"))
            .header("origin", origin)
            .bearer_auth("env-secret-l")
            .json(&serde_json::json!({ "name": "demo.echo", "args": { "value": 1 } }))
            .send()
    };
    assert_eq!(
        launch("http://app.test:3000").await.unwrap().status(),
        201,
        "--allowed-origin"
    );
    assert_eq!(launch("http://app.test:3001").await.unwrap().status(), 403);
    drop(server);

    // A bad token file stops the server, and its message does not repeat the secret.
    std::fs::write(&file, "control:fine\nhunter2\n").unwrap();
    let output = Command::new(common::BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--db", &db])
        .arg("--token-file")
        .arg(&file)
        .env_remove("OFFSTAGE_TOKENS")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
