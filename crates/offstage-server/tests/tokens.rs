//! Scoped tokens on real `offstage serve` processes: minting over HTTP, what an owner's or a
//! task's token sees and may do, expired and changed tokens, the event stream with `?token=`,
//! one secret on two servers, and CORS for pages on another origin.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{call, code, message, Api, Server, Sse};
use offstage::testing::conformance::{Backend, SqliteBackend};
use offstage_server::{Rights, Scope, ScopedTokens};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The scoped tokens' secret every server here is given (`OFFSTAGE_TOKEN_SECRET`).
const SECRET: &str = "a test secret that is more than 32 bytes long";

/// `offstage serve --demo` on `db` with the secret and `extra` arguments.
fn serve_on(db: &str, extra: &[&str]) -> Server {
    let mut command = Command::new(common::BIN);
    command
        .args(["serve", "--demo", "--addr", "127.0.0.1:0", "--db", db])
        .args(extra)
        .env("OFFSTAGE_TOKEN_SECRET", SECRET)
        .env_remove("OFFSTAGE_TOKENS")
        .stderr(Stdio::null());
    Server::spawn(command, db)
}

/// A server with tokens `r` (role read) and `c` (control).
fn server(extra: &[&str]) -> Server {
    let mut args = vec!["--token", "read:r", "--token", "control:c"];
    args.extend_from_slice(extra);
    serve_on(&SqliteBackend.new_database(), &args)
}

fn as_token(server: &Server, token: &str) -> Api {
    Api::new(server, Some(token))
}

