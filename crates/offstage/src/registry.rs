//! **Task types** and the registry that knows them.
//!
//! A task type is a name plus an async function `(ctx, args) -> Result<output, TaskError>`.
//! Args and output are serde types stored as JSON. Register a closure with
//! [`crate::RuntimeBuilder::task`], or implement [`TaskType`] on your own struct (it can hold
//! the app's resources, such as a database pool) and register it with
//! [`crate::RuntimeBuilder::register`]; then [`crate::Runtime::launch`] checks the args' type at
//! compile time.
//!
//! ```
//! use offstage::{Context, TaskError, TaskType};
//! use serde::{Deserialize, Serialize};
//!
//! struct Resize;
//!
//! #[derive(Serialize, Deserialize)]
//! struct ResizeArgs { path: String, width: u32 }
//!
//! impl TaskType for Resize {
//!     const NAME: &'static str = "images.resize";
//!     type Args = ResizeArgs;
//!     type Output = String;
//!
//!     async fn run(&self, ctx: Context, args: ResizeArgs) -> Result<String, TaskError> {
//!         ctx.set_state(&serde_json::json!({ "progress": 0.5 }))?;
//!         Ok(format!("{}@{}", args.path, args.width))
//!     }
//! }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::context::Context;
use crate::error::{Error, ErrorKind, TaskError};

/// A task type with compile-time checked args.
///
/// Implement it on a struct that holds what the body needs (a database pool, an HTTP
/// client), register it with [`crate::RuntimeBuilder::register`], and launch it with
/// [`crate::Runtime::launch`], which takes [`TaskType::Args`] rather than JSON.
///
/// ```no_run
/// use offstage::{Context, Runtime, TaskError, TaskType, TaskTypeOptions};
/// use serde::{Deserialize, Serialize};
///
/// struct Thumbnail {
///     sizes: Vec<u32>,
/// }
///
/// #[derive(Serialize, Deserialize)]
/// struct ThumbnailArgs {
///     path: String,
/// }
///
/// impl TaskType for Thumbnail {
///     const NAME: &'static str = "images.thumbnail";
///     type Args = ThumbnailArgs;
///     type Output = Vec<String>;
///
///     fn options(&self) -> TaskTypeOptions {
///         TaskTypeOptions::default().isolated() // CPU-bound: a process of its own
///     }
///
///     async fn run(&self, ctx: Context, args: ThumbnailArgs) -> Result<Vec<String>, TaskError> {
///         let mut made = Vec::new();
///         for size in &self.sizes {
///             ctx.check_cancelled()?;
///             made.push(format!("{}@{size}", args.path));
///         }
///         Ok(made)
///     }
/// }
///
/// # async fn demo() -> Result<(), offstage::Error> {
/// let runtime = Runtime::builder()
///     .register(Thumbnail { sizes: vec![64, 256] })
///     .build()
///     .await?;
/// let task = runtime
///     .launch::<Thumbnail>(ThumbnailArgs { path: "cat.png".into() })
///     .await?;
/// # Ok(()) }
/// ```
pub trait TaskType: Send + Sync + 'static {
    /// The name it is launched by: dotted lowercase words by convention (`images.resize`).
    const NAME: &'static str;
    /// What it is launched with.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// What it returns when it completes.
    type Output: Serialize + Send + 'static;

    /// Options every launch of this type gets unless the launch says otherwise.
    fn options(&self) -> TaskTypeOptions {
        TaskTypeOptions::default()
    }

    /// What [`TaskType::Args`] looks like, as a JSON Schema, for the API, the CLI and the
    /// dashboard's launch form to show (none by default). With feature `schemars`,
    /// `Some(offstage::args_schema::<Self::Args>())` derives it from the type.
    fn args_schema(&self) -> Option<Value> {
        None
    }

    /// The task's body.
    fn run(
        &self,
        ctx: Context,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, TaskError>> + Send;
}

