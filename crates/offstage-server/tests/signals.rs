//! Signals on a real `offstage serve --demo`: a task waiting for approval shows what it waits
//! for (API, CLI), a signal sent over HTTP or with `offstage signal` completes it; bad names,
//! bodies, unknown and finished tasks are 4xx that say what to do; scoped tokens signal only
//! with the `signal` right, within their scope.

mod common;

use std::process::{Command, Stdio};

use common::{call, code, message, stderr, stdout, Api, Server};
use offstage::testing::conformance::{Backend, PostgresBackend, SqliteBackend};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The scoped tokens' secret (`OFFSTAGE_TOKEN_SECRET`).
const SECRET: &str = "a test secret that is more than 32 bytes long";

/// `offstage serve --demo` with tokens `r` (read) and `c` (control), and a scoped-token secret.
fn server() -> Server {
    let db = SqliteBackend.new_database();
    let mut command = Command::new(common::BIN);
    command
        .args(["serve", "--demo", "--addr", "127.0.0.1:0", "--db", &db])
        .args(["--token", "read:r", "--token", "control:c"])
        .env("OFFSTAGE_TOKEN_SECRET", SECRET)
        .env_remove("OFFSTAGE_TOKENS")
        .stderr(Stdio::null());
    Server::spawn(command, &db)
}

/// Launches `demo.approval` (owned by `owner`) and waits until it waits for `approve`.
async fn waiting_approval(control: &Api, owner: &str) -> String {
    let id = control
        .launch(json!({"name": "demo.approval", "args": {"what": "refund 42"}, "owner": owner}))
        .await;
    control
        .until(&id, |kind, event| {
            kind == "log"
                && event["line"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("waiting for signal \"approve\" until "))
        })
        .await;
    id
}

