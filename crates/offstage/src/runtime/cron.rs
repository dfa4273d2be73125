//! The **cron** loop: launches the tasks of schedules (see [`crate::Schedule`]) when their ticks come.
//!
//! Every node runs one. It reads the schedules from the store, sleeps until the earliest next
//! tick among those whose task type this node can launch, and offers each due tick to the
//! store, which lets exactly one node launch it. It re-reads the schedules when one changes
//! (here, or on another node by notice) and every [`RELOAD`] in case a notice was lost.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::launch::Launch;
use super::Inner;
use crate::error::Error;
use crate::schedule::{self, Fired, ScheduleRecord};

/// Longest the cron loop goes without re-reading the schedules.
const RELOAD: Duration = Duration::from_secs(10);

/// How soon a tick that could not be offered (the store failed) is offered again.
const RETRY: Duration = Duration::from_secs(1);

pub(crate) async fn run(rt: Weak<Inner>) {
    let Some(started) = rt.upgrade().map(|rt| rt.clock.now()) else {
        return;
    };
    // Per schedule, the latest tick this node has dealt with (launched, seen launched by
    // another node, or passed while paused). Ticks before the node started are not made up.
    let mut handled: HashMap<String, DateTime<Utc>> = HashMap::new();
    loop {
        let Some(inner) = rt.upgrade() else { return };
        if inner.is_shutting_down() {
            return;
        }
        let wait = match inner.store.schedules().await {
            Ok(schedules) => tick(&inner, schedules, started, &mut handled).await,
            Err(error) => {
                tracing::warn!(%error, "reading the schedules failed; trying again");
                RETRY
            }
        };
        // Register for a wake-up before letting go of the runtime, so none is lost.
        let woken = Arc::clone(&inner);
        let changed = woken.schedules_changed.notified();
        drop(inner);
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Offers every due tick; returns how long until the next one (or the next reload).
async fn tick(
    rt: &Arc<Inner>,
    schedules: Vec<ScheduleRecord>,
    started: DateTime<Utc>,
    handled: &mut HashMap<String, DateTime<Utc>>,
) -> Duration {
    handled.retain(|name, _| schedules.iter().any(|s| s.name == *name));
    let now = rt.clock.now();
    let mut wait = RELOAD;
    for record in schedules {
        if !rt.can_launch(&record.task) {
            continue;
        }
        let Ok(cron) = schedule::parse(&record.cron) else {
            continue;
        };
        // Never a tick from before the schedule existed: the store sets `last_tick_at` when
        // a schedule is created (rows from before it did have `created_at`).
        let after = handled.get(&record.name).copied().unwrap_or(started);
        let mut after = after.max(record.last_tick_at.unwrap_or(record.created_at));
        if let Some(due) = schedule::due_tick(&cron, after, now) {
            let offered = if record.paused {
                Ok(())
            } else {
                fire(rt, &record, due).await
            };
            match offered {
                Ok(()) => after = due,
                Err(error) => {
                    tracing::warn!(schedule = %record.name, %error, "launching a scheduled task failed");
                    wait = wait.min(RETRY);
                }
            }
        }
        handled.insert(record.name.clone(), after);
        if let Some(next) = schedule::next_tick(&cron, after) {
            let until = (next - rt.clock.now()).to_std().unwrap_or_default();
            wait = wait.min(until);
        }
    }
    wait
}

/// Offers tick `tick` of `record` to the store, and announces the task if this node got it.
async fn fire(rt: &Arc<Inner>, record: &ScheduleRecord, tick: DateTime<Utc>) -> Result<(), Error> {
    let launch = Launch::new(Arc::clone(rt), record.task.clone(), Ok(record.args.clone()))
        .options(record.options.clone());
    let super::launch::Checked {
        rt,
        mut queued,
        prepared,
        on_conflict,
        ..
    } = launch.check()?;
    // The tick is when it was meant to run: every node can tell which tick a task is for.
    queued.run_at = tick;
    match rt
        .store
        .fire_schedule(&record.name, tick, &queued, on_conflict.is_some())
        .await?
    {
        Fired::Launched => {
            tracing::debug!(schedule = %record.name, task = %queued.id, %tick, "scheduled launch");
            rt.announce_queued(queued, prepared.is_none());
        }
        Fired::Skipped(live) => {
            tracing::info!(
                schedule = %record.name, %live, %tick,
                "tick skipped: the previous launch with this key is still live"
            );
        }
        Fired::NotFired => {}
    }
    Ok(())
}