/// Defaults for every launch of one task type, given with [`crate::RuntimeBuilder::task_with`]
/// or [`TaskType::options`]. A launch's own options win over them.
///
/// ```
/// use std::time::Duration;
/// use offstage::{Retry, TaskTypeOptions};
///
/// let options = TaskTypeOptions::default()
///     .timeout(Duration::from_secs(30))   // then it fails, kind `timeout`
///     .concurrency_limit(1)               // one at a time, on all nodes
///     .retry(Retry::new(5).backoff(Duration::from_secs(2), Duration::from_secs(60)));
/// assert_eq!(options.concurrency_limit, Some(1));
///
/// // In a worker process of its own, with at most 512 MiB more address space.
/// let heavy = TaskTypeOptions::default().memory_limit(512 * 1024 * 1024);
/// assert!(heavy.isolated);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskTypeOptions {
    /// Fail launches that run longer than this (error kind `timeout`).
    pub timeout: Option<Duration>,
    /// Run each task in a worker process of its own (see [`crate::Isolation`]), so a
    /// kill or timeout stops it even if it never awaits: SIGKILL of its process group after
    /// the grace period.
    pub isolated: bool,
    /// With `isolated`: the most address space the task may add to its worker process, in
    /// bytes. Past it, allocations fail and the process dies: the task ends `failed`, kind
    /// `worker_crashed`.
    pub memory_limit: Option<u64>,
    /// At most this many of its tasks run at once, on all nodes of the database together;
    /// the rest wait `queued`.
    pub concurrency_limit: Option<u32>,
    /// Run a failed task again, as this policy says. Without one, a task never re-runs on its
    /// own.
    pub retry: Option<Retry>,
    /// At most this many of its tasks of one concurrency key run at once, on all nodes
    /// together (beside `concurrency_limit`), and queued tasks of different keys take turns.
    /// Set with [`TaskTypeOptions::concurrency_per_key`].
    pub concurrency_per_key: Option<u32>,
    /// Where each task's concurrency key comes from when its launch gives none.
    pub concurrency_key: Option<crate::ConcurrencyKey>,
}

/// When and how often a failed task runs again: up to `max_attempts` attempts in all, each
/// after an exponential backoff (`base`, doubling, at most `max`) with ±25% jitter, for the
/// error kinds in `kinds` (every kind but `invalid_args` when `None`). Kills never retry.
/// Each failed attempt's error is written to the task's log before it is queued again; the
/// record's `error` holds the latest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait before the second attempt.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// The error kinds that retry; `None`: all but `invalid_args`.
    pub kinds: Option<&'static [&'static str]>,
}

