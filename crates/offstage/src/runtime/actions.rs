//! The operator's verbs over many tasks: **rerun** one finished task, and **bulk actions**
//! (kill, purge, rerun of every task matching a filter), each recorded in the store as an
//! [`ActionRecord`] that says who asked and how far it got.
//!
//! An action runs on the node that started it, as a tokio task of its own holding the
//! runtime weakly (like the loops): it pages through the matching tasks newest first with a
//! cursor (only tasks launched before it started; reruns it launches are newer, so it never
//! meets its own work), acts on each through the same path as one call (`Inner::kill`,
//! `rerun`), and saves its progress at most every [`SAVE_EVERY`] and at the end of each page.
//! A node that stops while an action runs leaves it `running` in the store, and every read
//! then says `failed`, interrupted ([`ActionRecord`]'s `orphaned`), so no action reads
//! `running` without a node to run it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;

use super::{Inner, Launch, LaunchOptions, OnConflict, Runtime};
use crate::action::{ActionRecord, ActionStatus, Bulk, BulkVerb};
use crate::error::{Error, ErrorKind};
use crate::id::{ActionId, TaskId};
use crate::task::{ListFilter, Task};

/// How many tasks an action reads from the store at a time.
const PAGE: usize = 200;
/// How many kills of one action wait for their tasks to end at once (each waits up to the
/// grace period, so one at a time would take a grace period per running task).
const KILLS_AT_ONCE: usize = 32;
/// How often, at most, an action's progress is written while a page is under way.
const SAVE_EVERY: Duration = Duration::from_millis(250);
/// The most actions one read returns.
pub(crate) const MAX_ACTIONS: usize = 1_000;

/// A bulk action started by [`Runtime::bulk`]: its record as it goes, pushed by the node that
/// runs it (no store reads). Cheap to clone. Other handles read the store instead
/// ([`Runtime::action`]).
#[derive(Clone, Debug)]
pub struct Action {
    progress: watch::Receiver<ActionRecord>,
}

impl Action {
    /// The action's id.
    pub fn id(&self) -> ActionId {
        self.progress.borrow().id
    }

    /// Its record as of its latest progress.
    pub fn record(&self) -> ActionRecord {
        self.progress.borrow().clone()
    }

    /// Waits for its next progress (or its end) and returns the record then; at once if it
    /// has ended.
    pub async fn changed(&mut self) -> ActionRecord {
        if !self.progress.borrow().is_finished() {
            let _ = self.progress.changed().await;
        }
        self.record()
    }

    /// Waits until it has ended and returns its final record.
    pub async fn wait(&self) -> ActionRecord {
        let mut progress = self.progress.clone();
        let ended = progress
            .wait_for(ActionRecord::is_finished)
            .await
            .map(|record| record.clone());
        // The sender is dropped only after the last send, which is the final record.
        ended.unwrap_or_else(|_| self.record())
    }
}

/// How [`Runtime::rerun_with`] launches a finished task again. `Default` is a plain rerun:
/// the original's args, no checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RerunOptions {
    /// The new task's args; the original's when `None`.
    pub args: Option<Value>,
    /// Start the new task with the original's last checkpoint (and its `checkpoint_at`), so
    /// it continues where the original stopped instead of from the top. The original must
    /// have saved one: otherwise the rerun is [`ErrorKind::Conflict`].
    pub from_checkpoint: bool,
    /// The trace context of the rerun (the request that asked for it), if any. A rerun is a
    /// new trace, not the original's: its launch span links to the original's trace instead
    /// (feature `otel`).
    pub trace_parent: Option<crate::TraceContext>,
}

