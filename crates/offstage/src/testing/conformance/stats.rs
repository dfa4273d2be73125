//! Stats: the per-minute rows nodes write and the store merges on read, and what the runtime
//! counts into them as its tasks start and end.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::durability::{dead_node, running_record};
use super::tasks::{runtime_with, start_blocker};
use super::Backend;
use crate::id::NodeId;
use crate::testing::wait_started;
use crate::{StatsRow, StatsWindow, Status, WaitHistogram};

/// A histogram of `n` waits of `wait` each.
fn waits(n: u64, wait: Duration) -> WaitHistogram {
    let mut histogram = WaitHistogram::default();
    for _ in 0..n {
        histogram.record(wait);
    }
    histogram
}

/// Rows written by two nodes through two handles read back merged, one per minute and task
/// type, sorted, from the minute that holds `since` on; two rows of one node for the same
/// minute both count; the retention deletes every node's rows before its minute.
pub async fn stats_rows_round_trip_and_merge_across_nodes(backend: &dyn Backend) {
    let database = backend.new_database();
    let (a, b) = (backend.open(&database).await, backend.open(&database).await);
    let (node_a, node_b) = (NodeId::new(), NodeId::new());
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    let minute = chrono::Duration::minutes(1);
    let long_ago = t0 - chrono::Duration::days(30);
    let ms10 = Duration::from_millis(10);
    a.record_stats(
        node_a,
        vec![
            StatsRow {
                started: 3,
                completed: 2,
                failed: 1,
                wait: waits(3, ms10),
                queued: Some(5),
                ..StatsRow::new(t0, "mail")
            },
            StatsRow {
                started: 1,
                killed: 1,
                wait: waits(1, Duration::from_secs(2)),
                ..StatsRow::new(t0 + minute, "mail")
            },
            StatsRow {
                started: 1,
                missing: 1,
                retried: 1,
                wait: waits(1, Duration::ZERO),
                ..StatsRow::new(t0 + chrono::Duration::seconds(59), "report")
            },
        ],
        long_ago,
    )
    .await
    .unwrap();
    b.record_stats(
        node_b,
        vec![
            StatsRow {
                started: 2,
                completed: 2,
                wait: waits(2, ms10),
                queued: Some(9),
                ..StatsRow::new(t0, "mail")
            },
            StatsRow {
                started: 7,
                ..StatsRow::new(t0 - minute * 5, "mail")
            },
        ],
        long_ago,
    )
    .await
    .unwrap();
    // A's next flush: a task of minute t0 that ended after its first one.
    a.record_stats(
        node_a,
        vec![StatsRow {
            completed: 1,
            ..StatsRow::new(t0, "mail")
        }],
        long_ago,
    )
    .await
    .unwrap();

    // Read through either handle, from a time inside minute t0.
    for store in [&a, &b] {
        let rows = store
            .stats_since(t0 + chrono::Duration::seconds(30))
            .await
            .unwrap();
        let keys: Vec<_> = rows.iter().map(|r| (r.minute, r.name.as_str())).collect();
        assert_eq!(
            keys,
            [(t0, "mail"), (t0, "report"), (t0 + minute, "mail")],
            "one row per minute and type, by minute then name, from the minute since is in"
        );
        let mail = &rows[0];
        assert_eq!(
            (
                mail.started,
                mail.completed,
                mail.failed,
                mail.killed,
                mail.missing,
                mail.retried
            ),
            (5, 5, 1, 0, 0, 0)
        );
        assert_eq!(mail.wait, waits(5, ms10), "histograms add bucket by bucket");
        assert_eq!(
            mail.queued,
            Some(9),
            "the queue depth is the largest sample"
        );
        let report = &rows[1];
        assert_eq!(
            (report.missing, report.retried, report.queued),
            (1, 1, None)
        );
        assert_eq!(report.wait.counts()[0], 1);
        assert_eq!(rows[2].wait, waits(1, Duration::from_secs(2)));
    }
    let earlier = a.stats_since(t0 - minute * 5).await.unwrap();
    assert_eq!(earlier.len(), 4);
    assert_eq!(
        (earlier[0].minute, earlier[0].started),
        (t0 - minute * 5, 7)
    );
    assert!(a.stats_since(t0 + minute * 2).await.unwrap().is_empty());

    // The retention: every node's rows of minutes before t0 go, the rest stay.
    b.record_stats(node_b, Vec::new(), t0).await.unwrap();
    let kept = a.stats_since(long_ago).await.unwrap();
    assert_eq!(kept.len(), 3);
    assert!(kept.iter().all(|row| row.minute >= t0));
}

