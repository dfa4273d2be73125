//! Measurements through the HTTP API: the server runs in this process on a loopback port; the
//! load comes from an HTTP client over real sockets.

use std::net::SocketAddr;
use std::path::Path;

use std::time::{Duration, Instant};

use futures::StreamExt;
use offstage::{Context, Runtime, TaskError};
use serde_json::{json, Value};

async fn serve(rt: &Runtime) -> SocketAddr {
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