/// Mints a token over HTTP with the control token.
async fn mint(server: &Server, body: Value) -> String {
    let (status, minted) = call(
        &as_token(server, "c"),
        Method::POST,
        "/api/tokens",
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let expires_at: chrono::DateTime<chrono::Utc> =
        minted["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires_at > chrono::Utc::now(), "{minted}");
    minted["token"].as_str().unwrap().to_owned()
}

async fn sleeper(control: &Api, owner: &str) -> String {
    control
        .launch(json!({"name": "demo.sleep", "args": {"seconds": 600}, "owner": owner}))
        .await
}

fn ids(page: &Value) -> Vec<&str> {
    page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn an_owners_token_sees_and_kills_only_that_owners_tasks() {
    let server = server(&[]);
    let control = as_token(&server, "c");
    let mine = sleeper(&control, "u1").await;
    let theirs = sleeper(&control, "u2").await;
    let unowned = control
        .launch(json!({"name": "demo.sleep", "args": {"seconds": 600}}))
        .await;

    let read = mint(
        &server,
        json!({"scope": {"owner": "u1"}, "rights": ["read"], "ttl_s": 600}),
    )
    .await;
    assert!(read.starts_with("ost1."), "{read}");
    let user = as_token(&server, &read);

    // The list, with or without filters, holds only u1's task.
    assert_eq!(ids(&user.get("/api/tasks").await), [mine.as_str()]);
    assert_eq!(
        ids(&user.get("/api/tasks?status=running").await),
        [mine.as_str()]
    );
    assert!(ids(&user.get("/api/tasks?owner=u2").await).is_empty());
    // A role token still sees everything.
    let all = as_token(&server, "r").get("/api/tasks").await;
    for id in [&mine, &theirs, &unowned] {
        assert!(ids(&all).contains(&id.as_str()), "{all}");
    }

    // Its own task reads; another's is exactly an unknown id's 404.
    let (status, task) = call(&user, Method::GET, &format!("/api/tasks/{mine}"), None).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["owner"], "u1");
    let nobody = offstage::TaskId::new().to_string();
    let (status, unknown) = call(&user, Method::GET, &format!("/api/tasks/{nobody}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for id in [&theirs, &unowned] {
        for path in [
            format!("/api/tasks/{id}"),
            format!("/api/tasks/{id}/logs"),
            format!("/api/tasks/{id}/events"),
        ] {
            let (status, body) = call(&user, Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
            assert_eq!(
                body.to_string().replace(id.as_str(), "ID"),
                unknown.to_string().replace(&nobody, "ID"),
                "{path}: word for word an unknown id's answer"
            );
        }
    }
    let (status, _) = call(&user, Method::GET, &format!("/api/tasks/{mine}/logs"), None).await;
    assert_eq!(status, StatusCode::OK);

    // Kill: outside the scope 404, inside it 403 without the right.
    let (status, body) = call(
        &user,
        Method::POST,
        &format!("/api/tasks/{theirs}/kill"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = call(
        &user,
        Method::POST,
        &format!("/api/tasks/{mine}/kill"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(message(&body).contains("rights read"), "{body}");
    assert!(message(&body).contains("\"kill\""), "{body}");

    // Everything else is refused, saying what the token allows.
    for (method, path, body) in [
        (
            Method::POST,
            "/api/tasks",
            r#"{"name":"demo.echo","args":{"value":1}}"#,
        ),
        (Method::GET, "/api/task-types", ""),
        (Method::GET, "/api/schedules", ""),
        (Method::GET, "/api/shared", ""),
        (Method::GET, "/api/me", ""),
        (Method::GET, "/metrics", ""),
        (
            Method::POST,
            "/api/tokens",
            r#"{"scope":{"owner":"u2"},"rights":["read"],"ttl_s":60}"#,
        ),
        (
            Method::DELETE,
            "/api/tasks?finished_before=2100-01-01T00:00:00Z",
            "",
        ),
    ] {
        let (status, answer) = call(&user, method.clone(), path, Some(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(
            message(&answer),
            "this token is scoped to owner `u1` with rights read: it can read that owner's \
             tasks, nothing else",
            "{method} {path}"
        );
    }

    // With the kill right it kills its own task, and still not another's.
    let kill = mint(
        &server,
        json!({"scope": {"owner": "u1"}, "rights": ["read", "kill"], "ttl_s": 600}),
    )
    .await;
    let user = as_token(&server, &kill);
    let (status, body) = call(
        &user,
        Method::POST,
        &format!("/api/tasks/{theirs}/kill"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    user.kill(&mine, Some(0.0)).await;
    assert_eq!(user.finished(&mine).await["status"], "killed");
    let theirs_now = control.get(&format!("/api/tasks/{theirs}")).await;
    assert_eq!(theirs_now["status"], "running");
}

#[tokio::test]
async fn a_tasks_token_reaches_that_task_only() {
    let server = server(&[]);
    let control = as_token(&server, "c");
    let task = sleeper(&control, "u1").await;
    let sibling = sleeper(&control, "u1").await;
    let token = mint(
        &server,
        json!({"scope": {"task": task}, "rights": ["kill", "read"], "ttl_s": 60}),
    )
    .await;
    let user = as_token(&server, &token);
    assert_eq!(ids(&user.get("/api/tasks").await), [task.as_str()]);
    assert!(ids(&user.get("/api/tasks?name=demo.echo").await).is_empty());
    assert!(ids(&user.get(&format!("/api/tasks?before={task}")).await).is_empty());
    let (status, _) = call(&user, Method::GET, &format!("/api/tasks/{sibling}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the same owner's other task");
    let (status, body) = call(
        &user,
        Method::POST,
        &format!("/api/tasks/{sibling}/kill"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    user.kill(&task, Some(0.0)).await;
    assert_eq!(user.finished(&task).await["status"], "killed");
}

#[tokio::test]
async fn minting_checks_every_field_and_needs_control() {
    let server = server(&[]);
    let control = as_token(&server, "c");
    let task = sleeper(&control, "u1").await;
    let unknown = offstage::TaskId::new();
    for (body, status, expected) in [
        (
            json!({"scope": {"owner": "u1"}, "rights": ["write"], "ttl_s": 60}),
            400,
            "invalid_rights",
        ),
        (
            json!({"scope": {"owner": "u1"}, "rights": ["kill"], "ttl_s": 60}),
            400,
            "invalid_rights",
        ),
        (
            json!({"scope": {"owner": "u1"}, "rights": [], "ttl_s": 60}),
            400,
            "invalid_rights",
        ),
        (
            json!({"scope": {"owner": "u1"}, "rights": ["read"], "ttl_s": 0}),
            400,
            "invalid_ttl",
        ),
        (
            json!({"scope": {"owner": "u1"}, "rights": ["read"], "ttl_s": -5}),
            400,
            "invalid_ttl",
        ),
        (
            json!({"scope": {"owner": "u1"}, "rights": ["read"], "ttl_s": 604801}),
            400,
            "invalid_ttl",
        ),
        (
            json!({"scope": {}, "rights": ["read"], "ttl_s": 60}),
            400,
            "invalid_scope",
        ),
        (
            json!({"scope": {"owner": "u1", "task": task}, "rights": ["read"], "ttl_s": 60}),
            400,
            "invalid_scope",
        ),
        (
            json!({"scope": {"owner": null}, "rights": ["read"], "ttl_s": 60}),
            400,
            "invalid_scope",
        ),
        (
            json!({"scope": {"owner": ""}, "rights": ["read"], "ttl_s": 60}),
            400,
            "invalid_scope",
        ),
        (
            json!({"scope": {"owner": "a\nb"}, "rights": ["read"], "ttl_s": 60}),
            400,
            "invalid_argument",
        ),
        (
            json!({"scope": {"owner": "x".repeat(257)}, "rights": ["read"], "ttl_s": 60}),
            400,
            "invalid_argument",
        ),
        (
            json!({"scope": {"task": "nope"}, "rights": ["read"], "ttl_s": 60}),
            400,
            "invalid_id",
        ),
        (
            json!({"scope": {"task": unknown}, "rights": ["read"], "ttl_s": 60}),
            404,
            "not_found",
        ),
        (
            json!({"scope": {"owner": "u1"}, "rights": ["read"]}),
            422,
            "invalid_body",
        ),
        (
            json!({"scope": {"owner": "u1"}, "rights": ["read"], "ttl_s": 60, "x": 1}),
            422,
            "invalid_body",
        ),
    ] {
        let (got, answer) = call(
            &control,
            Method::POST,
            "/api/tokens",
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(got.as_u16(), status, "{body}: {answer}");
        assert_eq!(code(&answer), expected, "{body}: {answer}");
    }
    let (status, answer) = call(
        &control,
        Method::POST,
        "/api/tokens",
        Some(r#"{"scope":{"owner":"u1"},"rights":["read"],"ttl_s":1e9}"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&answer).contains("604800"), "{answer}");
    let (status, answer) = call(
        &as_token(&server, "r"),
        Method::POST,
        "/api/tokens",
        Some(r#"{"scope":{"owner":"u1"},"rights":["read"],"ttl_s":60}"#),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(message(&answer).contains("role control"), "{answer}");
}

#[tokio::test]
async fn expired_changed_and_foreign_tokens_are_401() {
    let server = server(&[]);
    let control = as_token(&server, "c");
    let task = sleeper(&control, "u1").await;
    // The app's side: the same secret, minting in Rust.
    let tokens = ScopedTokens::new(SECRET.as_bytes());
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    let expired = tokens.mint_until(Scope::Owner("u1".into()), Rights::READ, past);
    let good = tokens.mint(
        Scope::Owner("u1".into()),
        Rights::READ,
        Duration::from_secs(60),
    );
    let (status, _) = call(
        &as_token(&server, &good.token),
        Method::GET,
        "/api/tasks",
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a token minted in Rust with the secret works"
    );

    let (status, body) = call(
        &as_token(&server, &expired.token),
        Method::GET,
        "/api/tasks",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "token_expired");
    assert!(message(&body).contains("mint a new one"), "{body}");

    // Another owner in the payload, the MAC of the good token.
    let other = tokens.mint(
        Scope::Owner("u2".into()),
        Rights::READ,
        Duration::from_secs(60),
    );
    let (other_payload, _) = other.token.rsplit_once('.').unwrap();
    let (_, good_mac) = good.token.rsplit_once('.').unwrap();
    let elsewhere = ScopedTokens::new(b"the secret of some other server, 32+ bytes").mint(
        Scope::Owner("u1".into()),
        Rights::READ,
        Duration::from_secs(60),
    );
    for bad in [
        format!("{other_payload}.{good_mac}"),
        format!("{}x", good.token),
        "ost1.garbage".to_owned(),
        elsewhere.token,
    ] {
        for path in [
            "/api/tasks",
            &format!("/api/tasks/{task}"),
            "/api/task-types",
        ] {
            let (status, body) = call(&as_token(&server, &bad), Method::GET, path, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad} {path}: {body}");
            assert_eq!(code(&body), "token_invalid", "{body}");
        }
    }
    // Role tokens work as before.
    let (status, _) = call(
        &as_token(&server, "r"),
        Method::GET,
        "/api/task-types",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// A server without role tokens (open, on loopback) still holds a scoped token to its scope:
/// whoever presents one gets what it allows, nothing more.
#[tokio::test]
async fn an_open_server_holds_a_scoped_token_to_its_scope() {
    let server = serve_on(&SqliteBackend.new_database(), &[]);
    let open = Api::new(&server, None);
    let mine = sleeper(&open, "u1").await;
    let theirs = sleeper(&open, "u2").await;
    let token = ScopedTokens::new(SECRET.as_bytes())
        .mint(
            Scope::Owner("u1".into()),
            Rights::READ,
            Duration::from_secs(60),
        )
        .token;
    let user = as_token(&server, &token);
    assert_eq!(ids(&user.get("/api/tasks").await), [mine.as_str()]);
    let (status, _) = call(&user, Method::GET, &format!("/api/tasks/{theirs}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&user, Method::POST, "/api/tasks", Some("{}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// `/api/events?token=` (as an `EventSource` opens it) carries only the scope's tasks: another
/// owner's task runs to its end while the stream is open, and none of its events arrives.
#[tokio::test]
async fn the_event_stream_with_a_token_in_the_url_carries_only_its_scope() {
    let server = server(&[]);
    let control = as_token(&server, "c");
    // Running before the stream opens: its state events name no owner, so the stream must
    // find out whose task it is.
    let early = control
        .launch(
            json!({"name": "demo.count", "args": {"to": 1000, "interval_ms": 20}, "owner": "u1"}),
        )
        .await;
    let token = mint(
        &server,
        json!({"scope": {"owner": "u1"}, "rights": ["read"], "ttl_s": 600}),
    )
    .await;
    let anonymous = Api::new(&server, None);
    let mut stream = Sse::open(&anonymous, &format!("/api/events?token={token}"), None).await;
    stream
        .wait_for(common::LIMIT, |kind, data| {
            kind == "state" && data["task_id"] == early.as_str()
        })
        .await;

    let theirs = control
        .launch(json!({"name": "demo.count", "args": {"to": 3, "interval_ms": 1}, "owner": "u2"}))
        .await;
    assert_eq!(control.finished(&theirs).await["status"], "completed");
    let mine = control
        .launch(json!({"name": "demo.count", "args": {"to": 3, "interval_ms": 1}, "owner": "u1"}))
        .await;
    let mut seen = Vec::new();
    loop {
        let (_, kind, data) = stream.next().await;
        let id = data["task_id"].as_str().unwrap().to_owned();
        assert_ne!(
            id, theirs,
            "an event of u2's task reached u1's stream: {kind} {data}"
        );
        let done = id == mine && kind == "finished";
        seen.push((id, kind));
        if done {
            break;
        }
    }
    for kind in ["launched", "started", "state", "log", "finished"] {
        assert!(
            seen.iter().any(|(id, k)| *id == mine && k == kind),
            "{kind} of u1's task: {seen:?}"
        );
    }
    control.kill(&early, Some(0.0)).await;

    // The task's own stream takes the token in the URL too; another owner's is a 404.
    let mut own = Sse::open(
        &anonymous,
        &format!("/api/tasks/{mine}/events?token={token}"),
        None,
    )
    .await;
    let (_, kind, _) = own.next().await;
    assert_eq!(kind, "finished");
    let (status, _) = call(
        &anonymous,
        Method::GET,
        &format!("/api/tasks/{theirs}/events?token={token}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Anywhere else, a token in the URL is refused, and a role token never goes in one.
    for path in [
        format!("/api/tasks/{mine}?token={token}"),
        format!("/api/tasks?token={token}"),
        format!("/api/task-types?token={token}"),
        "/api/events?token=r".to_owned(),
    ] {
        let (status, body) = call(&anonymous, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(code(&body), "token_in_query", "{path}: {body}");
    }
    // Not even beside a header that would do.
    let (status, body) = call(
        &as_token(&server, &token),
        Method::GET,
        &format!("/api/tasks/{mine}?token={token}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = call(&anonymous, Method::GET, "/api/events?token=ost1.x.y", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "token_invalid");
}

/// Any node with the secret checks a token another node minted: no store lookup.
#[tokio::test]
async fn a_token_minted_on_one_server_works_on_another_with_the_secret() {
    let db = SqliteBackend.new_database();
    let roles = ["--token", "read:r", "--token", "control:c"];
    let first = serve_on(&db, &roles);
    let second = serve_on(&db, &roles);
    let task = sleeper(&as_token(&first, "c"), "u1").await;
    let token = mint(
        &first,
        json!({"scope": {"owner": "u1"}, "rights": ["read"], "ttl_s": 60}),
    )
    .await;
    assert_eq!(
        ids(&as_token(&second, &token).get("/api/tasks").await),
        [task.as_str()]
    );
}

#[tokio::test]
async fn a_short_secret_is_refused_at_start() {
    let db = SqliteBackend.new_database();
    let output = Command::new(common::BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--db", &db])
        .env("OFFSTAGE_TOKEN_SECRET", "hunter2")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = common::stderr(&output);
    assert!(stderr.contains("OFFSTAGE_TOKEN_SECRET"), "{stderr}");
    assert!(stderr.contains("at least 32"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "never echoes the secret: {stderr}"
    );
}

/// A page on the app's origin calls the server on another origin: the browser's preflight
/// gets the CORS headers for an allowed origin and none for another, and the allowed origin
/// passes the cross-site check for a kill that its token allows.
#[tokio::test]
async fn cors_answers_the_allowed_origin_only() {
    let app = "http://app.localhost:3000";
    let server = server(&["--cors-origin", app]);
    let control = as_token(&server, "c");
    let task = sleeper(&control, "u1").await;
    let http = reqwest::Client::new();
    let preflight = |origin: &str| {
        http.request(
            Method::OPTIONS,
            format!("{}/api/tasks/{task}/kill", server.url),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, last-event-id",
        )
        .send()
    };
    let allowed = preflight(app).await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], app);
    let allow_headers = headers["access-control-allow-headers"].to_str().unwrap();
    for header in ["authorization", "content-type", "last-event-id"] {
        assert!(allow_headers.contains(header), "{allow_headers}");
    }
    assert!(headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let other = preflight("http://evil.localhost:3000").await.unwrap();
    assert!(
        other.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        other.headers()
    );

    let token = mint(
        &server,
        json!({"scope": {"owner": "u1"}, "rights": ["read", "kill"], "ttl_s": 60}),
    )
    .await;
    let kill_from = |origin: &str| {
        http.post(format!("{}/api/tasks/{task}/kill", server.url))
            .bearer_auth(&token)
            .header("origin", origin)
            .send()
    };
    let refused = kill_from("http://evil.localhost:3000").await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(code(&body), "cross_site");
    let read = http
        .get(format!("{}/api/tasks/{task}", server.url))
        .bearer_auth(&token)
        .header("origin", app)
        .send()
        .await
        .unwrap();
    assert_eq!(read.headers()["access-control-allow-origin"], app);
    let killed = kill_from(app).await.unwrap();
    assert_eq!(killed.status(), StatusCode::ACCEPTED);
    assert_eq!(killed.headers()["access-control-allow-origin"], app);
    assert_eq!(control.finished(&task).await["status"], "killed");
}

/// Without `--cors-origin` no CORS header is sent, to any origin.
#[tokio::test]
async fn cors_is_off_by_default() {
    let server = server(&[]);
    let response = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{}/api/tasks", server.url))
        .header("origin", "http://app.localhost:3000")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

/// A stream opened with a scoped token ends when the token expires: a leaked token is good for
/// no longer than its life, even on a connection opened in time.
#[tokio::test]
async fn a_scoped_stream_ends_when_its_token_expires() {
    use futures::StreamExt;
    let server = server(&[]);
    let control = as_token(&server, "c");
    let task = sleeper(&control, "u1").await;
    let tokens = ScopedTokens::new(SECRET.as_bytes());
    // In one to two seconds (`exp` is whole seconds, rounded up): time to open both streams.
    let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
    let token = tokens
        .mint_until(Scope::Owner("u1".into()), Rights::READ, soon)
        .token;
    let mut streams = Vec::new();
    for path in [
        format!("/api/events?token={token}"),
        format!("/api/tasks/{task}/events?token={token}"),
    ] {
        let response = reqwest::get(format!("{}{path}", server.url)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        streams.push((path, response.bytes_stream()));
    }
    for (path, mut body) in streams {
        let text = tokio::time::timeout(common::LIMIT, async {
            let mut text = String::new();
            while let Some(chunk) = body.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            }
            text
        })
        .await
        .unwrap_or_else(|_| panic!("{path}: the stream outlived its token"));
        // Its last word says why it ended.
        let last = text.trim_end().rsplit("\n\n").next().unwrap();
        assert!(last.starts_with("event: expired\n"), "{path}: {text}");
        assert!(last.contains(r#""code":"token_expired""#), "{path}: {last}");
    }
    // And the token is refused from then on.
    let (status, body) = call(
        &Api::new(&server, None),
        Method::GET,
        &format!("/api/events?token={token}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(code(&body), "token_expired");
}

/// `cors_origin` and `with_sites` in either order: the CORS origin still passes the cross-site
/// check, since `app` joins the two lists (in-process, no port needed).
#[tokio::test]
async fn a_cors_origin_is_an_allowed_origin_whatever_the_order() {
    use tower::ServiceExt;
    let rt = offstage::Runtime::builder()
        .database(SqliteBackend.new_database())
        .build()
        .await
        .unwrap();
    let app = offstage_server::app(
        offstage_server::AppState::new(rt)
            .cors_origin("http://app.localhost:3000")
            .with_sites(offstage_server::Sites::default()),
    );
    let kill = |origin: &str| {
        axum::http::Request::post(format!("/api/tasks/{}/kill", offstage::TaskId::new()))
            .header("host", "127.0.0.1:7700")
            .header("origin", origin)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let response = app
        .clone()
        .oneshot(kill("http://app.localhost:3000"))
        .await
        .unwrap();
    // Past the cross-site check: an unknown task.
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app
        .oneshot(kill("http://evil.localhost:3000"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

/// `offstage token` mints over the API with a control token and prints the token alone.
#[tokio::test]
async fn the_cli_mints_a_token() {
    let server = server(&[]);
    let control = as_token(&server, "c");
    let mine = sleeper(&control, "u1").await;
    sleeper(&control, "u2").await;
    let output = server.cli(&["token", "--owner", "u1", "--kill", "--token", "c"]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    let token = common::stdout(&output).trim().to_owned();
    assert!(
        token.starts_with("ost1.") && !token.contains(char::is_whitespace),
        "{token}"
    );
    let user = as_token(&server, &token);
    assert_eq!(ids(&user.get("/api/tasks").await), [mine.as_str()]);
    user.kill(&mine, Some(0.0)).await;

    let output = server.cli(&["token", "--owner", "u1", "--token", "r"]);
    assert!(!output.status.success());
    assert!(
        common::stderr(&output).contains("role control"),
        "{}",
        common::stderr(&output)
    );
    let output = server.cli(&["token", "--token", "c"]);
    assert_eq!(output.status.code(), Some(2), "a scope is required");
}
