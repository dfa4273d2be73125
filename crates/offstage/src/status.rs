//! The task lifecycle as a type: [`Status`], with the picture.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// Where a task is in its life: the lifecycle as a type.
///
/// A **status** is where a task is in its life. Every task starts `Queued`, may become
/// `Running` (and `Queued` again, for another attempt, when its type retries), and ends in
/// exactly one terminal status. The picture, and who performs each transition, is in
/// `docs/task-lifecycle.md`.
///
/// ```text
///          ┌── retry: the attempt failed or its node died, and its type's ────────┐
///          │   `Retry` policy allows another (due after the backoff)              │
///          ▼                                                                      │
/// launch ─▶ queued ──claim / direct start──▶ running ─────────────────────────────┘
///             │                                │
///             │                                ├── returns Ok ────────────────────▶ completed
///             │                                ├── returns Err, panics, times out ▶ failed
///             │                                ├── kill: cancel, grace, abort ────▶ killed
///             │                                └── its node died or shut down ────▶ missing
///             └── kill before it started ─────────────────────────────────────────▶ killed
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Launched and durable, waiting for a free slot or its `run_at` time; or queued again for
    /// another attempt after a failure its type retries.
    /// Next: `Running` (a node claims it, or the launch starts it at once) or `Killed`
    /// (killed before it started).
    Queued,
    /// Claimed by a node; its body is executing there.
    /// Next: any terminal status, or `Queued` again when its type's `Retry` policy retries
    /// the attempt's error (a failure, or kind `missing` when its node died): `attempt` goes
    /// up by one at the next claim.
    Running,
    /// Terminal: the body returned `Ok`. The return value is recorded.
    Completed,
    /// Terminal: the body returned `Err`, panicked (error kind `panic`) or ran past its
    /// timeout (error kind `timeout`). The error is recorded.
    Failed,
    /// Terminal: somebody killed it. Its last state is kept.
    Killed,
    /// Terminal: the node running it died, or shut down before the task could finish
    /// (error kind `interrupted`). Nobody knows how far it got beyond its last saved state.
    Missing,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 6] = [
        Status::Queued,
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::Killed,
        Status::Missing,
    ];

    /// True for the four statuses a task never leaves.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Queued | Status::Running)
    }

    /// The lowercase name used in the store, the API and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Killed => "killed",
            Status::Missing => "missing",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "`{s}` is not a status: use one of queued, running, completed, failed, \
                     killed, missing"
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert!("done"
            .parse::<Status>()
            .unwrap_err()
            .to_string()
            .contains("one of queued"));
    }
}
