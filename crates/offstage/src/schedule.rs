//! Schedules: task types launched on the ticks of a cron expression. The concept and an example are on [`Schedule`].

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::id::TaskId;
use crate::runtime::{LaunchOptions, OnConflict};

/// **Schedules**: a task type launched on every tick of a cron expression.
///
/// A schedule names a task type, its args and launch options, and a cron expression (five
/// fields, minute to weekday, or six with seconds first; times in UTC). Schedules live in the
/// store, so every node sees the same ones and a pause holds everywhere. Each node with the task
/// type runs a cron loop; at each tick the first node to reach it launches the task and records
/// the tick in the same store step, so a tick launches exactly once however many nodes there
/// are. Ticks that pass while no node runs, or while the schedule is paused, are skipped, not
/// made up later; a node that falls behind launches only the latest tick it missed.
///
/// ```no_run
/// use offstage::{Runtime, Schedule};
///
/// # async fn demo() -> Result<(), offstage::Error> {
/// let rt = Runtime::builder()
///     .sqlite("offstage.db")
///     .task("report.build", |_ctx: offstage::Context, day: String| async move {
///         Ok::<_, offstage::TaskError>(day)
///     })
///     // Every day at 03:00 UTC.
///     .schedule(Schedule::new("nightly-report", "0 3 * * *", "report.build").args(serde_json::json!("today")))
///     .build()
///     .await?;
/// rt.pause_schedule("nightly-report").await?;
/// # Ok(()) }
/// ```
///
/// A schedule as the app declares it: what to launch, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Its name, unique in the store.
    pub name: String,
    /// The cron expression: `minute hour day-of-month month day-of-week`, or with a seconds
    /// field first. UTC.
    pub cron: String,
    /// The task type it launches.
    pub task: String,
    /// The args of every launch (default `null`).
    #[serde(default)]
    pub args: Value,
    /// Options of every launch. With a `key` and `on_conflict` `reject` or `existing`, a tick
    /// that finds the previous launch still live launches nothing.
    #[serde(default)]
    pub options: LaunchOptions,
}

/// A schedule as the store keeps it, with what it has done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleRecord {
    /// Its name.
    pub name: String,
    /// The cron expression.
    pub cron: String,
    /// The task type it launches.
    pub task: String,
    /// The args of every launch.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub args: Value,
    /// Options of every launch.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub options: LaunchOptions,
    /// True while paused: ticks pass without launching.
    pub paused: bool,
    /// The latest tick dealt with: launched, skipped because the previous launch was still
    /// live, or passed over while paused. Ticks count from here: creating the schedule or
    /// changing its cron expression sets it to that moment, as a resume does.
    pub last_tick_at: Option<DateTime<Utc>>,
    /// The task the latest tick launched.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub last_task_id: Option<TaskId>,
    /// The next tick, unless paused (computed when read, not stored).
    pub next_tick_at: Option<DateTime<Utc>>,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When it was last declared, changed, paused or resumed.
    pub updated_at: DateTime<Utc>,
}

/// What [`crate::store::Store::fire_schedule`] did with a tick.
#[derive(Clone, Debug, PartialEq)]
pub enum Fired {
    /// The task was inserted and the tick recorded.
    Launched,
    /// The tick was recorded but nothing launched: the schedule's key found this task live.
    Skipped(TaskId),
    /// Nothing happened: another node had the tick already, or the schedule is paused or gone.
    NotFired,
}

impl Schedule {
    /// A schedule named `name` that launches `task` (with args `null`) on each tick of `cron`.
    pub fn new(name: impl Into<String>, cron: impl Into<String>, task: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            cron: cron.into(),
            task: task.into(),
            args: Value::Null,
            options: LaunchOptions::default(),
        }
    }

    /// Launches with these args.
    pub fn args(mut self, args: Value) -> Self {
        self.args = args;
        self
    }

    /// Launches with these options (`run_at` cannot be one: the tick is the run time).
    pub fn options(mut self, options: LaunchOptions) -> Self {
        self.options = options;
        self
    }

    /// Checks the name, the cron expression and the options; returns the parsed expression.
    pub(crate) fn check(&self) -> Result<Cron, Error> {
        let invalid = |message: String| Err(Error::new(ErrorKind::InvalidArgument, message));
        if self.name.trim().is_empty() {
            return invalid(format!(
                "a schedule needs a name of 1 to {} characters, and {:?} is not one",
                crate::limits::MAX_NAME_CHARS,
                self.name
            ));
        }
        crate::limits::check_text("schedule name", &self.name, crate::limits::MAX_NAME_CHARS)?;
        // Its ticks launch with these, so they meet a launch's rules now, not at the first tick.
        crate::runtime::check_labels(&self.task, &self.options)?;
        if self.options.run_at.is_some() {
            return invalid(format!(
                "schedule `{}` has a run_at: its ticks are its run times; leave run_at out",
                self.name
            ));
        }
        if self.options.on_conflict == Some(OnConflict::Supersede) {
            return invalid(format!(
                "schedule `{}` asks for on_conflict supersede, which would kill the previous \
                 launch at every tick: use reject or existing (a tick then launches nothing \
                 while the previous one is live), or no key",
                self.name
            ));
        }
        if self.options.on_conflict.is_some() && self.options.key.is_none() {
            return invalid(format!(
                "schedule `{}` has on_conflict but no key: add the key the launches share",
                self.name
            ));
        }
        parse(&self.cron)
    }
}

