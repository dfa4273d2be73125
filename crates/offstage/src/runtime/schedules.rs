//! **Schedules** as the runtime offers them: read, put, pause, resume and delete, on every
//! node at once (the store holds them; a notice tells the other nodes' cron loops). Firing
//! them is `cron.rs`'s.

use std::sync::Arc;

use super::Inner;
use crate::error::{Error, ErrorKind};
use crate::schedule::{Schedule, ScheduleRecord};

impl super::Runtime {
    /// Every schedule in the store (declared by any node, or put through the API), by name,
    /// with its next tick.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRecord>, Error> {
        let now = self.inner.clock.now();
        let schedules = self.inner.store.schedules().await?;
        Ok(schedules
            .into_iter()
            .map(|s| s.with_next_tick(now))
            .collect())
    }

    /// Schedule `name`, or [`crate::ErrorKind::NotFound`].
    pub async fn schedule(&self, name: &str) -> Result<ScheduleRecord, Error> {
        self.schedules()
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| schedule_not_found(name))
    }

    /// Creates or changes a schedule, on every node: checked here (the cron expression, and
    /// the args against the task type, which this node must know), then stored. A schedule
    /// that exists keeps whether it is paused and what it launched.
    pub async fn put_schedule(&self, schedule: Schedule) -> Result<ScheduleRecord, Error> {
        put(&self.inner, &schedule).await
    }

    /// Pauses schedule `name` on every node: its ticks pass without launching until it is
    /// resumed (they are not made up then).
    pub async fn pause_schedule(&self, name: &str) -> Result<ScheduleRecord, Error> {
        self.set_paused(name, true).await
    }

    /// Resumes schedule `name`: it launches again from its next tick.
    pub async fn resume_schedule(&self, name: &str) -> Result<ScheduleRecord, Error> {
        self.set_paused(name, false).await
    }

    /// Deletes schedule `name` (the tasks it launched stay). A schedule the app declares with
    /// [`super::RuntimeBuilder::schedule`] comes back when a node with it starts.
    pub async fn delete_schedule(&self, name: &str) -> Result<(), Error> {
        if !self.inner.store.delete_schedule(name).await? {
            return Err(schedule_not_found(name));
        }
        self.inner.schedules_changed_everywhere();
        Ok(())
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<ScheduleRecord, Error> {
        let now = self.inner.clock.now();
        let record = self
            .inner
            .store
            .pause_schedule(name, paused, now)
            .await?
            .ok_or_else(|| schedule_not_found(name))?;
        self.inner.schedules_changed_everywhere();
        Ok(record.with_next_tick(now))
    }
}

/// Checks `schedule` against this node's task types and stores it.
pub(super) async fn put(rt: &Arc<Inner>, schedule: &Schedule) -> Result<ScheduleRecord, Error> {
    schedule.check()?;
    if !rt.can_launch(&schedule.task) {
        return Err(rt.unknown_task_type(&schedule.task));
    }
    if rt.registry.get(&schedule.task).is_ok() {
        rt.registry
            .prepare(&schedule.task, &schedule.args)
            .map(drop)?;
    }
    let now = rt.clock.now();
    let record = rt.store.put_schedule(schedule, now).await?;
    rt.schedules_changed_everywhere();
    Ok(record.with_next_tick(now))
}

fn schedule_not_found(name: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("no schedule is named `{name}`: list the schedules to see the names that exist"),
    )
}

impl Inner {
    /// Tells this node's cron loop and the other nodes' that the schedules changed.
    pub(crate) fn schedules_changed_everywhere(&self) {
        self.schedules_changed.notify_one();
        self.tell_others(crate::store::Notice::Schedules);
    }
}
