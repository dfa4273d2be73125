//! Running one task: start it, supervise it (kill, timeout, panic), and finish it.
//!
//! Each task is one tokio task running [`supervise`], which polls the body and, in the same
//! `select!`, waits for a stop request and the timeout. A stop fires the task's cancellation
//! token, gives the body the grace period to return, then drops it: the body is aborted at the
//! await where it is parked. Whatever happens, exactly one terminal status is recorded, with
//! the last state the task wrote.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::Value;
use tracing::instrument::WithSubscriber;

use super::live::{LiveTask, StopReason, StopRequest};
use super::slots::Permit;
use super::spans::Attempt;
use super::Inner;
use crate::context::Context;
use crate::error::{ErrorKind, TaskError};
use crate::event::EventKind;
use crate::log::{LogLevel, CURRENT_TASK};
use crate::registry::Prepared;
use crate::status::Status;
use crate::store::Finish;
use crate::task::TaskRecord;

/// How a body says it ended.
pub(crate) enum BodyEnd {
    /// It returned: the task completed or failed.
    Returned(Result<Value, TaskError>),
    /// Where it ran is gone (a remote worker disconnected): the task is `missing`.
    Lost(TaskError),
}

/// A running task's body, wherever it runs.
pub(crate) type Body = BoxFuture<'static, BodyEnd>;

/// How a body ended, before it is recorded.
enum Outcome {
    Ended(BodyEnd),
    Panicked(String),
    Stopped { request: StopRequest, aborted: bool },
}

/// Starts `record` (already `running` on this node in the store) in the slot `permit` holds,
/// until its body ends. `prepared` is the body with its args deserialized, when the launcher
/// already made it.
pub(crate) fn start(
    rt: &Arc<Inner>,
    record: Arc<TaskRecord>,
    prepared: Option<Prepared>,
    permit: Permit,
) {
    if record.isolated {
        if let Ok(registered) = rt.registry.get(&record.name) {
            // Its args were checked at launch; the worker process deserializes them again.
            let pool = Arc::clone(&rt.isolation);
            let memory_limit = registered.options.memory_limit;
            let grace = rt.config.kill_grace;
            let body = move |ctx: Context| -> Body {
                let record = Arc::clone(&ctx.live().expect("on its node").started);
                super::isolation::body(pool, ctx, record, memory_limit, grace).boxed()
            };
            launch_body(rt, record, Ok(Box::new(body)), Some(permit));
            return;
        }
    }
    let prepared = match prepared {
        Some(prepared) => Ok(prepared),
        None => match rt.registry.get(&record.name) {
            Ok(registered) => registered.prepare(&record.args).map_err(|e| {
                TaskError::new(
                    "invalid_args",
                    format!(
                        "the stored args no longer fit task type `{}`: {e}",
                        record.name
                    ),
                )
            }),
            Err(e) => Err(TaskError::new("unknown_task_type", e.to_string())),
        },
    };
    let body = prepared.map(|prepared| -> Box<dyn FnOnce(Context) -> Body + Send> {
        Box::new(move |ctx| prepared(ctx).map(BodyEnd::Returned).boxed())
    });
    launch_body(rt, record, body, Some(permit));
}

/// Starts `record` with a body that runs elsewhere (a worker); it takes none of this node's
/// slots.
pub(crate) fn start_elsewhere(
    rt: &Arc<Inner>,
    record: Arc<TaskRecord>,
    body: impl FnOnce(Context) -> Body + Send + 'static,
) -> Arc<LiveTask> {
    launch_body(rt, record, Ok(Box::new(body)), None)
}

