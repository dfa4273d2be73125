//! The **fleet**: every node sharing a store, as the store knows it, and the task types
//! paused on all of them.
//!
//! A node writes a [`NodeReport`] to the store with its heartbeats (what it serves, its
//! slots, what runs there, its connected workers and isolated processes), so any node can
//! answer "who can run this task type, and is there room?" ([`crate::Runtime::nodes`], and
//! the waiting reasons of [`crate::Waiting`]). A node declared dead is removed from the store
//! by recovery, its report with it: a node that stopped heartbeating shows its last report,
//! with an old `heartbeat_at`, until then.
//!
//! ```no_run
//! # async fn demo(rt: offstage::Runtime) -> Result<(), offstage::Error> {
//! rt.pause_task_type("emails.send", false).await?; // queued emails wait, on every node
//! for node in rt.nodes().await? {
//!     println!("{} on {}: last heartbeat {}", node.id, node.host, node.heartbeat_at);
//! }
//! rt.resume_task_type("emails.send").await?;
//! # Ok(()) }
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{NodeId, TaskId};

/// A task type paused on every node: its queued tasks are not claimed until it is resumed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PausedTaskType {
    /// The task type's name.
    pub name: String,
    /// When it was paused (a second pause keeps the first time).
    pub paused_at: DateTime<Utc>,
}

/// A node's registration and its latest report, as [`crate::Runtime::nodes`] reads them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeRecord {
    /// The node's id.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: NodeId,
    /// The machine it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its latest heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// What it reported with its latest heartbeat; `None` before its first report (a node
    /// that has just started, or one written by an Offstage that did not report).
    pub report: Option<NodeReport>,
}

/// What a node reports about itself with its heartbeats.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeReport {
    /// The task types it runs in-process (or in its isolated processes), sorted.
    pub task_types: Vec<String>,
    /// How many tasks it runs at once (`Config::max_concurrency`).
    pub slots: usize,
    /// How many of its slots are taken.
    pub running: usize,
    /// The remote workers connected to it.
    pub workers: Vec<WorkerReport>,
    /// Its isolated worker processes, idle or running a task.
    pub isolated: Vec<IsolatedProcess>,
}

/// A remote worker connected to a node, as the node reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerReport {
    /// The name it gave, or its address.
    pub name: String,
    /// The task types it serves.
    pub task_types: Vec<String>,
    /// How many tasks it runs at once.
    pub concurrency: u32,
    /// How many it is running.
    pub running: usize,
    /// When it connected.
    pub connected_at: DateTime<Utc>,
}

/// An isolated worker process of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IsolatedProcess {
    /// Its process id, on the node's machine.
    pub pid: u32,
    /// The task it runs; `None` while it waits idle for the next one.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub task_id: Option<TaskId>,
}

impl NodeReport {
    /// True when this node, or one of its workers, serves task type `name`.
    pub fn serves(&self, name: &str) -> bool {
        self.task_types.iter().any(|t| t == name)
            || self
                .workers
                .iter()
                .any(|w| w.task_types.iter().any(|t| t == name))
    }

    /// True when something that serves `name` here has a free slot: the node itself (for a
    /// type it runs) or a worker that serves it.
    pub fn has_room_for(&self, name: &str) -> bool {
        let own = self.task_types.iter().any(|t| t == name) && self.running < self.slots;
        own || self
            .workers
            .iter()
            .any(|w| w.task_types.iter().any(|t| t == name) && w.running < w.concurrency as usize)
    }
}

/// What [`crate::Runtime::pause_task_type`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Paused {
    /// The task type, now paused.
    #[serde(flatten)]
    pub task_type: PausedTaskType,
    /// The running tasks of the type it asked to kill (asked for `kill_running`): each ends
    /// `killed` through the usual kill, after its grace period at the latest.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub killing: Vec<TaskId>,
}
