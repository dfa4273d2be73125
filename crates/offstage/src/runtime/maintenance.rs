//! Upkeep: heartbeats and kill requests, recovery of dead nodes' tasks, rejoining after this
//! node was declared dead, saving unsaved writes, and shutdown.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use chrono::{DateTime, Utc};

use super::live::{StopReason, StopRequest};
use super::Inner;
use crate::error::{Error, ErrorKind};
use crate::event::EventKind;
use crate::id::NodeId;
use crate::store::{NodeInfo, Rerun};
use crate::{LogLevel, LogLine, Status, TaskRecord};

/// Marks the tasks of dead nodes `missing` and announces them; those whose type has a retry
/// policy (here) that retries `missing`, with attempts left, are queued again instead, in the
/// same store step, and announced as launched once more.
pub(crate) async fn recover(rt: &Arc<Inner>) -> Result<(), Error> {
    let recovered = rt
        .store
        .recover(
            rt.node(),
            rt.clock.now(),
            rt.config.node_timeout,
            rt.rerun.clone(),
        )
        .await?;
    let now = rt.clock.now();
    let mut missing = false;
    for record in recovered {
        // The recovering node counts them: the dead node never will.
        rt.stats.ended(&record, now);
        let task = Arc::new(record);
        if task.status == Status::Queued {
            tracing::warn!(task = %task.id, name = %task.name, "task went missing with its node; its retry policy runs it again");
            let elsewhere = rt.registry.get(&task.name).is_err();
            rt.publish(task.id, EventKind::Launched { task });
            rt.wake_for_queued(elsewhere, false);
        } else {
            tracing::warn!(task = %task.id, name = %task.name, "task went missing with its node");
            rt.publish(task.id, EventKind::Finished { task });
            missing = true;
        }
    }
    if missing {
        // Their children that are not detached go with them, now rather than at the next
        // sweep; in the background, since a child running elsewhere takes its grace to stop.
        let rt = Arc::clone(rt);
        tokio::spawn(async move {
            if let Err(error) = super::children::sweep(&rt).await {
                tracing::warn!(%error, "stopping the children of tasks that went missing failed; the sweep will");
            }
        });
    }
    Ok(())
}

/// What recovery asks about each task of a dead node: run it again if its type's retry policy
/// retries `missing` and has attempts left (`None` when no type here has a policy).
pub(crate) fn rerun(registry: &crate::registry::Registry) -> Option<Rerun> {
    let policies = registry.retry_policies();
    if policies.is_empty() {
        return None;
    }
    Some(Arc::new(move |task: &TaskRecord, now: DateTime<Utc>| {
        let policy = policies.get(&task.name)?;
        if task.attempt >= policy.max_attempts || !policy.retries("missing") {
            return None;
        }
        let attempt = task.attempt.max(1);
        let delay = policy.jittered_delay(attempt);
        let line = LogLine {
            // The last number of this attempt's range: after any line the lost attempt wrote.
            seq: *crate::log::attempt_log_seqs(attempt).end(),
            at: now,
            level: LogLevel::Warn,
            message: format!(
                "[offstage] attempt {attempt} of {} went missing with its node; running again in {delay:.1?}",
                policy.max_attempts
            ),
        };
        Some((
            now + chrono::Duration::from_std(delay).unwrap_or_default(),
            line,
        ))
    }))
}

/// A tick every `period(config)`, skipping missed ticks rather than bursting.
fn ticker(
    rt: &Weak<Inner>,
    period: fn(&super::Config) -> std::time::Duration,
) -> Option<tokio::time::Interval> {
    let mut ticks = tokio::time::interval(period(&rt.upgrade()?.config));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(ticks)
}

pub(crate) async fn heartbeat_loop(rt: Weak<Inner>) {
    let Some(mut ticks) = ticker(&rt, |c| c.heartbeat_interval) else {
        return;
    };
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(rt) = rt.upgrade() else { return };
        if rt.shutting_down.load(Ordering::Acquire) {
            return;
        }
        apply_kill_requests(&rt).await;
        if let Err(error) = recover(&rt).await {
            tracing::warn!(%error, "recovering dead nodes' tasks failed");
        }
        if let Err(error) = rt.store.tidy().await {
            tracing::debug!(%error, "the store's housekeeping failed; it runs again next heartbeat");
        }
    }
}

/// Heartbeats, and stops the tasks other nodes asked to kill since the last one. A heartbeat
/// the store refuses because this node was declared dead makes it rejoin.
pub(crate) async fn apply_kill_requests(rt: &Inner) {
    if let Err(error) = heartbeat(rt).await {
        tracing::warn!(%error, "heartbeat failed");
    }
}

