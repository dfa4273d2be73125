//! **Signals** as the runtime runs them: a send (kept by the store, then a wake-up for the task
//! where it runs), and a task's wait for one.
//!
//! A wait that finds no signal marks the task waiting in the store, gives its slot back (this
//! node's permit, and its place under its type's concurrency limit, which the store stops
//! counting), and sleeps until a signal is sent to it (on this node, or on another by its
//! notice), its timeout, or a stop. It also looks at the store every heartbeat, so a lost
//! notice only delays it. Before the body goes on it takes a slot again: a permit first
//! (resuming tasks go before the claimer), then a place under the limit (a store step that
//! ends the wait only if the limit admits one more; if not, it waits for one to free up).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::live::LiveTask;
use super::{Inner, Runtime};
use crate::error::{Error, ErrorKind};
use crate::id::TaskId;
use crate::log::LogLevel;
use crate::signal::{check_name, task_ended, SignalRecord, SignalSent};
use crate::store::Notice;

/// The most signals [`Runtime::signals`] returns for one task.
pub(crate) const MAX_LISTED: usize = 1_000;

impl Runtime {
    /// Sends signal `name` with `payload` to task `id`: kept in the store until the task
    /// receives it ([`crate::Context::wait_signal`]); a task waiting for it is woken at once,
    /// on whichever node runs it. A signal sent before the task waits is kept until it does.
    ///
    /// Errors: [`ErrorKind::NotFound`] for an unknown id; [`ErrorKind::Conflict`] for a task
    /// that has ended (nothing would ever receive it); [`ErrorKind::InvalidArgument`] for a
    /// bad name (empty, over 200 characters, control characters);
    /// [`ErrorKind::StateTooLarge`] for a payload over the state cap.
    pub async fn signal(
        &self,
        id: TaskId,
        name: &str,
        payload: &impl Serialize,
    ) -> Result<SignalRecord, Error> {
        let payload = to_json(name, payload)?;
        send(&self.inner, id, name, payload, None).await
    }

    /// [`Runtime::signal`] with a JSON payload and the sender's name, kept with the signal
    /// (the HTTP API passes the caller: a token's role and fingerprint, or `anonymous`).
    pub async fn signal_json(
        &self,
        id: TaskId,
        name: &str,
        payload: Value,
        sent_by: Option<&str>,
    ) -> Result<SignalRecord, Error> {
        send(&self.inner, id, name, payload, sent_by).await
    }

    /// The signals sent to task `id` (at most 1,000), oldest first: received or not, by which
    /// attempt, settled or not. [`ErrorKind::NotFound`] for an unknown id.
    pub async fn signals(&self, id: TaskId) -> Result<Vec<SignalRecord>, Error> {
        let signals = self.inner.store.signals(id, MAX_LISTED).await?;
        if signals.is_empty() && self.inner.store.get(id).await?.is_none() {
            return Err(Error::not_found(id));
        }
        Ok(signals)
    }
}

/// `payload` as JSON, or the error that says it does not serialize.
pub(crate) fn to_json(name: &str, payload: &impl Serialize) -> Result<Value, Error> {
    serde_json::to_value(payload).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("the payload of signal {name:?} does not serialize to JSON: {e}"),
        )
    })
}

/// Sends a signal (see [`Runtime::signal`]).
pub(crate) async fn send(
    rt: &Inner,
    id: TaskId,
    name: &str,
    payload: Value,
    sent_by: Option<&str>,
) -> Result<SignalRecord, Error> {
    check_name(name)?;
    if let Some(sent_by) = sent_by {
        crate::limits::check_text("sender", sent_by, crate::limits::MAX_OWNER_CHARS)?;
    }
    let text = payload.to_string();
    let cap = rt.config.state_limit;
    if text.len() > cap {
        return Err(Error::new(
            ErrorKind::StateTooLarge,
            format!(
                "the payload of signal {name:?} is {} bytes, over the cap of {cap} bytes (the \
                 state cap): send a reference (an id, a URL) to larger data instead",
                text.len()
            ),
        ));
    }
    let sent = rt
        .store
        .signal_send(id, name, text, sent_by.map(str::to_owned), rt.clock.now())
        .await?;
    match sent {
        SignalSent::Sent(signal) => {
            if let Some(live) = rt.live(id) {
                live.signal_sent();
            }
            rt.tell_others(Notice::Signal {
                task_id: id,
                name: name.to_owned(),
            });
            Ok(signal)
        }
        SignalSent::Ended(task) => Err(task_ended(&task)),
    }
}

/// The error of a wait that a kill, a timeout or a shutdown ended.
fn cancelled(name: &str) -> Error {
    Error::new(
        ErrorKind::Cancelled,
        format!(
            "the task was asked to stop while it waited for signal {name:?}: return this error, \
             and the task ends as the stop says (killed, timed out, interrupted)"
        ),
    )
}

