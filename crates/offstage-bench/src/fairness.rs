//! The fairness figures: the launch → start latency of one task of key B while key A has
//! 100,000 tasks queued, against the same latency on the idle runtime, for a task type with a
//! limit per concurrency key (`TaskTypeOptions::concurrency_per_key`).
//!
//! One runtime, 64 slots, task type `work` keyed by its args' `key`, at most `per_key` per key.
//! A's tasks sleep 20 ms each, so A keeps its places (or, with a per-key limit of 64 or more,
//! every slot) busy throughout the measurement. First the idle latency (no backlog), then
//! 100,000 tasks of key A are launched and, with them queued, one task of key B at a time: its
//! body notes when it starts. Launches are 0–10 ms apart.
//!
//! Two settings: a per-key limit of 32 (half the slots: what a tenant may take, the setting
//! fairness is for), where B finds a free slot and is claimed at once, ahead of A's backlog;
//! and 1,000 (A may take every slot), where B waits for a slot to free up and is claimed in the
//! claim round that follows, ahead of A's backlog, so what it measures is how soon a slot
//! frees (A's tasks end in waves).

use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use offstage::store::Store;
use offstage::{ConcurrencyKey, Context, Runtime, Status, TaskError, TaskTypeOptions};
use serde_json::{json, Value};

use crate::measure::{next_gap, percentile};

/// What one run measured, in milliseconds (and the backlog it measured behind).
pub struct Fairness {
    pub idle_p50: f64,
    pub idle_p99: f64,
    pub behind_p50: f64,
    pub behind_p99: f64,
    /// Key A's queued tasks when the last sample of key B was taken.
    pub backlog_left: f64,
}

/// Measures on `store`, with at most `per_key` tasks of a key at once: `samples` launches of
/// key B idle and as many behind `backlog` queued tasks of key A.
pub async fn fairness(
    store: Arc<dyn Store>,
    per_key: u32,
    backlog: usize,
    samples: usize,
) -> Fairness {
    let started: Arc<Mutex<Option<Instant>>> = Arc::default();
    let slot = Arc::clone(&started);
    let rt = Runtime::builder()
        .store(store)
        .max_concurrency(64)
        .task_with(
            "work",
            TaskTypeOptions::default().concurrency_per_key(per_key, ConcurrencyKey::Arg("key")),
            move |_ctx: Context, job: Value| {
                if job["key"] == "b" {
                    *slot.lock().unwrap() = Some(Instant::now());
                }
                let ms = job["ms"].as_u64().unwrap_or(0);
                async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok::<_, TaskError>(())
                }
            },
        )
        .build()
        .await
        .unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15;
    let measure = |seed: &mut u64| {
        let rt = rt.clone();
        let started = Arc::clone(&started);
        let gap = next_gap(seed, 10_000);
        async move {
            tokio::time::sleep(gap).await;
            let before = Instant::now();
            let task = rt
                .launch_json("work", json!({"key": "b", "ms": 0}))
                .await
                .unwrap();
            let record = task.wait().await.unwrap();
            assert_eq!(record.status, Status::Completed);
            let at = started.lock().unwrap().take().expect("the body ran");
            (at - before).as_secs_f64() * 1e3
        }
    };
    let mut idle = Vec::with_capacity(samples);
    for _ in 0..samples {
        idle.push(measure(&mut seed).await);
    }

    // Key A's backlog, launched in chunks of concurrent launches (they share group commits).
    for chunk in 0..backlog.div_ceil(1_000) {
        let n = 1_000.min(backlog - chunk * 1_000);
        let launches = (0..n).map(|_| {
            rt.launch_json("work", json!({"key": "a", "ms": 20}))
                .into_future()
        });
        for launched in join_all(launches).await {
            launched.unwrap();
        }
    }
    let mut behind = Vec::with_capacity(samples);
    for _ in 0..samples {
        behind.push(measure(&mut seed).await);
    }
    let left = rt
        .concurrency_keys("work", 10)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.key == "a")
        .map_or(0, |k| k.queued);
    // The backlog stays queued: shutting down stops the claims and drains the running ones.
    rt.shutdown().await.unwrap();
    Fairness {
        idle_p50: percentile(&mut idle, 0.5),
        idle_p99: percentile(&mut idle, 0.99),
        behind_p50: percentile(&mut behind, 0.5),
        behind_p99: percentile(&mut behind, 0.99),
        backlog_left: left as f64,
    }
}

/// The figures of `result` under `names` (idle p50, p99, behind p50, p99, ratio, backlog).
pub fn rows(result: &Fairness, names: [&'static str; 6]) -> Vec<(&'static str, f64, &'static str)> {
    vec![
        (names[0], result.idle_p50, "-"),
        (names[1], result.idle_p99, "-"),
        (names[2], result.behind_p50, "-"),
        (names[3], result.behind_p99, "-"),
        (names[4], result.behind_p50 / result.idle_p50, "≤ 2"),
        (names[5], result.backlog_left, "> 0"),
    ]
}
