//! **Workers**: where a task runs when it does not run inside the node's own tokio runtime.
//!
//! A worker connects to a node, says which task types it serves and how many tasks it runs at
//! once, and then runs what the node assigns, reporting state, log lines and the outcome. The
//! node keeps owning each task: it records every change, enforces kills and timeouts, and marks
//! a worker's tasks `missing` when the worker goes away. [`protocol`] has the messages; the
//! document is `docs/worker-protocol.md`.

pub(crate) mod isolated;
pub(crate) mod protocol;
#[cfg(feature = "worker")]
mod remote;
pub(crate) mod session;
pub(crate) mod task;

#[cfg(feature = "worker")]
#[cfg_attr(docsrs, doc(cfg(feature = "worker")))]
pub use remote::Worker;
