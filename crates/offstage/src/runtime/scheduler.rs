//! The scheduler: claims queued tasks from the store whenever this node has free slots.
//!
//! Launches that can start at once skip it (see `launch.rs`). It wakes when a task is queued or
//! a slot frees up, at the next `run_at` of a delayed task, and every poll interval to pick up
//! tasks queued by other processes sharing the database.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{executor, Inner};

/// Most tasks claimed in one store call.
const CLAIM_BATCH: usize = 256;

pub(crate) async fn run(rt: Weak<Inner>) {
    loop {
        let Some(inner) = rt.upgrade() else { return };
        if inner.is_shutting_down() {
            return;
        }
        let wait = claim_once(&inner).await;
        // Register for a wake-up before letting go of the runtime, so none is lost.
        let woken = Arc::clone(&inner);
        let notified = woken.wake.notified();
        drop(inner);
        match wait {
            Some(Duration::ZERO) => continue,
            Some(wait) => {
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
            None => notified.await,
        }
    }
}

/// Claims what fits; returns how long to sleep (`None`: until woken).
async fn claim_once(rt: &Arc<Inner>) -> Option<Duration> {
    let mut reserved = rt.handoff.swap(0, Ordering::AcqRel);
    while reserved < CLAIM_BATCH && rt.try_reserve_slot() {
        reserved += 1;
    }
    if reserved == 0 {
        // Full: a finishing task frees a slot and wakes us.
        return None;
    }
    let now = rt.clock.now();
    let node = rt.node();
    let mut claimed = Vec::new();
    if !rt.unlimited.is_empty() {
        match rt.store.claim(node, &rt.unlimited, now, reserved).await {
            Ok(records) => claimed = records,
            Err(error) if error.kind() == crate::ErrorKind::NodeDead => {
                rt.slots.fetch_sub(reserved, Ordering::AcqRel);
                super::maintenance::rejoin(rt, node).await;
                return Some(Duration::ZERO);
            }
            Err(error) => {
                tracing::warn!(%error, "claiming queued tasks failed; retrying");
                rt.slots.fetch_sub(reserved, Ordering::AcqRel);
                return Some(rt.config.poll_interval);
            }
        }
    }
    // Types with a concurrency limit, one by one, with what is left.
    for (name, max_running) in &rt.limited {
        let room = reserved - claimed.len();
        if room == 0 {
            break;
        }
        match rt
            .store
            .claim_limited(node, name, now, room, *max_running)
            .await
        {
            Ok(records) => claimed.extend(records),
            Err(error) if error.kind() == crate::ErrorKind::NodeDead => {
                super::maintenance::rejoin(rt, node).await;
                break;
            }
            Err(error) => tracing::warn!(%error, task_type = %name, "claiming failed; retrying"),
        }
    }
    if rt.node() != node {
        // Declared dead during this round: what it claimed before the store refused it was
        // taken over by recovery with the rest, so none of it starts here.
        claimed.clear();
    }
    let full = claimed.len() == reserved;
    rt.backlog.store(full, Ordering::Release);
    rt.slots
        .fetch_sub(reserved - claimed.len(), Ordering::AcqRel);
    for record in claimed {
        executor::start(rt, record, None);
    }
    if full {
        return Some(Duration::ZERO);
    }
    let next = match rt.store.next_run_at(&rt.names).await {
        Ok(next) => next,
        Err(error) => {
            tracing::warn!(%error, "reading the next run_at failed");
            None
        }
    };
    let poll = rt.config.poll_interval;
    Some(match next {
        Some(at) if at > now => (at - rt.clock.now()).to_std().unwrap_or_default().min(poll),
        _ => poll,
    })
}
