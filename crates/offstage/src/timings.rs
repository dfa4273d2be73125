//! **Timings**: this node's histograms of how long its tasks waited, ran, and took from launch
//! to end, per task type, counted since the node started ([`crate::Runtime::timings`]): what
//! `GET /metrics` serves as Prometheus histograms.
//!
//! - **queue wait**: from when an attempt was due (`run_at`: the launch, or the end of a delay
//!   or of a retry's backoff) to when it started, per attempt, like [`crate::Stats`]' wait;
//! - **run time**: from an attempt's start to its end, by how the attempt ended (`completed`,
//!   `failed`, `killed`, `missing`, or `retried` for a failure its retry policy runs again);
//! - **end to end**: from the launch to the terminal status, by that status, once per task.
//!
//! Each node counts the attempts it ran (the executor counts a start and an end, one short
//! lock, no store read), so nodes' histograms add up: Prometheus sums them across nodes. The
//! bounds are fixed ([`TIMING_BUCKETS`], 1 ms to 6 h) so that any nodes' histograms merge.
//!
//! ```no_run
//! # fn demo(rt: offstage::Runtime) {
//! for timings in rt.timings() {
//!     let (starts, waited) = (timings.wait.count, timings.wait.sum);
//!     println!("{}: {starts} starts, {waited:.3} s waited in all", timings.name);
//! }
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::status::Status;
use crate::task::TaskRecord;

/// The upper bounds of the timing histograms' buckets, in seconds: from a millisecond (a
/// no-op's run) to six hours (a long import), about 2.5× apart. Above the last is `+Inf`.
pub const TIMING_BUCKETS: [f64; 22] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0,
];

/// One histogram of durations, with [`TIMING_BUCKETS`] bounds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Histogram {
    /// How many durations fell in each bucket (at most its bound, more than the one before),
    /// one more than the bounds: the last counts those above the largest bound.
    pub counts: Vec<u64>,
    /// How many durations in all.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

impl Histogram {
    /// The cumulative counts Prometheus shows: for each bound, how many durations were at
    /// most it (`f64::INFINITY` last, equal to `count`).
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        TIMING_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts.iter())
            .map(|(bound, n)| {
                total += n;
                (bound, total)
            })
            .collect()
    }
}

/// One task type's timings on this node.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TypeTimings {
    /// The task type.
    pub name: String,
    /// From due to start, per attempt.
    pub wait: Histogram,
    /// From start to end, per attempt, by how the attempt ended (`completed`, `failed`,
    /// `killed`, `missing`, `retried`); only the ones seen.
    pub run: BTreeMap<String, Histogram>,
    /// From launch to the terminal status, per task, by that status; only the ones seen.
    pub end_to_end: BTreeMap<String, Histogram>,
}

const N: usize = TIMING_BUCKETS.len() + 1;

/// A histogram as it is counted: inline, no allocation.
#[derive(Clone, Copy, Debug)]
struct Counts {
    counts: [u64; N],
    count: u64,
    sum: f64,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            counts: [0; N],
            count: 0,
            sum: 0.0,
        }
    }
}

impl Counts {
    fn observe(&mut self, seconds: f64) {
        let seconds = seconds.max(0.0);
        let bucket = TIMING_BUCKETS.partition_point(|bound| *bound < seconds);
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum += seconds;
    }

    fn histogram(&self) -> Histogram {
        Histogram {
            counts: self.counts.to_vec(),
            count: self.count,
            sum: self.sum,
        }
    }
}

/// How an attempt ended, as an index into the run histograms.
const ENDS: [&str; 5] = ["completed", "failed", "killed", "missing", "retried"];

fn end_index(status: Status) -> Option<usize> {
    match status {
        Status::Completed => Some(0),
        Status::Failed => Some(1),
        Status::Killed => Some(2),
        Status::Missing => Some(3),
        Status::Queued => Some(4),
        Status::Running => None,
    }
}

