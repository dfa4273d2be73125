//! OpenTelemetry end to end: a real `offstage serve` process exporting over OTLP/HTTP to a real
//! receiver in this test (which decodes the protobuf the exporter sends), launched into the
//! trace of the request's `traceparent` header.

mod common;

use std::process::{Command, Stdio};

use common::otlp::{Received, Receiver};
use common::{Api, Server, BIN};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{json, Value};

/// `offstage serve --demo` exporting its spans to `receiver`.
fn server(receiver: &Receiver) -> Server {
    use offstage::testing::conformance::Backend;
    let db = offstage::testing::conformance::SqliteBackend.new_database();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--db", &db, "--demo"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url)
        .env("OTEL_SERVICE_NAME", "offstage-under-test")
        // Batches go out every 50 ms rather than every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_SDK_DISABLED")
        .stderr(Stdio::null());
    Server::spawn(command, &db)
}

/// A fresh `traceparent`, as a caller with a trace of its own sends it: (header, trace id,
/// span id).
fn traceparent() -> (String, String, String) {
    let hex = || offstage::TaskId::new().to_string().replace('-', "");
    let trace = hex();
    // The random end of a time-ordered id.
    let span = hex()[16..].to_owned();
    (format!("00-{trace}-{span}-01"), trace, span)
}

