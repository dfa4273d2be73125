//! The **waiting reason**: why a queued task is not running yet (or why a running task that
//! was asked to die still runs, or what a running task waits for), computed on read from the
//! store and the nodes' reports.
//!
//! ```no_run
//! # async fn demo(rt: offstage::Runtime, id: offstage::TaskId) -> Result<(), offstage::Error> {
//! let record = rt.record(id).await?;
//! if let Some(waiting) = rt.waiting(&record).await? {
//!     println!("{}: {}", waiting.code.as_str(), waiting.message);
//! }
//! # Ok(()) }
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::TaskId;

/// Why a task waits, as one word. Reasons are checked in the order listed (see
/// `docs/decisions.md`); the first that applies is the one given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WaitingCode {
    /// Its task type is paused on every node.
    Paused,
    /// No live node and no connected worker serves its task type.
    NoWorker,
    /// Its `run_at` is in the future, and it has not run yet.
    Scheduled,
    /// An attempt failed and it runs again after the retry backoff, at `run_at`.
    RetryBackoff,
    /// Its task type's concurrency limit is reached: as many of its tasks run as may.
    ConcurrencyLimit,
    /// Every node and worker that serves its task type has all of its slots taken.
    SlotsBusy,
    /// Nothing holds it back: it is due, and a node claims it at its next turn.
    Due,
    /// It runs still, although a kill was asked and the grace period has passed.
    KillOverdue,
    /// It runs, and waits for a signal (`signal`, until `run_at` if the wait times out),
    /// holding no slot meanwhile.
    Signal,
    /// Its concurrency key is full: as many tasks of its type and key run as the type's
    /// per-key limit allows (`concurrency_key`, `limit`, `holders`).
    KeyLimit,
    /// It backed off (`Context::back_off`: the API it calls said to come back later) and runs
    /// again at `run_at`, the attempt not counted.
    BackedOff,
}

impl WaitingCode {
    /// The code as the API writes it (`"retry_backoff"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paused => "paused",
            Self::NoWorker => "no_worker",
            Self::Scheduled => "scheduled",
            Self::RetryBackoff => "retry_backoff",
            Self::ConcurrencyLimit => "concurrency_limit",
            Self::SlotsBusy => "slots_busy",
            Self::Due => "due",
            Self::KillOverdue => "kill_overdue",
            Self::Signal => "signal",
            Self::KeyLimit => "key_limit",
            Self::BackedOff => "backed_off",
        }
    }
}

impl std::fmt::Display for WaitingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task waits: a [`WaitingCode`], a sentence for people, and the details behind it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Waiting {
    /// The reason.
    pub code: WaitingCode,
    /// The reason as a sentence, with what to do about it where there is something to do.
    pub message: String,
    /// `scheduled`, `retry_backoff`, `backed_off`: when it becomes due. `signal`: when the wait times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// `signal`: the name of the signal it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// `paused`: since when its type is paused. `kill_overdue`: when the kill was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// `concurrency_limit`, `key_limit`: the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `concurrency_limit`, `key_limit`: some of the running tasks that hold the limit (at most
    /// [`Waiting::MAX_HOLDERS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub holders: Vec<TaskId>,
    /// `no_worker`, `slots_busy`: what serves which task types, one entry per node or worker
    /// (`"node 0193… on web-1: a, b"`, `"worker w1 on node 0193…: c"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub served: Vec<String>,
    /// `key_limit`: the concurrency key that is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
}

impl Waiting {
    /// The most holders a `concurrency_limit` reason names.
    pub const MAX_HOLDERS: usize = 5;

    pub(crate) fn new(code: WaitingCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            run_at: None,
            signal: None,
            since: None,
            limit: None,
            holders: Vec::new(),
            served: Vec::new(),
            concurrency_key: None,
        }
    }
}