#[derive(Debug, Default)]
struct Type {
    wait: Counts,
    run: [Option<Box<Counts>>; 5],
    end_to_end: [Option<Box<Counts>>; 4],
}

/// The node's timings as the executor counts them.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    by_type: Mutex<HashMap<String, Type>>,
}

fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

impl Recorder {
    fn with(&self, name: &str, f: impl FnOnce(&mut Type)) {
        let mut by_type = self.by_type.lock().expect("timings poisoned");
        match by_type.get_mut(name) {
            Some(timings) => f(timings),
            None => f(by_type.entry(name.to_owned()).or_default()),
        }
    }

    /// Counts the start of an attempt of `task` (its `started_at` set).
    pub(crate) fn started(&self, task: &TaskRecord) {
        let Some(started) = task.started_at else {
            return;
        };
        let wait = seconds(task.run_at, started);
        self.with(&task.name, |timings| timings.wait.observe(wait));
    }

    /// Counts the end of an attempt of `task` at `at`: its run time, and for a terminal
    /// status its time from launch to end.
    pub(crate) fn ended(&self, task: &TaskRecord, at: DateTime<Utc>) {
        let Some(end) = end_index(task.status) else {
            return;
        };
        let run = task.started_at.map(|started| seconds(started, at));
        let total = (end < 4).then(|| seconds(task.launched_at, at));
        self.with(&task.name, |timings| {
            if let Some(run) = run {
                timings.run[end].get_or_insert_default().observe(run);
            }
            if let Some(total) = total {
                timings.end_to_end[end]
                    .get_or_insert_default()
                    .observe(total);
            }
        });
    }

    /// Copies of every type's histograms, by name.
    pub(crate) fn snapshot(&self) -> Vec<TypeTimings> {
        let by_type = self.by_type.lock().expect("timings poisoned");
        let by_end = |counts: &[Option<Box<Counts>>]| {
            counts
                .iter()
                .zip(ENDS)
                .filter_map(|(counts, end)| Some((end.to_owned(), counts.as_ref()?.histogram())))
                .collect()
        };
        let mut all: Vec<TypeTimings> = by_type
            .iter()
            .map(|(name, timings)| TypeTimings {
                name: name.clone(),
                wait: timings.wait.histogram(),
                run: by_end(&timings.run),
                end_to_end: by_end(&timings.end_to_end),
            })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_waits_runs_and_ends_in_their_buckets() {
        let recorder = Recorder::default();
        let mut task = crate::testing::sample_record(crate::TaskId::new());
        let t0 = task.launched_at;
        task.run_at = t0;
        task.started_at = Some(t0 + chrono::Duration::milliseconds(3));
        recorder.started(&task);
        task.status = Status::Queued;
        recorder.ended(&task, t0 + chrono::Duration::seconds(2));
        task.status = Status::Completed;
        task.started_at = Some(t0 + chrono::Duration::seconds(40));
        recorder.ended(&task, t0 + chrono::Duration::seconds(45));
        let all = recorder.snapshot();
        let timings = &all[0];
        assert_eq!(timings.wait.count, 1);
        // 3 ms: above 2.5 ms, at most 5 ms.
        assert_eq!(timings.wait.counts[2], 1);
        assert_eq!(timings.run["retried"].count, 1);
        assert_eq!(timings.run["completed"].count, 1);
        // 5 s run: in the bucket whose bound is 5.
        assert_eq!(timings.run["completed"].cumulative()[11], (5.0, 1));
        assert_eq!(timings.run["completed"].cumulative()[10], (2.5, 0));
        // End to end only for the terminal status: 45 s, in the 60 s bucket.
        assert_eq!(timings.end_to_end.len(), 1);
        assert_eq!(timings.end_to_end["completed"].cumulative()[14], (60.0, 1));
        assert_eq!(timings.end_to_end["completed"].cumulative()[13], (30.0, 0));
        assert_eq!(timings.end_to_end["completed"].sum, 45.0);
    }
}
