//! `--history N`: what a store with a long history costs. The store is filled with `N`
//! finished tasks through the real launch path, then the everyday figures are taken on it and
//! compared with an empty store's: launch throughput and latency, the dashboard's counts and
//! first page, and how long a launch waits for the writer while a million tasks are purged.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use offstage::{Context, ListFilter, Purge, Retention, Runtime, TaskError};
use serde_json::{json, Value};

use crate::measure::{launch_latency, percentile, throughput};

type Figures = Vec<(&'static str, f64, &'static str)>;

/// Every history figure, for a store of `n` finished tasks (and the empty store beside it).
pub async fn figures(dir: &Path, n: usize, quick: bool) -> Figures {
    let mut out = Figures::new();
    let tasks = if quick { 20_000 } else { 100_000 };
    let empty_rate = throughput(&dir.join("history-empty.db"), tasks, 1_000).await;
    let (_, empty_p99) = launch_latency(
        &dir.join("history-empty-launch.db"),
        500,
        Default::default(),
    )
    .await;

    let db = dir.join("history.db");
    let (fill_rate, cutoff) = fill(&db, n).await;
    out.push(("history_fill_tasks_per_s", fill_rate, "-"));
    let full_rate = throughput(&db, tasks, 1_000).await;
    let (_, full_p99) = launch_latency(&db, 500, Default::default()).await;
    out.push(("history_empty_tasks_per_s", empty_rate, "-"));
    out.push(("history_full_tasks_per_s", full_rate, "-"));
    out.push(("history_throughput_ratio", full_rate / empty_rate, "≥ 0.9"));
    out.push(("history_empty_launch_p99_ms", empty_p99, "-"));
    out.push(("history_full_launch_p99_ms", full_p99, "-"));

    let rt = history_runtime(&db).await;
    let (counts, first_page) = dashboard(&rt).await;
    out.push(("history_counts_p50_ms", counts, "≤ 5"));
    out.push(("history_first_page_p50_ms", first_page, "≤ 2"));

    let idle = launch_waits(&rt, None).await;
    let purge = Purge {
        filter: ListFilter {
            launched_before: Some(cutoff),
            ..ListFilter::default()
        },
        ..Purge::default()
    };
    let size_before = file_size(&db);
    let during = launch_waits(&rt, Some(&purge)).await;
    let purged = during.purged as f64;
    out.push(("history_purged_tasks", purged, "-"));
    out.push((
        "history_purge_tasks_per_s",
        purged / during.purge_time.as_secs_f64(),
        "-",
    ));
    out.push(("history_idle_launch_wait_p99_ms", idle.p99, "-"));
    out.push(("history_purge_launch_wait_p99_ms", during.p99, "≤ 2× idle"));
    out.push(("history_purge_launch_wait_max_ms", during.max, "≤ 50"));
    out.push((
        "history_file_mib_before_purge",
        size_before as f64 / (1024.0 * 1024.0),
        "-",
    ));
    out.push((
        "history_file_mib_after_purge",
        file_size(&db) as f64 / (1024.0 * 1024.0),
        "-",
    ));
    rt.shutdown().await.unwrap();
    out
}

/// A runtime on the history store with its task types, keeping everything (retention would
/// otherwise start on its own while the figures are taken).
async fn history_runtime(db: &Path) -> Runtime {
    Runtime::builder()
        .sqlite(db)
        .retention(Retention::forever())
        .max_concurrency(10_000)
        .task("history.ok", |_ctx: Context, _args: Value| async {
            Ok::<_, TaskError>(())
        })
        .task("history.fail", |_ctx: Context, _args: Value| async {
            Err::<(), _>(TaskError::new("bench", "failed on purpose"))
        })
        .task("probe", |_ctx: Context, _args: Value| async {
            Ok::<_, TaskError>(())
        })
        .build()
        .await
        .unwrap()
}

/// Fills `db` with `n` finished tasks (one in ten failed), 4,000 in flight. Returns the rate
/// and the launch time of the task that ends the first million (or the first half, for
/// smaller histories): the purge's cutoff.
async fn fill(db: &Path, n: usize) -> (f64, chrono::DateTime<chrono::Utc>) {
    let rt = history_runtime(db).await;
    let purge_count = (n / 2).min(1_000_000);
    let cutoff = Arc::new(std::sync::Mutex::new(None));
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let rt = rt.clone();
            let cutoff = Arc::clone(&cutoff);
            async move {
                let name = if i % 10 == 0 {
                    "history.fail"
                } else {
                    "history.ok"
                };
                let task = rt.launch_json(name, json!(i)).await.unwrap();
                let record = task.wait().await.unwrap();
                if i == purge_count {
                    *cutoff.lock().unwrap() = Some(record.launched_at);
                }
            }
        })
        .buffer_unordered(4_000)
        .for_each(|()| async {})
        .await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    rt.shutdown().await.unwrap();
    let cutoff = cutoff.lock().unwrap().expect("the cutoff task ran");
    (rate, cutoff)
}

/// The dashboard's two most frequent reads, p50 over 200 each: counts by type and status, and
/// the first page of the task list.
async fn dashboard(rt: &Runtime) -> (f64, f64) {
    let addr = crate::http::serve(rt).await;
    let http = reqwest::Client::new();
    let mut p50 = Vec::new();
    for path in ["/api/task-types", "/api/tasks?limit=50"] {
        let url = format!("http://{addr}{path}");
        let mut times = Vec::with_capacity(200);
        for _ in 0..200 {
            let start = Instant::now();
            let response = http.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.bytes().await.unwrap();
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        p50.push(percentile(&mut times, 0.5));
    }
    (p50[0], p50[1])
}

/// How long launches wait for the writer: a launch every 2 ms, each timed until the launch
/// (its insert committed) returns; with `purge`, while that purge runs, until it ends.
struct Waits {
    p99: f64,
    max: f64,
    purged: u64,
    purge_time: Duration,
}

async fn launch_waits(rt: &Runtime, purge: Option<&Purge>) -> Waits {
    let purging = purge.map(|purge| {
        let (rt, purge) = (rt.clone(), purge.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            let purged = rt.purge_with(&purge, |_| {}).await.unwrap();
            (purged, start.elapsed())
        })
    });
    let mut waits = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(2));
    loop {
        ticks.tick().await;
        let start = Instant::now();
        rt.launch_json("probe", Value::Null).await.unwrap();
        waits.push(start.elapsed().as_secs_f64() * 1e3);
        let done = match &purging {
            Some(purging) => purging.is_finished(),
            None => waits.len() >= 1_000,
        };
        if done {
            break;
        }
    }
    let (purged, purge_time) = match purging {
        Some(purging) => purging.await.unwrap(),
        None => (0, Duration::ZERO),
    };
    let max = waits.iter().copied().fold(0.0, f64::max);
    Waits {
        p99: percentile(&mut waits, 0.99),
        max,
        purged,
        purge_time,
    }
}

/// The size of the database file, its write-ahead log checkpointed into it first.
fn file_size(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    std::fs::metadata(db).map_or(0, |meta| meta.len())
}