/// What the runtime counts: starts and how long each waited for a slot, completions,
/// failures and timeouts, kills of running and of queued tasks, and the queue depth; read
/// live from memory, and the same once flushed to the store (not twice). Paused time.
pub async fn stats_count_what_tasks_did_and_how_long_they_waited(backend: &dyn Backend) {
    let database = backend.new_database();
    let rt = runtime_with(backend, &database, |b| b.max_concurrency(1)).await;
    let began = rt.now();
    let mut events = rt.events();
    for _ in 0..3 {
        let task = rt.launch_json("test.noop", json!(null)).await.unwrap();
        assert_eq!(task.wait().await.unwrap().status, Status::Completed);
    }
    for _ in 0..2 {
        let task = rt.launch_json("test.fail", json!("no")).await.unwrap();
        assert_eq!(task.wait().await.unwrap().status, Status::Failed);
    }
    // One waits 5 s for the only slot, and is seen queued meanwhile.
    let blocker = start_blocker(&rt, &mut events).await;
    let waiting = rt.launch_json("test.noop", json!(null)).await.unwrap();
    let live = rt.stats(StatsWindow::Hour).await.unwrap();
    let noop = live.types.iter().find(|t| t.name == "test.noop").unwrap();
    assert_eq!(noop.queued.last(), Some(&1), "{noop:?}");
    assert_eq!(noop.totals.queued, 1);
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(blocker.kill().await.unwrap().status, Status::Killed);
    assert_eq!(waiting.wait().await.unwrap().status, Status::Completed);
    // One times out.
    let slow = rt
        .launch_json("test.until_cancelled", json!(null))
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    wait_started(&mut events, slow.id()).await;
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(slow.wait().await.unwrap().status, Status::Failed);
    // One is killed while queued, never having run.
    let blocker = start_blocker(&rt, &mut events).await;
    let never = rt.launch_json("test.noop", json!(null)).await.unwrap();
    assert_eq!(never.kill().await.unwrap().status, Status::Killed);
    assert_eq!(blocker.kill().await.unwrap().status, Status::Killed);

    // (started, completed, failed, killed) by type.
    let expected = BTreeMap::from([
        ("test.fail".to_owned(), (2, 0, 2, 0)),
        ("test.noop".to_owned(), (4, 4, 0, 1)),
        ("test.until_cancelled".to_owned(), (3, 0, 1, 2)),
    ]);
    let counted = |stats: &crate::Stats| -> BTreeMap<String, (u64, u64, u64, u64)> {
        stats
            .types
            .iter()
            .map(|t| {
                let s = &t.totals;
                (t.name.clone(), (s.started, s.completed, s.failed, s.killed))
            })
            .collect()
    };
    let before_flush = rt.stats(StatsWindow::Hour).await.unwrap();
    assert_eq!(counted(&before_flush), expected, "read from memory");

    // Once the minute is over, the flush writes it; the store has it all, and a read counts
    // it once.
    tokio::time::advance(Duration::from_secs(61)).await;
    rt.flush_stats().await;
    let stored = rt.store().stats_since(began).await.unwrap();
    let mut sums: BTreeMap<String, StatsRow> = BTreeMap::new();
    for row in stored {
        sums.entry(row.name.clone())
            .or_insert_with(|| StatsRow::new(row.minute, &row.name))
            .merge(&row);
    }
    let from_store: BTreeMap<_, _> = sums
        .iter()
        .map(|(name, r)| (name.clone(), (r.started, r.completed, r.failed, r.killed)))
        .collect();
    assert_eq!(from_store, expected, "written to the store");
    let noop = &sums["test.noop"];
    assert_eq!(noop.wait.count(), 4, "one wait per start");
    assert_eq!(
        noop.wait.counts()[WaitHistogram::bucket(Duration::from_secs(5))],
        1,
        "the task that waited for the slot: {:?}",
        noop.wait
    );
    let longest = noop.wait.quantile(1.0).unwrap();
    assert!(
        (Duration::from_millis(4_600)..Duration::from_millis(6_600)).contains(&longest),
        "{longest:?}"
    );
    assert!(noop.wait.quantile(0.5).unwrap() < Duration::from_secs(1));
    let after_flush = rt.stats(StatsWindow::Hour).await.unwrap();
    assert_eq!(counted(&after_flush), expected, "not counted twice");
    let noop = after_flush
        .types
        .iter()
        .find(|t| t.name == "test.noop")
        .unwrap();
    let p99 = noop.totals.wait_p99_s.unwrap();
    assert!((4.6..6.6).contains(&p99), "{p99}");
    let day = rt.stats(StatsWindow::Day).await.unwrap();
    assert_eq!(counted(&day), expected, "the day holds the same");
}

/// A dead node's task is counted `missing` by the node whose recovery marked it (the dead
/// node never will), and shutdown writes the minute under way.
pub async fn stats_count_a_dead_node_s_tasks_on_the_node_that_recovered_them(
    backend: &dyn Backend,
) {
    let database = backend.new_database();
    let store = backend.open(&database).await;
    let (dead, long_ago) = dead_node(&*store).await;
    store
        .launch(&running_record(dead.id, long_ago))
        .await
        .unwrap();
    let rt = runtime_with(backend, &database, |b| b).await;
    let began = rt.now();
    let stats = rt.stats(StatsWindow::Hour).await.unwrap();
    let sleep = stats.types.iter().find(|t| t.name == "test.sleep").unwrap();
    assert_eq!((sleep.totals.missing, sleep.totals.started), (1, 0));
    rt.shutdown().await.unwrap();
    let stored = store
        .stats_since(began - chrono::Duration::minutes(1))
        .await
        .unwrap();
    let missing: u64 = stored
        .iter()
        .filter(|r| r.name == "test.sleep")
        .map(|r| r.missing)
        .sum();
    assert_eq!(missing, 1, "written at shutdown: {stored:?}");
}
