//! The measurements. Each builds its own runtime on its own database.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use offstage::store::sqlite::{Durability, SqliteOptions, SqliteStore};
use offstage::{Context, EventKind, Runtime, Status, TaskError};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

/// Resident memory of this process, in MiB.
pub fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

/// A small deterministic generator for launch gaps.
pub(crate) fn next_gap(seed: &mut u64, max_us: u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    Duration::from_micros(*seed % max_us)
}

async fn noop(_ctx: Context, _args: Value) -> Result<(), TaskError> {
    Ok(())
}

/// RSS of the process with one idle runtime (no tasks run yet).
pub async fn idle_rss(db: &Path) -> f64 {
    let rt = Runtime::builder()
        .sqlite(db)
        .task("noop", noop)
        .build()
        .await
        .unwrap();
    let task = rt.launch_json("noop", json!(null)).await.unwrap();
    task.wait().await.unwrap();
    let rss = rss_mib();
    rt.shutdown().await.unwrap();
    rss
}

/// No-op tasks launched one call at a time, `in_flight` launch-and-wait calls at once, until
/// all `n` have completed. Tasks per second.
pub async fn throughput(db: &Path, n: usize, in_flight: usize) -> f64 {
    let rt = Runtime::builder()
        .sqlite(db)
        .task("noop", noop)
        .max_concurrency(in_flight * 10)
        .build()
        .await
        .unwrap();
    let start = Instant::now();
    let permits = Arc::new(Semaphore::new(in_flight));
    for _ in 0..n {
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        let rt = rt.clone();
        tokio::spawn(async move {
            let task = rt.launch_json("noop", Value::Null).await.unwrap();
            let record = task.wait().await.unwrap();
            assert_eq!(record.status, Status::Completed);
            drop(permit);
        });
    }
    // Every permit back: every task has completed.
    let _all = permits.acquire_many(in_flight as u32).await.unwrap();
    let elapsed = start.elapsed();
    rt.shutdown().await.unwrap();
    n as f64 / elapsed.as_secs_f64()
}

/// Launch → first statement of the body, on an idle runtime, launches 0–10 ms apart.
pub async fn launch_latency(db: &Path, n: usize, durability: Durability) -> (f64, f64) {
    let started: Arc<Mutex<Option<Instant>>> = Arc::default();
    let slot = Arc::clone(&started);
    let options = SqliteOptions::default().durability(durability);
    let store = SqliteStore::open_with(db, options).await.unwrap();
    let rt = Runtime::builder()
        .store(Arc::new(store))
        .task("probe", move |_ctx: Context, _args: Value| {
            *slot.lock().unwrap() = Some(Instant::now());
            async { Ok::<_, TaskError>(()) }
        })
        .build()
        .await
        .unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        tokio::time::sleep(next_gap(&mut seed, 10_000)).await;
        let before = Instant::now();
        let task = rt.launch_json("probe", Value::Null).await.unwrap();
        task.wait().await.unwrap();
        let at = started.lock().unwrap().take().expect("the body ran");
        samples.push((at - before).as_secs_f64() * 1e3);
    }
    rt.shutdown().await.unwrap();
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

