//! **Stats**: what the fleet did, per minute and task type. What they are and an example are
//! on [`Stats`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::error::{Error, ErrorKind};

/// How many buckets a [`WaitHistogram`] has.
pub const WAIT_BUCKETS: usize = 53;

/// The lowest bound of a [`WaitHistogram`], in microseconds: waits below it share bucket 0.
const FIRST_BOUND_US: f64 = 100.0;

/// Waits (from when a task was due to when it started) counted in fixed, log-spaced buckets.
///
/// Bucket 0 holds waits under 100 µs; bucket `i` (1 ≤ i ≤ 51) holds waits from
/// 100 µs·2^((i−1)/2) up to 100 µs·2^(i/2), each bound √2 times the one before; bucket 52
/// holds everything from 100 µs·2^25.5 (about 79 minutes) up. Because the bounds are the same
/// everywhere, histograms of many minutes and many nodes merge by adding their counts, and a
/// percentile read from the merged counts is within one bucket (±19%) of the true value.
#[derive(Clone, PartialEq, Eq)]
pub struct WaitHistogram {
    counts: [u64; WAIT_BUCKETS],
}

impl Default for WaitHistogram {
    fn default() -> Self {
        Self {
            counts: [0; WAIT_BUCKETS],
        }
    }
}

impl fmt::Debug for WaitHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WaitHistogram({})", self.to_text())
    }
}

impl WaitHistogram {
    /// The lower bound of bucket `i` (zero for bucket 0).
    pub fn lower_bound(i: usize) -> Duration {
        match i {
            0 => Duration::ZERO,
            i => Self::upper_bound(i - 1).unwrap_or(Duration::MAX),
        }
    }

    /// The upper bound of bucket `i` (exclusive), or `None` for the last, open-ended bucket.
    pub fn upper_bound(i: usize) -> Option<Duration> {
        (i + 1 < WAIT_BUCKETS)
            .then(|| Duration::from_secs_f64(FIRST_BOUND_US * 2f64.powf(i as f64 / 2.0) / 1e6))
    }

    /// The bucket a wait of `wait` falls in.
    pub fn bucket(wait: Duration) -> usize {
        let us = wait.as_secs_f64() * 1e6;
        if us < FIRST_BOUND_US {
            return 0;
        }
        let i = (2.0 * (us / FIRST_BOUND_US).log2()).floor() as usize + 1;
        // Floating point may land a wait that is exactly on a bound one bucket off; the bounds
        // decide.
        let i = i.min(WAIT_BUCKETS - 1);
        if Self::lower_bound(i) > wait {
            i - 1
        } else if Self::upper_bound(i).is_some_and(|upper| wait >= upper) {
            i + 1
        } else {
            i
        }
    }

    /// Counts one wait.
    pub fn record(&mut self, wait: Duration) {
        self.counts[Self::bucket(wait)] += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &WaitHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
    }

    /// The count of each bucket.
    pub fn counts(&self) -> &[u64; WAIT_BUCKETS] {
        &self.counts
    }