impl Runtime {
    /// Launches finished task `id` again as a new task, linked to it by
    /// [`crate::TaskRecord::rerun_of`]: the same task type and launch options (priority, timeout,
    /// isolation, owner, key), with `args` if given and the original's otherwise. It runs
    /// now, whatever the original's `run_at` was.
    ///
    /// The key is kept and the launch rejects a duplicate: while a task of the same type and
    /// key is queued or running, the rerun is [`ErrorKind::Conflict`], naming it. A queued or
    /// running original is [`ErrorKind::Conflict`] too (kill it or wait for it first); an
    /// unknown id is [`ErrorKind::NotFound`]. Otherwise it is a launch like any other: a type
    /// this node cannot launch, or args the type refuses, fail as they would there.
    ///
    /// ```no_run
    /// # async fn demo(rt: offstage::Runtime, failed: offstage::TaskId) -> Result<(), offstage::Error> {
    /// let again = rt.rerun(failed, None).await?; // same args
    /// assert_eq!(again.snapshot().rerun_of, Some(failed));
    /// let edited = rt.rerun(failed, Some(serde_json::json!({ "retries": 0 }))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn rerun(&self, id: TaskId, args: Option<Value>) -> Result<Task, Error> {
        let options = RerunOptions {
            args,
            ..RerunOptions::default()
        };
        rerun(&self.inner, id, options).await
    }

    /// [`Runtime::rerun`] with [`RerunOptions`]: with `from_checkpoint`, the new task starts
    /// with the original's last checkpoint ([`crate::Context::checkpoint`] returns it), so a
    /// crawl or an import that failed for good, or was killed, continues where it stopped.
    ///
    /// ```no_run
    /// # async fn demo(rt: offstage::Runtime, failed: offstage::TaskId) -> Result<(), offstage::Error> {
    /// use offstage::RerunOptions;
    /// let options = RerunOptions { from_checkpoint: true, ..RerunOptions::default() };
    /// let resumed = rt.rerun_with(failed, options).await?;
    /// assert!(resumed.snapshot().checkpoint.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn rerun_with(&self, id: TaskId, options: RerunOptions) -> Result<Task, Error> {
        rerun(&self.inner, id, options).await
    }

    /// The dry run of `bulk`: how many tasks it would act on now (for kill, the live tasks
    /// matching its filter; for purge and rerun, the finished ones), changing nothing.
    pub async fn bulk_count(&self, bulk: &Bulk) -> Result<u64, Error> {
        bulk.check()?;
        count(&self.inner, bulk).await
    }

    /// Starts `bulk`, asked for by `actor` (who, as the app names them: the server passes the
    /// caller's token name): records the action `running` with the dry run's count as
    /// `matched`, and works through the tasks in the background. Returns at once with a handle
    /// that follows its progress; the record is in the store for any node to read
    /// ([`Runtime::action`], [`Runtime::actions`]).
    pub async fn bulk(&self, bulk: &Bulk, actor: &str) -> Result<Action, Error> {
        bulk.check()?;
        crate::limits::check_text("actor", actor, crate::limits::MAX_OWNER_CHARS)?;
        if self.inner.is_shutting_down() {
            return Err(Error::new(
                ErrorKind::ShuttingDown,
                "this runtime is shutting down and starts no new actions: ask another node or \
                 after the restart",
            ));
        }
        // Only tasks launched before now: ids are time-ordered, so a fresh id is the cursor.
        let start = TaskId::new();
        let matched = count(&self.inner, bulk).await?;
        let now = self.inner.clock.now();
        let record = ActionRecord {
            id: ActionId::new(),
            verb: bulk.verb,
            filter: bulk.kept_filter(),
            per_s: bulk.per_s,
            actor: actor.to_owned(),
            node: self.inner.node(),
            status: ActionStatus::Running,
            started_at: now,
            updated_at: now,
            ended_at: None,
            matched,
            done: 0,
            failed: 0,
            error: None,
        };
        self.inner.store.action_insert(&record).await?;
        let (tx, rx) = watch::channel(record.clone());
        tokio::spawn(run(Arc::downgrade(&self.inner), record, start, tx));
        Ok(Action { progress: rx })
    }

    /// Action `id`'s record; [`ErrorKind::NotFound`] if there is none.
    pub async fn action(&self, id: ActionId) -> Result<ActionRecord, Error> {
        self.inner.store.action_get(id).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "no action has id {id}: check the id (list actions to see the ids that \
                     exist)"
                ),
            )
        })
    }

    /// Up to `limit` (at most 1,000) actions older than `before`, newest first: who did what.
    pub async fn actions(
        &self,
        before: Option<ActionId>,
        limit: usize,
    ) -> Result<Vec<ActionRecord>, Error> {
        self.inner
            .store
            .actions(before, limit.clamp(1, MAX_ACTIONS))
            .await
    }
}