/// Parses a cron expression, with an error that shows the form expected.
pub(crate) fn parse(cron: &str) -> Result<Cron, Error> {
    let parsed = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(cron.trim());
    parsed.map_err(|error| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "`{cron}` is not a cron expression ({error}): write five fields, `minute hour \
                 day-of-month month day-of-week` (e.g. `*/5 * * * *`, every five minutes), or \
                 six with seconds first (`0 */5 * * * *`); times are UTC"
            ),
        )
    })
}

/// The first tick of `cron` strictly after `after`.
pub(crate) fn next_tick(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Ticks fall on whole seconds; the parser keeps any fraction it is given.
    cron.find_next_occurrence(&whole_second(after), false).ok()
}

fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// The latest tick of `cron` after `after` and at or before `now`, if one is due.
pub(crate) fn due_tick(
    cron: &Cron,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let first = next_tick(cron, after).filter(|tick| *tick <= now)?;
    // Fell behind by more than one tick: the latest is the one to launch.
    Some(
        cron.find_previous_occurrence(&whole_second(now), true)
            .map_or(first, |latest| latest.max(first)),
    )
}

impl ScheduleRecord {
    /// Fills in `next_tick_at` from the cron expression, after `now`.
    pub(crate) fn with_next_tick(mut self, now: DateTime<Utc>) -> Self {
        self.next_tick_at = if self.paused {
            None
        } else {
            parse(&self.cron)
                .ok()
                .and_then(|cron| next_tick(&cron, now))
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn five_and_six_fields_parse_and_nonsense_says_what_to_write() {
        let every_five = parse("*/5 * * * *").unwrap();
        assert_eq!(
            next_tick(&every_five, at("2026-01-01T00:03:10Z")),
            Some(at("2026-01-01T00:05:00Z"))
        );
        let every_second = parse("* * * * * *").unwrap();
        assert_eq!(
            next_tick(&every_second, at("2026-01-01T00:00:00.5Z")),
            Some(at("2026-01-01T00:00:01Z"))
        );
        let error = parse("every day").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        assert!(error.message().contains("minute hour"), "{error}");
    }

    #[test]
    fn a_node_behind_by_many_ticks_launches_only_the_latest() {
        let cron = parse("* * * * *").unwrap();
        let after = at("2026-01-01T00:00:00Z");
        assert_eq!(due_tick(&cron, after, at("2026-01-01T00:00:59Z")), None);
        assert_eq!(
            due_tick(&cron, after, at("2026-01-01T00:01:00Z")),
            Some(at("2026-01-01T00:01:00Z"))
        );
        assert_eq!(
            due_tick(&cron, after, at("2026-01-01T00:05:30Z")),
            Some(at("2026-01-01T00:05:00Z"))
        );
    }

    #[test]
    fn supersede_and_run_at_are_refused() {
        let mut schedule = Schedule::new("s", "* * * * *", "t");
        schedule.options.key = Some("k".into());
        schedule.options.on_conflict = Some(OnConflict::Supersede);
        assert!(schedule
            .check()
            .unwrap_err()
            .message()
            .contains("supersede"));
        schedule.options.on_conflict = None;
        schedule.options.run_at = Some(Utc::now());
        assert!(schedule.check().unwrap_err().message().contains("run_at"));
        for name in ["", "  "] {
            let error = Schedule::new(name, "* * * * *", "t").check().unwrap_err();
            assert!(
                error.message().contains("a schedule needs a name"),
                "{error}"
            );
        }
        for name in ["tab\there".to_owned(), "nul\0".to_owned(), "s".repeat(201)] {
            let error = Schedule::new(name, "* * * * *", "t").check().unwrap_err();
            assert!(error.message().contains("schedule name"), "{error}");
        }
        let mut schedule = Schedule::new("nightly", "* * * * *", "t");
        schedule.options.owner = Some("o\0".into());
        assert!(schedule.check().unwrap_err().message().contains("owner"));
    }
}