    /// How many waits were counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The wait that a fraction `q` (0..=1) of the counted waits did not exceed, estimated
    /// within its bucket (geometrically, as the bounds are spaced); `None` when nothing was
    /// counted. In the open-ended last bucket it is that bucket's lower bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut below = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            if n == 0 || below + n < rank {
                below += n;
                continue;
            }
            let fraction = (rank - below) as f64 / n as f64;
            let lower = Self::lower_bound(i).as_secs_f64();
            return Some(match Self::upper_bound(i) {
                None => Self::lower_bound(i),
                Some(upper) if i == 0 => upper.mul_f64(fraction),
                Some(upper) => {
                    Duration::from_secs_f64(lower * (upper.as_secs_f64() / lower).powf(fraction))
                }
            });
        }
        None
    }

    /// The counts as the stores keep them: `bucket:count` for each bucket that is not empty,
    /// separated by commas (`"0:12,7:3"`); empty for no waits.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for (i, n) in self.counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            if !text.is_empty() {
                text.push(',');
            }
            text.push_str(&format!("{i}:{n}"));
        }
        text
    }

    /// Reads what [`WaitHistogram::to_text`] wrote.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let mut histogram = Self::default();
        for part in text.split(',').filter(|part| !part.is_empty()) {
            let parsed = part.split_once(':').and_then(|(i, n)| {
                Some((
                    i.trim().parse::<usize>().ok()?,
                    n.trim().parse::<u64>().ok()?,
                ))
            });
            match parsed {
                Some((i, n)) if i < WAIT_BUCKETS => histogram.counts[i] += n,
                _ => {
                    return Err(Error::new(
                        ErrorKind::Store,
                        format!(
                            "a stats row holds the wait histogram `{text}`, which is not \
                             `bucket:count,...` with buckets below {WAIT_BUCKETS}: the row was \
                             written by something other than Offstage; delete it from \
                             offstage_stats"
                        ),
                    ))
                }
            }
        }
        Ok(histogram)
    }
}

/// What happened to one task type in one minute, as one node saw it or (read back) as every
/// node together did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsRow {
    /// The start of the minute.
    pub minute: DateTime<Utc>,
    /// The task type.
    pub name: String,
    /// Tasks that started running.
    pub started: u64,
    /// Tasks that ended `completed`.
    pub completed: u64,
    /// Tasks that ended `failed`, timeouts included.
    pub failed: u64,
    /// Tasks that ended `killed`, running or still queued.
    pub killed: u64,
    /// Tasks that ended `missing`.
    pub missing: u64,
    /// Tasks that failed (or went missing) and were queued again by their retry policy.
    pub retried: u64,
    /// How long each start waited, from when its task was due (launched, or its `run_at`) to
    /// when it started.
    pub wait: WaitHistogram,
    /// How many tasks of the type were queued, as a node sampled it at the end of the minute;
    /// `None` when no node did. Merged rows take the largest sample.
    pub queued: Option<u64>,
}

impl StatsRow {
    /// An empty row for `name` in the minute that holds `at`.
    pub fn new(at: DateTime<Utc>, name: &str) -> Self {
        Self {
            minute: minute_of(at),
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// Adds `other`'s counts to this row's; the queue depth is the larger sample.
    pub fn merge(&mut self, other: &StatsRow) {
        self.started += other.started;
        self.completed += other.completed;
        self.failed += other.failed;
        self.killed += other.killed;
        self.missing += other.missing;
        self.retried += other.retried;
        self.wait.merge(&other.wait);
        self.queued = match (self.queued, other.queued) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// True when the row counts nothing and holds no sample.
    pub fn is_empty(&self) -> bool {
        self.started == 0
            && self.completed == 0
            && self.failed == 0
            && self.killed == 0
            && self.missing == 0
            && self.retried == 0
            && self.queued.is_none()
    }

    /// Merges `rows` into one per (minute, task type), sorted by minute, then name.
    pub fn merge_all(rows: impl IntoIterator<Item = StatsRow>) -> Vec<StatsRow> {
        let mut merged: BTreeMap<(DateTime<Utc>, String), StatsRow> = BTreeMap::new();
        for row in rows {
            match merged.get_mut(&(row.minute, row.name.clone())) {
                Some(there) => there.merge(&row),
                None => {
                    merged.insert((row.minute, row.name.clone()), row);
                }
            }
        }
        merged.into_values().collect()
    }
}

/// The start of the minute that holds `at`.
pub(crate) fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    from_minutes(minutes(at))
}

/// `at` as whole minutes since the Unix epoch (rounded down): how the stores key a row.
pub(crate) fn minutes(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

/// The start of minute `minutes` since the Unix epoch.
pub(crate) fn from_minutes(minutes: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(minutes.saturating_mul(60), 0)
        .single()
        .unwrap_or_default()
}

/// How far back [`Stats`] look, and in what buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum StatsWindow {
    /// The last hour, in 60 one-minute buckets (the last one is the minute under way).
    Hour,
    /// The last day, in 144 ten-minute buckets (the last one is under way).
    Day,
}

impl StatsWindow {
    /// How long one bucket is, in minutes.
    pub fn bucket_minutes(self) -> i64 {
        match self {
            StatsWindow::Hour => 1,
            StatsWindow::Day => 10,
        }
    }

    /// How many buckets the window has.
    pub fn buckets(self) -> usize {
        match self {
            StatsWindow::Hour => 60,
            StatsWindow::Day => 144,
        }
    }

    /// The first minute of the window that ends with the bucket under way at `now`.
    pub fn start(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let width = self.bucket_minutes();
        let current = minutes(now).div_euclid(width) * width;
        from_minutes(current - width * (self.buckets() as i64 - 1))
    }
}

impl fmt::Display for StatsWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StatsWindow::Hour => "hour",
            StatsWindow::Day => "day",
        })
    }
}