async fn rerun(rt: &Arc<Inner>, id: TaskId, rerun: RerunOptions) -> Result<Task, Error> {
    let RerunOptions {
        args,
        from_checkpoint,
        trace_parent,
    } = rerun;
    let original = rt.record(id).await?;
    if original.is_running() {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "task {id} ({}) is {}: only a finished task can be rerun. Kill it or wait for \
                 it to end, then rerun it",
                original.name, original.status
            ),
        ));
    }
    // A type this node runs keeps the isolation the original ran with; one that workers
    // serve runs in their processes, as every launch of it does.
    let isolated = rt
        .registry
        .get(&original.name)
        .is_ok()
        .then_some(original.isolated);
    let options = LaunchOptions {
        key: original.key.clone(),
        owner: original.owner.clone(),
        priority: Some(original.priority),
        timeout: original.timeout,
        run_at: None,
        isolated,
        on_conflict: original.key.is_some().then_some(OnConflict::Reject),
        concurrency_key: original.concurrency_key.clone(),
    };
    let mut launch = Launch::new(
        Arc::clone(rt),
        original.name.clone(),
        Ok(args.unwrap_or(original.args)),
    );
    if from_checkpoint {
        let (Some(checkpoint), Some(at)) = (original.checkpoint, original.checkpoint_at) else {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "task {id} ({}) saved no checkpoint, so there is nothing to rerun it from: \
                     rerun it without from_checkpoint (it starts from the top)",
                    original.name
                ),
            ));
        };
        launch = launch.checkpoint(checkpoint, at);
    }
    if let Some(parent) = trace_parent {
        launch = launch.trace_parent(parent.traceparent());
        if let Some(state) = parent.tracestate() {
            launch = launch.trace_state(state);
        }
    }
    launch = launch.trace_link(original.traceparent.clone());
    launch.options(options).rerun_of(id).await.map_err(|error| {
        match (error.kind(), &original.key) {
            (ErrorKind::Conflict, Some(key)) => Error::new(
                ErrorKind::Conflict,
                format!(
                    "a rerun keeps the task's key, and a task of type {} with key `{key}` is \
                     live: {}",
                    original.name,
                    error.message()
                ),
            ),
            _ => error,
        }
    })
}

/// The filter of the tasks `bulk`'s verb acts on: its own, and live or finished ones.
fn scope(bulk: &Bulk) -> ListFilter {
    ListFilter {
        finished: Some(bulk.verb.acts_on_finished()),
        ..bulk.kept_filter()
    }
}

/// The dry run: the tasks matching `bulk`'s filter that its verb acts on.
async fn count(rt: &Inner, bulk: &Bulk) -> Result<u64, Error> {
    rt.store.count(&scope(bulk)).await
}

/// The action's tokio task: works through the matching tasks, keeping the record on `tx` up to
/// date, while [`save`] writes it to the store as it changes; then records how it ended.
async fn run(
    rt: Weak<Inner>,
    record: ActionRecord,
    start: TaskId,
    tx: watch::Sender<ActionRecord>,
) {
    let outcome = tokio::select! {
        biased;
        outcome = work(&rt, &record, start, &tx) => outcome,
        () = save(&rt, tx.subscribe()) => return,
    };
    let Some(inner) = rt.upgrade() else { return };
    let mut record = tx.borrow().clone();
    record.updated_at = inner.clock.now();
    record.ended_at = Some(record.updated_at);
    match outcome {
        Ok(()) => record.status = ActionStatus::Completed,
        Err(error) => {
            record.status = ActionStatus::Failed;
            record.error = Some(error.message().to_owned());
        }
    }
    // Whatever `save` had in flight was a `running` record, which the store refuses once
    // this one is in (see `Store::action_update`).
    if let Err(error) = inner.store.action_update(&record).await {
        tracing::warn!(action = %record.id, %error, "saving the end of an action");
    }
    tx.send_replace(record);
}

