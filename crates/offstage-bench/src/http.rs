//! Measurements through the HTTP API: the server runs in this process on a loopback port; the
//! load comes from an HTTP client over real sockets.

use std::net::SocketAddr;
use std::path::Path;

use std::time::{Duration, Instant};

use futures::StreamExt;
use offstage::{Context, Runtime, TaskError};
use serde_json::{json, Value};

pub async fn serve(rt: &Runtime) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = offstage_server::app(offstage_server::AppState::new(rt.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A task writes its state `n` times, 1 ms apart; an SSE client on
/// `/api/tasks/{id}/events` notes when each write arrives.
pub async fn sse_state_latency(db: &Path, n: usize) -> (f64, f64) {
    // The head start gives the SSE client time to connect before the first write.
    let (rt, written) = crate::measure::state_writer(db, Duration::from_millis(200)).await;
    let addr = serve(&rt).await;
    let task = rt.launch_json("writer", json!(n)).await.unwrap();
    let response = reqwest::get(format!("http://{addr}/api/tasks/{}/events", task.id()))
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut samples = Vec::with_capacity(n);
    'read: while let Some(chunk) = body.next().await {
        let arrived = Instant::now();
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if !block.contains("event: state") {
                if block.contains("event: finished") {
                    break 'read;
                }
                continue;
            }
            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let event: Value = serde_json::from_str(data).unwrap();
            let i = event["state"]["i"].as_u64().unwrap() as usize;
            let sent = written.lock().unwrap()[i];
            samples.push((arrived - sent).as_secs_f64() * 1e3);
        }
    }
    assert_eq!(samples.len(), n, "every state write arrived");
    rt.shutdown().await.unwrap();
    (
        crate::measure::percentile(&mut samples, 0.5),
        crate::measure::percentile(&mut samples, 0.99),
    )
}

/// `n` no-op launches through `POST /api/tasks`, `clients` at a time. Launches per second.
pub async fn http_launch_rate(db: &Path, n: usize, clients: usize) -> f64 {
    let rt = Runtime::builder()
        .sqlite(db)
        .max_concurrency(10_000)
        .task("noop", |_ctx: Context, _args: Value| async {
            Ok::<_, TaskError>(())
        })
        .build()
        .await
        .unwrap();
    let addr = serve(&rt).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/tasks");
    let body = json!({ "name": "noop" });
    let start = Instant::now();
    let launches = futures::stream::iter(0..n)
        .map(|_| {
            let request = http.post(&url).json(&body);
            async move {
                request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        })
        .buffer_unordered(clients);
    let statuses: Vec<u16> = launches.collect().await;
    let elapsed = start.elapsed();
    assert!(
        statuses.iter().all(|s| *s == 201),
        "every launch was accepted"
    );
    rt.shutdown().await.unwrap();
    n as f64 / elapsed.as_secs_f64()
}

/// What the dashboard asks for, with `n` tasks in the store (a tenth of them failed, spread over
/// four task types): the first page, a page filtered by status, a page deep in the history
/// filtered by name, and the counts by status. Each is `samples` requests in a row; p50 in ms.
pub async fn dashboard_queries(db: &Path, n: usize, samples: usize) -> Vec<(&'static str, f64)> {
    let mut builder = Runtime::builder().sqlite(db).max_concurrency(10_000);
    for name in ["alpha", "beta", "gamma", "delta"] {
        builder = builder.task(name, |_ctx: Context, fail: bool| async move {
            if fail {
                return Err(TaskError::new("bench", "failed on purpose"));
            }
            Ok(())
        });
    }
    let rt = builder.build().await.unwrap();
    let names = ["alpha", "beta", "gamma", "delta"];
    let mut middle = None;
    futures::stream::iter(0..n)
        .map(|i| {
            let rt = rt.clone();
            async move {
                let task = rt.launch_json(names[i % 4], json!(i % 10 == 0)).await;
                let task = task.unwrap();
                task.wait().await.unwrap();
                task.id()
            }
        })
        .buffer_unordered(1_000)
        .enumerate()
        .for_each(|(i, id)| {
            if i == n / 2 {
                middle = Some(id);
            }
            async {}
        })
        .await;
    let addr = serve(&rt).await;
    let http = reqwest::Client::new();
    let middle = middle.unwrap();
    let queries = [
        (
            "dashboard_first_page_p50_ms",
            "/api/tasks?limit=50".to_owned(),
        ),
        (
            "dashboard_failed_page_p50_ms",
            "/api/tasks?limit=50&status=failed".to_owned(),
        ),
        (
            "dashboard_deep_page_by_name_p50_ms",
            format!("/api/tasks?limit=50&name=gamma&before={middle}"),
        ),
        ("dashboard_counts_p50_ms", "/api/task-types".to_owned()),
    ];
    let mut out = Vec::new();
    for (metric, path) in queries {
        let url = format!("http://{addr}{path}");
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let start = Instant::now();
            let response = http.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let body = response.bytes().await.unwrap();
            times.push(start.elapsed().as_secs_f64() * 1e3);
            assert!(body.len() > 100, "{path} answered with data");
        }
        out.push((metric, crate::measure::percentile(&mut times, 0.5)));
    }
    rt.shutdown().await.unwrap();
    out
}