/// A runtime with task type `writer`: after `head_start`, it writes its state `{"i": i}` for
/// `i` in `0..n` (its args), 1 ms apart, noting in the returned list when it wrote each.
pub async fn state_writer(db: &Path, head_start: Duration) -> (Runtime, Arc<Mutex<Vec<Instant>>>) {
    let written: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let log = Arc::clone(&written);
    let rt = Runtime::builder()
        .sqlite(db)
        .task("writer", move |ctx: Context, n: usize| {
            let log = Arc::clone(&log);
            async move {
                tokio::time::sleep(head_start).await;
                for i in 0..n {
                    log.lock().unwrap().push(Instant::now());
                    ctx.set_state(&json!({ "i": i }))?;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    (rt, written)
}

/// A task writes its state `n` times, 1 ms apart; a subscriber on the event stream notes when
/// each write arrives.
pub async fn state_event_latency(db: &Path, n: usize) -> (f64, f64) {
    let (rt, written) = state_writer(db, Duration::ZERO).await;
    let mut events = rt.events();
    let task = rt.launch_json("writer", json!(n)).await.unwrap();
    let mut samples = Vec::with_capacity(n);
    while samples.len() < n {
        let event = events.recv().await.unwrap();
        if let EventKind::State { state } = &event.kind {
            let arrived = Instant::now();
            let i = state["i"].as_u64().unwrap() as usize;
            let sent = written.lock().unwrap()[i];
            samples.push((arrived - sent).as_secs_f64() * 1e3);
        }
    }
    task.wait().await.unwrap();
    rt.shutdown().await.unwrap();
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

/// A task waiting on `ctx.cancelled()` is killed; kill call → `killed` recorded in the store.
pub async fn kill_cooperative(db: &Path, n: usize) -> (f64, f64) {
    let rt = Runtime::builder()
        .sqlite(db)
        .task("waiter", |ctx: Context, _args: Value| async move {
            ctx.cancelled().await;
            Err::<(), _>(TaskError::cancelled())
        })
        .build()
        .await
        .unwrap();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let mut events = rt.events();
        let task = rt.launch_json("waiter", Value::Null).await.unwrap();
        while !matches!(events.recv().await.unwrap().kind, EventKind::Started { .. }) {}
        let before = Instant::now();
        let record = task.kill().await.unwrap();
        samples.push(before.elapsed().as_secs_f64() * 1e3);
        assert_eq!(record.status, Status::Killed);
    }
    rt.shutdown().await.unwrap();
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

/// RSS with `n` in-process tasks asleep at once. Returns (MiB, tasks asleep).
pub async fn sleeping_rss(db: &Path, n: usize) -> (f64, usize) {
    let asleep = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asleep);
    let rt = Runtime::builder()
        .sqlite(db)
        .max_concurrency(n)
        .task("sleeper", move |ctx: Context, _args: Value| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                ctx.cancelled().await;
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let permits = Arc::new(Semaphore::new(1_000));
    for _ in 0..n {
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        let rt = rt.clone();
        tokio::spawn(async move {
            rt.launch_json("sleeper", Value::Null).await.unwrap();
            drop(permit);
        });
    }
    while asleep.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (rss_mib(), rt.running())
}

/// The disk's floor: one durable (WAL, `synchronous=FULL`) single-row SQLite commit at a time,
/// 0–10 ms apart as the launches in [`launch_latency`], with no Offstage code involved.
pub fn commit_latency(db: &Path, n: usize) -> (f64, f64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")
        .unwrap();
    let mut samples = Vec::with_capacity(n);
    let mut seed = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..n {
        std::thread::sleep(next_gap(&mut seed, 10_000));
        let before = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t (payload) VALUES ('{}'); COMMIT")
            .unwrap();
        samples.push(before.elapsed().as_secs_f64() * 1e3);
    }
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

/// Shared state on SQLite: `writers` tasks each add one to the same counter `each` times
/// under its lock (every update is a lock, then a save that writes and releases: two durable
/// commits). Returns (contended updates per second, uncontended update p50 in ms).
pub async fn shared_updates(db: &Path, writers: usize, each: usize) -> (f64, f64) {
    let rt = Runtime::builder()
        .sqlite(db)
        .task("add", |ctx: Context, each: usize| async move {
            let counter = ctx.shared("counter")?;
            for _ in 0..each {
                counter
                    .update(|n: &mut u64| *n += 1)
                    .await
                    .map_err(|e| TaskError::new("shared", e.to_string()))?;
            }
            Ok::<_, TaskError>(())
        })
        .build()
        .await
        .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        tasks.push(rt.launch_json("add", json!(each)).await.unwrap());
    }
    for task in tasks {
        assert_eq!(task.wait().await.unwrap().status, Status::Completed);
    }
    let rate = (writers * each) as f64 / start.elapsed().as_secs_f64();
    let counter = rt.shared("counter").unwrap();
    assert_eq!(
        counter.read::<u64>().await.unwrap(),
        Some((writers * each) as u64),
        "no update lost"
    );

    let mut samples = Vec::new();
    for _ in 0..500 {
        let started = Instant::now();
        counter.update(|n: &mut u64| *n += 1).await.unwrap();
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    rt.shutdown().await.unwrap();
    (rate, percentile(&mut samples, 0.5))
}

/// Checkpoints on SQLite (every save its own durable commit before it returns): one task
/// saving `n` in a row (save p50 and p99, in ms), then `tasks` tasks saving `each` at once,
/// which share the writer's group commits (saves per second).
pub async fn checkpoint_saves(db: &Path, n: usize, tasks: usize, each: usize) -> (f64, f64, f64) {
    let samples: Arc<Mutex<Vec<f64>>> = Arc::default();
    let kept = Arc::clone(&samples);
    let rt = Runtime::builder()
        .sqlite(db)
        .max_concurrency(tasks.max(1) * 2)
        .task("save", move |ctx: Context, (n, timed): (usize, bool)| {
            let kept = Arc::clone(&kept);
            async move {
                for done in 0..n {
                    let started = Instant::now();
                    ctx.save_checkpoint(&json!({ "done": done }))
                        .await
                        .map_err(|e| TaskError::new("checkpoint", e.to_string()))?;
                    if timed {
                        kept.lock()
                            .unwrap()
                            .push(started.elapsed().as_secs_f64() * 1e3);
                    }
                }
                Ok::<_, TaskError>(())
            }
        })
        .build()
        .await
        .unwrap();
    let one = rt.launch_json("save", json!([n, true])).await.unwrap();
    assert_eq!(one.wait().await.unwrap().status, Status::Completed);
    let start = Instant::now();
    let mut running = Vec::new();
    for _ in 0..tasks {
        running.push(rt.launch_json("save", json!([each, false])).await.unwrap());
    }
    for task in running {
        assert_eq!(task.wait().await.unwrap().status, Status::Completed);
    }
    let rate = (tasks * each) as f64 / start.elapsed().as_secs_f64();
    rt.shutdown().await.unwrap();
    let mut samples = samples.lock().unwrap().clone();
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
        rate,
    )
}
