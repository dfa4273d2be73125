//! A **signal**: a named, durable message with a JSON payload, sent to a task and kept until the
//! task receives it with [`crate::Context::wait_signal`]. While a task waits for one it is
//! `running` with `waiting_for` set, and it holds no concurrency slot.
//!
//! Signals of one name are received oldest first, each once per attempt. A signal an attempt
//! received and did not get past (it saved no checkpoint after it: the signal is not
//! `settled`) is received again by the next attempt, so a task whose node died while it acted
//! on an approval acts on it again after its retry.
//!
//! ```no_run
//! # async fn demo(rt: offstage::Runtime, id: offstage::TaskId) -> Result<(), offstage::Error> {
//! // From anywhere: the app, an operator, the HTTP API.
//! rt.signal(id, "approve", &serde_json::json!({ "approved": true, "by": "ann" })).await?;
//! # Ok(()) }
//! ```
//!
//! ```
//! use std::time::Duration;
//! use offstage::{Context, ErrorKind, TaskError};
//!
//! #[derive(serde::Deserialize)]
//! struct Approval { approved: bool, by: String }
//!
//! async fn refund(ctx: Context, amount: u64) -> Result<String, TaskError> {
//!     let hour = Some(Duration::from_secs(3600));
//!     match ctx.wait_signal::<Approval>("approve", hour).await {
//!         Ok(a) if a.approved => Ok(format!("refunded {amount}, approved by {}", a.by)),
//!         Ok(a) => Err(TaskError::new("refused", format!("refused by {}", a.by))),
//!         Err(e) if e.kind() == ErrorKind::SignalTimeout => {
//!             Err(TaskError::new("unapproved", "nobody approved it within the hour"))
//!         }
//!         Err(e) => Err(e.into()),
//!     }
//! }
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::id::TaskId;
use crate::limits::MAX_NAME_CHARS;
use crate::task::TaskRecord;

/// One signal as the store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignalRecord {
    /// Its number: signals are received in this order, per name.
    pub seq: u64,
    /// The task it was sent to.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub task_id: TaskId,
    /// Its name: what the task waits for.
    pub name: String,
    /// What it carries.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Value,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// Who sent it, as the sender named itself (over HTTP: the token's role and fingerprint,
    /// or `anonymous`).
    pub sent_by: Option<String>,
    /// The attempt that last received it; `None` while nobody has.
    pub received_attempt: Option<u32>,
    /// When that attempt received it.
    pub received_at: Option<DateTime<Utc>>,
    /// True once the attempt that received it saved a checkpoint after it: no later attempt
    /// receives it again.
    pub settled: bool,
}

/// What [`crate::store::Store::signal_send`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum SignalSent {
    /// The signal is kept for the task (queued or running) until it receives it.
    Sent(SignalRecord),
    /// The task has ended: nothing was kept, since nothing would ever receive it.
    Ended(Box<TaskRecord>),
}

/// Checks a signal name: not empty, at most [`MAX_NAME_CHARS`] characters (as every name), no
/// control characters.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "the signal name is empty: name the signal the task waits for, e.g. `approve`",
        ));
    }
    crate::limits::check_text("signal name", name, MAX_NAME_CHARS)
}

/// The error a send to a task that has ended gets: it would never be received.
pub(crate) fn task_ended(task: &TaskRecord) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!(
            "task {} already ended ({}): a signal would never be received. Signals go to \
             queued or running tasks; rerun the task to send it one",
            task.id, task.status
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("approve").is_ok());
        for bad in ["", "a\nb", "\u{1b}[31m"] {
            let error = check_name(bad).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        }
        let long = check_name(&"s".repeat(MAX_NAME_CHARS + 1)).unwrap_err();
        assert!(long.message().contains("at most 200 characters"), "{long}");
    }
}
