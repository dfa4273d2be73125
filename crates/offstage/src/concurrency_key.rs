//! The **concurrency key**: what a task counts under for fairness between tenants. A task type
//! with a per-key limit ([`crate::TaskTypeOptions::concurrency_per_key`]) runs at most that
//! many tasks of one key at once, on all nodes together (beside its type's global limit), and
//! its queued tasks of different keys take turns: one customer's 100,000-task import does not
//! hold another customer's first task behind it.
//!
//! The key is resolved once, at launch, and stored with the task
//! ([`crate::TaskRecord::concurrency_key`]): the launch's own `concurrency_key` if it gives one,
//! else what the type's [`ConcurrencyKey`] names (the task's owner, or a field of its args).
//!
//! ```
//! use offstage::{ConcurrencyKey, TaskTypeOptions};
//!
//! // At most 2 imports per tenant at once; tenants take turns.
//! let options = TaskTypeOptions::default().concurrency_per_key(2, ConcurrencyKey::Arg("tenant"));
//! assert_eq!(options.concurrency_per_key, Some(2));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, ErrorKind};

/// Where a task type takes each task's concurrency key from, when the launch gives none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConcurrencyKey {
    /// The task's owner (a child inherits its parent's).
    Owner,
    /// This top-level field of the task's args: a string as it is, a number or boolean as its
    /// JSON text.
    Arg(&'static str),
    /// Only what each launch gives as its `concurrency_key`.
    Launch,
}

impl std::fmt::Display for ConcurrencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Owner => f.write_str("owner"),
            Self::Arg(field) => write!(f, "args.{field}"),
            Self::Launch => f.write_str("launch"),
        }
    }
}

impl ConcurrencyKey {
    /// The key of a task of type `name` launched with `owner` and `args`, for a type whose
    /// keys come from here; an error that says how to give one when there is none.
    pub(crate) fn resolve(
        &self,
        name: &str,
        owner: Option<&str>,
        args: &Value,
    ) -> Result<String, Error> {
        let missing = |what: &str| {
            let how = match self {
                Self::Owner => {
                    "launch it with an owner, or give the launch a concurrency_key".to_owned()
                }
                Self::Arg(field) => format!(
                    "give its args a `{field}` field (a string or a number), or give the launch \
                     a concurrency_key"
                ),
                Self::Launch => "give the launch a concurrency_key".to_owned(),
            };
            Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "task type `{name}` runs a limited number of tasks per concurrency key, taken \
                     from {what}, and this launch has none: {how}"
                ),
            )
        };
        match self {
            Self::Owner => owner.map(str::to_owned).ok_or_else(|| missing("its owner")),
            Self::Arg(field) => match args.get(field) {
                Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
                Some(value @ (Value::Number(_) | Value::Bool(_))) => Ok(value.to_string()),
                _ => Err(missing(&format!("its args' `{field}` field"))),
            },
            Self::Launch => Err(missing("each launch")),
        }
    }
}

/// How many tasks of one concurrency key of a task type run and wait: one entry of
/// `GET /api/task-types`'s `concurrency_keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyCount {
    /// The key.
    pub key: String,
    /// Its tasks that hold a place: running, and not waiting for a signal.
    pub running: u64,
    /// Its queued tasks (due or not).
    pub queued: u64,
}

impl KeyCount {
    /// How many keys [`crate::Runtime::concurrency_keys`] returns by default: the top ten.
    pub const TOP: usize = 10;
}
