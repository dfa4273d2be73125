//! Offstage: background tasks for Rust web applications, done completely.
//!
//! A request handler launches a named, long-running **task** and gets a [`Task`] handle back.
//! From anywhere, anyone can read the task's live state and logs, get its return value or
//! error, see whether it completed, failed, was killed or went missing, and kill it for real.
//! Tasks and their history live in a durable **store** (SQLite by default) and survive
//! restarts. Every change is an [`Event`] on one stream.
//!
//! The pieces, each in the module named for it:
//!
//! - [`registry`]: task types, the async functions tasks run;
//! - [`Runtime`]: runs tasks, kills them, recovers after restarts;
//! - [`Task`] and [`TaskRecord`]: the handle and the record;
//! - [`Context`]: what a running task holds (state writer, log, cancellation);
//! - [`Status`]: the lifecycle;
//! - [`schedule`]: task types launched on the ticks of a cron expression;
//! - [`event`]: the event stream;
//! - [`shared`]: shared state, named JSON documents under a lock held across nodes;
//! - [`store`]: the durable record, one trait and its backends;
//! - [`limits`]: how long keys, owners and names may be, and what they may not contain.
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
//!                 ctx.checkpoint()?;
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

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod context;
pub mod error;
pub mod event;
pub mod id;
pub mod limits;
pub mod log;
pub mod registry;
pub mod runtime;
pub mod schedule;
pub mod shared;
pub mod status;
pub mod store;
pub mod task;
#[cfg(any(test, feature = "testing"))]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod worker;

pub use context::Context;
pub use error::{Error, ErrorKind, TaskError};
pub use event::{Event, EventKind, RecvError, Subscription};
pub use id::{NodeId, TaskId};
pub use log::{LogLevel, LogLine};
#[cfg(feature = "schemars")]
#[cfg_attr(docsrs, doc(cfg(feature = "schemars")))]
pub use registry::args_schema;
pub use registry::{Retry, TaskType, TaskTypeOptions};
pub use runtime::{
    Config, Isolation, Launch, LaunchOptions, OnConflict, Runtime, RuntimeBuilder, WorkerInfo,
};
pub use schedule::{Schedule, ScheduleRecord};
pub use shared::{Shared, SharedChange, SharedGuard, SharedLock, SharedRecord, SharedWatch};
pub use status::Status;
pub use task::{KillOnDrop, ListFilter, Task, TaskRecord};
pub use worker::isolated::isolation_entry;
#[cfg(feature = "worker")]
#[cfg_attr(docsrs, doc(cfg(feature = "worker")))]
pub use worker::Worker;
