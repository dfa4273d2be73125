//! Limiters on real `offstage serve` processes: defined, listed and deleted over HTTP and with
//! `offstage limiter`, permits acquired and released by launch and worker tokens, bad input
//! refused with what to send; and a hold taken through a node that is SIGKILLed is freed for
//! the other node (two servers on one SQLite file; on one PostgreSQL when
//! `OFFSTAGE_TEST_POSTGRES` is set).

mod common;

use common::{call, code, message, stderr, stdout, Api, Server};
use offstage::testing::conformance::{Backend, PostgresBackend, SqliteBackend};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn server() -> Server {
    let db = SqliteBackend.new_database();
    Server::start_plain(
        &db,
        &[
            "--token",
            "read:r",
            "--token",
            "launch:l",
            "--token",
            "control:c",
            "--token",
            "worker:w",
        ],
    )
}

async fn acquire(api: &Api, name: &str, body: &str) -> (StatusCode, Value) {
    call(
        api,
        Method::POST,
        &format!("/api/limiters/{name}/acquire"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn limiters_over_http_and_the_cli() {
    let server = server();
    let (read, launch, control, worker) = (
        Api::new(&server, Some("r")),
        Api::new(&server, Some("l")),
        Api::new(&server, Some("c")),
        Api::new(&server, Some("w")),
    );
    let put = |api: &Api, body: &'static str| {
        let api = Api {
            http: api.http.clone(),
            url: api.url.clone(),
            token: api.token.clone(),
        };
        async move { call(&api, Method::PUT, "/api/limiters/llm", Some(body)).await }
    };
    let (status, body) = put(&launch, r#"{"max_holders": 1}"#).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for (bad, says) in [
        (r#"{"rate": -1}"#, "out of range"),
        (r#"{"burst": 3}"#, "without a rate"),
        (r#"{}"#, "limits nothing"),
        (r#"{"rate": 1, "per": "minute"}"#, "unknown field"),
    ] {
        let (status, body) = put(&control, bad).await;
        assert!(status.is_client_error(), "{bad}: {status} {body}");
        assert!(message(&body).contains(says), "{bad}: {body}");
    }
    let (status, body) = put(&control, r#"{"rate": 0.001, "burst": 2, "max_holders": 1}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["max_holders"], 1);
    assert_eq!(body["burst"], 2);

    let list = read.get("/api/limiters").await;
    assert_eq!(list["limiters"][0]["name"], "llm");
    assert!(
        list["limiters"][0]["tokens"].as_f64().unwrap() > 1.99,
        "{list}"
    );

    // A launch token takes the one hold; the next try is refused at once, and a wait ends
    // when the wait does.
    let (status, got) = acquire(&launch, "llm", r#"{"holder": "billing"}"#).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["acquired"], true);
    let hold = got["hold"].as_str().unwrap().to_owned();
    let (_, refused) = acquire(&worker, "llm", r#"{"wait_s": 0.2}"#).await;
    assert_eq!(refused, json!({ "acquired": false }));
    let list = read.get("/api/limiters").await;
    assert_eq!(list["limiters"][0]["holders"][0]["holder"], "billing");
    assert!(list["limiters"][0]["holders"][0]["expires_at"].is_string());

    // Released, the worker gets the second (and last) token of the burst.
    let release = format!(r#"{{"hold": "{hold}"}}"#);
    let (status, released) = call(
        &launch,
        Method::POST,
        "/api/limiters/llm/release",
        Some(&release),
    )
    .await;
    assert_eq!(
        (status, released),
        (StatusCode::OK, json!({ "released": true }))
    );
    let (_, again) = call(
        &launch,
        Method::POST,
        "/api/limiters/llm/release",
        Some(&release),
    )
    .await;
    assert_eq!(again, json!({ "released": false }));
    let (_, got) = acquire(&worker, "llm", "").await;
    assert_eq!(got["acquired"], true, "{got}");

    // Bad requests say what to send; an unknown limiter says how to define one.
    for (path, body, status, says) in [
        (
            "llm",
            r#"{"wait_s": 100}"#,
            StatusCode::BAD_REQUEST,
            "from 0 to 60",
        ),
        (
            "llm",
            r#"{"hold_s": -1}"#,
            StatusCode::BAD_REQUEST,
            "hold_s",
        ),
        (
            "llm",
            r#"{"wait": 1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "wait_s",
        ),
        (
            "stripe",
            "",
            StatusCode::NOT_FOUND,
            "PUT /api/limiters/stripe",
        ),
    ] {
        let (got, answer) = acquire(&launch, path, body).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(message(&answer).contains(says), "{body}: {answer}");
    }
    let (status, answer) = acquire(&read, "llm", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = call(&control, Method::DELETE, "/api/limiters/none", None).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::NOT_FOUND, "not_found")
    );

    // The CLI: set, list, delete.
    let set = server.cli(&[
        "limiter", "set", "stripe", "--rate", "25", "--burst", "5", "--token", "c",
    ]);
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(
        stdout(&set).contains("limiter stripe: 25/s, burst 5"),
        "{}",
        stdout(&set)
    );
    let bad = server.cli(&["limiter", "set", "bad", "--burst", "5", "--token", "c"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("without a rate"), "{}", stderr(&bad));
    let list = server.cli(&["limiter", "list", "--token", "r"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let table = stdout(&list);
    assert!(
        table.contains("stripe") && table.contains("llm") && table.contains("1/1"),
        "{table}"
    );
    let deleted = server.cli(&["limiter", "delete", "stripe", "--token", "c"]);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let list = read.get("/api/limiters").await;
    assert_eq!(list["limiters"].as_array().unwrap().len(), 1, "{list}");
}

/// Two servers on `db` with a short node timeout; a hold taken through the second, which is
/// then SIGKILLed, is freed for the first within the node timeout.
async fn a_killed_node_s_hold_is_freed(db: &str) {
    let args = ["--heartbeat-s", "0.2", "--node-timeout-s", "2"];
    let a = Server::start_plain(db, &args);
    let mut b = Server::start_plain(db, &args);
    let (on_a, on_b) = (Api::new(&a, None), Api::new(&b, None));
    let (status, body) = call(
        &on_a,
        Method::PUT,
        "/api/limiters/llm",
        Some(r#"{"max_holders": 1}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, got) = acquire(&on_b, "llm", r#"{"hold_s": 3600}"#).await;
    assert_eq!(got["acquired"], true, "{got}");
    let (_, refused) = acquire(&on_a, "llm", "").await;
    assert_eq!(refused["acquired"], false);

    b.child.kill().unwrap();
    b.child.wait().unwrap();
    // The hold would last an hour; its node's death frees it within the node timeout.
    let (status, got) = acquire(&on_a, "llm", r#"{"wait_s": 30}"#).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(
        got["acquired"], true,
        "the killed node's hold was freed: {got}"
    );
    let list = on_a.get("/api/limiters").await;
    let holders = list["limiters"][0]["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 1);
    assert_ne!(holders[0]["node"], Value::Null);
}

#[tokio::test]
async fn a_killed_node_s_hold_is_freed_on_sqlite() {
    a_killed_node_s_hold_is_freed(&SqliteBackend.new_database()).await;
}

#[cfg_attr(
    not(offstage_test_postgres),
    ignore = "set OFFSTAGE_TEST_POSTGRES=postgres://… to run"
)]
#[tokio::test]
async fn a_killed_node_s_hold_is_freed_on_postgres() {
    a_killed_node_s_hold_is_freed(&PostgresBackend::from_env().new_database()).await;
}
