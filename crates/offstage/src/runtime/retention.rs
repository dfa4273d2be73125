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
/// step waits a few milliseconds, large enough that a million tasks go in well under a minute.
/// Measured with a million tasks (`offstage-bench --history`): steps of 500 held launches for
/// 19 ms at p99, steps of 100 for 8.
pub(crate) const PURGE_STEP: usize = 100;

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

/// A rule as people write it on a command line or in a config file: `forever`, an age (`7d`,
/// `12h`, `30m`, `90s`), a count (`1000`), or an age and a count (`30d,100000`).
impl std::str::FromStr for Retention {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::new(
                crate::ErrorKind::InvalidArgument,
                format!(
                    "retention `{text}` {why}: write `forever`, an age such as `7d`, `12h`, \
                     `30m` or `90s`, a number of tasks such as `1000`, or both, as `30d,1000`"
                ),
            )
        };
        let text = text.trim();
        if text == "forever" {
            return Ok(Self::forever());
        }
        let mut rule = Self::forever();
        for part in text.split(',').map(str::trim) {
            let unit = part
                .chars()
                .last()
                .ok_or_else(|| bad("has an empty part"))?;
            let seconds_per = match unit {
                'd' => Some(86_400.0),
                'h' => Some(3_600.0),
                'm' => Some(60.0),
                's' => Some(1.0),
                _ => None,
            };
            match seconds_per {
                Some(per) => {
                    let number: f64 = part[..part.len() - 1]
                        .parse()
                        .map_err(|_| bad("has an age that is not a number"))?;
                    let age = Duration::try_from_secs_f64(number * per)
                        .map_err(|_| bad("has an age that is negative or too large"))?;
                    if rule.max_age.replace(age).is_some() {
                        return Err(bad("gives two ages"));
                    }
                }
                None => {
                    let count: u64 = part
                        .parse()
                        .map_err(|_| bad("has a part that is neither an age nor a count"))?;
                    if rule.max_count.replace(count).is_some() {
                        return Err(bad("gives two counts"));
                    }
                }
            }
        }
        Ok(rule)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_as_written() {
        let day = Duration::from_secs(86_400);
        assert_eq!(
            "forever".parse::<Retention>().unwrap(),
            Retention::forever()
        );
        assert_eq!(
            "7d".parse::<Retention>().unwrap(),
            Retention::max_age(7 * day)
        );
        assert_eq!(
            "1000".parse::<Retention>().unwrap(),
            Retention::max_count(1000)
        );
        assert_eq!(
            "30d, 100000".parse::<Retention>().unwrap(),
            Retention::max_age(30 * day).and_max_count(100_000)
        );
        assert_eq!(
            "90s".parse::<Retention>().unwrap(),
            Retention::max_age(Duration::from_secs(90))
        );
        for bad in ["", "7x", "7d,8d", "-1d", "ten", "1,2"] {
            let error = bad.parse::<Retention>().unwrap_err();
            assert!(
                error.to_string().contains("write `forever`"),
                "{bad}: {error}"
            );
        }
    }
}