async fn signal(api: &Api, id: &str, name: &str, body: &str) -> (StatusCode, Value) {
    call(
        api,
        Method::POST,
        &format!("/api/tasks/{id}/signals/{name}"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn a_task_waiting_for_approval_shows_it_and_a_signal_completes_it() {
    let server = server();
    let control = Api::new(&server, Some("c"));
    let id = waiting_approval(&control, "u1").await;

    let record = control.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(record["status"], "running");
    assert_eq!(record["waiting_for"], "approve");
    assert!(record["waiting_until"].is_string(), "{record}");
    assert_eq!(record["waiting"]["code"], "signal", "{record}");
    assert_eq!(record["waiting"]["signal"], "approve");
    assert!(
        record["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("waiting for \"approve\""),
        "{record}"
    );

    let show = server.cli(&["show", &id, "--token", "c"]);
    assert!(show.status.success(), "{}", stderr(&show));
    assert!(
        stdout(&show).contains("waiting for \"approve\""),
        "{}",
        stdout(&show)
    );
    let list = server.cli(&["list", "--token", "c"]);
    assert!(
        stdout(&list).contains("waiting for \"approve\""),
        "{}",
        stdout(&list)
    );

    // A read token may not send one.
    let (status, body) = signal(&Api::new(&server, Some("r")), &id, "approve", "true").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let sent = server.cli(&[
        "signal",
        &id,
        "approve",
        "--payload",
        r#"{"approved": true, "by": "ann"}"#,
        "--token",
        "c",
    ]);
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert!(
        stdout(&sent).contains("sent signal \"approve\""),
        "{}",
        stdout(&sent)
    );
    let done = control.finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["return_value"], json!({"approved_by": "ann"}));
    assert_eq!(done["waiting_for"], Value::Null);

    let signals = control.get(&format!("/api/tasks/{id}/signals")).await;
    let signals = signals["signals"].as_array().unwrap();
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0]["name"], "approve");
    assert_eq!(
        signals[0]["payload"],
        json!({"approved": true, "by": "ann"})
    );
    assert_eq!(signals[0]["received_attempt"], 1);
    assert!(
        signals[0]["sent_by"]
            .as_str()
            .unwrap()
            .starts_with("control token "),
        "{signals:?}"
    );
    let lines: Vec<String> = control.get(&format!("/api/tasks/{id}/logs")).await["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        lines.contains(&"received signal \"approve\"".to_owned()),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_refusal_fails_the_task_and_a_signal_sent_early_waits_for_it() {
    let server = server();
    let control = Api::new(&server, Some("c"));
    // Sent while the task is still queued (due in a minute from now is too long for a test:
    // a second), received as soon as it waits.
    let id = control
        .launch(json!({"name": "demo.approval", "args": {}, "delay_s": 1}))
        .await;
    let (status, body) = signal(
        &control,
        &id,
        "approve",
        r#"{"approved": false, "by": "bob"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["received_attempt"], Value::Null);
    let done = control.finished(&id).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["kind"], "refused");
    assert!(done["error"]["message"].as_str().unwrap().contains("bob"));
}

#[tokio::test]
async fn bad_signals_are_4xx_that_say_what_to_do() {
    let server = server();
    let control = Api::new(&server, Some("c"));
    let id = waiting_approval(&control, "u1").await;

    let unknown = "01936a9e-0000-7000-8000-000000000000";
    let (status, body) = signal(&control, unknown, "approve", "1").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{body}"
    );
    let (status, body) = signal(&control, "not-an-id", "approve", "1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let long = "s".repeat(201);
    let (status, body) = signal(&control, &id, &long, "1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("at most 200 characters"), "{body}");
    let (status, body) = signal(&control, &id, "a%0Ab", "1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("control character"), "{body}");
    let (status, body) = signal(&control, &id, "approve", "{not json").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "malformed_json"),
        "{body}"
    );
    let huge = format!("\"{}\"", "x".repeat(1_100_000));
    let (status, body) = signal(&control, &id, "approve", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(message(&body).contains("reference"), "{body}");

    // Nothing of that reached the task: it still waits. An empty body is a null payload.
    let (status, body) = signal(&control, &id, "approve", "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["payload"], Value::Null);
    let done = control.finished(&id).await;
    // `null` is no decision the demo understands.
    assert_eq!(done["status"], "failed", "{done}");

    let (status, body) = signal(&control, &id, "approve", "true").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );
    assert!(
        message(&body).contains("already ended (failed): a signal would never be received"),
        "{body}"
    );
    let output = server.cli(&[
        "signal",
        &id,
        "approve",
        "--payload",
        "{oops",
        "--token",
        "c",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--payload is not JSON"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn scoped_tokens_signal_only_with_the_signal_right_and_in_scope() {
    let server = server();
    let control = Api::new(&server, Some("c"));
    let mine = waiting_approval(&control, "u1").await;
    let theirs = waiting_approval(&control, "u2").await;
    let mint = |rights: Value| {
        let control = &control;
        async move {
            let body = json!({"scope": {"owner": "u1"}, "rights": rights, "ttl_s": 600});
            call(
                control,
                Method::POST,
                "/api/tokens",
                Some(&body.to_string()),
            )
            .await
        }
    };
    let (status, body) = mint(json!(["signal"])).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_rights"),
        "{body}"
    );

    let (_, read) = mint(json!(["read"])).await;
    let read = Api::new(&server, read["token"].as_str());
    let (status, body) = signal(&read, &mine, "approve", "true").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(message(&body).contains("\"signal\" right"), "{body}");
    // Reading the signals is reading.
    let (status, _) = call(
        &read,
        Method::GET,
        &format!("/api/tasks/{mine}/signals"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (_, approver) = mint(json!(["read", "signal"])).await;
    let approver = Api::new(&server, approver["token"].as_str());
    let (status, body) = signal(&approver, &theirs, "approve", "true").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{body}"
    );
    let (status, body) = call(
        &approver,
        Method::GET,
        &format!("/api/tasks/{theirs}/signals"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = signal(
        &approver,
        &mine,
        "approve",
        r#"{"approved": true, "by": "u1"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["sent_by"], "scoped token for owner `u1`");
    let done = control.finished(&mine).await;
    assert_eq!(done["status"], "completed", "{done}");
    // A kill still needs the kill right.
    let (status, _) = call(
        &approver,
        Method::POST,
        &format!("/api/tasks/{mine}/kill"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Starts a server on `db` (with `extra`), launches `demo.approval` and SIGKILLs the server
/// once the task waits; starts another on `db` and sends the signal there at once, while the
/// task is recovered (`missing`, retried): the task runs again and receives it.
async fn a_node_sigkilled_while_its_task_waits(db: &str, extra: &[&str]) {
    let mut first = Server::start(db, extra);
    let id = waiting_approval(&Api::new(&first, None), "u1").await;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    let second = Server::start(db, extra);
    let api = Api::new(&second, None);
    let (status, body) = signal(&api, &id, "approve", r#"{"approved": true, "by": "eve"}"#).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = api.finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(done["return_value"], json!({"approved_by": "eve"}));
    let lines: Vec<String> = api.get(&format!("/api/tasks/{id}/logs")).await["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("went missing")),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("eve approved refund 42"),
        "{lines:?}"
    );
    let signals = api.get(&format!("/api/tasks/{id}/signals")).await;
    assert_eq!(signals["signals"][0]["received_attempt"], 2, "{signals}");
}

#[tokio::test]
async fn a_node_sigkilled_while_its_task_waits_runs_it_again_and_it_receives_the_signal_sqlite() {
    a_node_sigkilled_while_its_task_waits(&SqliteBackend.new_database(), &[]).await;
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test]
async fn a_node_sigkilled_while_its_task_waits_runs_it_again_and_it_receives_the_signal_postgres() {
    let db = PostgresBackend::from_env().new_database();
    // Another node finds the dead one by its heartbeat: a short node timeout keeps it quick.
    let timing = ["--heartbeat-s", "0.2", "--node-timeout-s", "2"];
    a_node_sigkilled_while_its_task_waits(&db, &timing).await;
}
