//! **Children**: tasks a task launches from its context, how it waits for them, and what its
//! end does to them.
//!
//! A child is a task like any other, with `parent` set: queued, claimed by whatever node claims
//! it. The rules of its life beside its parent's (docs/task-lifecycle.md):
//!
//! - a parent that is **killed** has every live child killed, detached or not;
//! - a parent that **ends by itself** (completed, failed, or missing and not retried) has its
//!   children that are not detached killed; detached ones run on;
//! - a parent **queued again** for another attempt keeps its children, for the next attempt to
//!   find (`Context::children`).
//!
//! Each child is killed through the normal kill path (`Inner::kill`: a queued one at once, a
//! running one through its node, with its grace), which applies the same rules to its own
//! children. Three places apply them: the node that records a parent's end (`executor.rs`,
//! when the parent launched children there), `Inner::kill` once the task it killed has ended,
//! and the sweep here, which one node per round runs against the store (`Store::children_to_stop`)
//! so that a node that died between a parent's end and that kill leaves no orphan.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde_json::Value;

use super::Inner;
use crate::error::{Error, ErrorKind, TaskError};
use crate::event::{EventKind, RecvError};
use crate::id::TaskId;
use crate::status::Status;
use crate::task::{ListFilter, Task, TaskRecord};

/// Most children one store read returns, for a cascade, a sweep or a wait.
const STEP: usize = ListFilter::MAX_LIMIT;

/// Below this many tasks still awaited, a wait reads each one by id; from it on, one listing of
/// the parent's finished children serves them all.
const READ_ONE_BY_ONE: usize = 16;

/// Kills the live children of `parent` that its end says to: all of them when it was killed,
/// those not detached when it ended otherwise, none while it is queued or running. Each kill
/// takes the normal path, with `grace` (the runtime's when `None`), and stops the child's own
/// children in turn. Errors are logged: the sweep comes after.
///
/// Boxed, and `Send` by its type: a child's kill stops its own children in turn, and the
/// compiler cannot see through that recursion by itself.
pub(crate) fn stop_children<'a>(
    rt: &'a Inner,
    parent: &'a TaskRecord,
    grace: Option<Duration>,
) -> BoxFuture<'a, ()> {
    Box::pin(stop_children_now(rt, parent, grace))
}

async fn stop_children_now(rt: &Inner, parent: &TaskRecord, grace: Option<Duration>) {
    let every = match parent.status {
        Status::Killed => true,
        Status::Completed | Status::Failed | Status::Missing => false,
        Status::Queued | Status::Running => return,
    };
    let mut before = None;
    loop {
        let filter = ListFilter {
            parent: Some(parent.id),
            finished: Some(false),
            before,
            limit: Some(STEP),
            ..ListFilter::default()
        };
        let page = match rt.store.list(&filter).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(task = %parent.id, %error, "could not list the children to stop; the sweep will");
                return;
            }
        };
        let stop: Vec<TaskId> = page
            .iter()
            .filter(|child| every || !child.detached)
            .map(|child| child.id)
            .collect();
        if !stop.is_empty() {
            tracing::debug!(task = %parent.id, status = %parent.status, children = stop.len(), "stopping the children of an ended task");
        }
        kill_all(rt, &stop, grace).await;
        match page.last() {
            Some(last) if page.len() == STEP => before = Some(last.id),
            _ => return,
        }
    }
}

/// Kills every task of `ids` at once through the normal kill path, and waits until all ended.
async fn kill_all(rt: &Inner, ids: &[TaskId], grace: Option<Duration>) {
    let kills = ids.iter().map(|&id| async move {
        if let Err(error) = rt.kill(id, grace).await {
            if error.kind() != ErrorKind::NotFound {
                tracing::warn!(task = %id, %error, "could not kill a child of an ended task");
            }
        }
    });
    futures::future::join_all(kills).await;
}

