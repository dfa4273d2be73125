//! `GET /api/stats` and `offstage stats` against a real `offstage serve --demo` process: what
//! tasks did shows in the minute under way at once (the node's tallies not yet written are
//! read with the store's rows), bad windows are a 400 that says which exist, and the route
//! needs the read role.

mod common;

use common::{call, code, message, stdout, Api, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The series of task type `name` in a stats answer.
fn series<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no series for {name} in {stats}"))
}

#[tokio::test]
async fn stats_count_tasks_by_type_per_bucket_and_need_the_read_role() {
    let server = Server::with_three_roles();
    let control = Api::new(&server, Some("c"));
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            control
                .launch(json!({ "name": "demo.echo", "args": { "value": i } }))
                .await,
        );
    }
    for _ in 0..2 {
        ids.push(
            control
                .launch(json!({ "name": "demo.fail", "args": { "message": "no" } }))
                .await,
        );
    }
    for id in &ids {
        control.finished(id).await;
    }

    let reader = Api::new(&server, Some("r"));
    let (status, hour) = call(&reader, Method::GET, "/api/stats", None).await;
    assert_eq!(status, StatusCode::OK, "{hour}");
    assert_eq!(
        (hour["window"].as_str(), hour["bucket_s"].as_u64()),
        (Some("hour"), Some(60))
    );
    let echo = series(&hour, "demo.echo");
    assert_eq!(echo["completed"].as_array().unwrap().len(), 60);
    assert_eq!(echo["totals"]["started"], 3);
    assert_eq!(echo["totals"]["completed"], 3);
    assert_eq!(echo["totals"]["failed"], 0);
    // They ran in the minute under way, the last bucket (or the one before, when a minute
    // ended while the test ran).
    let at = |series: &Value, field: &str, i: usize| series[field][i].as_u64().unwrap();
    assert_eq!(
        at(echo, "completed", 58) + at(echo, "completed", 59),
        3,
        "{echo}"
    );
    let busy = if at(echo, "started", 59) > 0 { 59 } else { 58 };
    assert!(echo["wait_p50_s"][busy].is_number(), "{echo}");
    assert!(
        echo["wait_p50_s"][0].is_null(),
        "no starts, no wait: {echo}"
    );
    let fail = series(&hour, "demo.fail");
    assert_eq!(fail["totals"]["failed"], 2);
    assert_eq!(at(fail, "failed", 58) + at(fail, "failed", 59), 2, "{fail}");
    assert_eq!(fail["queued"][59], 0);

    let (status, day) = call(&reader, Method::GET, "/api/stats?window=day", None).await;
    assert_eq!(status, StatusCode::OK, "{day}");
    assert_eq!(day["bucket_s"], 600);
    assert_eq!(
        series(&day, "demo.echo")["completed"]
            .as_array()
            .unwrap()
            .len(),
        144
    );
    assert_eq!(series(&day, "demo.echo")["totals"]["completed"], 3);

    // A window that is not one is a 400 saying which are.
    let (status, body) = call(&reader, Method::GET, "/api/stats?window=week", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_window"),
        "{body}"
    );
    assert!(
        message(&body).contains("`hour`") && message(&body).contains("`day`"),
        "{body}"
    );
    // No token: 401. A scoped token (one owner's tasks) sees no fleet-wide numbers: 403.
    let anonymous = Api::new(&server, None);
    let (status, _) = call(&anonymous, Method::GET, "/api/stats", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mint = r#"{"scope":{"owner":"u1"},"rights":["read"],"ttl_s":60}"#;
    let (status, minted) = call(&control, Method::POST, "/api/tokens", Some(mint)).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let scoped = Api {
        http: reqwest::Client::new(),
        url: server.url.clone(),
        token: minted["token"].as_str().map(str::to_owned),
    };
    let (status, body) = call(&scoped, Method::GET, "/api/stats", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The CLI's table: one line per type with its totals.
    let output = std::process::Command::new(common::BIN)
        .args(["stats", "--token", "r"])
        .env("OFFSTAGE_SERVER", &server.url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let table = stdout(&output);
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(table.starts_with("NAME"), "{table}");
    // NAME STARTED COMPLETED FAILED ...
    assert_eq!(line("demo.echo")[1..4], ["3", "3", "0"], "{table}");
    assert_eq!(line("demo.fail")[1..4], ["2", "0", "2"], "{table}");
    let output = std::process::Command::new(common::BIN)
        .args(["stats", "--token", "r", "--window", "week"])
        .env("OFFSTAGE_SERVER", &server.url)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(common::stderr(&output).contains("`day`"), "{output:?}");
}