/// Waits for signal `name` for the task `live` (see the module docs); its payload, or
/// [`ErrorKind::SignalTimeout`] after `timeout`, or [`ErrorKind::Cancelled`] when the task is
/// asked to stop.
pub(crate) async fn wait(
    live: &Arc<LiveTask>,
    name: &str,
    timeout: Option<Duration>,
) -> Result<Value, Error> {
    check_name(name)?;
    let rt = &live.rt;
    // Subscribed before the first look, so a signal sent in between is not missed.
    let mut sent = live.signals_sent.subscribe();
    if let Some(signal) = receive(live, name).await? {
        return Ok(received(live, signal));
    }
    if live.cancel.is_cancelled() {
        return Err(cancelled(name));
    }
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let until = timeout.and_then(|t| {
        let t = chrono::Duration::from_std(t).ok()?;
        rt.clock.now().checked_add_signed(t)
    });
    rt.store
        .signal_wait(live.id, live.owner(), name, until)
        .await?;
    live.set_waiting(Some((name.to_owned(), until)));
    // The slot goes back: this node's permit, and the place under the type's limit, which
    // the store no longer counts (other nodes may claim into it now).
    // (A task that held none, a spawned one, takes none back either.)
    let held = live.permit.lock().expect("permit poisoned").take();
    let had_slot = held.is_some();
    drop(held);
    if rt.claims.is_limited(&live.started.name) {
        rt.limit_freed.notify_waiters();
        rt.tell_others(Notice::Queued);
    }
    let until_text = until.map_or_else(String::new, |u| {
        format!(
            " until {}",
            u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    });
    live.append_log(
        LogLevel::Info,
        format!("waiting for signal {name:?}{until_text}"),
    );
    let signal = loop {
        let timed_out = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = live.cancel.cancelled() => return Err(cancelled(name)),
            () = timed_out => break None,
            _ = sent.changed() => {}
            // The slow path: a notice from another node may be lost.
            () = tokio::time::sleep(rt.config.heartbeat_interval) => {}
        }
        match receive(live, name).await {
            Ok(Some(signal)) => break Some(signal),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(task = %live.id, %error, "looking for a signal failed; retrying")
            }
        }
    };
    resume(live, name, had_slot).await?;
    match signal {
        Some(signal) => Ok(received(live, signal)),
        None => {
            live.append_log(
                LogLevel::Warn,
                format!("no signal {name:?} came before the wait timed out"),
            );
            Err(Error::new(
                ErrorKind::SignalTimeout,
                format!(
                    "no signal {name:?} came within {:?}: the task goes on; wait again, or end \
                     as it sees fit",
                    timeout.unwrap_or_default()
                ),
            ))
        }
    }
}

async fn receive(live: &LiveTask, name: &str) -> Result<Option<SignalRecord>, Error> {
    let rt = &live.rt;
    rt.store
        .signal_receive(
            live.id,
            live.owner(),
            live.started.attempt,
            name,
            rt.clock.now(),
        )
        .await
}

/// Logs the receipt of `signal` and hands back its payload.
fn received(live: &Arc<LiveTask>, signal: SignalRecord) -> Value {
    live.append_log(LogLevel::Info, format!("received signal {:?}", signal.name));
    signal.payload
}

/// Takes a slot again after a wait: a permit on this node (if the task held one before),
/// then a place under the type's concurrency limit (the store ends the wait only if the limit admits one more). Waits for
/// either as long as it takes, unless the task is asked to stop.
async fn resume(live: &Arc<LiveTask>, name: &str, had_slot: bool) -> Result<(), Error> {
    let rt = &live.rt;
    let task_type = &live.started.name;
    let max_running = rt
        .claims
        .limited()
        .iter()
        .find(|(limited, _)| limited == task_type)
        .map(|(_, max)| *max);
    loop {
        let freed = rt.limit_freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        let permit = if had_slot {
            tokio::select! {
                biased;
                () = live.cancel.cancelled() => return Err(cancelled(name)),
                permit = rt.slots.acquire() => Some(permit),
            }
        } else {
            None
        };
        match rt
            .store
            .signal_resume(live.id, live.owner(), task_type, max_running)
            .await
        {
            Ok(true) => {
                *live.permit.lock().expect("permit poisoned") = permit;
                live.set_waiting(None);
                return Ok(());
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(task = %live.id, %error, "ending a wait for a signal failed; retrying")
            }
        }
        // No place under the limit: the permit goes to others until one frees up.
        drop(permit);
        tokio::select! {
            biased;
            () = live.cancel.cancelled() => return Err(cancelled(name)),
            () = &mut freed => {}
            () = tokio::time::sleep(rt.config.heartbeat_interval) => {}
        }
    }
}
