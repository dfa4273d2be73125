//! The **cluster**: what this node tells the other nodes on its database, and what it hears
//! from them.
//!
//! Every event this node publishes, every task it queues and every kill it asks of another
//! node is a [`Notice`] handed to the announcer, which sends whatever queued up in one
//! [`Store::notify`](crate::store::Store::notify) call, in order. The listener takes the other
//! nodes' notices: their events go on this node's bus (so `rt.events()`, SSE and
//! `Task::wait` see tasks on every node live), a queued task wakes the claimer, a signal for
//! a task here wakes its wait, a kill for a task here stops it, a shared document's change or
//! release wakes this node's lockers and reaches its watchers. Notices are hints: when the listener reports it may have missed some,
//! the node re-polls the queue and its kill requests at once.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::mpsc;

use super::live::{StopReason, StopRequest};
use super::{maintenance, Inner};
use crate::store::{Notice, Store};

/// Most notices in one `notify` call, so one slow call never holds an unbounded batch.
const MAX_BATCH: usize = 2048;

/// Sends this node's notices, batched, until the runtime is dropped.
/// Starts announcing this node's notices to the others (see `announce_loop`); send them here.
pub(crate) fn announcer(
    store: std::sync::Arc<dyn Store>,
    node: crate::NodeId,
) -> mpsc::UnboundedSender<Notice> {
    let (announce, notices) = mpsc::unbounded_channel();
    tokio::spawn(announce_loop(store, node, notices));
    announce
}

async fn announce_loop(
    store: std::sync::Arc<dyn Store>,
    node: crate::NodeId,
    mut notices: mpsc::UnboundedReceiver<Notice>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while notices.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // One `Queued` says all there is to say: receivers claim whatever is due.
        let mut queued = false;
        batch.retain(|notice| match notice {
            Notice::Queued if queued => false,
            Notice::Queued => {
                queued = true;
                true
            }
            _ => true,
        });
        if let Err(error) = store.notify(node, std::mem::take(&mut batch)).await {
            // Receivers fall back to polling; say so once per failure, not per notice.
            tracing::warn!(%error, "telling other nodes failed; they will notice by polling");
        }
    }
}

/// Applies other nodes' notices to this node until the runtime or the listener goes away.
pub(crate) async fn listen_loop(rt: Weak<Inner>, mut notices: mpsc::UnboundedReceiver<Notice>) {
    let mut batch = Vec::new();
    while notices.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let Some(rt) = rt.upgrade() else { return };
        for notice in batch.drain(..) {
            apply(&rt, notice).await;
        }
    }
}

async fn apply(rt: &Inner, notice: Notice) {
    match notice {
        Notice::Queued => {
            // It may be for a type a worker connected here serves.
            rt.wake_all_claimers();
        }
        Notice::Kill {
            task_id,
            node,
            grace_ms,
        } if node == rt.node() => {
            if let Some(live) = rt.live(task_id) {
                live.request_stop(StopRequest {
                    reason: StopReason::Kill,
                    grace: grace_ms.map_or(rt.config.kill_grace, Duration::from_millis),
                });
            }
        }
        Notice::Event { node, event } if node != rt.origin => {
            // A task of a limited type that ends elsewhere frees a place here too.
            if let crate::event::EventKind::Finished { task } = &event.kind {
                if rt.claims.is_limited(&task.name) {
                    rt.slots.wake_claimer();
                    rt.limit_freed.freed(&task.name);
                }
            }
            rt.events.publish(event.task_id, event.at, event.kind);
        }
        Notice::Signal { task_id, .. } => {
            if let Some(live) = rt.live(task_id) {
                live.signal_sent();
            }
        }
        Notice::Schedules => rt.schedules_changed.notify_one(),
        Notice::TaskTypes => super::fleet::refresh_paused(rt).await,
        Notice::Shared {
            name,
            version,
            value,
        } => rt.shared.heard(name, version, value),
        Notice::Limiter { .. } => rt.limiters.heard(),
        Notice::Reconnected => {
            rt.schedules_changed.notify_one();
            rt.shared.wake_all();
            rt.limiters.heard();
            super::fleet::refresh_paused(rt).await;
            tracing::info!(
                "the notice listener reconnected; re-polling the queue and kill requests"
            );
            rt.slots.wake_claimer();
            maintenance::apply_kill_requests(rt).await;
        }
        _ => {}
    }
}