impl FromStr for StatsWindow {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "hour" => Ok(StatsWindow::Hour),
            "day" => Ok(StatsWindow::Day),
            other => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "`{other}` is not a stats window: use `hour` (60 one-minute buckets) or \
                     `day` (144 ten-minute buckets)"
                ),
            )),
        }
    }
}

/// What every task type did over a [`StatsWindow`], bucket by bucket: what `GET /api/stats`
/// answers and the dashboard's charts draw.
///
/// Stats are read at a cost that grows with the minutes asked for, not with the tasks ever
/// run.
///
/// Each node tallies its own tasks in memory as they start and end (a short, uncontended lock
/// per event) and, once a minute, writes one [`StatsRow`] per (minute, task type) it saw to the
/// store ([`crate::store::Store::record_stats`]). A row holds how many tasks started, completed,
/// failed (timeouts included), were killed, went missing or were queued again for a retry, the
/// wait of each start (from when the task was due to when it started) in a [`WaitHistogram`],
/// and the queue depth the node saw. Reading merges the rows of every node
/// ([`crate::store::Store::stats_since`]) and [`Stats::build`] cuts them into the buckets of a
/// [`StatsWindow`], with wait percentiles read from the merged histograms.
///
/// ```no_run
/// # async fn demo(rt: offstage::Runtime) -> Result<(), offstage::Error> {
/// let stats = rt.stats(offstage::StatsWindow::Hour).await?;
/// for series in &stats.types {
///     let failed: u64 = series.failed.iter().sum();
///     println!("{}: {failed} failed in the last hour, wait p99 {:?} s", series.name, series.totals.wait_p99_s);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// The window.
    pub window: StatsWindow,
    /// The start of the first bucket.
    pub from: DateTime<Utc>,
    /// The end of the last bucket (it is under way: later than now).
    pub to: DateTime<Utc>,
    /// How long each bucket is, in seconds; bucket `i` starts at `from + i × bucket_s`.
    pub bucket_s: u64,
    /// One series per task type that did something in the window or has tasks queued, by
    /// name.
    pub types: Vec<TypeStats>,
}

/// One task type's series: one value per bucket in each.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TypeStats {
    /// The task type.
    pub name: String,
    /// Tasks that started running.
    pub started: Vec<u64>,
    /// Tasks that completed.
    pub completed: Vec<u64>,
    /// Tasks that failed, timeouts included.
    pub failed: Vec<u64>,
    /// Tasks that were killed.
    pub killed: Vec<u64>,
    /// Tasks that went missing.
    pub missing: Vec<u64>,
    /// Failed (or missing) attempts that were queued again by a retry policy.
    pub retried: Vec<u64>,
    /// Queued tasks: the largest sample any node took in the bucket (0 when none saw any).
    pub queued: Vec<u64>,
    /// The median wait from due to start, in seconds; `null` in a bucket with no starts.
    pub wait_p50_s: Vec<Option<f64>>,
    /// The 90th percentile wait, in seconds.
    pub wait_p90_s: Vec<Option<f64>>,
    /// The 99th percentile wait, in seconds.
    pub wait_p99_s: Vec<Option<f64>>,
    /// The sums over the whole window, and its wait percentiles.
    pub totals: StatsTotals,
}

