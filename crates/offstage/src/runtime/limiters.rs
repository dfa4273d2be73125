//! Limiters as a node runs them: a turn per limiter for this node's waiters, the wait itself
//! (until the next token is due, or until a hold is released here or, by notice, elsewhere),
//! the release of dropped permits, and `Runtime`'s limiter methods.
//!
//! Waiters on one node queue on a per-limiter `tokio::sync::Mutex` (fair, first come first
//! served), so only one of them at a time asks the store: N waiters on a node cost one store
//! call per token, not N. The store's budget is the one that counts; the turn only spares it
//! a crowd.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, Notify, OwnedMutexGuard};
use uuid::Uuid;

use super::Inner;
use crate::error::{Error, ErrorKind};
use crate::limiter::{check_name, unknown, Acquire, HoldRequest, Limit, LimiterRecord};
use crate::store::Notice;

/// The first wait before asking again for a hold when every one is taken and no release is
/// heard of.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// The longest wait between two tries for a hold, when no release is heard of (a notice was
/// lost, the holder's node died, or a hold expired).
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// How long an acquisition may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Not at all: one try, and only if no waiter on this node is ahead.
    Not,
    /// Until this instant.
    Until(tokio::time::Instant),
    /// As long as it takes.
    Forever,
}

/// This node's side of limiters, one per runtime.
#[derive(Default)]
pub(crate) struct LimiterHub {
    /// One queue per limiter this node's waiters are using; an entry goes when nobody uses it.
    turns: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
    /// Woken whenever a hold is released, here or on another node (by notice): each node's
    /// waiting caller asks the store again.
    released: Notify,
}

impl std::fmt::Debug for LimiterHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimiterHub").finish_non_exhaustive()
    }
}

impl LimiterHub {
    /// Another node released a hold on a limiter, or notices may have been lost: waiters ask
    /// the store again now.
    pub(crate) fn heard(&self) {
        self.released.notify_waiters();
    }

    fn queue(&self, name: &Arc<str>) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.turns.lock().expect("limiter turns poisoned");
        // Forget the queues nobody holds or waits on (only the map refers to them).
        turns.retain(|_, queue| Arc::strong_count(queue) > 1);
        Arc::clone(turns.entry(Arc::clone(name)).or_default())
    }
}

