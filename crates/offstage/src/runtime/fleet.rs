//! The **fleet** as the runtime offers it: pausing and resuming a task type on every node,
//! the nodes and what they serve, and this node's report, written with its heartbeats.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use super::Inner;
use crate::error::{Error, ErrorKind};
use crate::fleet::{NodeRecord, NodeReport, Paused, PausedTaskType, WorkerReport};
use crate::id::NodeId;
use crate::status::Status;
use crate::store::Notice;
use crate::task::ListFilter;

impl super::Runtime {
    /// Pauses task type `name` on every node: from now on no node claims its queued tasks
    /// (they wait, and [`super::Runtime::waiting`] says why) until it is resumed, across
    /// restarts. Launches are still accepted. Its running tasks go on, unless `kill_running`:
    /// then each is killed as [`super::Runtime::kill`] does, and `killing` lists them (this
    /// returns without waiting for them to end).
    ///
    /// The type must be one this node or a live node serves, or already paused;
    /// [`ErrorKind::NotFound`] otherwise.
    pub async fn pause_task_type(&self, name: &str, kill_running: bool) -> Result<Paused, Error> {
        let rt = &self.inner;
        crate::limits::check_text("task type name", name, crate::limits::MAX_NAME_CHARS)?;
        if !known(rt, name).await? {
            return Err(unknown(rt, name).await);
        }
        // Here first, so that no launch on this node starts one directly from the moment the
        // pause commits.
        rt.fleet.set_paused(name, true);
        let task_type = match rt.store.pause_task_type(name, rt.clock.now()).await {
            Ok(task_type) => task_type,
            Err(error) => {
                refresh_paused(rt).await;
                return Err(error);
            }
        };
        rt.tell_others(Notice::TaskTypes);
        let mut killing = Vec::new();
        if kill_running {
            // Claims stopped with the pause, so this list is complete once read.
            let mut filter = ListFilter {
                name: Some(name.to_owned()),
                status: Some(Status::Running),
                limit: Some(ListFilter::MAX_LIMIT),
                ..ListFilter::default()
            };
            loop {
                let page = rt.store.list(&filter).await?;
                killing.extend(page.iter().map(|t| t.id));
                if page.len() < ListFilter::MAX_LIMIT {
                    break;
                }
                filter.before = page.last().map(|t| t.id);
            }
            for id in &killing {
                let inner = Arc::clone(rt);
                let id = *id;
                tokio::spawn(async move {
                    if let Err(error) = inner.kill(id, None).await {
                        tracing::warn!(%error, task = %id, "killing a task of a paused type failed");
                    }
                });
            }
        }
        tracing::info!(
            task_type = name,
            killing = killing.len(),
            "task type paused"
        );
        Ok(Paused { task_type, killing })
    }

    /// Resumes task type `name` on every node: its queued tasks are claimed again at once
    /// (every node's claimer is woken; one that misses the notice claims at its next poll).
    /// Resuming a type that is not paused changes nothing; a type nobody serves and that is
    /// not paused is [`ErrorKind::NotFound`].
    pub async fn resume_task_type(&self, name: &str) -> Result<(), Error> {
        let rt = &self.inner;
        crate::limits::check_text("task type name", name, crate::limits::MAX_NAME_CHARS)?;
        if !rt.store.resume_task_type(name).await? && !known(rt, name).await? {
            return Err(unknown(rt, name).await);
        }
        rt.fleet.set_paused(name, false);
        rt.wake_all_claimers();
        rt.tell_others(Notice::TaskTypes);
        rt.tell_others(Notice::Queued);
        tracing::info!(task_type = name, "task type resumed");
        Ok(())
    }

    /// The task types paused on every node, by name.
    pub async fn paused_task_types(&self) -> Result<Vec<PausedTaskType>, Error> {
        self.inner.store.paused_task_types().await
    }

    /// Every node registered in the store, oldest first, with what it last reported (this
    /// node's own report as it is now). A node that died shows its last heartbeat until
    /// recovery removes it, within the node timeout.
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, Error> {
        nodes(&self.inner).await
    }

    /// How long a node may go without a heartbeat before another declares it dead
    /// (`Config::node_timeout`): a node whose `heartbeat_at` is older is dead, or about to be.
    pub fn node_timeout(&self) -> std::time::Duration {
        self.inner.config.node_timeout
    }

    /// What this node would report now (see [`NodeReport`]).
    pub fn node_report(&self) -> NodeReport {
        report(&self.inner)
    }
}

