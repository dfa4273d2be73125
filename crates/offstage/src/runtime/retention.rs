//! **Retention**: how long finished tasks are kept, and the loop that removes the rest.
//!
//! Every node runs the loop; once per interval one of them (whichever takes the store's turn,
//! [`Store::take_turn`]) removes, for each task type, the finished tasks its rule no longer
//! keeps, with their logs. It deletes in short steps ([`PURGE_STEP`] tasks each), so writes
//! made meanwhile (launches, finishes) wait for at most one step, never for the whole removal.
//! An explicit purge goes the same way ([`purge`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), offstage::Error> {
//! use std::time::Duration;
//! use offstage::{Retention, Runtime};
//! let runtime = Runtime::builder()
//!     .sqlite("app.db")
//!     .retention(Retention::max_age(Duration::from_secs(3 * 24 * 3600)))  // every type: 3 days
//!     .retention_for("emails.send", Retention::max_count(1_000))         // this one: the last 1,000
//!     .build()
//!     .await?;
//! # Ok(()) }
//! ```

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use super::Inner;
use crate::error::Error;
use crate::store::Purge;
use crate::task::ListFilter;

/// The most tasks one step of a purge deletes: small enough that a launch waiting behind a
/// step waits a few milliseconds, large enough that a million tasks go in a few seconds.
pub(crate) const PURGE_STEP: usize = 500;

/// Which finished tasks of a task type are kept: a task is removed once it is older than
/// `max_age` (counted from when it finished), or once `max_count` newer finished tasks of its
/// type exist. `None` sets no limit of that kind; [`Retention::forever`] keeps everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// How long a finished task is kept after it finished.
    pub max_age: Option<Duration>,
    /// How many finished tasks of each type are kept (the newest, by launch).
    pub max_count: Option<u64>,
}

impl Default for Retention {
    /// Seven days, like a log's default rotation: enough to look back over a week, and a busy
    /// app's store stops growing after it.
    fn default() -> Self {
        Self::max_age(Duration::from_secs(7 * 24 * 3600))
    }
}

impl Retention {
    /// Keeps every finished task until somebody purges it.
    pub fn forever() -> Self {
        Self {
            max_age: None,
            max_count: None,
        }
    }

    /// Keeps finished tasks for `age` after they finished.
    pub fn max_age(age: Duration) -> Self {
        Self {
            max_age: Some(age),
            max_count: None,
        }
    }

    /// Keeps the newest `count` finished tasks of each type.
    pub fn max_count(count: u64) -> Self {
        Self {
            max_age: None,
            max_count: Some(count),
        }
    }

    /// This rule, also keeping at most `count` finished tasks of each type.
    pub fn and_max_count(mut self, count: u64) -> Self {
        self.max_count = Some(count);
        self
    }

    /// True when this rule keeps everything.
    pub fn is_forever(&self) -> bool {
        self.max_age.is_none() && self.max_count.is_none()
    }
}

/// Deletes the tasks `purge` selects in steps of [`PURGE_STEP`], calling `progress` with the
/// total so far after each step. Returns the total.
pub(crate) async fn purge(
    rt: &Inner,
    purge: &Purge,
    mut progress: impl FnMut(u64),
) -> Result<u64, Error> {
    let mut total = 0;
    loop {
        let deleted = rt.store.purge(purge, PURGE_STEP).await?;
        total += deleted;
        if deleted > 0 {
            progress(total);
        }
        if deleted < PURGE_STEP as u64 {
            return Ok(total);
        }
    }
}

/// One retention pass, if it is this node's turn: every task type's rule applied. Returns how
/// many tasks it removed (`None` when another node has the turn).
pub(crate) async fn pass(rt: &Inner) -> Result<Option<u64>, Error> {
    let now = rt.clock.now();
    let next = now + chrono::Duration::from_std(rt.config.retention_interval).unwrap_or_default();
    if !rt.store.take_turn("retention", now, next).await? {
        return Ok(None);
    }
    apply(rt).await.map(Some)
}

/// Applies every task type's retention rule, now: how many tasks it removed.
pub(crate) async fn apply(rt: &Inner) -> Result<u64, Error> {
    let now = rt.clock.now();
    let mut names: Vec<String> = rt
        .store
        .counts()
        .await?
        .into_iter()
        .filter(|(_, status, _)| status.is_terminal())
        .map(|(name, _, _)| name)
        .collect();
    names.dedup();
    let mut removed = 0;
    for name in names {
        let rule = rt.config.retention_for(&name);
        let filter = ListFilter {
            name: Some(name.clone()),
            ..ListFilter::default()
        };
        if let Some(age) = rule.max_age {
            let before = now - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
            let by_age = Purge {
                filter: filter.clone(),
                finished_before: Some(before),
                keep_newest: None,
            };
            removed += purge(rt, &by_age, |_| {}).await?;
        }
        if let Some(count) = rule.max_count {
            let by_count = Purge {
                filter,
                finished_before: None,
                keep_newest: Some(count),
            };
            removed += purge(rt, &by_count, |_| {}).await?;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "retention removed finished tasks");
    }
    Ok(removed)
}

pub(crate) async fn retention_loop(rt: Weak<Inner>) {
    let Some(period) = rt.upgrade().map(|rt| rt.config.retention_interval) else {
        return;
    };
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(rt) = rt.upgrade() else { return };
        if rt.shutting_down.load(Ordering::Acquire) {
            return;
        }
        if rt.config.retention.is_forever() && rt.config.retention_by_type.is_empty() {
            continue;
        }
        if let Err(error) = pass(&rt).await {
            tracing::warn!(%error, "removing old finished tasks failed; retrying at the next turn");
        }
    }
}
