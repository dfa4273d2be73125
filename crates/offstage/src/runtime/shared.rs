//! Shared state as a node runs it: a queue per document for this node's lockers, the releaser
//! that frees the locks of dropped guards, and the fan-out of changes to watchers.
//!
//! Lockers on one node wait their turn on a per-document `tokio::sync::Mutex` (fair, first
//! come first served), so only one of them at a time asks the store; that one retries whenever
//! a release is heard of (here, or from another node by notice) and otherwise on a short
//! backoff, because a notice may be lost. The store's lock is the one that counts: the queue
//! only spares the store a crowd.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot, Notify, OwnedMutexGuard};
use uuid::Uuid;

use super::Inner;
use crate::error::{Error, ErrorKind};
use crate::shared::{SharedChange, SharedRecord};
use crate::store::{Notice, Store};

/// The first wait before asking the store again for a lock another node holds.
const FIRST_BACKOFF: Duration = Duration::from_millis(2);
/// The longest wait between two tries, when no release is heard of.
const MAX_BACKOFF: Duration = Duration::from_millis(100);
/// Changes a slow watcher may fall behind by before it re-reads the store.
const CHANGES: usize = 1024;

/// A lock to free in the background: its guard was dropped without `save` or `release`.
pub(crate) struct Release {
    pub(crate) name: Arc<str>,
    pub(crate) token: Uuid,
    pub(crate) now: DateTime<Utc>,
    /// The node's turn at the document, passed on once the store's lock is free.
    pub(crate) queue: Option<OwnedMutexGuard<()>>,
}

/// A lock the store granted: what `Shared::lock` makes its guard of.
pub(crate) struct Held {
    pub(crate) token: Uuid,
    pub(crate) record: SharedRecord,
    pub(crate) queue: OwnedMutexGuard<()>,
}

/// This node's side of shared state, one per runtime.
pub(crate) struct SharedHub {
    /// One queue per document this node's lockers are using. An entry is removed when the
    /// last locker lets go of it, so the map holds only documents in use.
    queues: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
    /// Woken whenever a lock is released or a document changes, here or on another node:
    /// each node's waiting locker then asks the store again.
    released: Notify,
    /// Every change this node saves or hears of, for watchers (who filter by name).
    changes: broadcast::Sender<SharedChange>,
    /// To the releaser, which frees the locks of guards that were dropped.
    releases: mpsc::UnboundedSender<Release>,
}

impl std::fmt::Debug for SharedHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedHub").finish_non_exhaustive()
    }
}

impl SharedHub {
    /// A hub, and the receiving end of its releases for [`release_loop`].
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Release>) {
        let (releases, receiver) = mpsc::unbounded_channel();
        let hub = Self {
            queues: Mutex::default(),
            released: Notify::new(),
            changes: broadcast::channel(CHANGES).0,
            releases,
        };
        (hub, receiver)
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<SharedChange> {
        self.changes.subscribe()
    }

    /// Frees a lock in the background (a guard was dropped).
    pub(crate) fn release_later(&self, release: Release) {
        // The receiver lives as long as the runtime's releaser; if it is gone, so is the node,
        // and recovery frees the lock.
        let _ = self.releases.send(release);
    }

    /// This node saved `record`: tell its watchers and lockers, and the other nodes.
    pub(crate) fn changed_here(&self, rt: &Inner, record: &SharedRecord) {
        let value = Arc::new(record.value.clone());
        let _ = self.changes.send(SharedChange {
            name: record.name.clone(),
            value: Arc::clone(&value),
            version: record.version,
        });
        self.released.notify_waiters();
        rt.tell_others(Notice::Shared {
            name: record.name.clone(),
            version: record.version,
            value: Some(value),
        });
    }

    /// This node released a lock without a change: wake lockers here and elsewhere.
    pub(crate) fn released_here(&self, rt: &Inner, name: &str, version: u64) {
        self.released.notify_waiters();
        rt.tell_others(Notice::Shared {
            name: name.to_owned(),
            version,
            value: None,
        });
    }

    /// Another node changed a document or released its lock.
    pub(crate) fn heard(&self, name: String, version: u64, value: Option<Arc<Value>>) {
        self.released.notify_waiters();
        if let Some(value) = value {
            let _ = self.changes.send(SharedChange {
                name,
                value,
                version,
            });
        }
    }

    /// Notices may have been lost: lockers ask the store again now.
    pub(crate) fn wake_all(&self) {
        self.released.notify_waiters();
    }

    /// Waits for this node's turn at document `name`.
    async fn turn(&self, name: &Arc<str>) -> OwnedMutexGuard<()> {
        let queue = {
            let mut queues = self.queues.lock().expect("shared queues poisoned");
            // Forget the queues nobody holds or waits on any more (only the map refers to
            // them). Cheap: the map holds the documents being locked right now.
            queues.retain(|_, queue| Arc::strong_count(queue) > 1);
            Arc::clone(queues.entry(Arc::clone(name)).or_default())
        };
        queue.lock_owned().await
    }
}

