//! Fairness between tenants on a real `offstage serve --demo`, on SQLite and PostgreSQL:
//! `demo.tenant` runs at most 2 per tenant (its concurrency key, the args' `tenant`). Over
//! HTTP and the CLI: a third task of a busy tenant waits and says why, another tenant's runs
//! at once, an explicit `concurrency_key` is kept, `/api/task-types` and `offstage types` show
//! the top keys, bad keys are 4xx that say how to fix them; a SIGKILLed node's places come
//! back to the next node.

mod common;

use common::{call, code, message, stdout, Api, Server};
use offstage::testing::conformance::{Backend, PostgresBackend, SqliteBackend};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Launches a `demo.tenant` job for `tenant` that runs for a minute, with `extra` fields.
async fn job(api: &Api, tenant: &str, extra: Value) -> String {
    let mut body = json!({"name": "demo.tenant", "args": {"tenant": tenant, "seconds": 60}});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    api.launch(body).await
}

async fn started(api: &Api, id: &str) {
    api.until(id, |kind, _| kind == "started").await;
}

async fn keys_served(db: &str, extra: &[&str]) {
    let server = Server::start(db, extra);
    let api = Api::new(&server, None);
    let first = job(&api, "acme", json!({})).await;
    let second = job(&api, "acme", json!({})).await;
    started(&api, &first).await;
    started(&api, &second).await;
    let third = job(&api, "acme", json!({})).await;
    let other = job(&api, "globex", json!({})).await;
    started(&api, &other).await;
    let explicit = job(&api, "acme", json!({"concurrency_key": "acme-batch"})).await;
    started(&api, &explicit).await;

    let waiting = api.get(&format!("/api/tasks/{third}")).await;
    assert_eq!(waiting["status"], "queued", "{waiting}");
    assert_eq!(waiting["concurrency_key"], "acme");
    assert_eq!(waiting["waiting"]["code"], "key_limit", "{waiting}");
    assert_eq!(waiting["waiting"]["concurrency_key"], "acme");
    assert_eq!(waiting["waiting"]["limit"], 2);
    let text = waiting["waiting"]["message"].as_str().unwrap();
    assert!(text.contains(&first) && text.contains("\"acme\""), "{text}");
    assert_eq!(
        api.get(&format!("/api/tasks/{explicit}")).await["concurrency_key"],
        "acme-batch"
    );

    let types = api.get("/api/task-types").await;
    let tenant = types["task_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "demo.tenant")
        .unwrap()
        .clone();
    assert_eq!(tenant["concurrency_per_key"], 2, "{tenant}");
    assert_eq!(tenant["concurrency_key"], "args.tenant");
    assert_eq!(
        tenant["concurrency_keys"],
        json!([
            {"key": "acme", "running": 2, "queued": 1},
            {"key": "acme-batch", "running": 1, "queued": 0},
            {"key": "globex", "running": 1, "queued": 0},
        ])
    );
    let plain = types["task_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "demo.sleep")
        .unwrap();
    assert!(plain.get("concurrency_keys").is_none(), "{plain}");

    // The CLI: a launch with --concurrency-key, and the top keys in `offstage types`.
    let launched = server.cli(&[
        "launch",
        "demo.tenant",
        "--args",
        r#"{"tenant": "initech", "seconds": 60}"#,
        "--concurrency-key",
        "initech-eu",
    ]);
    assert!(launched.status.success(), "{launched:?}");
    let id = stdout(&launched).trim().to_owned();
    assert_eq!(
        api.get(&format!("/api/tasks/{id}")).await["concurrency_key"],
        "initech-eu"
    );
    let shown = stdout(&server.cli(&["show", &third]));
    assert!(shown.contains("concurrency_key acme"), "{shown}");
    let listed = stdout(&server.cli(&["types"]));
    assert!(
        listed.contains("2 per key; top keys: acme 2 running, 1 queued;"),
        "{listed}"
    );

    // Bad keys say how to fix them.
    let bad = [
        (
            json!({"name": "demo.tenant", "args": {"tenant": "", "seconds": 1}}),
            "`tenant` field",
        ),
        (
            json!({"name": "demo.tenant", "args": {"tenant": "a", "seconds": 1}, "concurrency_key": ""}),
            "non-empty",
        ),
        (
            json!({"name": "demo.tenant", "args": {"tenant": "a", "seconds": 1}, "concurrency_key": 7}),
            "concurrency_key",
        ),
    ];
    for (body, says) in bad {
        let (status, answer) =
            call(&api, Method::POST, "/api/tasks", Some(&body.to_string())).await;
        assert!(status.is_client_error(), "{status} {answer}");
        assert!(message(&answer).contains(says), "{answer}");
        assert!(!code(&answer).is_empty());
    }

    // The holder ends: the waiting task of its key runs.
    api.kill(&first, Some(0.0)).await;
    started(&api, &third).await;
}

#[tokio::test]
async fn keys_limit_and_say_why_over_http_and_the_cli_sqlite() {
    keys_served(&SqliteBackend.new_database(), &[]).await;
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test]
async fn keys_limit_and_say_why_over_http_and_the_cli_postgres() {
    keys_served(&PostgresBackend::from_env().new_database(), &[]).await;
}

/// A node SIGKILLed while two tasks of a tenant hold its places: the next node on the
/// database marks them missing, and the tenant's queued task runs there.
async fn a_sigkilled_node_gives_its_keys_places_back(db: &str, extra: &[&str]) {
    let mut first = Server::start(db, extra);
    let api = Api::new(&first, None);
    let held = [
        job(&api, "acme", json!({})).await,
        job(&api, "acme", json!({})).await,
    ];
    for id in &held {
        started(&api, id).await;
    }
    let queued = job(&api, "acme", json!({})).await;
    assert_eq!(
        api.get(&format!("/api/tasks/{queued}")).await["status"],
        "queued"
    );
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    let second = Server::start(db, extra);
    let api = Api::new(&second, None);
    started(&api, &queued).await;
    for id in &held {
        let record = api.get(&format!("/api/tasks/{id}")).await;
        assert_eq!(record["status"], "missing", "{record}");
    }
    let (status, types) = call(&api, Method::GET, "/api/task-types", None).await;
    assert_eq!(status, StatusCode::OK);
    let tenant = types["task_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "demo.tenant")
        .unwrap()
        .clone();
    assert_eq!(
        tenant["concurrency_keys"],
        json!([{"key": "acme", "running": 1, "queued": 0}])
    );
}

#[tokio::test]
async fn a_sigkilled_node_gives_its_keys_places_back_sqlite() {
    a_sigkilled_node_gives_its_keys_places_back(&SqliteBackend.new_database(), &[]).await;
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test]
async fn a_sigkilled_node_gives_its_keys_places_back_postgres() {
    let db = PostgresBackend::from_env().new_database();
    // Another node finds the dead one by its heartbeat: a short node timeout keeps it quick.
    let timing = ["--heartbeat-s", "0.2", "--node-timeout-s", "2"];
    a_sigkilled_node_gives_its_keys_places_back(&db, &timing).await;
}
