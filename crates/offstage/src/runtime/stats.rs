//! The node's side of [`crate::Stats`]: tallies of its tasks in memory, written to the store
//! once a minute, and the read that merges every node's rows with what this node has not
//! written yet.
//!
//! Recording is on the path of every task (a start, an end), so it is one short lock of a map
//! keyed by task type, nothing more: no allocation once a type has its minute, no store call.
//! The flusher wakes a second after each minute ends, takes the tallies of the minutes that
//! are over, samples the queue depth from [`crate::store::Store::counts`], and writes one row
//! per (minute, type) with [`crate::store::Store::record_stats`], which also deletes rows past
//! the retention. Shutdown writes the minute under way too. A node that crashes loses what it
//! had not written: at most the minute under way and the second after the one before.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Inner;
use crate::error::Error;
use crate::stats::{minute_of, minutes, Stats, StatsRow, StatsWindow};
use crate::status::Status;
use crate::task::TaskRecord;

/// How long after a minute ends the flusher writes it: tasks that ended in its last moments
/// are usually tallied by then (one that is not goes in the next minute's write, as a second
/// row for the same minute).
const FLUSH_DELAY: Duration = Duration::from_secs(1);

/// This node's tallies not yet written to the store.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    /// By task type, the rows of the minutes this node counted something in and has not
    /// written yet (usually one or two). A short lock per start and end of a task.
    open: Mutex<HashMap<String, Vec<StatsRow>>>,
    /// Held by a flush from taking the tallies until the store has them, and by a read, so a
    /// read never sees a tally both in memory and in the store, or in neither.
    flushing: tokio::sync::Mutex<()>,
}

impl Recorder {
    /// Counts the start of `task` (its `started_at` set), and how long it waited since it was
    /// due.
    pub(crate) fn started(&self, task: &TaskRecord) {
        let Some(started) = task.started_at else {
            return;
        };
        let wait = (started - task.run_at).to_std().unwrap_or_default();
        self.tally(&task.name, started, |row| {
            row.started += 1;
            row.wait.record(wait);
        });
    }

    /// Counts how `task` ended at `at`: its terminal status, or `queued` for an attempt that
    /// its retry policy runs again.
    pub(crate) fn ended(&self, task: &TaskRecord, at: DateTime<Utc>) {
        self.tally(&task.name, at, |row| match task.status {
            Status::Completed => row.completed += 1,
            Status::Failed => row.failed += 1,
            Status::Killed => row.killed += 1,
            Status::Missing => row.missing += 1,
            Status::Queued => row.retried += 1,
            Status::Running => {}
        });
    }

    fn tally(&self, name: &str, at: DateTime<Utc>, count: impl FnOnce(&mut StatsRow)) {
        let minute = minute_of(at);
        let mut open = self.open.lock().expect("stats recorder poisoned");
        let rows = match open.get_mut(name) {
            Some(rows) => rows,
            None => open.entry(name.to_owned()).or_default(),
        };
        let row = match rows.iter().position(|row| row.minute == minute) {
            Some(i) => &mut rows[i],
            None => {
                rows.push(StatsRow::new(minute, name));
                rows.last_mut().expect("just pushed")
            }
        };
        count(row);
    }

    /// Takes the tallies of minutes before `before` (all of them for `None`).
    fn take(&self, before: Option<DateTime<Utc>>) -> Vec<StatsRow> {
        let mut open = self.open.lock().expect("stats recorder poisoned");
        let mut taken = Vec::new();
        for rows in open.values_mut() {
            let (done, kept): (Vec<_>, Vec<_>) = std::mem::take(rows)
                .into_iter()
                .partition(|row| before.is_none_or(|before| row.minute < before));
            taken.extend(done);
            *rows = kept;
        }
        open.retain(|_, rows| !rows.is_empty());
        taken
    }

