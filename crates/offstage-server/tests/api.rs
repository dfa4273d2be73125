//! The HTTP API driven in-process through the router (`oneshot`), on a real SQLite file.

// The binary's demo task types (`offstage serve --demo`), compiled into this test: they are not
// library API.
#[path = "../src/demo.rs"]
mod demo;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage::{Runtime, Status};
use offstage_server::{app, AppState, Role, Tokens};
use serde_json::{json, Value};
use tower::ServiceExt;

async fn runtime() -> Runtime {
    let db = SqliteBackend.new_database();
    demo::register(Runtime::builder().sqlite(db))
        .build()
        .await
        .unwrap()
}

async fn open_app() -> (Router, Runtime) {
    let rt = runtime().await;
    (app(AppState::new(rt.clone())), rt)
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    (status, body)
}

async fn call_raw(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    (status, body_text(response).await)
}

async fn body_text(response: axum::response::Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

#[tokio::test]
async fn launch_show_list_and_logs() {
    let (app, rt) = open_app().await;
    let (status, task) = call(
        &app,
        post(
            "/api/tasks",
            r#"{"name":"demo.log","args":{"lines":3},"owner":"ann","priority":2,"key":"k1","timeout_s":90.5}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let id = task["id"].as_str().unwrap().to_owned();
    for field in [
        "name",
        "args",
        "status",
        "state",
        "return_value",
        "error",
        "launched_at",
        "started_at",
        "finished_at",
        "attempt",
        "priority",
        "key",
        "owner",
        "timeout_s",
        "termination_status",
        "is_running",
    ] {
        assert!(task.get(field).is_some(), "missing {field}: {task}");
    }
    assert_eq!(task["owner"], "ann");
    // A duration reads back as it was given: seconds, as `timeout_s`.
    assert_eq!(task["timeout_s"], json!(90.5), "{task}");
    assert!(task.get("timeout_ms").is_none(), "{task}");
    rt.get(id.parse().unwrap())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();

    let (status, shown) = call(&app, get(&format!("/api/tasks/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["termination_status"], "completed");
    assert_eq!(shown["is_running"], false);
    assert_eq!(shown["return_value"], 3);

    let (status, logs) = call(&app, get(&format!("/api/tasks/{id}/logs?after=1"))).await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<&str> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(lines, ["line 2 of 3", "line 3 of 3"]);
    assert_eq!(logs["next_after"], 3);

    call(
        &app,
        post("/api/tasks", r#"{"name":"demo.echo","args":{"value":1}}"#),
    )
    .await;
    let (status, page) = call(&app, get("/api/tasks?owner=ann")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["tasks"].as_array().unwrap().len(), 1);
    let (_, page) = call(&app, get("/api/tasks?limit=1")).await;
    assert_eq!(page["tasks"][0]["name"], "demo.echo", "newest first");
    let before = page["next_before"].as_str().unwrap();
    let (_, next) = call(&app, get(&format!("/api/tasks?limit=1&before={before}"))).await;
    assert_eq!(next["tasks"][0]["id"], id);

    let (status, types) = call(&app, get("/api/task-types")).await;
    assert_eq!(status, StatusCode::OK);
    let of = |name: &str| {
        types["task_types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {types}"))
            .clone()
    };
    assert_eq!(of("demo.count")["workers"], json!(["in-process"]));
    assert_eq!(of("demo.spin")["isolated"], true);
    assert_eq!(of("demo.count")["isolated"], false);
    assert_eq!(of("demo.count")["counts"]["completed"], 0);
    assert_eq!(of("demo.log")["counts"]["completed"], 1);
    assert_eq!(
        of("demo.log")["counts"].as_object().unwrap().len(),
        6,
        "every status"
    );
    let response = app.clone().oneshot(get("/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = body_text(response).await;
    assert!(
        text.contains(r#"offstage_tasks{name="demo.log",status="completed"} 1"#),
        "{text}"
    );
    assert!(text.contains("offstage_queue_depth 0"), "{text}");
    assert!(
        text.contains(r#"offstage_task_run_seconds_count{name="demo.log",status="completed"} 1"#),
        "{text}"
    );
    let (status, health) = call(&app, get("/healthz")).await;
    assert_eq!((status, health), (StatusCode::OK, json!({ "ok": true })));
}

#[tokio::test]
async fn kill_answers_202_and_the_task_ends_killed() {
    let (app, rt) = open_app().await;
    let mut events = rt.events();
    let (_, task) = call(
        &app,
        post(
            "/api/tasks",
            r#"{"name":"demo.sleep","args":{"seconds":600}}"#,
        ),
    )
    .await;
    let id: offstage::TaskId = task["id"].as_str().unwrap().parse().unwrap();
    offstage::testing::wait_started(&mut events, id).await;
    let (status, body) = call(
        &app,
        post(&format!("/api/tasks/{id}/kill"), r#"{"grace_s":0}"#),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let record = rt.get(id).await.unwrap().wait().await.unwrap();
    assert_eq!(record.status, Status::Killed);
    // Killing it again reports how it ended.
    let (status, body) = call(&app, post(&format!("/api/tasks/{id}/kill"), "")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("killed"))
    );
}

#[tokio::test]
async fn purge_needs_a_cutoff_and_deletes_finished_tasks() {
    let (app, rt) = open_app().await;
    let (_, task) = call(
        &app,
        post("/api/tasks", r#"{"name":"demo.echo","args":{"value":1}}"#),
    )
    .await;
    rt.get(task["id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let (status, body) = call(
        &app,
        Request::delete("/api/tasks").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "missing_finished_before")
    );
    let cutoff = (rt.now() + chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, body) = call(
        &app,
        Request::delete(format!("/api/tasks?finished_before={cutoff}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "purged": 1 })));
    let (status, _) = call(
        &app,
        get(&format!("/api/tasks/{}", task["id"].as_str().unwrap())),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A purge by filter counts first with `dry_run`, then deletes exactly what it counted; a
/// filter on a status tasks do not end with is a 400 that says why.
#[tokio::test]
async fn purge_by_filter_counts_first_and_refuses_live_statuses() {
    let (app, rt) = open_app().await;
    for (name, args) in [
        ("demo.echo", json!({ "value": 1 })),
        ("demo.echo", json!({ "value": 2 })),
        ("demo.fail", json!({ "message": "no" })),
    ] {
        let body = json!({ "name": name, "args": args });
        let (status, task) = call(&app, post("/api/tasks", &body.to_string())).await;
        assert_eq!(status, StatusCode::CREATED, "{task}");
        rt.get(task["id"].as_str().unwrap().parse().unwrap())
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
    let delete = |query: &str| Request::delete(format!("/api/tasks?{query}")).body(Body::empty());
    let (status, body) = call(&app, delete("name=demo.echo&dry_run=true").unwrap()).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({ "would_purge": 2 }))
    );
    assert_eq!(
        rt.counts().await.unwrap().len(),
        2,
        "a dry run deletes nothing"
    );
    let (status, body) = call(&app, delete("status=running").unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("kill them first"),
        "{body}"
    );
    let (status, body) = call(&app, delete("name=demo.echo").unwrap()).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "purged": 2 })));
    let counts = rt.counts().await.unwrap();
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(counts[0].0, "demo.fail");
    // The list takes the same filters: nothing finished is left of demo.echo.
    let (status, page) = call(&app, get("/api/tasks?name=demo.echo&finished=true")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["tasks"], json!([]));
}

#[tokio::test]
async fn every_bad_input_is_a_4xx_that_says_how_to_fix_it() {
    let (app, _rt) = open_app().await;
    let unknown = offstage::TaskId::new();
    let too_big = format!(
        r#"{{"name":"demo.echo","args":{{"value":"{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let cases: Vec<(Request<Body>, StatusCode, &str, &str)> = vec![
        (
            post("/api/tasks", "{bad"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "one JSON object",
        ),
        (
            post("/api/tasks", r#"{"name":5}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "invalid type",
        ),
        (
            post("/api/tasks", r#"{"name":"demo.echo","colour":"red"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "unknown field `colour`",
        ),
        (
            post("/api/tasks", r#"{"name":"nope"}"#),
            StatusCode::BAD_REQUEST,
            "unknown_task_type",
            "demo.count, demo.echo",
        ),
        (
            post("/api/tasks", r#"{"name":"demo.count","args":{"to":"x"}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_args",
            "expected u64",
        ),
        (
            post(
                "/api/tasks",
                r#"{"name":"demo.echo","args":{"value":1},"timeout_s":-1}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_timeout",
            "positive",
        ),
        // The old spellings of durations are refused with the new one's name.
        (
            post(
                "/api/tasks",
                r#"{"name":"demo.echo","args":{"value":1},"timeout_ms":1000}"#,
            ),
            StatusCode::BAD_REQUEST,
            "retired_field",
            "`timeout_ms` is no longer accepted: give `timeout_s`, in seconds",
        ),
        (
            post(&format!("/api/tasks/{unknown}/kill"), r#"{"grace_ms":0}"#),
            StatusCode::BAD_REQUEST,
            "retired_field",
            "`grace_ms` is no longer accepted: give `grace_s`, in seconds",
        ),
        (
            post(&format!("/api/tasks/{unknown}/kill"), r#"{"grace_s":-1}"#),
            StatusCode::BAD_REQUEST,
            "invalid_grace",
            "number of seconds from 0",
        ),
        (
            put(
                "/api/schedules/nightly",
                r#"{"cron":"0 3 * * *","task":"demo.echo","options":{"timeout":60000}}"#,
            ),
            StatusCode::BAD_REQUEST,
            "retired_field",
            "`options.timeout` is no longer accepted: give `options.timeout_s`, in seconds",
        ),
        (
            put(
                "/api/schedules/nightly",
                r#"{"cron":"0 3 * * *","task":"demo.echo","options":{"timeout_s":0}}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_timeout",
            "options.timeout_s is 0",
        ),
        // An unknown `on_conflict` is the same 400 on a schedule as on a launch.
        (
            put(
                "/api/schedules/nightly",
                r#"{"cron":"0 3 * * *","task":"demo.echo","options":{"key":"k","on_conflict":"maybe"}}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "reject, existing, supersede",
        ),
        (
            post("/api/tasks", &too_big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "1 MiB",
        ),
        (
            Request::post("/api/tasks").body(Body::from("{}")).unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_json",
            "Content-Type",
        ),
        (
            get(&format!("/api/tasks/{unknown}")),
            StatusCode::NOT_FOUND,
            "not_found",
            "no task has id",
        ),
        (
            get("/api/tasks/not-an-id"),
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "expected a UUID",
        ),
        (
            get(&format!("/api/tasks/{unknown}/logs")),
            StatusCode::NOT_FOUND,
            "not_found",
            "no task has id",
        ),
        (
            get(&format!("/api/tasks/{unknown}/events")),
            StatusCode::NOT_FOUND,
            "not_found",
            "no task has id",
        ),
        (
            post(&format!("/api/tasks/{unknown}/kill"), ""),
            StatusCode::NOT_FOUND,
            "not_found",
            "no task has id",
        ),
        (
            get("/api/tasks?status=done"),
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "one of queued",
        ),
        (
            get("/api/tasks?limit=0"),
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            "1 to 1000",
        ),
        (
            get("/api/tasks?limit=many"),
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "limit",
        ),
        (
            get("/api/tasks?colour=red"),
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "unknown field",
        ),
        (
            get("/api/tasks?before=x"),
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "expected a UUID",
        ),
        (
            Request::get("/api/events")
                .header("last-event-id", "abc")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_last_event_id",
            "whole number",
        ),
        (
            post(
                "/api/tokens",
                r#"{"scope":{"team":"a"},"rights":["read"],"ttl_s":60}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "{\"owner\": NAME}",
        ),
        (
            post(
                "/api/tokens",
                r#"{"scope":{"owner":"u1"},"rights":["read","write"],"ttl_s":60}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_rights",
            "optionally with \"kill\" and \"signal\"",
        ),
        (
            post(
                "/api/tokens",
                r#"{"scope":{"owner":"u1"},"rights":["read"],"ttl_s":0}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid_ttl",
            "at most 604800",
        ),
        (
            post(
                "/api/tokens",
                &format!(r#"{{"scope":{{"task":"{unknown}"}},"rights":["read"],"ttl_s":60}}"#),
            ),
            StatusCode::NOT_FOUND,
            "not_found",
            "no task has id",
        ),
        (
            get(&format!("/api/tasks/{unknown}?token=ost1.x.y")),
            StatusCode::BAD_REQUEST,
            "token_in_query",
            "Authorization: Bearer",
        ),
        (
            get("/api/events?token=ost1.x.y"),
            StatusCode::UNAUTHORIZED,
            "token_invalid",
            "Mint a new one",
        ),
        (
            get("/nowhere"),
            StatusCode::NOT_FOUND,
            "no_such_route",
            "/api/openapi.json",
        ),
        (
            get("/assets/nothing.js"),
            StatusCode::NOT_FOUND,
            "no_such_asset",
            "open /",
        ),
    ];
    for (request, status, code, hint) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (got, body) = call(&app, request).await;
        assert_eq!(got, status, "{what}: {body}");
        assert_eq!(error_code(&body), code, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(hint), "{what}: {message}");
    }
}

#[tokio::test]
async fn an_open_server_admits_workers() {
    // An open server (no tokens) once answered a worker's upgrade 403: its role for everyone
    // was `control`, which does not include `worker`.
    let (app, _rt) = open_app().await;
    let (status, body) = call_raw(&app, get("/api/workers")).await;
    assert!(
        status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
        "{status} {body}"
    );
}

#[tokio::test]
async fn tokens_and_roles() {
    let rt = runtime().await;
    let tokens = Tokens::new([
        (Role::Read, "r".to_owned()),
        (Role::Launch, "l".to_owned()),
        (Role::Control, "c".to_owned()),
    ]);
    let app = app(AppState::new(rt.clone()).with_tokens(tokens));
    let with = |request: Request<Body>, token: Option<&str>| {
        let (mut parts, body) = request.into_parts();
        if let Some(token) = token {
            parts.headers.insert(
                header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            );
        }
        Request::from_parts(parts, body)
    };
    let launch = r#"{"name":"demo.sleep","args":{"seconds":600}}"#;
    let (status, body) = call(&app, with(get("/api/tasks"), None)).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, _) = call(&app, with(get("/api/tasks"), Some("wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&app, with(get("/api/tasks"), Some("r"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&app, with(post("/api/tasks", launch), Some("r"))).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("role launch"));
    let (status, task) = call(&app, with(post("/api/tasks", launch), Some("l"))).await;
    assert_eq!(status, StatusCode::CREATED);
    let kill = format!("/api/tasks/{}/kill", task["id"].as_str().unwrap());
    let (status, _) = call(&app, with(post(&kill, r#"{"grace_s":0}"#), Some("l"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "kill needs control");
    let (status, _) = call(&app, with(post(&kill, r#"{"grace_s":0}"#), Some("c"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = call(&app, with(get("/healthz"), None)).await;
    assert_eq!(status, StatusCode::OK, "health needs no token");
    // What a token may do, for the dashboard to show only what it can use.
    for (token, role) in [("r", "read"), ("l", "launch"), ("c", "control")] {
        let (status, me) = call(&app, with(get("/api/me"), Some(token))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (me["role"].as_str(), &me["auth_required"]),
            (Some(role), &Value::Bool(true))
        );
    }
    let (status, _) = call(&app, with(get("/api/me"), Some("wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The page itself loads without a token: it asks for one.
    let (status, _) = call_raw(&app, with(get("/"), None)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_dashboard_is_served_from_the_binary_with_validators() {
    let (app, _rt) = open_app().await;
    let (_, me) = call(&app, get("/api/me")).await;
    assert_eq!(
        me,
        serde_json::json!({ "role": "control", "auth_required": false })
    );
    let response = app.clone().oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    let page = body_text(response).await;
    for asset in ["assets/app.js", "assets/style.css"] {
        assert!(page.contains(asset), "the page loads {asset}");
        let (status, body) = call_raw(&app, get(&format!("/{asset}"))).await;
        assert_eq!(status, StatusCode::OK, "{asset}");
        assert!(body.len() > 1000, "{asset} is the real file");
    }
    // A browser that has the page revalidates it and gets 304 while it is unchanged.
    let etag = headers[header::ETAG].clone();
    let again = Request::builder()
        .uri("/")
        .header(header::IF_NONE_MATCH, etag)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(again).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn sse_streams_a_task_and_ends_after_finished() {
    let (app, rt) = open_app().await;
    let (_, task) = call(
        &app,
        post(
            "/api/tasks",
            r#"{"name":"demo.count","args":{"to":3,"interval_ms":20}}"#,
        ),
    )
    .await;
    let id = task["id"].as_str().unwrap();
    // Resume from before the launch: every event of the task, in order, then the end.
    let request = Request::get(format!("/api/tasks/{id}/events"))
        .header("last-event-id", "0")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let text = body_text(response).await;
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        kinds,
        ["launched", "started", "state", "log", "state", "log", "state", "log", "finished"],
        "{text}"
    );
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|s| s.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // Resuming after the third event gives exactly the rest.
    let request = Request::get(format!("/api/tasks/{id}/events"))
        .header("last-event-id", ids[2].to_string())
        .body(Body::empty())
        .unwrap();
    let rest = app
        .clone()
        .oneshot(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes();
    let rest = String::from_utf8(rest.to_vec()).unwrap();
    let rest_ids: Vec<u64> = rest
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(rest_ids, ids[3..]);
    // A finished task's stream is its final record, then the end.
    let (status, _) = call(&app, get(&format!("/api/tasks/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    let done = app
        .clone()
        .oneshot(get(&format!("/api/tasks/{id}/events")))
        .await
        .unwrap();
    let done = body_text(done).await;
    assert!(
        done.contains("event: finished") && done.contains("\"completed\""),
        "{done}"
    );
    drop(rt);
}

#[tokio::test]
async fn openapi_describes_every_route_the_router_serves() {
    let (app, _rt) = open_app().await;
    let (status, doc) = call(&app, get("/api/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    let expected = [
        "DELETE /api/limiters/{name}",
        "DELETE /api/schedules/{name}",
        "DELETE /api/tasks",
        "GET /api/actions",
        "GET /api/actions/{id}",
        "GET /api/events",
        "GET /api/limiters",
        "GET /api/me",
        "GET /api/nodes",
        "GET /api/schedules",
        "GET /api/schedules/{name}",
        "GET /api/shared",
        "GET /api/shared/{name}",
        "GET /api/shared/{name}/events",
        "GET /api/stats",
        "GET /api/task-types",
        "GET /api/tasks",
        "GET /api/tasks/{id}",
        "GET /api/tasks/{id}/events",
        "GET /api/tasks/{id}/logs",
        "GET /api/tasks/{id}/signals",
        "GET /api/workers",
        "GET /healthz",
        "GET /readyz",
        "POST /api/actions",
        "POST /api/limiters/{name}/acquire",
        "POST /api/limiters/{name}/release",
        "POST /api/schedules/{name}/pause",
        "POST /api/schedules/{name}/resume",
        "POST /api/task-types/{name}/pause",
        "POST /api/task-types/{name}/resume",
        "POST /api/tasks",
        "POST /api/tasks/{id}/kill",
        "POST /api/tasks/{id}/rerun",
        "POST /api/tasks/{id}/signals/{name}",
        "POST /api/tokens",
        "PUT /api/limiters/{name}",
        "PUT /api/schedules/{name}",
        "PUT /api/shared/{name}",
    ];
    assert_eq!(documented, expected);
    // Each documented route exists: it answers with something other than "no such route".
    let some_id = offstage::TaskId::new();
    for route in expected {
        let (method, path) = route.split_once(' ').unwrap();
        let uri = path
            .replace("{id}", &some_id.to_string())
            .replace("{name}", "some.document");
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_ne!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{route}");
        if response.headers()[header::CONTENT_TYPE] == "text/event-stream" {
            continue; // a live stream: it exists, and never ends by itself
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert_ne!(body["error"]["code"], "no_such_route", "{route}");
    }
    for schema in [
        "TaskView",
        "TaskRecord",
        "LaunchRequest",
        "TaskPage",
        "LogPage",
        "ErrorBody",
        "Status",
        "SharedRecord",
        "SharedLock",
        "SharedList",
        "SharedSetRequest",
        "SharedChange",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "schema {schema} missing"
        );
    }
    let launch = &doc["components"]["schemas"]["LaunchRequest"]["properties"];
    assert!(launch.get("timeout_s").is_some() && launch.get("owner").is_some());
}

#[tokio::test]
async fn the_dashboard_works_mounted_under_a_prefix() {
    let rt = runtime().await;
    let mounted = Router::new().nest("/offstage", app(AppState::new(rt.clone())));
    let (status, page) = call_raw(&mounted, get("/offstage")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"content="/offstage/""#), "{page}");
    assert!(page.contains(r#"src="/offstage/assets/app.js""#), "{page}");
    for uri in [
        "/offstage/assets/app.js",
        "/offstage/assets/style.css",
        "/offstage/api/me",
    ] {
        let (status, _) = call_raw(&mounted, get(uri)).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    // At the root, the base is the root.
    let (_, page) = call_raw(&app(AppState::new(rt)), get("/")).await;
    assert!(page.contains(r#"src="/assets/app.js""#), "{page}");
}

#[tokio::test]
async fn a_key_with_on_conflict_rejects_returns_or_supersedes_the_live_task() {
    let (app, rt) = open_app().await;
    let launch = |on_conflict: &str| {
        post(
            "/api/tasks",
            &json!({ "name": "demo.sleep", "args": { "seconds": 600 }, "key": "nightly",
                     "on_conflict": on_conflict })
            .to_string(),
        )
    };
    let (status, first) = call(&app, launch("reject")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let first_id = first["id"].as_str().unwrap().to_owned();

    let (status, body) = call(&app, launch("reject")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "conflict")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&first_id),
        "{body}"
    );

    let (status, same) = call(&app, launch("existing")).await;
    assert_eq!(status, StatusCode::OK, "the live task, not a new one");
    assert_eq!(same["id"], first_id.as_str());

    let (status, second) = call(&app, launch("supersede")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(second["id"], first_id.as_str());
    let (_, old) = call(&app, get(&format!("/api/tasks/{first_id}"))).await;
    assert_eq!(
        old["status"], "killed",
        "superseded before the new one went in"
    );

    for (body, hint) in [
        (
            json!({ "name": "demo.echo", "args": { "value": 1 }, "on_conflict": "reject" }),
            "needs a key",
        ),
        (
            json!({ "name": "demo.echo", "args": { "value": 1 }, "key": "k", "on_conflict": "maybe" }),
            "reject, existing, supersede",
        ),
    ] {
        let (status, error) = call(&app, post("/api/tasks", &body.to_string())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(hint),
            "{error}"
        );
    }
    rt.kill(second["id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_launch_can_wait_until_a_time_or_for_a_delay() {
    let (app, rt) = open_app().await;
    let (status, task) = call(
        &app,
        post(
            "/api/tasks",
            r#"{"name": "demo.echo", "args": {"value": 1}, "delay_s": 3600}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(task["status"], "queued");
    let run_at: chrono::DateTime<chrono::Utc> = task["run_at"].as_str().unwrap().parse().unwrap();
    let due_in = (run_at - rt.now()).num_seconds();
    assert!((3590..=3600).contains(&due_in), "due in {due_in} s");

    let (status, task) = call(
        &app,
        post(
            "/api/tasks",
            r#"{"name": "demo.echo", "args": {"value": 1}, "run_at": "2099-01-01T00:00:00Z"}"#,
        ),
    )
    .await;
    assert_eq!(
        (status, task["run_at"].as_str()),
        (StatusCode::CREATED, Some("2099-01-01T00:00:00Z"))
    );

    for body in [
        r#"{"name": "demo.echo", "args": {"value": 1}, "delay_s": -1}"#,
        r#"{"name": "demo.echo", "args": {"value": 1}, "delay_s": 5, "run_at": "2099-01-01T00:00:00Z"}"#,
    ] {
        let (status, error) = call(&app, post("/api/tasks", body)).await;
        assert_eq!(
            (status, error_code(&error)),
            (StatusCode::BAD_REQUEST, "invalid_delay"),
            "{body}"
        );
    }
}

fn put(uri: &str, body: &str) -> Request<Body> {
    Request::put(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// What schemathesis found where the server and `/api/openapi.json` disagreed (issue 13): each
/// input is now accepted or refused as the document says.
#[tokio::test]
async fn schemathesis_findings_are_answered_as_the_openapi_document_says() {
    let (app, _rt) = open_app().await;
    // `status=` (a form's "any status") is no filter.
    let (status, body) = call(&app, get("/api/tasks?status=")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A kill body of `null` is no options, as an empty one is.
    let (_, task) = call(
        &app,
        post("/api/tasks", r#"{"name":"demo.echo","args":{"value":1}}"#),
    )
    .await;
    let id = task["id"].as_str().unwrap();
    let (status, body) = call(&app, post(&format!("/api/tasks/{id}/kill"), "null")).await;
    assert!(status.is_success(), "{status} {body}");
    // A whole number written as a float is that integer (JSON has one number type).
    let (status, body) = call(&app, put("/api/shared/counter", r#"{"value":1}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        &app,
        put("/api/shared/counter", r#"{"value":2,"version":1.0}"#),
    )
    .await;
    assert_eq!(
        (status, &body["version"]),
        (StatusCode::OK, &json!(2)),
        "{body}"
    );
    let (status, body) = call(
        &app,
        post(&format!("/api/tasks/{id}/kill"), r#"{"grace_s":"soon"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Bodies are objects: serde alone would read a struct from an array of its fields.
    for (request, what) in [
        (put("/api/shared/counter", "[3, 2]"), "shared"),
        (post("/api/tasks", r#"["demo.echo", {}]"#), "launch"),
        (post(&format!("/api/tasks/{id}/kill"), "[0]"), "kill"),
    ] {
        let (status, body) = call(&app, request).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            "{what}: {body}"
        );
    }
    // A schedule's options are typed: an unknown one is named, a whole float is an integer.
    let (status, body) = call(
        &app,
        put(
            "/api/schedules/nightly",
            r#"{"cron":"0 3 * * *","task":"demo.echo","options":{"colour":"red"}}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("unknown field `colour`"), "{body}");
    let (status, body) = call(
        &app,
        put(
            "/api/schedules/nightly",
            r#"{"cron":"0 3 * * *","task":"demo.echo","args":{"value":1},"options":{"priority":2.0,"timeout_s":1.5}}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Its record gives the timeout back as it was given: seconds, as `timeout_s`.
    assert_eq!(
        (&body["options"]["priority"], &body["options"]["timeout_s"]),
        (&json!(2), &json!(1.5)),
        "{body}"
    );
    assert!(body["options"].get("timeout").is_none(), "{body}");
    // The document says so.
    let (_, doc) = call(&app, get("/api/openapi.json")).await;
    let options = &doc["components"]["schemas"]["ScheduleOptions"];
    assert_eq!(options["additionalProperties"], json!(false), "{options}");
    assert_eq!(
        doc["components"]["schemas"]["ScheduleRequest"]["properties"]["cron"]["minLength"],
        json!(1)
    );
}