impl Retry {
    /// Up to `max_attempts` attempts, 1 s backoff doubling to at most 5 minutes.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            kinds: None,
        }
    }

    /// This policy with another backoff.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base = base;
        self.max = max.max(base);
        self
    }

    /// This policy, retrying only errors of these kinds.
    pub fn kinds(mut self, kinds: &'static [&'static str]) -> Self {
        self.kinds = Some(kinds);
        self
    }

    /// Whether an error of `kind` retries.
    pub fn retries(&self, kind: &str) -> bool {
        match self.kinds {
            Some(kinds) => kinds.contains(&kind),
            None => kind != "invalid_args",
        }
    }

    /// The wait after failed attempt `attempt` (from 1), jittered at random.
    pub fn jittered_delay(&self, attempt: u32) -> Duration {
        // The random bits of a fresh UUIDv7.
        let unit = (uuid::Uuid::now_v7().as_u128() & 0xffff) as f64 / 65_536.0;
        self.delay(attempt, unit)
    }

    /// The wait after failed attempt `attempt` (from 1), with `unit` in 0..1 for the jitter.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let doubled = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(31)));
        doubled
            .min(self.max)
            .mul_f64(0.75 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

impl TaskTypeOptions {
    /// These options with a timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// These options, run in a worker process of its own.
    pub fn isolated(mut self) -> Self {
        self.isolated = true;
        self
    }

    /// These options with at most `n` tasks running at once across all nodes (at least 1).
    pub fn concurrency_limit(mut self, n: u32) -> Self {
        self.concurrency_limit = Some(n.max(1));
        self
    }

    /// These options with at most `n` tasks of one concurrency key running at once across all
    /// nodes (at least 1), the key taken from `key` unless a launch gives its own
    /// (`Launch::concurrency_key`). Queued tasks of different keys are claimed in turns, least
    /// recently served key first, so a key with a huge backlog delays another key's first task
    /// by at most one claim round. A launch with no key to give is refused, saying how to give
    /// one. Works beside [`TaskTypeOptions::concurrency_limit`]; for turns without a per-key
    /// limit, give `u32::MAX`.
    ///
    /// ```
    /// use offstage::{ConcurrencyKey, TaskTypeOptions};
    /// let per_customer = TaskTypeOptions::default()
    ///     .concurrency_limit(50)                            // 50 at once in all
    ///     .concurrency_per_key(5, ConcurrencyKey::Owner);   // 5 of them per owner
    /// assert_eq!(per_customer.concurrency_key, Some(ConcurrencyKey::Owner));
    /// ```
    pub fn concurrency_per_key(mut self, n: u32, key: crate::ConcurrencyKey) -> Self {
        self.concurrency_per_key = Some(n.max(1));
        self.concurrency_key = Some(key);
        self
    }

    /// These options with a retry policy.
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// These options, isolated, with a memory limit in bytes.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.isolated = true;
        self.memory_limit = Some(bytes);
        self
    }
}

/// A task body with its args already deserialized, ready to run once.
pub(crate) type Prepared =
    Box<dyn FnOnce(Context) -> BoxFuture<'static, Result<Value, TaskError>> + Send>;

type Prepare = dyn Fn(&Value) -> Result<Prepared, serde_json::Error> + Send + Sync;

/// One registered task type, with its types erased.
pub(crate) struct Registered {
    pub(crate) options: TaskTypeOptions,
    prepare: Box<Prepare>,
}

/// Every task type one runtime knows, by name.
#[derive(Default)]
pub(crate) struct Registry {
    types: BTreeMap<String, Registered>,
    /// The JSON Schema of each type's args, where one was given.
    schemas: BTreeMap<String, Value>,
}

/// `T` as a JSON Schema, derived by `schemars` (`#[derive(JsonSchema)]` beside `Deserialize`):
/// what [`crate::RuntimeBuilder::args_schema`] and [`TaskType::args_schema`] take. Doc
/// comments on the fields become their descriptions; `#[schemars(example = …)]` gives the
/// example the dashboard's launch form starts from.
///
/// ```
/// # #[cfg(feature = "schemars")] {
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Resize {
///     /// The image to resize.
///     path: String,
///     width: u32,
/// }
/// let schema = offstage::args_schema::<Resize>();
/// assert_eq!(schema["required"], serde_json::json!(["path", "width"]));
/// # }
/// ```
#[cfg(feature = "schemars")]
#[cfg_attr(docsrs, doc(cfg(feature = "schemars")))]
pub fn args_schema<T: schemars::JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.types.keys()).finish()
    }
}

fn output_to_json<O: Serialize>(output: O) -> Result<Value, TaskError> {
    serde_json::to_value(output).map_err(|e| {
        TaskError::new(
            "output",
            format!("the return value did not serialize to JSON: {e}"),
        )
    })
}