/// Kills the live children the store says their parent's end should have stopped (a node died
/// between the two, say): up to one step of them. Returns how many it killed.
pub(crate) async fn sweep(rt: &Inner) -> Result<usize, Error> {
    let ids = rt.store.children_to_stop(STEP).await?;
    if !ids.is_empty() {
        tracing::info!(
            children = ids.len(),
            "killing children whose parent ended without stopping them"
        );
    }
    kill_all(rt, &ids, None).await;
    Ok(ids.len())
}

/// The sweep, once per heartbeat interval across all nodes (whoever takes the turn).
pub(crate) async fn sweep_loop(rt: Weak<Inner>) {
    let Some(period) = rt.upgrade().map(|rt| rt.config.heartbeat_interval) else {
        return;
    };
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(rt) = rt.upgrade() else { return };
        if rt.is_shutting_down() {
            return;
        }
        let now = rt.clock.now();
        let next = now + chrono::Duration::from_std(period).unwrap_or_default();
        match rt.store.take_turn("children", now, next).await {
            Ok(true) => {
                if let Err(error) = sweep(&rt).await {
                    tracing::warn!(%error, "the sweep for children of ended tasks failed; it runs again next turn");
                }
            }
            Ok(false) => {}
            Err(error) => tracing::debug!(%error, "taking the children sweep's turn failed"),
        }
    }
}

/// Waits for a set of tasks to end, yielding each one as it does ([`Waiter::next`]).
///
/// Many tasks (from [`READ_ONE_BY_ONE`]): one subscription to the node's events carries every
/// `finished` event, and the store is read once per round (a listing of `parent`'s finished
/// children), never once per task per round, so waiting for 1,000 children costs about what
/// waiting for one does. The rounds back off to the poll interval; they only matter for tasks
/// on nodes whose events do not reach this one. Fewer tasks are each followed on their own
/// channel (`Task::wait`), which other tasks' events never wake.
pub(crate) struct Waiter {
    how: How,
}

/// How a [`Waiter`] follows its tasks.
enum How {
    /// Fewer than [`READ_ONE_BY_ONE`]: each on its own channel (`Task::wait`), which costs
    /// nothing while other tasks' events flow.
    Few(FuturesUnordered<BoxFuture<'static, (usize, Result<TaskRecord, Error>)>>),
    /// More: one subscription to the whole bus, one store read per round.
    Many(Box<Many>),
}

/// A [`Waiter`] of many tasks.
struct Many {
    rt: Arc<Inner>,
    /// The task whose children these are, if they are: a listing of its finished children
    /// reads many at once.
    parent: Option<TaskId>,
    tasks: Vec<Task>,
    /// Subscribed before the first read, so an end between the two is not missed.
    events: crate::Subscription,
    /// The awaited tasks that have not ended, with their places in `tasks`.
    pending: HashMap<TaskId, Vec<usize>>,
    /// Ended, not handed out yet.
    ready: VecDeque<(usize, TaskRecord)>,
    /// The store has been read once.
    read: bool,
    backoff: Duration,
}

impl Waiter {
    pub(crate) fn new(rt: Arc<Inner>, parent: Option<TaskId>, tasks: &[Task]) -> Self {
        let how = if tasks.len() < READ_ONE_BY_ONE {
            How::Few(
                tasks
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, task)| async move { (i, task.wait().await) }.boxed())
                    .collect(),
            )
        } else {
            How::Many(Box::new(Many::new(rt, parent, tasks)))
        };
        Self { how }
    }

    /// How many tasks have not been handed out yet.
    fn pending(&self) -> usize {
        match &self.how {
            How::Few(waits) => waits.len(),
            How::Many(many) => {
                many.pending.values().map(Vec::len).sum::<usize>() + many.ready.len()
            }
        }
    }

    /// The next task to end: its place in the slice given and its final record; `None` once
    /// every one has been handed out.
    pub(crate) async fn next(&mut self) -> Result<Option<(usize, TaskRecord)>, Error> {
        match &mut self.how {
            How::Few(waits) => match waits.next().await {
                Some((i, ended)) => Ok(Some((i, ended?))),
                None => Ok(None),
            },
            How::Many(many) => many.next().await,
        }
    }
}