/// Takes a token (and a hold, for a limiter with `max_holders`) from limiter `name` for
/// `holder`, waiting as `wait` says: `Some(hold)` once it has them (the hold's id, if one was
/// taken), `None` if the wait ended first.
pub(crate) async fn acquire(
    rt: &Arc<Inner>,
    name: &Arc<str>,
    holder: &Arc<str>,
    ttl: Option<Duration>,
    wait: Wait,
) -> Result<Option<Option<Uuid>>, Error> {
    let queue = rt.limiters.queue(name);
    let _turn: OwnedMutexGuard<()> = match wait {
        Wait::Not => match queue.try_lock_owned() {
            Ok(turn) => turn,
            Err(_) => return Ok(None),
        },
        Wait::Until(deadline) => {
            match tokio::time::timeout_at(deadline, queue.lock_owned()).await {
                Ok(turn) => turn,
                Err(_) => return Ok(None),
            }
        }
        Wait::Forever => queue.lock_owned().await,
    };
    let mut backoff = FIRST_BACKOFF;
    loop {
        // Listen before asking, so a release between the answer and the wait is not missed.
        let released = rt.limiters.released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        let hold = Uuid::now_v7();
        let pause = match ask(rt, name, holder, hold, ttl).await? {
            Acquire::Taken { held } => return Ok(Some(held.then_some(hold))),
            Acquire::NoToken(due) => {
                backoff = FIRST_BACKOFF;
                due
            }
            Acquire::Full => {
                let pause = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                pause
            }
        };
        let deadline = match wait {
            Wait::Not => return Ok(None),
            Wait::Until(deadline) if deadline <= tokio::time::Instant::now() => return Ok(None),
            Wait::Until(deadline) => deadline,
            Wait::Forever => tokio::time::Instant::now() + pause,
        };
        if pause.is_zero() {
            continue;
        }
        let wake = (tokio::time::Instant::now() + pause).min(deadline);
        tokio::select! {
            () = released => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// One try at the store. The store call runs in a task of its own: if the waiter is dropped
/// meanwhile (its task was killed), a hold the store granted is given back, instead of being
/// held by an id nobody knows until the node dies.
async fn ask(
    rt: &Arc<Inner>,
    name: &Arc<str>,
    holder: &Arc<str>,
    hold: Uuid,
    ttl: Option<Duration>,
) -> Result<Acquire, Error> {
    let (answer, answered) = oneshot::channel();
    let request = HoldRequest {
        id: hold,
        node: rt.node(),
        holder: holder.to_string(),
        ttl,
    };
    let (task_rt, name_here) = (Arc::clone(rt), Arc::clone(name));
    tokio::spawn(async move {
        let now = task_rt.clock.now();
        let result = task_rt
            .store
            .limiter_acquire(&name_here, &request, now)
            .await;
        if let Err(Ok(Some(Acquire::Taken { held: true }))) = answer.send(result) {
            release_later(&task_rt, &name_here, hold);
        }
    });
    let answer = answered.await.map_err(|_| {
        Error::new(
            ErrorKind::Store,
            "the try at a limiter was cut short (the runtime is stopping)",
        )
    })??;
    answer.ok_or_else(|| unknown(name))
}

/// Gives hold `hold` on limiter `name` back and wakes the waiters, here and on the other
/// nodes; false if it was not held (freed meanwhile, or released already).
pub(crate) async fn release(rt: &Inner, name: &str, hold: Uuid) -> Result<bool, Error> {
    let released = rt.store.limiter_release(name, hold).await?;
    if released {
        rt.limiters.released.notify_waiters();
        rt.tell_others(Notice::Limiter {
            name: name.to_owned(),
        });
    }
    Ok(released)
}

/// [`release`] in the background, for a dropped permit. A release that keeps failing is
/// logged: the hold is freed when this node stops or is declared dead.
pub(crate) fn release_later(rt: &Arc<Inner>, name: &Arc<str>, hold: Uuid) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (rt, name) = (Arc::clone(rt), Arc::clone(name));
    handle.spawn(async move {
        let mut backoff = Duration::from_millis(10);
        for tries in 1.. {
            match release(&rt, &name, hold).await {
                Ok(_) => break,
                Err(error) if tries < 5 => {
                    tracing::warn!(%error, limiter = %name, "releasing a limiter hold failed; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(error) => {
                    tracing::error!(%error, limiter = %name, "releasing a limiter hold failed; it is freed when this node stops or is declared dead");
                    break;
                }
            }
        }
    });
}

/// Limiter `name` as the store has it now.
pub(crate) async fn get(rt: &Inner, name: &str) -> Result<Option<LimiterRecord>, Error> {
    Ok(rt
        .store
        .limiters(rt.clock.now())
        .await?
        .into_iter()
        .find(|record| record.name == name))
}

/// Defines limiter `name` in the store (see [`super::Runtime::put_limiter`]), logging when it
/// replaces a different definition.
pub(crate) async fn put(rt: &Inner, name: &str, limit: &Limit) -> Result<LimiterRecord, Error> {
    check_name(name)?;
    limit.check(name)?;
    let (record, before) = rt.store.limiter_put(name, limit, rt.clock.now()).await?;
    if let Some(before) = before.filter(|before| before != limit) {
        tracing::warn!(limiter = name, before = %before, now = %limit, "limiter redefined: the last definition wins on every node");
    }
    // Waiters re-read at once: a higher limit may let them go.
    rt.limiters.released.notify_waiters();
    rt.tell_others(Notice::Limiter {
        name: name.to_owned(),
    });
    Ok(record)
}

impl super::Runtime {
    /// A handle to limiter `name` ([`crate::Limiter`]), whose holds name this node as their
    /// holder. Defined with [`super::RuntimeBuilder::limiter`], [`super::Runtime::put_limiter`]
    /// or over HTTP; an unknown name is an error when acquiring, which says how to define it.
    ///
    /// ```no_run
    /// # async fn demo(rt: offstage::Runtime) -> Result<(), offstage::Error> {
    /// let permit = rt.limiter("stripe")?.acquire().await?; // the same budget as the tasks'
    /// // ... call Stripe ...
    /// drop(permit);
    /// # Ok(()) }
    /// ```
    pub fn limiter(&self, name: &str) -> Result<crate::Limiter, Error> {
        crate::Limiter::new(
            Arc::clone(&self.inner),
            name,
            format!("node {}", self.inner.node()),
            None,
        )
    }

    /// Defines (or redefines) limiter `name` for every node on the store. A new limiter's
    /// bucket starts full; a redefined one keeps its tokens (down to the new burst) and its
    /// holds. The last definition wins, whoever wrote it; a node that replaces a different
    /// one logs a warning.
    pub async fn put_limiter(&self, name: &str, limit: Limit) -> Result<LimiterRecord, Error> {
        put(&self.inner, name, &limit).await
    }

    /// Deletes limiter `name` and its holds; false if there was none. Waiters on it get
    /// [`ErrorKind::NotFound`] at their next try.
    pub async fn delete_limiter(&self, name: &str) -> Result<bool, Error> {
        check_name(name)?;
        let deleted = self.inner.store.limiter_delete(name).await?;
        if deleted {
            self.inner.limiters.released.notify_waiters();
            self.inner.tell_others(Notice::Limiter {
                name: name.to_owned(),
            });
        }
        Ok(deleted)
    }

    /// Every limiter, by name, with its tokens and holders as of now.
    pub async fn limiters(&self) -> Result<Vec<LimiterRecord>, Error> {
        self.inner.store.limiters(self.inner.clock.now()).await
    }

    /// Takes a token (and a hold) from limiter `name` for a caller elsewhere (HTTP), waiting
    /// up to `wait`: `Some(hold)` once it has them, `None` if `wait` passed first. A hold is
    /// freed after `ttl` if nobody releases it first ([`super::Runtime::release_limiter`]).
    pub async fn acquire_limiter(
        &self,
        name: &str,
        holder: &str,
        wait: Duration,
        ttl: Duration,
    ) -> Result<Option<Option<Uuid>>, Error> {
        check_name(name)?;
        crate::limits::check_text("limiter holder", holder, crate::limits::MAX_OWNER_CHARS)?;
        let wait = if wait.is_zero() {
            Wait::Not
        } else {
            Wait::Until(tokio::time::Instant::now() + wait)
        };
        acquire(&self.inner, &name.into(), &holder.into(), Some(ttl), wait).await
    }

    /// Releases hold `hold` on limiter `name`; false if it was not held (released already,
    /// expired, or freed with its node).
    pub async fn release_limiter(&self, name: &str, hold: Uuid) -> Result<bool, Error> {
        check_name(name)?;
        release(&self.inner, name, hold).await
    }
}