impl Registry {
    pub(crate) fn register<T: TaskType>(&mut self, task_type: T) {
        let task_type = Arc::new(task_type);
        let options = task_type.options();
        if let Some(schema) = task_type.args_schema() {
            self.schemas.insert(T::NAME.to_owned(), schema);
        }
        let prepare = move |args: &Value| -> Result<Prepared, serde_json::Error> {
            let args = T::Args::deserialize(args)?;
            let task_type = Arc::clone(&task_type);
            Ok(Box::new(move |ctx: Context| -> BoxFuture<'static, _> {
                Box::pin(async move { output_to_json(task_type.run(ctx, args).await?) })
            }))
        };
        self.types.insert(
            T::NAME.to_owned(),
            Registered {
                options,
                prepare: Box::new(prepare),
            },
        );
    }

    pub(crate) fn register_fn<A, O, F, Fut>(&mut self, name: &str, options: TaskTypeOptions, f: F)
    where
        A: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, TaskError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let prepare = move |args: &Value| -> Result<Prepared, serde_json::Error> {
            let args = A::deserialize(args)?;
            let f = Arc::clone(&f);
            Ok(Box::new(move |ctx: Context| -> BoxFuture<'static, _> {
                Box::pin(async move { output_to_json(f(ctx, args).await?) })
            }))
        };
        self.types.insert(
            name.to_owned(),
            Registered {
                options,
                prepare: Box::new(prepare),
            },
        );
    }

    /// Gives type `name` (registered before or after) the JSON Schema of its args.
    pub(crate) fn set_args_schema(&mut self, name: &str, schema: Value) {
        self.schemas.insert(name.to_owned(), schema);
    }

    /// The JSON Schema of type `name`'s args, if one was given.
    pub(crate) fn args_schema(&self, name: &str) -> Option<&Value> {
        self.schemas.get(name)
    }

    /// The types with a retry policy, and the policy.
    pub(crate) fn retry_policies(&self) -> std::collections::HashMap<String, Retry> {
        self.types
            .iter()
            .filter_map(|(name, t)| Some((name.clone(), t.options.retry?)))
            .collect()
    }

    /// The types with a concurrency limit, and the limit.
    pub(crate) fn limited(&self) -> Vec<(String, usize)> {
        self.types
            .iter()
            .filter_map(|(name, t)| Some((name.clone(), t.options.concurrency_limit? as usize)))
            .collect()
    }

    /// The types with a per-key limit: the limit per key, and the global limit if any.
    pub(crate) fn keyed(&self) -> Vec<crate::runtime::KeyLimit> {
        self.types
            .iter()
            .filter_map(|(name, t)| {
                Some(crate::runtime::KeyLimit {
                    name: name.clone(),
                    per_key: t.options.concurrency_per_key? as usize,
                    max_running: t.options.concurrency_limit.map(|n| n as usize),
                })
            })
            .collect()
    }

    /// True when some registered type runs in worker processes.
    pub(crate) fn any_isolated(&self) -> bool {
        self.types.values().any(|t| t.options.isolated)
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    pub(crate) fn get(&self, name: &str) -> Result<&Registered, Error> {
        self.types.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.names().collect();
            let known = if known.is_empty() {
                "none are registered: register one with RuntimeBuilder::task".to_owned()
            } else {
                format!("the registered ones are {}", known.join(", "))
            };
            Error::new(
                ErrorKind::UnknownTaskType,
                format!("no task type is named `{name}`; {known}"),
            )
        })
    }

    /// Checks `args` against the type named `name` and returns the body ready to run.
    pub(crate) fn prepare(&self, name: &str, args: &Value) -> Result<Prepared, Error> {
        self.get(name)?
            .prepare(args)
            .map_err(|e| invalid_args(name, args, e))
    }
}

/// The error for `args` that do not fit task type `name`.
pub(crate) fn invalid_args(name: &str, args: &Value, error: serde_json::Error) -> Error {
    Error::new(
        ErrorKind::InvalidArgs,
        format!(
            "the args do not fit task type `{name}`: {error}; args were {}",
            preview(args)
        ),
    )
}

impl Registered {
    pub(crate) fn prepare(&self, args: &Value) -> Result<Prepared, serde_json::Error> {
        (self.prepare)(args)
    }
}

/// At most 200 characters of a JSON value, for error messages.
fn preview(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 200 {
        return text;
    }
    let mut end = 200;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
