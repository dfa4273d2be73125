//! Offstage: background tasks for Rust web applications, done completely.
//!
//! A request handler launches a named, long-running **task** and gets a [`Task`] handle back.
//! From anywhere, anyone can read the task's live state and logs, get its return value or
//! error, see whether it completed, failed, was killed or went missing, and kill it for real.
//! Tasks and their history live in a durable **store** (SQLite by default) and survive
//! restarts. Every change is an [`Event`] on one stream.
//!
//! The pieces:
//!
//! - [`Runtime`] and [`RuntimeBuilder`]: run tasks on this node, kill them, recover after
//!   restarts;
//! - [`TaskType`], [`TaskTypeOptions`] and [`Retry`]: task types, the async functions tasks run;
//! - [`Task`] and [`TaskRecord`]: the read-only handle and the durable record;
//! - [`Context`]: what a running task holds (the only writer of its state, its log,
//!   cancellation);
//! - [`Status`]: the lifecycle;
//! - [`Event`] and [`Subscription`]: every change on one stream ([`Runtime::events`],
//!   [`Runtime::follow`]);
//! - [`Schedule`]: task types launched on the ticks of a cron expression;
//! - [`Shared`]: named JSON documents under a lock held across nodes;
//! - [`SignalRecord`]: named, durable messages a task waits for ([`Context::wait_signal`],
//!   [`Runtime::signal`]);
//! - [`Stats`]: what each task type did, minute by minute ([`Runtime::stats`]);
//! - `Worker` (feature `worker`): a process that serves task types for a node;
//! - [`store`]: the durable record, one trait and its backends: the module to read to write
//!   another backend;
//! - [`limits`]: how long keys, owners and names may be, and what they may not contain;
//! - [`TraceContext`]: the W3C trace context a task was launched in (OpenTelemetry spans per
//!   attempt with feature `otel`), and [`TypeTimings`]: this node's histograms of queue wait, run
//!   time and end-to-end time per task type ([`Runtime::timings`]).
//!
//! ```no_run
//! use offstage::{Context, Runtime, TaskError};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), offstage::Error> {
//!     let rt = Runtime::builder()
//!         .sqlite("offstage.db")
//!         .task("count", |ctx: Context, to: u64| async move {
//!             for done in 1..=to {
//!                 ctx.check_cancelled()?;
//!                 ctx.set_state(&serde_json::json!({ "done": done, "total": to }))?;
//!                 tokio::time::sleep(std::time::Duration::from_millis(100)).await;
//!             }
//!             Ok::<_, TaskError>(to)
//!         })
//!         .build()
//!         .await?;
//!     let task = rt.launch_json("count", serde_json::json!(10)).await?;
//!     println!("{} is {}", task.id(), task.status().await?);
//!     task.kill().await?;
//!     rt.shutdown().await
//! }
//! ```
//!
//! # Feature flags
//!
//! | Feature    | Default | What it turns on |
//! |------------|---------|------------------|
//! | `sqlite`   | yes     | The SQLite store ([`RuntimeBuilder::sqlite`]), through `rusqlite` with SQLite built in. |
//! | `postgres` | no      | The PostgreSQL store (`RuntimeBuilder::postgres`), through `sqlx`: many nodes on one database. |
//! | `worker`   | no      | `Worker`: a process that serves task types for a node over a WebSocket. |
//! | `testing`  | no      | `offstage::testing`: run a task inline, wait for an event, and the store conformance suite. |
//! | `openapi`  | no      | OpenAPI schemas (`utoipa`) for the public records, for servers that document their API. |
//! | `schemars` | no      | `args_schema::<T>()`: a task type's args as JSON Schema, derived with `schemars`. |
//! | `otel`     | no      | OpenTelemetry spans per attempt, in the trace the task was launched in (`tracing-opentelemetry`). |
//!
//! With `sqlite` off, [`RuntimeBuilder::database`] takes only `postgres://` URLs; with both
//! off, only a store given to [`RuntimeBuilder::store`].

// Every public item documented, nothing `pub` that is not reachable from the crate root, and
// nothing reachable that cannot be named: the public surface is what this file exports, and
// all of it is promised.
#![warn(missing_docs, unreachable_pub, unnameable_types)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod action;
mod concurrency_key;
mod context;
mod error;
mod event;
mod fleet;
mod id;
mod limiter;
pub mod limits;
mod log;
mod registry;
mod runtime;
mod schedule;
mod shared;
mod signal;
mod stats;
mod status;
pub mod store;
mod task;
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod timings;
mod trace;
mod waiting;
mod worker;

pub use action::{ActionRecord, ActionStatus, Bulk, BulkVerb};
pub use concurrency_key::{ConcurrencyKey, KeyCount};
pub use context::Context;
pub use error::{Error, ErrorKind, TaskError};
pub use event::{Event, EventKind, RecvError, Subscription};
pub use fleet::{IsolatedProcess, NodeRecord, NodeReport, Paused, PausedTaskType, WorkerReport};
pub use id::{ActionId, NodeId, TaskId};
pub use limiter::{
    Acquire, HoldRequest, Limit, Limiter, LimiterHold, LimiterPermit, LimiterRecord,
};
pub use log::{LogLevel, LogLimits, LogLine};
#[cfg(feature = "schemars")]
#[cfg_attr(docsrs, doc(cfg(feature = "schemars")))]
pub use registry::args_schema;
pub use registry::{Retry, TaskType, TaskTypeOptions};
pub use runtime::{
    Action, ChildEnds, Config, Isolation, Launch, LaunchOptions, OnConflict, RerunOptions,
    Retention, Runtime, RuntimeBuilder, WorkerInfo,
};
pub use schedule::{Schedule, ScheduleRecord};
pub use shared::{Shared, SharedChange, SharedGuard, SharedLock, SharedRecord, SharedWatch};
pub use signal::{SignalRecord, SignalSent};
pub use stats::{
    Stats, StatsRow, StatsTotals, StatsWindow, TypeStats, WaitHistogram, WAIT_BUCKETS,
};
pub use status::Status;
pub use store::Purge;
pub use task::{KillOnDrop, ListFilter, Task, TaskRecord};
pub use timings::{Histogram, TypeTimings, TIMING_BUCKETS};
pub use trace::{TraceContext, MAX_TRACESTATE_CHARS};
pub use waiting::{Waiting, WaitingCode};
pub use worker::isolated::isolation_entry;
pub use worker::protocol::ProtocolError;
#[cfg(feature = "worker")]
#[cfg_attr(docsrs, doc(cfg(feature = "worker")))]
pub use worker::Worker;

/// The examples of docs/composing.md, compiled as doctests so the page cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/composing.md")]
mod composing_doc {}
