//! Schedules over HTTP and the CLI, against a real `offstage serve` process on a free port.

mod common;

use offstage::testing::conformance::{Backend, SqliteBackend};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use common::{call, code, message, stderr, stdout, Api, Server, Sse};

/// The next `launched` event on the all-tasks stream for a task named `name`.
async fn next_launch(events: &mut Sse, name: &str) -> Value {
    loop {
        let (_, kind, data) = events.next().await;
        if kind == "launched" && data["task"]["name"] == name {
            return data["task"].clone();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_put_over_http_launches_on_its_ticks_and_pauses() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    assert_eq!(api.get("/api/schedules").await, json!({ "schedules": [] }));

    let mut events = Sse::open(&api, "/api/events", None).await;
    let body = r#"{"cron": "* * * * * *", "task": "demo.echo", "args": {"value": "tick"},
        "options": {"timeout_s": 2.5}}"#;
    let (status, record) = call(&api, Method::PUT, "/api/schedules/every-second", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(
        (record["name"].as_str(), record["paused"].as_bool()),
        (Some("every-second"), Some(false))
    );
    assert!(record["next_tick_at"].is_string(), "{record}");

    // The next tick launches it, with run_at on the whole second of the tick.
    let task = next_launch(&mut events, "demo.echo").await;
    assert_eq!(task["args"], json!({ "value": "tick" }));
    let run_at: chrono::DateTime<chrono::Utc> = task["run_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(run_at.timestamp_subsec_micros(), 0, "{task}");
    let done = api.finished(task["id"].as_str().unwrap()).await;
    assert_eq!(done["return_value"], json!("tick"));
    // Its timeout is the schedule's, in the same unit on the schedule and on the task.
    assert_eq!(record["options"]["timeout_s"], json!(2.5), "{record}");
    assert_eq!(done["timeout_s"], json!(2.5), "{done}");

    // Pause through the CLI: the record says so on every read, with no next tick.
    let paused = server.cli(&["schedule", "pause", "every-second"]);
    assert_eq!(paused.status.code(), Some(0), "{}", stderr(&paused));
    assert!(stdout(&paused).contains("paused"), "{}", stdout(&paused));
    let shown = api.get("/api/schedules/every-second").await;
    assert_eq!(
        (shown["paused"].as_bool(), shown["next_tick_at"].is_null()),
        (Some(true), true)
    );

    let (status, resumed) = call(
        &api,
        Method::POST,
        "/api/schedules/every-second/resume",
        None,
    )
    .await;
    assert_eq!(
        (status, resumed["paused"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let listed = server.cli(&["schedule", "list"]);
    let table = stdout(&listed);
    assert!(
        table.contains("every-second") && table.contains("* * * * * *"),
        "{table}"
    );
    assert!(table.contains("active"), "{table}");

    let deleted = server.cli(&["schedule", "delete", "every-second"]);
    assert_eq!(deleted.status.code(), Some(0), "{}", stderr(&deleted));
    let (status, body) = call(&api, Method::GET, "/api/schedules/every-second", None).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    assert!(message(&body).contains("list the schedules"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schedules_are_refused_with_what_to_change() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let cases = [
        (
            r#"{"cron": "every minute", "task": "demo.echo"}"#,
            "minute hour",
        ),
        (r#"{"cron": "* * * * *", "task": "demo.nope"}"#, "demo.echo"),
        (
            r#"{"cron": "* * * * *", "task": "demo.echo", "args": {"value": 1, "extra": 2}}"#,
            "demo.echo",
        ),
        (
            r#"{"cron": "* * * * *", "task": "demo.echo", "options": {"key": "k", "on_conflict": "supersede"}}"#,
            "reject or existing",
        ),
        (
            r#"{"cron": "* * * * *", "task": "demo.echo", "when": 1}"#,
            "when",
        ),
        // The timeout was milliseconds under `options.timeout`; it is seconds, as on a launch.
        (
            r#"{"cron": "* * * * *", "task": "demo.echo", "options": {"timeout": 60000}}"#,
            "`options.timeout` is no longer accepted: give `options.timeout_s`, in seconds",
        ),
    ];
    for (body, hint) in cases {
        let (status, error) = call(&api, Method::PUT, "/api/schedules/bad", Some(body)).await;
        assert!(status.is_client_error(), "{body}: {status} {error}");
        assert!(message(&error).contains(hint), "{body}: {error}");
    }
    assert_eq!(api.get("/api/schedules").await, json!({ "schedules": [] }));
    let (status, _) = call(&api, Method::POST, "/api/schedules/nope/pause", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let set_nightly = |args: &str| {
        server.cli(&[
            "schedule",
            "set",
            "nightly",
            "--cron",
            "0 3 * * *",
            "--task",
            "demo.echo",
            "--args",
            args,
        ])
    };
    let cli = set_nightly("{");
    assert_eq!(cli.status.code(), Some(1));
    assert!(
        stderr(&cli).contains("--args is not JSON"),
        "{}",
        stderr(&cli)
    );
    let cli = set_nightly(r#"{"value": "night"}"#);
    assert_eq!(cli.status.code(), Some(0), "{}", stderr(&cli));
    let shown = api.get("/api/schedules/nightly").await;
    let next: chrono::DateTime<chrono::Utc> =
        shown["next_tick_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(next.format("%H:%M:%S").to_string(), "03:00:00", "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_schedules_needs_the_control_role() {
    let server = Server::with_three_roles();
    let body = r#"{"cron": "0 3 * * *", "task": "demo.echo", "args": {"value": 1}}"#;
    let control = Api::new(&server, Some("c"));
    let (status, _) = call(&control, Method::PUT, "/api/schedules/nightly", Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    for token in ["r", "l"] {
        let api = Api::new(&server, Some(token));
        for (method, path) in [
            (Method::PUT, "/api/schedules/nightly"),
            (Method::POST, "/api/schedules/nightly/pause"),
            (Method::DELETE, "/api/schedules/nightly"),
        ] {
            let (status, error) = call(&api, method, path, Some(body)).await;
            assert_eq!(
                (status, code(&error)),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{token} {path}"
            );
        }
        let listed = api.get("/api/schedules").await;
        assert_eq!(
            listed["schedules"][0]["name"], "nightly",
            "{token}: {listed}"
        );
    }
}
