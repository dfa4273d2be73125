//! The **action**: one bulk kill, purge or rerun of every task matching a filter, as an
//! operator asked for it, and the record of it kept in the store: who asked, when, what it
//! matched, how far it got.
//!
//! [`Bulk`] is the request; [`crate::Runtime::bulk_count`] is its dry run (how many tasks it
//! would act on, changing nothing) and [`crate::Runtime::bulk`] starts it: the [`ActionRecord`]
//! is written `running`, the tasks are processed in the background a page at a time, and the
//! record's `done` and `failed` go up as it goes, until it ends `completed` (or `failed`, if it
//! could not go on).
//!
//! ```no_run
//! # async fn demo(rt: offstage::Runtime) -> Result<(), offstage::Error> {
//! use offstage::{Bulk, BulkVerb, ListFilter, Status};
//! let bulk = Bulk {
//!     verb: BulkVerb::Rerun,
//!     filter: ListFilter { name: Some("mail.send".into()), status: Some(Status::Failed), ..Default::default() },
//!     per_s: Some(20.0), // no more than 20 launches a second
//! };
//! println!("{} tasks would run again", rt.bulk_count(&bulk).await?);
//! let action = rt.bulk(&bulk, "ops@example.com").await?;
//! let record = action.wait().await; // or read it from any node: rt.action(action.id())
//! println!("{} of {} done, {} failed", record.done, record.matched, record.failed);
//! # Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::id::{ActionId, NodeId};
use crate::task::ListFilter;

/// What a bulk action does to each task it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BulkVerb {
    /// Kill each live (queued or running) task, through the same path as one kill.
    Kill,
    /// Delete each finished task, with its logs.
    Purge,
    /// Launch each finished task again ([`crate::Runtime::rerun`]), paced by `per_s`.
    Rerun,
}

impl BulkVerb {
    /// The verb as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkVerb::Kill => "kill",
            BulkVerb::Purge => "purge",
            BulkVerb::Rerun => "rerun",
        }
    }

    /// True for the verbs that act on finished tasks (purge, rerun); kill acts on live ones.
    pub fn acts_on_finished(self) -> bool {
        !matches!(self, BulkVerb::Kill)
    }
}

impl fmt::Display for BulkVerb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BulkVerb {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "kill" => Ok(BulkVerb::Kill),
            "purge" => Ok(BulkVerb::Purge),
            "rerun" => Ok(BulkVerb::Rerun),
            other => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("`{other}` is not a bulk verb: use kill, purge or rerun"),
            )),
        }
    }
}

/// Where an action is in its life: `running`, then `completed` or `failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ActionStatus {
    /// Its node is working through the matching tasks.
    Running,
    /// It went through every matching task (some may have failed: see `failed`).
    Completed,
    /// It stopped before the end: the store refused a step, or its node stopped (shut down or
    /// died) while it ran.
    Failed,
}

impl ActionStatus {
    /// The status as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Running => "running",
            ActionStatus::Completed => "completed",
            ActionStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActionStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "running" => Ok(ActionStatus::Running),
            "completed" => Ok(ActionStatus::Completed),
            "failed" => Ok(ActionStatus::Failed),
            other => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("`{other}` is not an action status: running, completed or failed"),
            )),
        }
    }
}

/// A bulk action to run: a verb and the tasks it applies to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bulk {
    /// What to do to each task.
    pub verb: BulkVerb,
    /// Which tasks: the list's filter (its page, `before` and `limit`, is ignored). Kill acts
    /// on the live tasks among them, purge and rerun on the finished ones.
    pub filter: ListFilter,
    /// For a rerun: launch at most this many tasks a second (none: as fast as they go). The
    /// reruns are ordinary queued tasks, so their type's concurrency limit applies as well.
    pub per_s: Option<f64>,
}

impl Bulk {
    /// Checks the request: the filter's text, a status the verb can act on, and a positive,
    /// finite `per_s` given only for a rerun.
    pub fn check(&self) -> Result<(), Error> {
        self.filter.check()?;
        if let Some(status) = self.filter.status {
            if status.is_terminal() != self.verb.acts_on_finished() {
                let (acts_on, instead) = if self.verb.acts_on_finished() {
                    ("finished tasks", "completed, failed, killed or missing")
                } else {
                    ("live tasks", "queued or running")
                };
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "a bulk {} acts on {acts_on}, and no `{status}` task is one: filter by                          {instead}, or by no status",
                        self.verb
                    ),
                ));
            }
        }
        if let Some(per_s) = self.per_s {
            if self.verb != BulkVerb::Rerun {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "per_s paces reruns only: leave it out for a bulk {}",
                        self.verb
                    ),
                ));
            }
            if !(per_s.is_finite() && per_s > 0.0) {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "per_s {per_s} is not a rate: give a positive number of launches a \
                         second (0.5 is one every two seconds), or leave it out for no pacing"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The filter as an action keeps it: without its page.
    pub(crate) fn kept_filter(&self) -> ListFilter {
        ListFilter {
            before: None,
            limit: None,
            ..self.filter.clone()
        }
    }
}

/// The record of one bulk action, as the store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionRecord {
    /// Time-ordered unique id.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: ActionId,
    /// What it does to each task.
    pub verb: BulkVerb,
    /// Which tasks it applies to (the list's filter, without a page).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub filter: ListFilter,
    /// For a rerun: at most this many launches a second.
    pub per_s: Option<f64>,
    /// Who asked for it: the name the server knows the caller by (a token's name, or
    /// `anonymous` on an open server), or what the app passed to [`crate::Runtime::bulk`].
    pub actor: String,
    /// The node that runs it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub node: NodeId,
    /// Running, completed or failed.
    pub status: ActionStatus,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When its progress was last saved.
    pub updated_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// How many tasks matched when it started (the dry run's count).
    pub matched: u64,
    /// How many it has acted on so far.
    pub done: u64,
    /// How many it could not act on (a rerun the task type refused, a kill that failed);
    /// `error` holds the latest reason.
    pub failed: u64,
    /// Why it failed, or the latest reason a task could not be acted on.
    pub error: Option<String>,
}

impl ActionRecord {
    /// True once it has ended.
    pub fn is_finished(&self) -> bool {
        self.status != ActionStatus::Running
    }

    /// The record as a reader sees it when the node running it is no longer registered: an
    /// action cannot outlive its node, so a `running` one reads `failed`, interrupted, ended
    /// when it last saved progress. Both stores apply this on every read.
    pub(crate) fn orphaned(mut self) -> Self {
        if self.status == ActionStatus::Running {
            self.status = ActionStatus::Failed;
            self.ended_at = Some(self.updated_at);
            self.error = Some(format!(
                "interrupted: node {} stopped (shut down or died) before the action ended; {} of \
                 {} tasks were done. Run it again to act on the rest",
                self.node, self.done, self.matched
            ));
        }
        self
    }
}