/// A task type's sums over a whole window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsTotals {
    /// Tasks that started running.
    pub started: u64,
    /// Tasks that completed.
    pub completed: u64,
    /// Tasks that failed, timeouts included.
    pub failed: u64,
    /// Tasks that were killed.
    pub killed: u64,
    /// Tasks that went missing.
    pub missing: u64,
    /// Attempts queued again by a retry policy.
    pub retried: u64,
    /// The queue depth in the last bucket.
    pub queued: u64,
    /// The median wait, in seconds; `null` without starts.
    pub wait_p50_s: Option<f64>,
    /// The 90th percentile wait, in seconds.
    pub wait_p90_s: Option<f64>,
    /// The 99th percentile wait, in seconds.
    pub wait_p99_s: Option<f64>,
}

impl Stats {
    /// The stats of `window` ending with the bucket under way at `now`, from `rows` (merged or
    /// not: rows of one minute and type from several nodes are merged here; rows outside the
    /// window are left out).
    pub fn build(
        window: StatsWindow,
        now: DateTime<Utc>,
        rows: impl IntoIterator<Item = StatsRow>,
    ) -> Stats {
        let from = window.start(now);
        let width = window.bucket_minutes();
        let count = window.buckets();
        let first = minutes(from);
        // Per type, per bucket: the rows of its minutes merged.
        let mut by_type: BTreeMap<String, Vec<StatsRow>> = BTreeMap::new();
        for row in rows {
            let offset = minutes(row.minute) - first;
            if offset < 0 || offset >= width * count as i64 {
                continue;
            }
            let bucket = (offset / width) as usize;
            let series = by_type
                .entry(row.name.clone())
                .or_insert_with(|| vec![StatsRow::default(); count]);
            series[bucket].merge(&row);
        }
        let seconds = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        let types = by_type
            .into_iter()
            .map(|(name, buckets)| {
                let mut all = StatsRow::default();
                for bucket in &buckets {
                    all.merge(bucket);
                }
                let pick = |f: fn(&StatsRow) -> u64| buckets.iter().map(f).collect::<Vec<_>>();
                let quantile = |q: f64| {
                    buckets
                        .iter()
                        .map(|b| seconds(b.wait.quantile(q)))
                        .collect()
                };
                TypeStats {
                    totals: StatsTotals {
                        started: all.started,
                        completed: all.completed,
                        failed: all.failed,
                        killed: all.killed,
                        missing: all.missing,
                        retried: all.retried,
                        queued: buckets.last().and_then(|b| b.queued).unwrap_or(0),
                        wait_p50_s: seconds(all.wait.quantile(0.5)),
                        wait_p90_s: seconds(all.wait.quantile(0.9)),
                        wait_p99_s: seconds(all.wait.quantile(0.99)),
                    },
                    started: pick(|b| b.started),
                    completed: pick(|b| b.completed),
                    failed: pick(|b| b.failed),
                    killed: pick(|b| b.killed),
                    missing: pick(|b| b.missing),
                    retried: pick(|b| b.retried),
                    queued: pick(|b| b.queued.unwrap_or(0)),
                    wait_p50_s: quantile(0.5),
                    wait_p90_s: quantile(0.9),
                    wait_p99_s: quantile(0.99),
                    name,
                }
            })
            .collect();
        Stats {
            window,
            from,
            to: from_minutes(first + width * count as i64),
            bucket_s: (width * 60) as u64,
            types,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log_spaced_from_100_us_past_an_hour() {
        assert_eq!(WaitHistogram::bucket(Duration::ZERO), 0);
        assert_eq!(WaitHistogram::bucket(Duration::from_micros(99)), 0);
        assert_eq!(WaitHistogram::bucket(Duration::from_micros(100)), 1);
        assert_eq!(WaitHistogram::bucket(Duration::from_micros(141)), 1);
        assert_eq!(WaitHistogram::bucket(Duration::from_micros(142)), 2);
        assert_eq!(WaitHistogram::bucket(Duration::from_micros(200)), 3);
        assert_eq!(WaitHistogram::bucket(Duration::from_secs(3600)), 51);
        assert_eq!(
            WaitHistogram::bucket(Duration::from_secs(86_400)),
            WAIT_BUCKETS - 1
        );
        assert!(WaitHistogram::upper_bound(51).unwrap() > Duration::from_secs(3600));
        assert_eq!(WaitHistogram::upper_bound(WAIT_BUCKETS - 1), None);
        // Every bucket holds its own bounds.
        for i in 1..WAIT_BUCKETS {
            assert_eq!(
                WaitHistogram::bucket(WaitHistogram::lower_bound(i)),
                i,
                "{i}"
            );
        }
    }

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        let mut histogram = WaitHistogram::default();
        assert_eq!(histogram.quantile(0.5), None);
        for ms in 1..=1000 {
            histogram.record(Duration::from_millis(ms));
        }
        for (q, truth) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let got = histogram.quantile(q).unwrap().as_secs_f64() * 1000.0;
            assert!(
                (got / truth - 1.0).abs() < 0.2,
                "p{q}: {got} ms, not near {truth} ms"
            );
        }
    }