impl Many {
    fn new(rt: Arc<Inner>, parent: Option<TaskId>, tasks: &[Task]) -> Self {
        let events = rt.events.subscribe();
        let mut pending: HashMap<TaskId, Vec<usize>> = HashMap::new();
        for (i, task) in tasks.iter().enumerate() {
            pending.entry(task.id()).or_default().push(i);
        }
        let backoff = if rt.announce.is_some() {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(5)
        };
        Self {
            rt,
            parent,
            tasks: tasks.to_vec(),
            events,
            pending,
            ready: VecDeque::new(),
            read: false,
            backoff,
        }
    }

    fn settle(&mut self, record: TaskRecord) {
        if let Some(places) = self.pending.remove(&record.id) {
            for i in places {
                self.ready.push_back((i, record.clone()));
            }
        }
    }

    async fn read(&mut self) -> Result<(), Error> {
        self.read = true;
        for record in read_ended(&self.rt, self.parent, &self.tasks, &self.pending).await? {
            self.settle(record);
        }
        Ok(())
    }

    async fn next(&mut self) -> Result<Option<(usize, TaskRecord)>, Error> {
        if !self.read {
            self.read().await?;
        }
        loop {
            if let Some(next) = self.ready.pop_front() {
                return Ok(Some(next));
            }
            if self.pending.is_empty() {
                return Ok(None);
            }
            tokio::select! {
                event = self.events.recv() => match event {
                    Ok(crate::Event { kind: EventKind::Finished { task }, .. }) => {
                        self.settle(TaskRecord::clone(&task));
                    }
                    Ok(_) => {}
                    Err(RecvError::Gap { .. }) => self.read().await?,
                    Err(RecvError::Closed) => {
                        return Err(Error::new(
                            ErrorKind::ShuttingDown,
                            "the runtime stopped while waiting for tasks to end: wait again \
                             after the restart",
                        ))
                    }
                },
                () = tokio::time::sleep(self.backoff) => {
                    self.read().await?;
                    self.backoff = (self.backoff * 2).min(self.rt.config.poll_interval);
                }
            }
        }
    }
}

/// Waits until every task of `tasks` has ended and returns their final records, in order.
pub(crate) async fn wait_all(
    rt: &Arc<Inner>,
    parent: Option<TaskId>,
    tasks: &[Task],
) -> Result<Vec<TaskRecord>, Error> {
    let mut waiter = Waiter::new(Arc::clone(rt), parent, tasks);
    let mut ended: Vec<Option<TaskRecord>> = vec![None; tasks.len()];
    while let Some((i, record)) = waiter.next().await? {
        ended[i] = Some(record);
    }
    Ok(ended
        .into_iter()
        .map(|record| record.expect("every awaited task ended"))
        .collect())
}

/// The children of a task as they end, one at a time: what [`crate::Context::wait_each`]
/// returns.
///
/// ```no_run
/// # async fn demo(ctx: offstage::Context, children: Vec<offstage::Task>) -> Result<(), offstage::TaskError> {
/// let mut ends = ctx.wait_each(&children);
/// let mut done = 0;
/// while let Some((i, result)) = ends.next().await? {
///     done += 1;
///     ctx.set_state(&serde_json::json!({ "done": done, "total": children.len() }))?;
///     if let Err(error) = result {
///         ctx.log(format!("child {i} did not complete: {error}"));
///     }
/// }
/// # Ok(()) }
/// ```
pub struct ChildEnds {
    /// The waiter and the waiting task's stop signal, or why there is nothing to wait on.
    waiting: Result<(Waiter, tokio_util::sync::CancellationToken), TaskError>,
}

impl std::fmt::Debug for ChildEnds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pending = self.waiting.as_ref().map(|(waiter, _)| waiter.pending());
        f.debug_struct("ChildEnds")
            .field("pending", &pending.ok())
            .finish()
    }
}

impl ChildEnds {
    pub(crate) fn new(waiter: Waiter, cancel: tokio_util::sync::CancellationToken) -> Self {
        Self {
            waiting: Ok((waiter, cancel)),
        }
    }