/// One heartbeat: a write to the store, and the kill requests it returns applied.
pub(crate) async fn heartbeat(rt: &Inner) -> Result<(), crate::Error> {
    let node = rt.node();
    let requests = match rt.store.heartbeat(node, rt.clock.now()).await {
        Ok(requests) => requests,
        Err(error) if error.kind() == ErrorKind::NodeDead => {
            rejoin(rt, node).await;
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    super::fleet::send_report(rt).await;
    super::fleet::refresh_paused(rt).await;
    for request in requests {
        if let Some(live) = rt.live(request.task_id) {
            let grace = request.grace.unwrap_or(rt.config.kill_grace);
            live.request_stop(StopRequest {
                reason: StopReason::Kill,
                grace,
            });
        }
    }
    Ok(())
}

/// What a node does once it learns (from a refused heartbeat, claim or direct start) that
/// another node declared it dead under id `dead`: that node has marked its running tasks
/// `missing` (or queued them again), so none of them is this node's any more. It registers
/// under a new id, so that what it claims and starts from now on is fenced apart from what it
/// lost, and stops every task it started as `dead` (cancel, then abort after the kill grace)
/// without recording anything for them: the store refuses their writes, and `finish` forgets
/// them (`executor::forget`). Concurrent callers rejoin once.
pub(crate) async fn rejoin(rt: &Inner, dead: NodeId) {
    let _one = rt.rejoining.lock().await;
    if rt.node() != dead {
        return; // Rejoined already.
    }
    let new = NodeId::new();
    let registered = rt
        .store
        .register_node(&NodeInfo {
            id: new,
            host: super::host_name(),
            pid: std::process::id(),
            started_at: rt.clock.now(),
        })
        .await;
    if let Err(error) = registered {
        // Nothing is claimed or started meanwhile (the store refuses `dead`); the next
        // heartbeat tries again.
        tracing::error!(%error, node = %dead, "this node was declared dead and could not rejoin; retrying at the next heartbeat");
        return;
    }
    rt.replace_node(dead, new);
    // Its row is gone already; this lets go of what the store still keeps for it (SQLite's
    // lock file).
    let _ = rt.store.deregister_node(dead).await;
    let lost: Vec<_> = rt
        .live
        .lock()
        .expect("live map poisoned")
        .values()
        .filter(|live| live.owner() == dead)
        .cloned()
        .collect();
    tracing::error!(
        node = %dead,
        rejoined_as = %new,
        tasks = lost.len(),
        "this node was declared dead by another node (no heartbeat within the node timeout: \
         was the process paused or the machine overloaded?); its tasks already read `missing` \
         or were queued again, so it stops them without recording anything, and rejoins as a \
         new node"
    );
    for live in lost {
        live.request_stop(StopRequest {
            reason: StopReason::Lost,
            grace: rt.config.kill_grace,
        });
    }
    rt.wake_all_claimers();
}

pub(crate) async fn flush_loop(rt: Weak<Inner>) {
    let Some(mut ticks) = ticker(&rt, |c| c.flush_interval) else {
        return;
    };
    loop {
        ticks.tick().await;
        let Some(rt) = rt.upgrade() else { return };
        flush(&rt).await;
    }
}

/// Saves the unsaved state and log lines of every dirty live task, in one store call.
pub(crate) async fn flush(rt: &Inner) {
    let dirty: Vec<_> = std::mem::take(&mut *rt.dirty.lock().expect("dirty list poisoned"))
        .into_iter()
        .filter_map(|live| live.upgrade())
        .collect();
    if dirty.is_empty() {
        return;
    }
    let mut guards = Vec::with_capacity(dirty.len());
    // By owner: after a rejoin, tasks started under the old id are still stopping, and the
    // store drops what they wrote.
    let mut batches: Vec<(NodeId, Vec<_>)> = Vec::new();
    for live in &dirty {
        guards.push(live.save_lock.lock().await);
        let pending = live.take_unsaved();
        if pending.state.is_some() || !pending.logs.is_empty() {
            let owner = live.owner();
            match batches.iter_mut().find(|(node, _)| *node == owner) {
                Some((_, batch)) => batch.push((live.id, pending)),
                None => batches.push((owner, vec![(live.id, pending)])),
            }
        }
    }
    for (node, batch) in batches {
        if let Err(error) = rt.store.save(node, batch).await {
            tracing::warn!(%error, "saving task state and logs failed; their final state is saved when they end");
        }
    }
    drop(guards);
}

pub(crate) async fn shutdown(rt: &Arc<Inner>) -> Result<(), Error> {
    rt.shutting_down.store(true, Ordering::Release);
    rt.slots.remind_claimer();
    let drain = tokio::time::sleep(rt.config.shutdown_drain);
    tokio::pin!(drain);
    let mut interrupted = false;
    loop {
        let ended = rt.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if rt.live.lock().expect("live map poisoned").is_empty() {
            break;
        }
        tokio::select! {
            () = ended => {}
            () = &mut drain, if !interrupted => {
                interrupted = true;
                let live: Vec<_> = rt.live.lock().expect("live map poisoned").values().cloned().collect();
                for task in live {
                    task.request_stop(StopRequest {
                        reason: StopReason::Interrupted,
                        grace: std::time::Duration::ZERO,
                    });
                }
            }
        }
    }
    flush(rt).await;
    super::stats::flush(rt, true).await;
    rt.store.deregister_node(rt.node()).await
}