/// The nodes in the store, this one's report replaced by the current one.
pub(crate) async fn nodes(rt: &Inner) -> Result<Vec<NodeRecord>, Error> {
    let me = rt.node();
    let mut nodes = rt.store.nodes().await?;
    for node in &mut nodes {
        if node.id == me {
            node.report = Some(report(rt));
        }
    }
    Ok(nodes)
}

/// True when `name` is a task type some node serves, or paused.
async fn known(rt: &Inner, name: &str) -> Result<bool, Error> {
    if rt.can_launch(name) {
        return Ok(true);
    }
    let served = rt
        .store
        .nodes()
        .await?
        .iter()
        .any(|n| n.report.as_ref().is_some_and(|r| r.serves(name)));
    Ok(served
        || rt
            .store
            .paused_task_types()
            .await?
            .iter()
            .any(|p| p.name == name))
}

/// The error for a task type that no node serves: the ones that are served.
async fn unknown(rt: &Inner, name: &str) -> Error {
    let mut names: Vec<String> = rt.names.clone();
    names.extend(rt.workers.task_types());
    if let Ok(nodes) = rt.store.nodes().await {
        for report in nodes.into_iter().filter_map(|n| n.report) {
            names.extend(report.task_types);
            names.extend(report.workers.into_iter().flat_map(|w| w.task_types));
        }
    }
    names.sort();
    names.dedup();
    let known = if names.is_empty() {
        "no node serves any task type".to_owned()
    } else {
        format!("the task types served are {}", names.join(", "))
    };
    Error::new(
        ErrorKind::NotFound,
        format!(
            "no node serves a task type named `{name}` and it is not paused: check the name \
             ({known}; `GET /api/task-types` lists them)"
        ),
    )
}

/// This node's report as of now.
pub(crate) fn report(rt: &Inner) -> NodeReport {
    let workers = rt
        .workers
        .list()
        .into_iter()
        .map(|w| WorkerReport {
            name: w.name,
            task_types: w.task_types,
            concurrency: w.concurrency,
            running: w.running,
            connected_at: w.connected_at,
        })
        .collect();
    // The tasks that hold one of this node's slots: not those on remote workers (see
    // `remote.rs`), nor those waiting for a signal (see `signals.rs`).
    let running = rt
        .live
        .lock()
        .expect("live map poisoned")
        .values()
        .filter(|task| task.holds_slot())
        .count();
    NodeReport {
        task_types: rt.names.clone(),
        slots: rt.config.max_concurrency,
        running,
        workers,
        isolated: rt.isolation.processes(),
    }
}

/// This node's side of the fleet (`Inner::fleet`).
#[derive(Debug, Default)]
pub(crate) struct FleetHere {
    /// The report this node last wrote, and under which id: a report is written only when
    /// it changed, so an idle node's heartbeat stays one write.
    last_report: Mutex<Option<(NodeId, NodeReport)>>,
    /// The paused task types as this node last read them: on start, on every heartbeat, on
    /// a pause or resume here and on another node's notice of one. A launch of a type in it
    /// goes to the queue instead of starting at once; the claims read the store itself, so
    /// this set being behind can only let a launch start directly for that long.
    paused: Mutex<BTreeSet<String>>,
}

impl FleetHere {
    /// True when `name` is paused, as this node last read it.
    pub(crate) fn is_paused(&self, name: &str) -> bool {
        let paused = self.paused.lock().expect("paused set poisoned");
        !paused.is_empty() && paused.contains(name)
    }

    fn set_paused(&self, name: &str, paused: bool) {
        let mut set = self.paused.lock().expect("paused set poisoned");
        if paused {
            set.insert(name.to_owned());
        } else {
            set.remove(name);
        }
    }
}

/// Reads the paused task types from the store into this node's set.
pub(crate) async fn refresh_paused(rt: &Inner) {
    match rt.store.paused_task_types().await {
        Ok(paused) => {
            *rt.fleet.paused.lock().expect("paused set poisoned") =
                paused.into_iter().map(|p| p.name).collect();
        }
        Err(error) => tracing::warn!(%error, "reading the paused task types failed"),
    }
}

/// Writes this node's report to the store if it changed since the last one written.
pub(crate) async fn send_report(rt: &Inner) {
    let node = rt.node();
    let now = report(rt);
    let last = rt
        .fleet
        .last_report
        .lock()
        .expect("report poisoned")
        .clone();
    if last.is_some_and(|(id, last)| id == node && last == now) {
        return;
    }
    match rt.store.report_node(node, &now).await {
        Ok(()) => *rt.fleet.last_report.lock().expect("report poisoned") = Some((node, now)),
        Err(error) => tracing::warn!(%error, "writing this node's report failed"),
    }
}
