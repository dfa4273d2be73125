//! Child tasks against a real `offstage serve` on a real port: `demo.fanout` and its children
//! over HTTP, `parent` and `detached` on a launch (and every refusal), the kill cascade, the
//! CLI (`show`, `list --parent`, `launch --parent`, `bulk kill --parent`), and a parent whose
//! node is SIGKILLed.

mod common;

use std::time::Instant;

use common::{call, code, message, stderr, stdout, Api, Server, LIMIT};
use offstage::testing::conformance::{Backend, SqliteBackend};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn launch(api: &Api, body: Value) -> (StatusCode, Value) {
    call(api, Method::POST, "/api/tasks", Some(&body.to_string())).await
}

async fn children(api: &Api, parent: &str) -> Vec<Value> {
    let page = api.get(&format!("/api/tasks?parent={parent}")).await;
    page["tasks"].as_array().expect("a page of tasks").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fanout_s_children_are_listed_shown_and_refused_when_wrong() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let parent = api
        .launch(json!({
            "name": "demo.fanout",
            "args": { "children": 3, "to": 2, "interval_ms": 5 },
            "owner": "ann",
        }))
        .await;
    let ended = api.finished(&parent).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(
        ended["return_value"],
        json!({ "completed": 3, "failed": 0 })
    );
    assert_eq!(ended["state"], json!({ "done": 3, "total": 3 }));

    let kids = children(&api, &parent).await;
    assert_eq!(kids.len(), 3);
    for kid in &kids {
        assert_eq!(kid["name"], "demo.count");
        assert_eq!(kid["parent"], parent.as_str());
        assert_eq!(kid["detached"], false);
        assert_eq!(kid["owner"], "ann", "a child inherits its parent's owner");
        assert_eq!(kid["status"], "completed");
    }
    assert_eq!(
        api.get(&format!("/api/tasks/{}", kids[0]["id"].as_str().unwrap()))
            .await["parent"],
        parent.as_str()
    );

    // The CLI: `show` prints the parent's children, counted and listed, and a child's parent;
    // `list --parent` lists them.
    let shown = stdout(&server.cli(&["show", &parent]));
    assert!(shown.contains("children      3 (3 completed)"), "{shown}");
    assert!(shown.contains(kids[0]["id"].as_str().unwrap()), "{shown}");
    let child_id = kids[0]["id"].as_str().unwrap();
    let shown = stdout(&server.cli(&["show", child_id]));
    assert!(
        shown.contains(&format!("parent        {parent}")),
        "{shown}"
    );
    assert!(shown.contains("children      -"), "{shown}");
    let listed = stdout(&server.cli(&["list", "--parent", &parent]));
    assert_eq!(
        listed.lines().count(),
        4,
        "a header and three children: {listed}"
    );
    assert_eq!(listed.matches("demo.count").count(), 3, "{listed}");

    // Refusals, each saying what to do.
    let (status, body) = launch(
        &api,
        json!({ "name": "demo.echo", "args": { "value": 1 }, "parent": "nope" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "invalid_id");
    assert!(message(&body).contains("parent is `nope`"), "{body}");
    let unknown = offstage::TaskId::new();
    let (status, body) = launch(
        &api,
        json!({ "name": "demo.echo", "args": { "value": 1 }, "parent": unknown }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(message(&body).contains("parent task"), "{body}");
    let (status, body) = launch(
        &api,
        json!({ "name": "demo.echo", "args": { "value": 1 }, "parent": parent }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("has ended (completed)"), "{body}");
    let (status, body) = launch(
        &api,
        json!({ "name": "demo.echo", "args": { "value": 1 }, "detached": true }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        message(&body).contains("detached applies to a child"),
        "{body}"
    );
    let (status, body) = call(&api, Method::GET, "/api/tasks?parent=12", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(code(&body), "invalid_id");
    let refused = server.cli(&["launch", "demo.echo", "--detached"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--parent"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_parent_kills_its_children_and_one_that_ends_leaves_detached_ones() {
    let server = Server::start(&SqliteBackend.new_database(), &[]);
    let api = Api::new(&server, None);
    let sleep = |seconds: f64| json!({ "name": "demo.sleep", "args": { "seconds": seconds } });

    // Killed: every child goes, detached or not, queued or running.
    let parent = api.launch(sleep(600.0)).await;
    let mut kids = Vec::new();
    for (detached, delay) in [(false, None), (true, None), (false, Some(3600.0))] {
        let mut body = sleep(600.0);
        body["parent"] = json!(parent);
        body["detached"] = json!(detached);
        if let Some(delay) = delay {
            body["delay_s"] = json!(delay);
        }
        let (status, kid) = launch(&api, body).await;
        assert_eq!(status, StatusCode::CREATED, "{kid}");
        assert_eq!(kid["detached"], detached);
        kids.push(kid["id"].as_str().unwrap().to_owned());
    }
    // A grandchild, launched with the CLI.
    let output = server.cli(&[
        "launch",
        "demo.sleep",
        "--args",
        r#"{"seconds": 600}"#,
        "--parent",
        &kids[0],
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let grandchild = stdout(&output).trim().to_owned();
    api.kill(&parent, None).await;
    assert_eq!(api.finished(&parent).await["status"], "killed");
    for id in kids.iter().chain([&grandchild]) {
        assert_eq!(api.finished(id).await["status"], "killed", "{id}");
    }

    // Ended by itself: the child that is not detached is killed, the detached one runs on.
    let parent = api.launch(sleep(0.3)).await;
    let mut kids = Vec::new();
    for detached in [false, true] {
        let mut body = sleep(600.0);
        body["parent"] = json!(parent);
        body["detached"] = json!(detached);
        kids.push(
            launch(&api, body).await.1["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(api.finished(&parent).await["status"], "completed");
    assert_eq!(api.finished(&kids[0]).await["status"], "killed");
    let detached = api.get(&format!("/api/tasks/{}", kids[1])).await;
    assert_eq!(detached["status"], "running", "{detached}");

    // `bulk kill --parent` ends the rest.
    let output = server.cli(&["bulk", "kill", "--parent", &parent, "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(api.finished(&kids[1]).await["status"], "killed");
}

/// Two servers on one SQLite file. The parent runs on the first, its children wait queued
/// (delayed). SIGKILL the first: the second marks the parent `missing` at once (its lock file
/// is free) and kills its child that is not detached; the detached one is left queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_children_of_a_parent_whose_node_was_sigkilled_are_killed_unless_detached() {
    let db = SqliteBackend.new_database();
    let mut doomed = Server::start(&db, &[]);
    let survivor = Server::start(&db, &[]);
    let (on_doomed, on_survivor) = (Api::new(&doomed, None), Api::new(&survivor, None));
    let parent = on_doomed
        .launch(json!({ "name": "demo.sleep", "args": { "seconds": 600 } }))
        .await;
    on_doomed.until(&parent, |kind, _| kind == "state").await;
    let mut kids = Vec::new();
    for detached in [false, true] {
        let (status, kid) = launch(
            &on_doomed,
            json!({
                "name": "demo.sleep",
                "args": { "seconds": 600 },
                "parent": parent,
                "detached": detached,
                "delay_s": 3600,
            }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{kid}");
        kids.push(kid["id"].as_str().unwrap().to_owned());
    }
    let killed = Instant::now();
    doomed.child.kill().unwrap(); // SIGKILL
    doomed.child.wait().unwrap();
    let stopped = on_survivor.finished(&kids[0]).await;
    let took = killed.elapsed();
    assert_eq!(stopped["status"], "killed", "{stopped}");
    let lost = on_survivor.get(&format!("/api/tasks/{parent}")).await;
    assert_eq!(lost["status"], "missing", "{lost}");
    let left = on_survivor.get(&format!("/api/tasks/{}", kids[1])).await;
    assert_eq!(left["status"], "queued", "{left}");
    println!("children: the non-detached child of a SIGKILLed node's parent was killed {took:?} after the SIGKILL");
    assert!(took < LIMIT);
}