    /// Copies of the tallies not written yet.
    fn unwritten(&self) -> Vec<StatsRow> {
        let open = self.open.lock().expect("stats recorder poisoned");
        open.values().flatten().cloned().collect()
    }

    /// Puts back `rows` a flush could not write, to go with the next one.
    fn put_back(&self, rows: Vec<StatsRow>) {
        for row in rows {
            let name = row.name.clone();
            self.tally(&name, row.minute, |there| there.merge(&row));
        }
    }
}

/// The queue depth of each task type now, from the store's counts; a type with no queued
/// task is there with 0 if the store has tasks of it.
async fn queue_depths(rt: &Inner) -> Result<HashMap<String, u64>, Error> {
    let mut depths = HashMap::new();
    for (name, status, n) in rt.store.counts().await? {
        let depth = depths.entry(name).or_insert(0);
        if status == Status::Queued {
            *depth += n;
        }
    }
    Ok(depths)
}

/// Writes this node's tallies of the minutes that are over (all of them, `everything`, at
/// shutdown) to the store, with the queue depth of each type sampled now and counted as the
/// depth at the end of the last minute over; rows past the retention go in the same step. On
/// failure the tallies are kept for the next flush.
pub(crate) async fn flush(rt: &Inner, everything: bool) {
    let recorder = &rt.stats;
    let _one = recorder.flushing.lock().await;
    let now = rt.clock.now();
    let current = minute_of(now);
    let mut rows = recorder.take((!everything).then_some(current));
    // The queue depth at the end of the minute just over, for the types that had any queued
    // or did something then.
    let last = if everything {
        current
    } else {
        current - chrono::Duration::minutes(1)
    };
    match queue_depths(rt).await {
        Ok(depths) => {
            for (name, depth) in depths {
                match rows.iter_mut().find(|r| r.minute == last && r.name == name) {
                    Some(row) => row.queued = Some(depth),
                    None if depth > 0 => rows.push(StatsRow {
                        queued: Some(depth),
                        ..StatsRow::new(last, &name)
                    }),
                    None => {}
                }
            }
        }
        Err(error) => tracing::warn!(%error, "sampling the queue depth for the stats failed"),
    }
    let expire = now - chrono::Duration::from_std(rt.config.stats_retention).unwrap_or_default();
    if let Err(error) = rt.store.record_stats(rt.node(), rows.clone(), expire).await {
        tracing::warn!(%error, "writing this node's stats failed; they go with the next write");
        recorder.put_back(rows);
    }
}

/// Flushes a second after each minute ends, until the runtime goes.
pub(crate) async fn flush_loop(rt: Weak<Inner>) {
    loop {
        let wait = {
            let Some(rt) = rt.upgrade() else { return };
            let now = rt.clock.now();
            let next = crate::stats::from_minutes(minutes(now) + 1);
            (next - now).to_std().unwrap_or_default() + FLUSH_DELAY
        };
        tokio::time::sleep(wait).await;
        let Some(rt) = rt.upgrade() else { return };
        if rt.is_shutting_down() {
            return; // Shutdown writes everything itself.
        }
        flush(&rt, false).await;
    }
}

/// The stats of `window` now: every node's rows from the store, with this node's tallies not
/// written yet, and the queue depth sampled now for the minute under way.
pub(crate) async fn read(rt: &Inner, window: StatsWindow) -> Result<Stats, Error> {
    let now = rt.clock.now();
    let from = window.start(now);
    let mut rows = {
        let _one = rt.stats.flushing.lock().await;
        let mut rows = rt.store.stats_since(from).await?;
        rows.extend(rt.stats.unwritten());
        rows
    };
    let current = minute_of(now);
    for (name, depth) in queue_depths(rt).await? {
        if depth > 0 || rows.iter().any(|row| row.name == name) {
            rows.push(StatsRow {
                queued: Some(depth),
                ..StatsRow::new(current, &name)
            });
        }
    }
    Ok(Stats::build(window, now, rows))
}
