//! What the real-process tests share: an `offstage serve` process on a free port.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod browser;
pub mod otlp;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_offstage");

/// A server process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub db: String,
}

impl Server {
    /// `offstage serve --demo` with `extra` arguments.
    pub fn start(db: &str, extra: &[&str]) -> Server {
        let mut args = vec!["--demo"];
        args.extend_from_slice(extra);
        Server::start_plain(db, &args)
    }

    /// `offstage serve --demo` on a new SQLite file with three tokens: `r` (role read), `l`
    /// (launch) and `c` (control).
    pub fn with_three_roles() -> Server {
        use offstage::testing::conformance::Backend;
        let db = offstage::testing::conformance::SqliteBackend.new_database();
        Server::start(
            &db,
            &[
                "--token",
                "read:r",
                "--token",
                "launch:l",
                "--token",
                "control:c",
            ],
        )
    }

    /// `offstage serve` with only `extra` arguments (no demo task types).
    pub fn start_plain(db: &str, extra: &[&str]) -> Server {
        Server::start_at(db, "127.0.0.1:0", extra)
    }

    /// `offstage serve` on `addr` with only `extra` arguments.
    pub fn start_at(db: &str, addr: &str, extra: &[&str]) -> Server {
        Server::start_logging(db, addr, extra, Stdio::null())
    }

    /// `offstage serve` on `addr` with only `extra` arguments, its log (stderr) to `log`.
    pub fn start_logging(db: &str, addr: &str, extra: &[&str], log: impl Into<Stdio>) -> Server {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--addr", addr, "--db", db])
            .args(extra)
            .stderr(log);
        Server::spawn(command, db)
    }

    /// Runs `command` (an `offstage serve` on `db`, as the caller set it up: arguments,
    /// environment, stderr) and waits for the line that says where it listens.
    pub fn spawn(mut command: Command, db: &str) -> Server {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .strip_prefix("offstage listening on ")
            .expect(&first)
            .to_owned();
        Server {
            child,
            url,
            db: db.to_owned(),
        }
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("OFFSTAGE_SERVER", &self.url)
            .env_remove("OFFSTAGE_TOKEN")
            .output()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP API of one server, as another client would use it.
pub struct Api {
    pub http: reqwest::Client,
    pub url: String,
    pub token: Option<String>,
}

impl Api {
    pub fn new(server: &Server, token: Option<&str>) -> Api {
        Api {
            http: reqwest::Client::new(),
            url: server.url.clone(),
            token: token.map(str::to_owned),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    /// Launches `body` (`{"name", "args", ...}`); the new task's id.
    pub async fn launch(&self, body: serde_json::Value) -> String {
        let response = self
            .request(reqwest::Method::POST, "/api/tasks")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let task: serde_json::Value = response.json().await.unwrap();
        task["id"].as_str().unwrap().to_owned()
    }

    /// Kills `id` with a grace period of `grace_s` seconds, or the server's.
    pub async fn kill(&self, id: &str, grace_s: Option<f64>) {
        let mut request = self.request(reqwest::Method::POST, &format!("/api/tasks/{id}/kill"));
        if let Some(grace_s) = grace_s {
            request = request.json(&serde_json::json!({ "grace_s": grace_s }));
        }
        assert_eq!(request.send().await.unwrap().status(), 202);
    }

    /// Reads the task's events from its launch until `until(kind, event)` holds; that event.
    pub async fn until(
        &self,
        id: &str,
        until: impl Fn(&str, &serde_json::Value) -> bool,
    ) -> serde_json::Value {
        use futures::StreamExt;
        let response = self
            .request(reqwest::Method::GET, &format!("/api/tasks/{id}/events"))
            .header("last-event-id", "0")
            .send()
            .await
            .unwrap();
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        let wait = std::time::Duration::from_secs(30);
        tokio::time::timeout(wait, async {
            while let Some(chunk) = body.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let kind = block.lines().find_map(|l| l.strip_prefix("event: "));
                    let data = block.lines().find_map(|l| l.strip_prefix("data: "));
                    if let (Some(kind), Some(data)) = (kind, data) {
                        let event: serde_json::Value = serde_json::from_str(data).unwrap();
                        if until(kind, &event) {
                            return event;
                        }
                    }
                }
            }
            panic!("the events of {id} ended first");
        })
        .await
        .unwrap_or_else(|_| panic!("waiting on the events of {id}"))
    }

    /// The task's final record, once it has ended.
    pub async fn finished(&self, id: &str) -> serde_json::Value {
        self.until(id, |kind, _| kind == "finished").await["task"].clone()
    }
}

pub const LIMIT: Duration = Duration::from_secs(30);

/// Reads one SSE stream event by event: `(id, event, data)`.
pub struct Sse {
    body: futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
}

impl Sse {
    pub async fn open(api: &Api, path: &str, last_event_id: Option<u64>) -> Sse {
        let mut request = api.request(Method::GET, path);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Sse {
            body: response
                .bytes_stream()
                .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
                .boxed(),
            buffer: String::new(),
        }
    }

    /// Waits up to `limit` for an event `pred` accepts (given the event's type and data).
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&str, &Value) -> bool,
    ) -> (String, Value) {
        tokio::time::timeout(limit, async {
            loop {
                let (_, kind, data) = self.next().await;
                if pred(&kind, &data) {
                    return (kind, data);
                }
            }
        })
        .await
        .expect("the awaited event within the limit")
    }

    /// The next event, failing after [`LIMIT`].
    pub async fn next(&mut self) -> (String, String, Value) {
        tokio::time::timeout(LIMIT, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let field = |name: &str| {
                        block
                            .lines()
                            .find_map(|l| l.strip_prefix(name))
                            .map(str::to_owned)
                    };
                    if let (Some(id), Some(kind), Some(data)) =
                        (field("id: "), field("event: "), field("data: "))
                    {
                        return (id, kind, serde_json::from_str(&data).unwrap());
                    }
                    continue;
                }
                let chunk = self.body.next().await.expect("the stream ended").unwrap();
                self.buffer.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .expect("an event within the limit")
    }
}

pub async fn call(
    api: &Api,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = api.request(method, path);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

pub fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