fn launch_body(
    rt: &Arc<Inner>,
    record: Arc<TaskRecord>,
    body: Result<Box<dyn FnOnce(Context) -> Body + Send>, TaskError>,
    permit: Option<Permit>,
) -> Arc<LiveTask> {
    // The attempt's span (feature `otel`) starts before anything else of the attempt.
    let attempt = Attempt::start(&record);
    let trace = attempt.context().or_else(|| {
        let parent = record.traceparent.as_deref()?;
        crate::TraceContext::parse(parent, record.tracestate.as_deref()).ok()
    });
    let live = LiveTask::new(Arc::clone(rt), Arc::clone(&record), trace);
    rt.live
        .lock()
        .expect("live map poisoned")
        .insert(record.id, Arc::clone(&live));
    rt.stats.started(&record);
    rt.timings.started(&record);
    let resumes = record.checkpoint_at;
    rt.publish(record.id, EventKind::Started { task: record });
    if let Some(at) = resumes {
        // Whoever reads the log sees where this attempt starts from.
        live.append_log(
            LogLevel::Info,
            format!(
                "[offstage] resuming from checkpoint saved at {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
        );
    }
    match body {
        Ok(body) => {
            // The timeout counts from now, not from the supervisor's first poll.
            let deadline = live
                .started
                .timeout
                .map(|timeout| (tokio::time::Instant::now() + timeout, timeout));
            // The task holds its slot through its live record, so that a wait for a signal
            // can give it back and take one again (`signals.rs`).
            *live.permit.lock().expect("permit poisoned") = permit;
            let body = attempt.instrument(body(Context::node(Arc::clone(&live))));
            tokio::spawn(supervise(Arc::clone(&live), body, deadline, attempt));
        }
        Err(error) => {
            drop(permit);
            tokio::spawn(finish(
                Arc::clone(&live),
                Outcome::Ended(BodyEnd::Returned(Err(error))),
                attempt,
            ));
        }
    }
    live
}

/// Removes a task from the live map if its supervisor is dropped before it could finish (the
/// app's tokio runtime is shutting down), which also breaks the runtime ↔ task reference cycle.
struct Unlist(Arc<LiveTask>);

impl Drop for Unlist {
    fn drop(&mut self) {
        if let Ok(mut live) = self.0.rt.live.lock() {
            if live
                .get(&self.0.id)
                .is_some_and(|there| Arc::ptr_eq(there, &self.0))
            {
                live.remove(&self.0.id);
            }
        }
    }
}

type Deadline = Option<(tokio::time::Instant, Duration)>;

async fn supervise(live: Arc<LiveTask>, body: Body, deadline: Deadline, attempt: Attempt) {
    let _unlist = Unlist(Arc::clone(&live));
    // The body is dropped when `run` returns: that is the abort, at the await it was parked on.
    let outcome = run(&live, body, deadline).await;
    // The body no longer runs: its slot is free even while the outcome is being saved.
    drop(live.permit.lock().expect("permit poisoned").take());
    finish(live, outcome, attempt).await;
}

/// Polls the body to its end, or stops it as asked (kill, timeout, shutdown).
async fn run(live: &Arc<LiveTask>, body: Body, deadline: Deadline) -> Outcome {
    let rt = &live.rt;
    let body = CURRENT_TASK
        .scope(Arc::clone(live), body)
        .with_subscriber(rt.capture.clone());
    let mut body = std::pin::pin!(AssertUnwindSafe(body).catch_unwind());
    let timeout = deadline.map(|(_, timeout)| timeout);
    let deadline = async {
        match deadline {
            Some((at, _)) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let ended = tokio::select! {
        biased;
        result = &mut body => Ok(result),
        request = live.stop_requested() => Err(request),
        () = deadline => Err(StopRequest {
            reason: StopReason::Timeout(timeout.unwrap_or_default()),
            grace: rt.config.kill_grace,
        }),
    };
    match ended {
        Ok(Ok(end)) => Outcome::Ended(end),
        Ok(Err(panic)) => Outcome::Panicked(panic_message(panic.as_ref())),
        Err(request) => {
            live.request_stop(request);
            live.cancel.cancel();
            let aborted = request.grace.is_zero()
                || tokio::time::timeout(request.grace, &mut body)
                    .await
                    .is_err();
            Outcome::Stopped { request, aborted }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the task panicked with a non-string payload".to_owned())
}

fn describe(grace: Duration, aborted: bool) -> String {
    if aborted {
        format!("it did not stop within the {grace:?} grace period and was aborted")
    } else {
        "it stopped by itself within the grace period".to_owned()
    }
}

fn terminal(outcome: Outcome) -> (Status, Option<Value>, Option<TaskError>) {
    match outcome {
        Outcome::Ended(BodyEnd::Returned(Ok(value))) => (Status::Completed, Some(value), None),
        Outcome::Ended(BodyEnd::Returned(Err(error))) => (Status::Failed, None, Some(error)),
        Outcome::Ended(BodyEnd::Lost(error)) => (Status::Missing, None, Some(error)),
        Outcome::Panicked(message) => {
            (Status::Failed, None, Some(TaskError::new("panic", message)))
        }
        Outcome::Stopped { request, aborted } => {
            let how = describe(request.grace, aborted);
            match request.reason {
                StopReason::Kill => (
                    Status::Killed,
                    None,
                    // The kind says "killed" already: `killed: it stopped by itself …`.
                    Some(TaskError::new("killed", how)),
                ),
                StopReason::Timeout(timeout) => (
                    Status::Failed,
                    None,
                    Some(TaskError::new(
                        "timeout",
                        format!("ran past its timeout of {timeout:?}; {how}"),
                    )),
                ),
                StopReason::Interrupted => (
                    Status::Missing,
                    None,
                    Some(TaskError::new(
                        "interrupted",
                        format!("the runtime shut down before the task finished; {how}"),
                    )),
                ),
                // Never recorded (see `forget`); said for completeness.
                StopReason::Lost => (
                    Status::Missing,
                    None,
                    Some(TaskError::new(
                        "missing",
                        format!("its node was declared dead and stopped it; {how}"),
                    )),
                ),
            }
        }
    }
}

/// When a failed task runs again, if its type's retry policy says it does.
fn retry_at(
    live: &Arc<LiveTask>,
    status: Status,
    error: Option<&TaskError>,
) -> Option<DateTime<Utc>> {
    // A failure, or a task lost with the worker that ran it (`missing`, kind `worker_lost`).
    if !matches!(status, Status::Failed | Status::Missing) {
        return None;
    }
    // A kill, or a shutdown, is not a failure to try again; a task this node lost is not
    // this node's to run again.
    if matches!(
        live.stop_reason(),
        Some(StopReason::Kill | StopReason::Interrupted | StopReason::Lost)
    ) || live.owner() != live.rt.node()
    {
        return None;
    }
    let policy = live
        .rt
        .registry
        .get(&live.started.name)
        .ok()?
        .options
        .retry?;
    let attempt = live.started.attempt;
    if attempt >= policy.max_attempts || !policy.retries(error.map_or("", |e| e.kind.as_str())) {
        return None;
    }
    let delay = policy.jittered_delay(attempt);
    let at = live.rt.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default();
    live.append_log(
        LogLevel::Warn,
        format!(
            "[offstage] attempt {attempt} of {} failed ({}); running again in {delay:.1?}",
            policy.max_attempts,
            error.map_or_else(
                || "no error".to_owned(),
                |e| format!("{}: {}", e.kind, e.message)
            ),
        ),
    );
    Some(at)
}

/// Records the terminal status (or queues the task again), tells everyone, and frees the slot.
///
/// The attempt's span ends with it, its status recorded.
async fn finish(live: Arc<LiveTask>, outcome: Outcome, attempt: Attempt) {
    let rt = Arc::clone(&live.rt);
    if live.owner() != rt.node() {
        // This node was declared dead since the task started: it is not ours to record.
        return forget(live).await;
    }
    let outcome = match back_off_of(outcome) {
        Ok(delay_and_error) => return back_off(live, delay_and_error).await,
        Err(outcome) => outcome,
    };
    let (status, return_value, error) = terminal(outcome);
    let retry = retry_at(&live, status, error.as_ref());
    let status = if retry.is_some() {
        Status::Queued
    } else {
        status
    };
    // A checkpoint the body was saving when it ended (or was aborted) is in the final record.
    live.checkpoints_settled().await;
    let final_record = {
        let saving = live.save_lock.lock().await;
        let unsaved = live.take_unsaved();
        let state = unsaved.state.unwrap_or_else(|| live.state().to_string());
        let finish = Finish {
            status,
            state,
            return_value: return_value.clone(),
            error: error.clone(),
            finished_at: rt.clock.now(),
            logs: unsaved.logs,
            retry_at: retry,
        };
        let mut record = TaskRecord::clone(&live.started);
        record.status = status;
        record.state = Value::clone(&live.state());
        live.put_checkpoint(&mut record);
        record.return_value = return_value;
        record.error = error;
        record.finished_at = Some(finish.finished_at);
        if let Some(at) = retry {
            record.finished_at = None;
            record.run_at = at;
            record.node = None;
        }
        match save_finish(&rt, &live, finish).await {
            Some(true) | None => record,
            // Somebody else ended it (another node declared this one dead): the store is right.
            Some(false) => {
                drop(saving);
                return forget(live).await;
            }
        }
    };
    let final_record = Arc::new(final_record);
    let ended_at = final_record.finished_at.unwrap_or_else(|| rt.clock.now());
    rt.stats.ended(&final_record, ended_at);
    rt.timings.ended(&final_record, ended_at);
    attempt.end(&final_record);
    // Out of the live map first: whoever sees the task end and asks again reads the store,
    // which already has the final record.
    rt.unlist(&live);
    live.done.send_replace(Some(Arc::clone(&final_record)));
    if final_record.status == Status::Queued {
        // Queued again: announced as `launched` once more (same id, the next attempt to come),
        // and claimable by any node once due.
        rt.publish(live.id, EventKind::Launched { task: final_record });
        rt.slots.wake_claimer();
        rt.tell_others(crate::store::Notice::Queued);
    } else {
        if live
            .may_have_children
            .load(std::sync::atomic::Ordering::Acquire)
        {
            // Its children go by its end (`children.rs`), in the background: the finish
            // itself never waits for their grace periods.
            let (rt, parent) = (Arc::clone(&rt), Arc::clone(&final_record));
            tokio::spawn(async move { super::children::stop_children(&rt, &parent, None).await });
        }
        rt.publish(live.id, EventKind::Finished { task: final_record });
    }
    rt.ended.notify_waiters();
    rt.limit_freed.freed(&live.started.name);
}

/// The delay and the error of a body that returned a back-off ([`TaskError::back_off`]), or
/// the outcome to record as usual. A back-off whose delay is unreadable is a failure of kind
/// `invalid_back_off` that says how to write one. A task stopped meanwhile (killed, timed
/// out) is not here: its outcome is `Stopped`, whatever the body returned in its grace.
fn back_off_of(outcome: Outcome) -> Result<(Duration, TaskError), Outcome> {
    match outcome {
        Outcome::Ended(BodyEnd::Returned(Err(error))) => match error.back_off_delay() {
            Some(Ok(delay)) => Ok((delay, error)),
            Some(Err(why)) => Err(Outcome::Ended(BodyEnd::Returned(Err(TaskError::new(
                "invalid_back_off",
                why,
            ))))),
            None => Err(Outcome::Ended(BodyEnd::Returned(Err(error)))),
        },
        other => Err(other),
    }
}

/// Puts a task that backed off back in the queue, due after `delay`, without counting the
/// attempt (`Store::back_off`), and tells everyone as a retry is told: `launched` again.
async fn back_off(live: Arc<LiveTask>, (delay, error): (Duration, TaskError)) {
    let rt = Arc::clone(&live.rt);
    let run_at = rt.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default();
    live.append_log(
        LogLevel::Info,
        format!(
            "[offstage] backed off for {}s: queued again, due at {}; attempt {} is not \
             counted",
            delay.as_millis() as f64 / 1000.0,
            run_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            live.started.attempt
        ),
    );
    live.checkpoints_settled().await;
    let record = {
        let _saving = live.save_lock.lock().await;
        let unsaved = live.take_unsaved();
        let state = unsaved.state.unwrap_or_else(|| live.state().to_string());
        let mut record = TaskRecord::clone(&live.started);
        record.status = Status::Queued;
        record.state = Value::clone(&live.state());
        live.put_checkpoint(&mut record);
        record.error = Some(error.clone());
        record.run_at = run_at;
        record.node = None;
        record.attempt = record.attempt.saturating_sub(1);
        record.waiting_for = None;
        record.waiting_until = None;
        let back_off = crate::store::BackOff {
            state,
            error,
            run_at,
            logs: unsaved.logs,
        };
        let mut backoff = Duration::from_millis(50);
        let mut tries = 0;
        let applied = loop {
            tries += 1;
            match rt
                .store
                .back_off(live.id, live.owner(), back_off.clone())
                .await
            {
                Ok(applied) => break Some(applied),
                Err(error) if tries >= 5 => {
                    tracing::error!(task = %live.id, %error, "could not put the task that backed off back in the queue");
                    break None;
                }
                Err(error) => {
                    tracing::warn!(task = %live.id, %error, "putting the task that backed off back in the queue failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        };
        match applied {
            Some(true) | None => record,
            // Somebody else ended it (another node declared this one dead): the store is right.
            Some(false) => {
                drop(_saving);
                return forget(live).await;
            }
        }
    };
    let record = Arc::new(record);
    rt.stats.ended(&record, rt.clock.now());
    rt.unlist(&live);
    live.done.send_replace(Some(Arc::clone(&record)));
    rt.publish(live.id, EventKind::Launched { task: record });
    rt.slots.wake_claimer();
    rt.tell_others(crate::store::Notice::Queued);
    rt.ended.notify_waiters();
    rt.limit_freed.freed(&live.started.name);
}

/// Ends the run of a task this node no longer owns: another node declared this one dead and
/// ended its record (`missing`), or re-queued it for a retry. Nothing is recorded (the store
/// refuses a lost owner's writes anyway) and nothing is announced to other nodes (the node
/// that took the task over did). Local waiters and subscribers get the stored record.
async fn forget(live: Arc<LiveTask>) {
    let rt = Arc::clone(&live.rt);
    let stored = rt.store.get(live.id).await.ok().flatten();
    rt.unlist(&live);
    let record = Arc::new(stored.unwrap_or_else(|| {
        let mut record = live.snapshot();
        record.status = Status::Missing;
        record
    }));
    tracing::warn!(task = %live.id, status = %record.status, "stopped a task this node no longer owns (it was declared dead); nothing recorded");
    live.done.send_replace(Some(Arc::clone(&record)));
    if record.status.is_terminal() {
        // Only here: the node that ended it told the others.
        rt.events.publish(
            live.id,
            rt.clock.now(),
            EventKind::Finished { task: record },
        );
    }
    rt.ended.notify_waiters();
}

/// Saves the finish, retrying a failing store a few times. `None` if it never succeeded: the
/// task then reads `running` in the store until a restart marks it `missing`.
///
/// A full disk is waited out instead (every second, until the runtime shuts down): it passes
/// when space is freed, and a task that ended while it lasted then reads how it ended, not
/// `running` until the next restart.
async fn save_finish(rt: &Inner, live: &LiveTask, finish: Finish) -> Option<bool> {
    let mut backoff = Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match rt.store.finish(live.id, live.owner(), finish.clone()).await {
            Ok(applied) => return Some(applied),
            Err(error) if error.kind() == ErrorKind::StorageFull && !rt.is_shutting_down() => {
                if attempt == 1 {
                    tracing::warn!(task = %live.id, %error, "the disk is full: recording how the task ended once there is space");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(error) if attempt >= 5 => {
                tracing::error!(task = %live.id, %error, "could not record how the task ended");
                return None;
            }
            Err(error) => {
                tracing::warn!(task = %live.id, %error, "recording how the task ended failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
}
