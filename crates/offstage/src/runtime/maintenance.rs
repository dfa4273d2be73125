//! Upkeep: heartbeats and kill requests, recovery of dead nodes' tasks, saving unsaved writes,
//! and shutdown.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::live::{StopReason, StopRequest};
use super::Inner;
use crate::error::Error;
use crate::event::EventKind;

/// Marks the tasks of dead nodes `missing` and announces them; queues again those whose type
/// has a retry policy (here) that retries `missing` and attempts left.
pub(crate) async fn recover(rt: &Inner) -> Result<(), Error> {
    let recovered = rt
        .store
        .recover(rt.node, rt.clock.now(), rt.config.node_timeout)
        .await?;
    for record in recovered {
        tracing::warn!(task = %record.id, name = %record.name, "task went missing with its node");
        let record = match requeue(rt, &record).await {
            Some(queued) => {
                // Announced as `launched` once more, like any retry.
                rt.publish(
                    queued.id,
                    EventKind::Launched {
                        task: Arc::new(queued),
                    },
                );
                rt.wake_for_queued(rt.registry.get(&record.name).is_err(), false);
                continue;
            }
            None => record,
        };
        rt.publish(
            record.id,
            EventKind::Finished {
                task: Arc::new(record),
            },
        );
    }
    Ok(())
}

/// Queues `missing` task `record` again if its type's retry policy says so. Only the node that
/// marked it missing gets here (recovery returns each task once), so it is queued once; should
/// this node die first, the task stays `missing`, which is still the truth.
async fn requeue(rt: &Inner, record: &crate::TaskRecord) -> Option<crate::TaskRecord> {
    let policy = rt.registry.get(&record.name).ok()?.options.retry?;
    if record.attempt >= policy.max_attempts || !policy.retries("missing") {
        return None;
    }
    let delay = policy.jittered_delay(record.attempt.max(1));
    let now = rt.clock.now();
    let log = crate::LogLine {
        // The last number of this attempt's range: after any line the lost attempt wrote.
        seq: u64::from(record.attempt.max(1)) << 32,
        at: now,
        level: crate::LogLevel::Warn,
        message: format!(
            "[offstage] attempt {} of {} went missing with its node; running again in {delay:.1?}",
            record.attempt, policy.max_attempts
        ),
    };
    let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
    match rt.store.requeue_missing(record.id, at, log).await {
        Ok(queued) => queued,
        Err(error) => {
            tracing::warn!(task = %record.id, %error, "queueing a missing task again failed; it stays missing");
            None
        }
    }
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
    }
}

/// Heartbeats, and stops the tasks other nodes asked to kill since the last one.
pub(crate) async fn apply_kill_requests(rt: &Inner) {
    match rt.store.heartbeat(rt.node, rt.clock.now()).await {
        Ok(requests) => {
            for request in requests {
                if let Some(live) = rt.live(request.task_id) {
                    let grace = request.grace.unwrap_or(rt.config.kill_grace);
                    live.request_stop(StopRequest {
                        reason: StopReason::Kill,
                        grace,
                    });
                }
            }
        }
        Err(error) => tracing::warn!(%error, "heartbeat failed"),
    }
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
    let mut batch = Vec::with_capacity(dirty.len());
    for live in &dirty {
        guards.push(live.save_lock.lock().await);
        let pending = live.take_unsaved();
        if pending.state.is_some() || !pending.logs.is_empty() {
            batch.push((live.id, pending));
        }
    }
    if batch.is_empty() {
        return;
    }
    if let Err(error) = rt.store.save(batch).await {
        tracing::warn!(%error, "saving task state and logs failed; their final state is saved when they end");
    }
    drop(guards);
}

pub(crate) async fn shutdown(rt: &Arc<Inner>) -> Result<(), Error> {
    rt.shutting_down.store(true, Ordering::Release);
    rt.wake.notify_one();
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
    rt.store.deregister_node(rt.node).await
}