/// Goes through the tasks `record` applies to, counting on `tx`.
async fn work(
    rt: &Weak<Inner>,
    record: &ActionRecord,
    start: TaskId,
    tx: &watch::Sender<ActionRecord>,
) -> Result<(), Error> {
    let mut filter = ListFilter {
        finished: Some(record.verb.acts_on_finished()),
        before: Some(start),
        limit: Some(PAGE),
        ..record.filter.clone()
    };
    if record.verb == BulkVerb::Purge {
        // Deleted in the store's short steps, with their logs, as every purge is.
        let runtime = Runtime { inner: live(rt)? };
        let purge = crate::store::Purge {
            filter,
            ..Default::default()
        };
        runtime
            .purge_with(&purge, |deleted| tx.send_modify(|r| r.done = deleted))
            .await?;
        return Ok(());
    }
    let mut pace = record.per_s.map(|per_s| {
        let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / per_s));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    loop {
        let inner = live(rt)?;
        let page = inner.store.list(&filter).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        filter.before = Some(last.id);
        let full = page.len() == PAGE;
        let targets = page;
        match record.verb {
            BulkVerb::Kill => {
                let mut kills = futures::stream::iter(targets)
                    .map(|task| {
                        let inner = Arc::clone(&inner);
                        async move { inner.kill(task.id, None).await.map(drop) }
                    })
                    .buffer_unordered(KILLS_AT_ONCE);
                while let Some(result) = kills.next().await {
                    tally(tx, result);
                }
            }
            BulkVerb::Rerun => {
                drop(inner);
                for task in targets {
                    if let Some(pace) = &mut pace {
                        pace.tick().await;
                    }
                    let inner = live(rt)?;
                    let plain = RerunOptions::default();
                    tally(tx, rerun(&inner, task.id, plain).await.map(drop));
                }
            }
            BulkVerb::Purge => {
                // Wired to `Runtime::purge_matching` (batched deletes with their logs).
                let _ = targets;
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "bulk purge is not wired yet",
                ));
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// The runtime, if it is still there and not shutting down.
fn live(rt: &Weak<Inner>) -> Result<Arc<Inner>, Error> {
    rt.upgrade()
        .filter(|inner| !inner.is_shutting_down())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::ShuttingDown,
                "interrupted: the node running the action shut down before it ended. Run it \
                 again to act on the rest",
            )
        })
}

fn tally(tx: &watch::Sender<ActionRecord>, result: Result<(), Error>) {
    tx.send_modify(|record| match result {
        Ok(()) => record.done += 1,
        Err(error) => {
            record.failed += 1;
            record.error = Some(error.message().to_owned());
        }
    });
}

/// Writes the action's progress to the store as it changes, at most every [`SAVE_EVERY`], so
/// that every node reads how far it got. Runs until the action's work ends (its caller drops
/// it then).
async fn save(rt: &Weak<Inner>, mut progress: watch::Receiver<ActionRecord>) {
    while progress.changed().await.is_ok() {
        let Some(inner) = rt.upgrade() else { return };
        let mut record = progress.borrow_and_update().clone();
        record.updated_at = inner.clock.now();
        if let Err(error) = inner.store.action_update(&record).await {
            tracing::warn!(action = %record.id, %error, "saving an action's progress");
        }
        drop(inner);
        tokio::time::sleep(SAVE_EVERY).await;
    }
}
