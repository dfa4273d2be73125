//! **Signals** as the runtime runs them: a send (kept by the store, then a wake-up for the task
//! where it runs), and a task's wait for one.
//!
//! A wait that finds no signal marks the task waiting in the store, gives its slot back (this
//! node's permit, and its place under its type's concurrency limit, which the store stops
//! counting), and sleeps until a signal is sent to it (on this node, or on another by its
//! notice), its timeout, or a stop. It also looks at the store by itself, after a heartbeat
//! and then less and less often (at least every 30 s), so a lost notice only delays it.
//! Before the body goes on it takes a slot again: a place under the limit first (a store step
//! that ends the wait only if the limit admits one more; if not, it waits for one to free
//! up), then a permit (resuming tasks go before the claimer).

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

/// The longest a waiting task goes without looking at the store itself. It looks after a
/// heartbeat at first, then half as often each time, up to this: the wake-ups (a send here,
/// a notice from another node, a task of its type ending) are what make it prompt, and the
/// looks only cover a lost notice, so 100,000 waiting tasks cost the store little.
const SLOWEST_LOOK: Duration = Duration::from_secs(30);

/// Tasks back from a wait whose type's concurrency limit was full, by task type: a place that
/// frees up wakes one of them, not all (a thousand approvals arriving at once for a type limited
/// to 2 would otherwise make every end a thousand store writes).
#[derive(Debug, Default)]
pub(crate) struct LimitWaits {
    by_type: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl LimitWaits {
    /// What a task of type `name` waits on for a place to free up.
    fn of(&self, name: &str) -> Arc<tokio::sync::Notify> {
        let mut by_type = self.by_type.lock().expect("limit waits poisoned");
        Arc::clone(by_type.entry(name.to_owned()).or_default())
    }

    /// A place under type `name`'s limit may have freed up (a task of it ended, here or
    /// elsewhere, or began to wait for a signal): one waiting task looks.
    pub(crate) fn freed(&self, name: &str) {
        if let Some(waits) = self.by_type.lock().expect("limit waits poisoned").get(name) {
            waits.notify_one();
        }
    }
}

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
        rt.limit_freed.freed(&live.started.name);
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
    let mut look = rt.config.heartbeat_interval;
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
            // The slow path: a notice from another node may be lost. A read first: only a
            // signal there to receive costs a write.
            () = tokio::time::sleep(look) => {
                look = (look * 2).min(SLOWEST_LOOK);
                match receivable(live, name).await {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(error) => {
                        tracing::warn!(task = %live.id, %error, "looking for a signal failed; retrying");
                        continue;
                    }
                }
            }
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

/// True when a signal named `name` is there for this attempt to receive (a read: what
/// [`receive`] would take, without taking it).
async fn receivable(live: &LiveTask, name: &str) -> Result<bool, Error> {
    let attempt = live.started.attempt;
    let signals = live.rt.store.signals(live.id, MAX_LISTED).await?;
    Ok(signals.iter().any(|s| {
        s.name == name
            && s.received_attempt
                .is_none_or(|received| received < attempt && !s.settled)
    }))
}

/// Logs the receipt of `signal` and hands back its payload.
fn received(live: &Arc<LiveTask>, signal: SignalRecord) -> Value {
    live.append_log(LogLevel::Info, format!("received signal {:?}", signal.name));
    signal.payload
}

/// Takes a slot again after a wait: a place under the type's concurrency limit (the store
/// ends the wait only if the limit admits one more; else the task waits for a place to free
/// up), then a permit on this node if the task held one before (resuming tasks get freed
/// slots first). The place comes first so that tasks with no place never hold a permit: a
/// thousand approvals for a type limited to 2 do not pass this node's slots around. Waits
/// as long as it takes, unless the task is asked to stop.
async fn resume(live: &Arc<LiveTask>, name: &str, had_slot: bool) -> Result<(), Error> {
    let rt = &live.rt;
    let task_type = &live.started.name;
    let max_running = rt
        .claims
        .limited()
        .iter()
        .find(|(limited, _)| limited == task_type)
        .map(|(_, max)| *max);
    // A type with a per-key limit: the task's key must have a place too.
    let key_limit = rt
        .claims
        .key_limit(task_type)
        .zip(live.started.concurrency_key.as_deref());
    let waits = rt.limit_freed.of(task_type);
    let mut look = rt.config.heartbeat_interval;
    loop {
        let freed = waits.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        let resumed = match key_limit {
            Some((limit, key)) => {
                rt.store
                    .signal_resume_keyed(
                        live.id,
                        live.owner(),
                        task_type,
                        key,
                        limit.per_key,
                        max_running,
                    )
                    .await
            }
            None => {
                rt.store
                    .signal_resume(live.id, live.owner(), task_type, max_running)
                    .await
            }
        };
        match resumed {
            Ok(true) => break,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(task = %live.id, %error, "ending a wait for a signal failed; retrying")
            }
        }
        tokio::select! {
            biased;
            () = live.cancel.cancelled() => return Err(cancelled(name)),
            () = &mut freed => {}
            // The slow path, for a place freed on another node whose notice was lost.
            () = tokio::time::sleep(look) => look = (look * 2).min(SLOWEST_LOOK),
        }
    }
    // It counts under its type's limit again from here (`waiting_for` is cleared).
    live.set_waiting(None);
    if had_slot {
        let permit = tokio::select! {
            biased;
            () = live.cancel.cancelled() => return Err(cancelled(name)),
            permit = rt.slots.acquire() => permit,
        };
        *live.permit.lock().expect("permit poisoned") = Some(permit);
    }
    Ok(())
}
