//! Reruns and bulk actions against a real `offstage serve` on a real port: the HTTP API (dry
//! runs, a bulk kill, a paced bulk rerun, the record of who did what, every refusal) and the
//! CLI (`offstage rerun`, `offstage bulk`, `offstage actions`).

mod common;

use common::{call, code, message, stderr, stdout, Api, Server, LIMIT};
use offstage::testing::conformance::{Backend, SqliteBackend};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Waits until action `id` has ended, reading it as a client would; its final record.
async fn ended(api: &Api, id: &str) -> Value {
    tokio::time::timeout(LIMIT, async {
        loop {
            let action = api.get(&format!("/api/actions/{id}")).await;
            if action["status"] != "running" {
                return action;
            }
            // An action's progress is read, not pushed: this is what a client does.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the action ends within the limit")
}

async fn post(api: &Api, path: &str, body: Value) -> (StatusCode, Value) {
    call(api, Method::POST, path, Some(&body.to_string())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_over_http_is_a_new_task_linked_both_ways() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let original = api
        .launch(
            json!({ "name": "demo.echo", "args": { "value": 1 }, "owner": "ann", "priority": 3 }),
        )
        .await;
    api.finished(&original).await;

    let (status, same) = post(&api, &format!("/api/tasks/{original}/rerun"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{same}");
    assert_eq!(same["rerun_of"], original.as_str());
    assert_eq!(same["args"], json!({ "value": 1 }));
    assert_eq!(same["owner"], "ann");
    assert_eq!(same["priority"], 3);
    let same_id = same["id"].as_str().unwrap().to_owned();
    assert_eq!(api.finished(&same_id).await["return_value"], json!(1));

    // No body at all reruns with the original's args too; edited args are the new task's.
    let response = api
        .request(Method::POST, &format!("/api/tasks/{original}/rerun"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let (status, edited) = post(
        &api,
        &format!("/api/tasks/{original}/rerun"),
        json!({ "args": { "value": 2 } }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{edited}");
    let edited_id = edited["id"].as_str().unwrap();
    assert_eq!(api.finished(edited_id).await["return_value"], json!(2));

    // The original's page finds its reruns; the rerun names its original.
    let reruns = api.get(&format!("/api/tasks?rerun_of={original}")).await;
    let ids: Vec<&str> = reruns["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], edited_id);
    assert_eq!(
        api.get(&format!("/api/tasks/{original}")).await["rerun_of"],
        Value::Null
    );

    // Refusals, each saying what to do.
    let live = api
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 } }))
        .await;
    let (status, body) = post(&api, &format!("/api/tasks/{live}/rerun"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("Kill it or wait"), "{body}");
    let (status, body) = post(
        &api,
        &format!("/api/tasks/{original}/rerun"),
        json!({ "args": { "nope": 1 } }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "invalid_args");
    let unknown = offstage::TaskId::new();
    let (status, body) = post(&api, &format!("/api/tasks/{unknown}/rerun"), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(
        &api,
        Method::POST,
        &format!("/api/tasks/{original}/rerun"),
        Some("[1]"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(message(&body).contains("{\"args\""), "{body}");
    let (status, body) = post(
        &api,
        &format!("/api/tasks/{original}/rerun"),
        json!({ "arg": 1 }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    api.kill(&live, Some(0.0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_kill_counts_first_then_kills_every_live_match_and_records_who() {
    let server = Server::start(
        &SqliteBackend.new_database(),
        &[
            "--token",
            "read:r",
            "--token",
            "launch:l",
            "--token",
            "control:c",
        ],
    );
    let control = Api::new(&server, Some("c"));
    let mut targets = Vec::new();
    for _ in 0..4 {
        targets.push(
            control
                .launch(
                    json!({ "name": "demo.sleep", "args": { "seconds": 600 }, "owner": "batch-7" }),
                )
                .await,
        );
    }
    let other = control
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 }, "owner": "batch-8" }))
        .await;
    let filter = json!({ "owner": "batch-7" });

    let (status, dry) = post(
        &control,
        "/api/actions",
        json!({ "verb": "kill", "filter": filter, "dry_run": true }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["matched"], 4);
    assert_eq!(dry["dry_run"], true);
    for id in &targets {
        assert_eq!(
            control.get(&format!("/api/tasks/{id}")).await["is_running"],
            true
        );
    }
    assert_eq!(control.get("/api/actions").await["actions"], json!([]));

    // Only control may act; read may see the record.
    for (token, want) in [("r", StatusCode::FORBIDDEN), ("l", StatusCode::FORBIDDEN)] {
        let (status, body) = post(
            &Api::new(&server, Some(token)),
            "/api/actions",
            json!({ "verb": "kill", "filter": filter }),
        )
        .await;
        assert_eq!(status, want, "{body}");
    }

    let (status, action) = post(
        &control,
        "/api/actions",
        json!({ "verb": "kill", "filter": filter }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{action}");
    assert_eq!(action["status"], "running");
    assert_eq!(action["matched"], 4);
    let id = action["id"].as_str().unwrap();
    let done = ended(&Api::new(&server, Some("r")), id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        (done["done"].as_u64(), done["failed"].as_u64()),
        (Some(4), Some(0))
    );
    assert_eq!(done["verb"], "kill");
    assert_eq!(done["filter"]["owner"], "batch-7");
    let actor = done["actor"].as_str().unwrap();
    assert!(actor.starts_with("control token "), "{actor}");
    for task in &targets {
        assert_eq!(control.finished(task).await["status"], "killed");
    }
    assert_eq!(
        control.get(&format!("/api/tasks/{other}")).await["is_running"],
        true
    );
    let listed = control.get("/api/actions").await;
    assert_eq!(listed["actions"][0]["id"], id);
    control.kill(&other, Some(0.0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_bulk_rerun_relaunches_each_failed_task_once() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let mut failed = Vec::new();
    for i in 0..5 {
        let id = api
            .launch(json!({ "name": "demo.fail", "args": { "message": format!("outage {i}") } }))
            .await;
        assert_eq!(api.finished(&id).await["status"], "failed");
        failed.push(id);
    }
    let filter = json!({ "name": "demo.fail", "status": "failed" });
    let (_, dry) = post(
        &api,
        "/api/actions",
        json!({ "verb": "rerun", "filter": filter, "dry_run": true }),
    )
    .await;
    assert_eq!(dry["matched"], 5);
    let (status, action) = post(
        &api,
        "/api/actions",
        json!({ "verb": "rerun", "filter": filter, "per_s": 50 }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{action}");
    assert_eq!(action["per_s"], 50.0);
    assert_eq!(action["actor"], "anonymous");
    let done = ended(&api, action["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["done"], 5);
    for id in &failed {
        let reruns = api.get(&format!("/api/tasks?rerun_of={id}")).await;
        assert_eq!(reruns["tasks"].as_array().unwrap().len(), 1, "{reruns}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bulk_requests_say_how_to_fix_them() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let cases: &[(&str, StatusCode, &str, &str)] = &[
        (
            r#"{"verb": "explode"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "verb",
        ),
        (
            r#"{"filter": {}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "verb",
        ),
        (
            r#"{"verb": "kill", "filter": {"colour": "red"}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "colour",
        ),
        (
            r#"{"verb": "kill", "per_s": 5}"#,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "paces reruns only",
        ),
        (
            r#"{"verb": "rerun", "per_s": 0}"#,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "positive number",
        ),
        (
            r#"{"verb": "rerun", "per_s": -1, "dry_run": true}"#,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "positive number",
        ),
        (
            r#"{"verb": "kill", "filter": {"status": "failed"}}"#,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "queued or running",
        ),
        (
            r#"{"verb": "purge", "filter": {"status": "running"}}"#,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "completed, failed",
        ),
        (
            r#"{"verb": "kill", "filter": {"status": "sleepy"}}"#,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "sleepy",
        ),
        (
            r#"{"verb": "kill", "filter": {"rerun_of": "nope"}}"#,
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "UUID",
        ),
        (
            r#"{"verb": "kill", "filter": {"launched_after": "2026-02-01T00:00:00Z", "launched_before": "2026-01-01T00:00:00Z"}}"#,
            StatusCode::BAD_REQUEST,
            "invalid_filter",
            "swap them",
        ),
        (
            r#"{"verb": "kill", "filter": {"launched_after": "yesterday"}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "launched_after",
        ),
        (
            r#"{"verb": "kill", "filter": {"owner": "a\u0000b"}}"#,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "control character",
        ),
        (
            "[]",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "object",
        ),
    ];
    for (body, want, want_code, says) in cases {
        let (status, answer) = call(&api, Method::POST, "/api/actions", Some(body)).await;
        assert_eq!(status, *want, "{body}: {answer}");
        assert_eq!(code(&answer), *want_code, "{body}: {answer}");
        assert!(message(&answer).contains(says), "{body}: {answer}");
    }
    let (status, answer) = call(&api, Method::GET, "/api/actions/nope", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let unknown = offstage::TaskId::new();
    let (status, answer) = call(&api, Method::GET, &format!("/api/actions/{unknown}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(message(&answer).contains("no action has id"), "{answer}");
    let (status, answer) = call(&api, Method::GET, "/api/actions?limit=0", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = call(&api, Method::GET, "/api/tasks?rerun_of=nope", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reruns_counts_asks_and_bulk_kills_with_a_record() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let original = api
        .launch(json!({ "name": "demo.echo", "args": { "value": "a" } }))
        .await;
    api.finished(&original).await;
    let output = server.cli(&["rerun", &original, "--args", r#"{"value": "b"}"#, "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let rerun: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(rerun["rerun_of"], original.as_str());
    assert_eq!(rerun["args"], json!({ "value": "b" }));
    let output = server.cli(&["show", rerun["id"].as_str().unwrap()]);
    assert!(
        stdout(&output).contains(&format!("rerun_of      {original}")),
        "{}",
        stdout(&output)
    );
    let output = server.cli(&["rerun", &original, "--args", "{nope"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--args is not JSON"),
        "{}",
        stderr(&output)
    );

    for _ in 0..3 {
        api.launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 }, "owner": "cli" }))
            .await;
    }
    let output = server.cli(&["bulk", "kill", "--owner", "cli", "--dry-run"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output).trim(),
        "kill would act on 3 live tasks (dry run)"
    );
    // Without a terminal to ask on, it needs --yes, and changes nothing.
    let output = server.cli(&["bulk", "kill", "--owner", "cli"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--yes"), "{}", stderr(&output));
    assert_eq!(api.get("/api/actions").await["actions"], json!([]));
    let output = server.cli(&["bulk", "kill", "--owner", "cli", "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("kill: 3 of 3 done, 0 failed (completed"),
        "{}",
        stdout(&output)
    );
    let live = api.get("/api/tasks?owner=cli&finished=false").await;
    assert_eq!(live["tasks"], json!([]));
    let output = server.cli(&["actions"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    assert!(
        table.contains("kill") && table.contains("anonymous") && table.contains("owner=cli"),
        "{table}"
    );
    let output = server.cli(&["bulk", "purge", "--status", "running", "--yes"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("finished tasks"),
        "{}",
        stderr(&output)
    );
}