async fn launch(api: &Api, body: Value, traceparent: &str) -> Value {
    let response = api
        .request(reqwest::Method::POST, "/api/tasks")
        .header("traceparent", traceparent)
        .header("tracestate", "caller=1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

fn consumer(span: &Received) -> bool {
    span.span.kind == SpanKind::Consumer as i32
}

#[tokio::test]
async fn a_task_launched_with_a_traceparent_is_a_span_in_that_trace() {
    let receiver = Receiver::start().await;
    let server = server(&receiver);
    let api = Api::new(&server, None);

    let (header, trace, caller) = traceparent();
    let task = launch(
        &api,
        json!({ "name": "demo.log", "args": { "lines": 2, "tracing": true } }),
        &header,
    )
    .await;
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(task["trace_id"], trace.as_str(), "{task}");
    assert_eq!(task["tracestate"], "caller=1");
    api.finished(&id).await;
    assert_eq!(
        api.get(&format!("/api/tasks/{id}")).await["trace_id"],
        trace.as_str()
    );

    let spans = receiver
        .until("the launch and the attempt of demo.log", |spans| {
            !Receiver::named(spans, &trace, "process demo.log").is_empty()
                && !Receiver::named(spans, &trace, "send demo.log").is_empty()
        })
        .await;
    let send = &Receiver::named(&spans, &trace, "send demo.log")[0];
    assert_eq!(
        send.parent_id(),
        caller,
        "the launch is a child of the caller's span"
    );
    assert_eq!(send.span.kind, SpanKind::Producer as i32);
    assert_eq!(send.service, "offstage-under-test");
    let process = &Receiver::named(&spans, &trace, "process demo.log")[0];
    assert!(consumer(process));
    assert_eq!(
        process.parent_id(),
        send.span_id(),
        "an attempt is a child of its launch"
    );
    assert_eq!(process.span.links.len(), 1, "and linked to it");
    let link = &process.span.links[0];
    assert_eq!(common::otlp::hex(&link.trace_id), trace);
    assert_eq!(common::otlp::hex(&link.span_id), send.span_id());
    for (key, value) in [
        ("messaging.system", "offstage"),
        ("messaging.operation.type", "process"),
        ("messaging.destination.name", "demo.log"),
        ("messaging.message.id", id.as_str()),
        ("offstage.task.id", id.as_str()),
        ("offstage.task.attempt", "1"),
        ("offstage.task.status", "completed"),
    ] {
        assert_eq!(process.attr(key).as_deref(), Some(value), "{key}");
    }
    let events: Vec<_> = process
        .span
        .events
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        events,
        ["line 1 of 2", "line 2 of 2"],
        "the task's tracing events"
    );
    // The same lines are in the task's log.
    let logs = api.get(&format!("/api/tasks/{id}/logs")).await;
    assert_eq!(logs["lines"][0]["message"], "line 1 of 2 line=1", "{logs}");

    // A header that is not a traceparent is ignored: the task gets a trace of its own.
    let response = api
        .request(reqwest::Method::POST, "/api/tasks")
        .header("traceparent", "00-not-a-trace")
        .json(&json!({ "name": "demo.echo", "args": { "value": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let task: Value = response.json().await.unwrap();
    let own = task["trace_id"].as_str().expect("a trace of its own");
    assert_eq!(own.len(), 32);
    receiver
        .until("the attempt of the task without a caller", |spans| {
            Receiver::named(spans, own, "process demo.echo").len() == 1
        })
        .await;
}

#[tokio::test]
async fn a_child_s_spans_nest_under_its_parent_s_attempt() {
    let receiver = Receiver::start().await;
    let server = server(&receiver);
    let api = Api::new(&server, None);
    let (header, trace, _) = traceparent();
    let task = launch(
        &api,
        json!({ "name": "demo.fanout", "args": { "children": 2, "to": 1, "interval_ms": 1 } }),
        &header,
    )
    .await;
    let id = task["id"].as_str().unwrap().to_owned();
    let ended = api.finished(&id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    let children = api.get(&format!("/api/tasks?parent={id}")).await;
    let children = children["tasks"].as_array().unwrap().clone();
    assert_eq!(children.len(), 2);
    for child in &children {
        assert_eq!(
            child["trace_id"],
            trace.as_str(),
            "a child is in its parent's trace"
        );
    }

    let spans = receiver
        .until("the parent's attempt and both children's", |spans| {
            Receiver::named(spans, &trace, "process demo.count").len() == 2
                && Receiver::named(spans, &trace, "process demo.fanout").len() == 1
        })
        .await;
    let parent = &Receiver::named(&spans, &trace, "process demo.fanout")[0];
    let sends = Receiver::named(&spans, &trace, "send demo.count");
    assert_eq!(sends.len(), 2);
    for send in &sends {
        assert_eq!(
            send.parent_id(),
            parent.span_id(),
            "launched from the parent's attempt"
        );
    }
    for process in Receiver::named(&spans, &trace, "process demo.count") {
        assert!(sends
            .iter()
            .any(|send| send.span_id() == process.parent_id()));
        let child = process.attr("offstage.task.id").unwrap();
        assert!(children.iter().any(|c| c["id"] == child.as_str()));
    }
}

#[tokio::test]
async fn a_retried_task_has_one_span_per_attempt() {
    let receiver = Receiver::start().await;
    let server = server(&receiver);
    let api = Api::new(&server, None);
    let (header, trace, _) = traceparent();
    let args = json!({ "items": 2, "every": 1, "interval_ms": 1, "fail_at": 1 });
    let task = launch(
        &api,
        json!({ "name": "demo.import", "args": args }),
        &header,
    )
    .await;
    let id = task["id"].as_str().unwrap().to_owned();
    let ended = api.finished(&id).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["attempt"], 2);

    let spans = receiver
        .until("both attempts of demo.import", |spans| {
            Receiver::named(spans, &trace, "process demo.import").len() == 2
        })
        .await;
    let send = &Receiver::named(&spans, &trace, "send demo.import")[0];
    let mut attempts = Receiver::named(&spans, &trace, "process demo.import");
    attempts.sort_by_key(|s| s.attr("offstage.task.attempt"));
    let [first, second] = &attempts[..] else {
        unreachable!()
    };
    assert_eq!(first.attr("offstage.task.attempt").as_deref(), Some("1"));
    assert_eq!(
        first.attr("offstage.task.status").as_deref(),
        Some("retried")
    );
    assert_eq!(first.attr("error.type").as_deref(), Some("demo_failure"));
    let status = first.span.status.as_ref().expect("an error status");
    assert_eq!(status.code, 2, "STATUS_CODE_ERROR");
    assert!(status.message.contains("fail_at"), "{}", status.message);
    assert_eq!(second.attr("offstage.task.attempt").as_deref(), Some("2"));
    assert_eq!(
        second.attr("offstage.task.status").as_deref(),
        Some("completed")
    );
    for attempt in [first, second] {
        assert_eq!(
            attempt.parent_id(),
            send.span_id(),
            "each attempt under the launch"
        );
    }
}

/// A receiver that is down costs the tasks nothing: they run and end as usual, the spans are
/// dropped, and a SIGTERM still ends the server (the last flush gives up after the export
/// timeout).
#[tokio::test]
async fn a_receiver_that_is_down_changes_nothing_for_the_tasks() {
    // A port nobody listens on any more.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    use offstage::testing::conformance::Backend;
    let db = offstage::testing::conformance::SqliteBackend.new_database();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--db", &db, "--demo"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &closed)
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "200")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .stderr(Stdio::null());
    let mut server = Server::spawn(command, &db);
    let api = Api::new(&server, None);
    let (header, trace, _) = traceparent();
    let task = launch(
        &api,
        json!({ "name": "demo.echo", "args": { "value": 7 } }),
        &header,
    )
    .await;
    let ended = api.finished(task["id"].as_str().unwrap()).await;
    assert_eq!(ended["status"], "completed");
    assert_eq!(ended["return_value"], 7);
    assert_eq!(task["trace_id"], trace.as_str());
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let exited = tokio::task::spawn_blocking(move || {
        let status = server.child.wait().unwrap();
        (server, status)
    });
    let (_server, status) = tokio::time::timeout(std::time::Duration::from_secs(30), exited)
        .await
        .expect("the server ends after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}