    #[test]
    fn histograms_survive_their_text_and_bad_text_is_an_error() {
        let mut histogram = WaitHistogram::default();
        histogram.record(Duration::ZERO);
        histogram.record(Duration::from_millis(3));
        histogram.record(Duration::from_millis(3));
        let text = histogram.to_text();
        assert_eq!(text, "0:1,10:2");
        assert_eq!(WaitHistogram::from_text(&text).unwrap(), histogram);
        assert_eq!(WaitHistogram::from_text("").unwrap().count(), 0);
        for bad in ["x", "1:", "53:1", "1:-2"] {
            let error = WaitHistogram::from_text(bad).unwrap_err();
            assert!(error.message().contains("offstage_stats"), "{error}");
        }
    }

    #[test]
    fn build_cuts_rows_into_the_window_s_buckets() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 30, 15).unwrap();
        let at = |h, m| Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap();
        let row = |minute, started, queued| StatsRow {
            started,
            queued,
            wait: {
                let mut w = WaitHistogram::default();
                for _ in 0..started {
                    w.record(Duration::from_millis(10));
                }
                w
            },
            ..StatsRow::new(minute, "mail")
        };
        let rows = vec![
            row(at(11, 30), 100, None), // outside the hour
            row(at(11, 31), 1, Some(4)),
            row(at(11, 31), 2, Some(7)), // another node, same minute
            row(at(12, 30), 5, None),
        ];
        let hour = Stats::build(StatsWindow::Hour, now, rows.clone());
        assert_eq!(
            (hour.from, hour.to, hour.bucket_s),
            (at(11, 31), at(12, 31), 60)
        );
        let mail = &hour.types[0];
        assert_eq!(mail.started.len(), 60);
        assert_eq!((mail.started[0], mail.queued[0]), (3, 7));
        assert_eq!(mail.started[59], 5);
        assert_eq!(mail.totals.started, 8);
        let p50 = mail.wait_p50_s[0].unwrap();
        assert!((0.008..0.012).contains(&p50), "{p50}");
        assert_eq!(mail.wait_p50_s[1], None);

        let day = Stats::build(StatsWindow::Day, now, rows);
        assert_eq!(day.bucket_s, 600);
        assert_eq!(day.to, at(12, 40));
        let mail = &day.types[0];
        assert_eq!(mail.started.len(), 144);
        assert_eq!(mail.started[143], 5);
        assert_eq!(mail.started[137], 103, "11:30 to 11:39 is one bucket");
    }
}