/// Takes the lock on `name` for `holder`: this node's turn first, then the store's lock.
pub(crate) async fn lock(
    rt: &Arc<Inner>,
    name: &Arc<str>,
    holder: &Arc<str>,
) -> Result<Held, Error> {
    // No refusal while shutting down: tasks finishing in the drain period may still need a
    // lock, and deregistration frees whatever is left.
    let queue = rt.shared.turn(name).await;
    let token = Uuid::now_v7();
    let mut backoff = FIRST_BACKOFF;
    loop {
        // Listen before asking, so a release between the answer and the wait is not missed.
        let released = rt.shared.released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        if let Some(record) = attempt(rt, name, holder, token).await? {
            return Ok(Held {
                token,
                record,
                queue,
            });
        }
        tokio::select! {
            () = released => {}
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One try at the store's lock. The store call runs in a task of its own: if the locker is
/// dropped meanwhile (its task was killed), a lock the store granted is given back, instead of
/// being held by a token nobody knows until the node dies.
async fn attempt(
    rt: &Inner,
    name: &Arc<str>,
    holder: &Arc<str>,
    token: Uuid,
) -> Result<Option<SharedRecord>, Error> {
    let (answer, answered) = oneshot::channel();
    let store = Arc::clone(&rt.store);
    let releases = rt.shared.releases.clone();
    let (name, holder, node, now) = (
        Arc::clone(name),
        Arc::clone(holder),
        rt.node(),
        rt.clock.now(),
    );
    tokio::spawn(async move {
        let result = store.shared_lock(&name, token, node, &holder, now).await;
        if let Err(Ok(Some(_))) = answer.send(result) {
            let _ = releases.send(Release {
                name,
                token,
                now,
                queue: None,
            });
        }
    });
    answered.await.map_err(|_| {
        Error::new(
            ErrorKind::Store,
            "the attempt to take a shared-state lock was cut short (the runtime is stopping)",
        )
    })?
}

/// Frees the locks of dropped guards until the runtime is gone and every release is done.
pub(crate) async fn release_loop(
    store: Arc<dyn Store>,
    rt: Weak<Inner>,
    mut releases: mpsc::UnboundedReceiver<Release>,
) {
    while let Some(release) = releases.recv().await {
        let mut backoff = Duration::from_millis(10);
        for tries in 1.. {
            match store
                .shared_unlock(&release.name, release.token, None, release.now)
                .await
            {
                Ok(freed) => {
                    if let (Some(record), Some(rt)) = (freed, rt.upgrade()) {
                        rt.shared.released_here(&rt, &record.name, record.version);
                    }
                    break;
                }
                Err(error) if tries < 5 => {
                    tracing::warn!(%error, name = %release.name, "releasing a shared-state lock failed; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(error) => {
                    tracing::error!(%error, name = %release.name, "releasing a shared-state lock failed; it is freed when this node stops or is declared dead");
                    break;
                }
            }
        }
        // This node's next locker of the document goes now, when the store's lock is free.
        drop(release.queue);
    }
}