    /// Ends that fail with `error` at every `next`.
    pub(crate) fn refused(error: TaskError) -> Self {
        Self {
            waiting: Err(error),
        }
    }

    /// The next task to end, in the order they end: its place in the slice given to
    /// `wait_each` and its result (as [`crate::Context::wait`] gives it); `Ok(None)` once
    /// every one has been handed out. An error of kind `cancelled` if the waiting task is
    /// asked to stop first.
    pub async fn next(&mut self) -> Result<Option<(usize, Result<Value, TaskError>)>, TaskError> {
        let (waiter, cancel) = self.waiting.as_mut().map_err(|error| error.clone())?;
        tokio::select! {
            biased;
            () = cancel.cancelled() => Err(TaskError::cancelled()),
            next = waiter.next() => Ok(next?.map(|(i, record)| (i, outcome(&record)))),
        }
    }
}

/// The records of the awaited tasks that have ended, as the store (or this node) has them now.
async fn read_ended(
    rt: &Inner,
    parent: Option<TaskId>,
    tasks: &[Task],
    pending: &HashMap<TaskId, Vec<usize>>,
) -> Result<Vec<TaskRecord>, Error> {
    let mut ended = Vec::new();
    let (mut listed, mut one_by_one) = (Vec::new(), Vec::new());
    for task in tasks.iter().filter(|task| pending.contains_key(&task.id())) {
        if rt.live(task.id()).is_some() {
            // Running here: its `finished` event is published on this node and cannot be lost.
            continue;
        }
        if parent.is_some() && task.snapshot().parent == parent {
            listed.push(task.id());
        } else {
            one_by_one.push(task.id());
        }
    }
    if listed.len() < READ_ONE_BY_ONE {
        one_by_one.append(&mut listed);
    }
    if let (Some(parent), false) = (parent, listed.is_empty()) {
        let mut before = None;
        loop {
            let filter = ListFilter {
                parent: Some(parent),
                finished: Some(true),
                before,
                limit: Some(STEP),
                ..ListFilter::default()
            };
            let page = rt.store.list(&filter).await?;
            let full = page.len() == STEP;
            before = page.last().map(|record| record.id);
            ended.extend(
                page.into_iter()
                    .filter(|record| pending.contains_key(&record.id)),
            );
            if !full {
                break;
            }
        }
    }
    one_by_one.sort();
    one_by_one.dedup();
    for id in one_by_one {
        let record = rt.record(id).await?;
        if record.status.is_terminal() {
            ended.push(record);
        }
    }
    Ok(ended)
}

/// A child's end as its parent sees it: what it returned, or an error that says how it ended.
pub(crate) fn outcome(record: &TaskRecord) -> Result<Value, TaskError> {
    let (kind, what) = match record.status {
        Status::Completed => return Ok(record.return_value.clone().unwrap_or(Value::Null)),
        Status::Killed => ("child_killed", "was killed"),
        Status::Missing => ("child_missing", "went missing"),
        _ => ("child_failed", "failed"),
    };
    let cause = record
        .error
        .as_ref()
        .map(|error| format!(" ({error})"))
        .unwrap_or_default();
    let detail = serde_json::json!({
        "child": record.id,
        "status": record.status,
        "error": record.error,
    });
    Err(TaskError::new(
        kind,
        format!("child task {} ({}) {what}{cause}", record.id, record.name),
    )
    .with_detail(detail.to_string()))
}

/// Every child of task `parent`, oldest first.
pub(crate) async fn list(rt: &Arc<Inner>, parent: TaskId) -> Result<Vec<Task>, Error> {
    let mut children = Vec::new();
    let mut before = None;
    loop {
        let filter = ListFilter {
            parent: Some(parent),
            before,
            limit: Some(STEP),
            ..ListFilter::default()
        };
        let page = rt.store.list(&filter).await?;
        let full = page.len() == STEP;
        before = page.last().map(|record| record.id);
        children.extend(page);
        if !full {
            break;
        }
    }
    children.reverse();
    let since = rt.events.last_seq();
    Ok(children
        .into_iter()
        .map(|record| Task::new(Arc::clone(rt), record, since, false))
        .collect())
}
