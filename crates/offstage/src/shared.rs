//! Shared state: named JSON documents under a lock held across nodes. The concept and an example are on [`Shared`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{broadcast, OwnedMutexGuard};
use uuid::Uuid;

use crate::error::{Error, ErrorKind};
use crate::id::NodeId;
use crate::runtime::Inner;

/// The longest name a shared document may have, in characters.
pub(crate) const MAX_NAME_CHARS: usize = crate::limits::MAX_NAME_CHARS;

/// One shared document as the store keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SharedRecord {
    /// The document's name.
    pub name: String,
    /// Its value (`null` until somebody saves one).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: Value,
    /// How many times it has been written: 0 until the first save.
    pub version: u64,
    /// When it was last written (or created).
    pub updated_at: DateTime<Utc>,
    /// Who holds its lock, if anybody does.
    pub locked_by: Option<SharedLock>,
}

/// Who holds a shared document's lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SharedLock {
    /// The node the holder runs on; the lock is freed if that node dies.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub node: NodeId,
    /// Who holds it, for people: `task <id> (<name>)`, `node <id>`, or what the locker said.
    pub holder: String,
    /// Since when.
    pub locked_at: DateTime<Utc>,
}

/// A change to a shared document, as watchers receive it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SharedChange {
    /// The document's name.
    pub name: String,
    /// Its new value.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub value: Arc<Value>,
    /// Its version after the change.
    pub version: u64,
}

/// **Shared state**: named JSON documents that tasks and request handlers share.
///
/// A shared document has a name, a JSON value and a version that every write bumps. Anyone may
/// read it as a snapshot ([`Shared::read`]), which may already be stale when it arrives. To
/// change it, take its lock ([`Shared::lock`]): the lock is exclusive across every node on the
/// database, and taking it reads the latest value, so a change made under it never overwrites
/// one it did not see. [`SharedGuard::save`] writes the new value and releases the lock in one
/// store step; a guard dropped without saving (the task failed, or was killed and its future
/// dropped) releases the lock and writes nothing, like a transaction rolled back. A lock whose
/// node dies is freed by the recovery that marks that node's tasks `missing`.
///
/// Every change reaches watchers on every node ([`Shared::watch`]), so a page can show the
/// value live (`GET /api/shared/{name}/events` on the server).
///
/// This is Reflex's `async with self` for background tasks: the lock refreshes the latest
/// values first, and only the holder writes.
///
/// ```no_run
/// use offstage::{Context, TaskError};
///
/// async fn count_visit(ctx: Context, _args: ()) -> Result<u64, TaskError> {
///     let visits = ctx.shared("visits")?;
///     // Lock, read the latest value (0 when there is none yet), add one, save, release.
///     let total = visits.update(|n: &mut u64| *n += 1).await?;
///     // A snapshot, without the lock: fine for showing, maybe stale for deciding.
///     let seen: Option<u64> = visits.read().await?;
///     ctx.log(format!("{total} visits; {seen:?} a moment later"));
///     Ok(total)
/// }
/// ```
///
/// A handle to one shared document. Cheap to clone. Get one with [`crate::Runtime::shared`]
/// or, inside a task, [`crate::Context::shared`].
#[derive(Clone)]
pub struct Shared {
    rt: Arc<Inner>,
    name: Arc<str>,
    holder: Arc<str>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .finish()
    }
}

/// Checks a document name: not empty, at most [`MAX_NAME_CHARS`] characters, no control
/// characters (the rule of [`crate::limits::check_text`]).
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "a shared document needs a name: use a short one such as `crawler.progress`",
        ));
    }
    crate::limits::check_text("shared document name", name, MAX_NAME_CHARS)
}

impl Shared {
    pub(crate) fn new(rt: Arc<Inner>, name: &str, holder: String) -> Result<Self, Error> {
        check_name(name)?;
        Ok(Self {
            rt,
            name: name.into(),
            holder: holder.into(),
        })
    }

    /// The document's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same handle, naming its locks' holder `who` (what [`SharedLock::holder`] shows)
    /// instead of the default (the task, or the node).
    pub fn holder(mut self, who: impl Into<String>) -> Self {
        self.holder = who.into().into();
        self
    }

    /// The document as the store has it, or `None` if there is none. A snapshot: it may have
    /// changed by the time it arrives.
    pub async fn record(&self) -> Result<Option<SharedRecord>, Error> {
        self.rt.store.shared_get(&self.name).await
    }

    /// The document's value as JSON, or `None` if nobody has saved one yet. A snapshot, without
    /// the lock.
    pub async fn read_json(&self) -> Result<Option<Value>, Error> {
        Ok(self
            .record()
            .await?
            .filter(|record| record.version > 0)
            .map(|record| record.value))
    }

    /// The document's value as a `T`, or `None` if nobody has saved one yet. A snapshot,
    /// without the lock: to change the value, [`Shared::lock`] or [`Shared::update`].
    pub async fn read<T: DeserializeOwned>(&self) -> Result<Option<T>, Error> {
        match self.read_json().await? {
            Some(value) => decode(&self.name, value).map(Some),
            None => Ok(None),
        }
    }

    /// Takes the document's lock, waiting as long as another holder keeps it, and returns a
    /// guard with the latest value. The lock is exclusive across every node on the database.
    /// An absent document is created (value `null`, version 0) by the same step.
    ///
    /// Lockers on one node queue in order; the node's first then asks the store, again
    /// whenever a holder anywhere releases (or, failing word of it, every 2 to 100 ms).
    pub async fn lock(&self) -> Result<SharedGuard, Error> {
        let held = crate::runtime::shared::lock(&self.rt, &self.name, &self.holder).await?;
        Ok(SharedGuard {
            shared: self.clone(),
            token: held.token,
            record: held.record,
            text: None,
            queue: Some(held.queue),
            done: false,
        })
    }

    /// [`Shared::lock`], giving up after `limit`: then the error (kind
    /// [`ErrorKind::Conflict`]) says who holds the lock.
    pub async fn lock_timeout(&self, limit: Duration) -> Result<SharedGuard, Error> {
        match tokio::time::timeout(limit, self.lock()).await {
            Ok(locked) => locked,
            Err(_) => {
                let holder = match self.record().await {
                    Ok(Some(SharedRecord {
                        locked_by: Some(lock),
                        ..
                    })) => format!("{} (since {})", lock.holder, lock.locked_at),
                    _ => "another locker on this node".to_owned(),
                };
                Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "shared document `{}` stayed locked by {holder} for {limit:?}: try \
                         again later, or wait longer",
                        self.name
                    ),
                ))
            }
        }
    }

    /// Locks the document, lets `f` change its value (a `T`; `T::default()` when nobody has
    /// saved one yet), saves it and releases the lock. Returns the value saved.
    pub async fn update<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned + Default,
        F: FnOnce(&mut T),
    {
        let mut guard = self.lock().await?;
        let mut value: T = if guard.version() == 0 {
            T::default()
        } else {
            guard.get()?
        };
        f(&mut value);
        guard.set(&value)?;
        guard.save().await?;
        Ok(value)
    }

    /// Starts watching the document: [`SharedWatch::current`] is the document now, and
    /// [`SharedWatch::changed`] waits for each change after it, made on any node.
    pub async fn watch(&self) -> Result<SharedWatch, Error> {
        // Subscribe first, then read: a change in between is not missed (and one that the read
        // already shows is skipped by its version).
        let changes = self.rt.shared.subscribe();
        let current = self.record().await?;
        let last = current.as_ref().map_or(0, |record| record.version);
        Ok(SharedWatch {
            shared: self.clone(),
            changes,
            current,
            last,
        })
    }
}

fn decode<T: DeserializeOwned>(name: &str, value: Value) -> Result<T, Error> {
    serde_json::from_value(value.clone()).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "shared document `{name}` holds {} which is not a {} ({e}): read it as \
                 JSON, or use the type that writes it",
                short(&value),
                std::any::type_name::<T>()
            ),
        )
    })
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// The lock on a shared document, with its latest value. Change the value with
/// [`SharedGuard::set`], then [`SharedGuard::save`]; or [`SharedGuard::release`] to write
/// nothing. Dropped without either, it releases the lock in the background and writes nothing.
pub struct SharedGuard {
    shared: Shared,
    token: Uuid,
    /// The document as locked, with `value` replaced by what `set` gave.
    record: SharedRecord,
    /// `record.value` as JSON text, once `set` made it.
    text: Option<String>,
    /// This node's turn at the document, passed on when the store's lock is released.
    queue: Option<OwnedMutexGuard<()>>,
    /// True once the store no longer has this guard's lock.
    done: bool,
}

impl fmt::Debug for SharedGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGuard")
            .field("name", &self.record.name)
            .field("version", &self.record.version)
            .finish()
    }
}

impl SharedGuard {
    /// The document's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The version the document had when the lock was taken (0: nobody saved one yet).
    pub fn version(&self) -> u64 {
        self.record.version
    }

    /// The value: the latest saved one, or what [`SharedGuard::set`] gave since.
    pub fn value(&self) -> &Value {
        &self.record.value
    }

    /// The value as a `T`.
    pub fn get<T: DeserializeOwned>(&self) -> Result<T, Error> {
        decode(&self.shared.name, self.record.value.clone())
    }

    /// Replaces the value (written by [`SharedGuard::save`]). Fails, changing nothing, if it
    /// does not serialize to JSON or is over the runtime's state cap.
    pub fn set<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let value = serde_json::to_value(value).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "the value for shared document `{}` does not serialize to JSON: {e}",
                    self.shared.name
                ),
            )
        })?;
        self.set_json(value)
    }

    /// [`SharedGuard::set`] with a JSON value.
    pub fn set_json(&mut self, value: Value) -> Result<(), Error> {
        let text = value.to_string();
        check_size(&self.shared.rt, &self.shared.name, text.len())?;
        self.record.value = value;
        self.text = Some(text);
        Ok(())
    }

    /// Writes the value, bumps the version and releases the lock, in one store step; returns
    /// the document as saved. Fails with [`ErrorKind::LockLost`], writing nothing, if the lock
    /// was taken away meanwhile (this node was declared dead, and recovery freed it).
    pub async fn save(mut self) -> Result<SharedRecord, Error> {
        let text = self
            .text
            .take()
            .unwrap_or_else(|| self.record.value.to_string());
        let rt = Arc::clone(&self.shared.rt);
        let saved = rt
            .store
            .shared_unlock(&self.shared.name, self.token, Some(text), rt.clock.now())
            .await?;
        // A store error leaves `done` false: the drop releases the lock in the background.
        self.done = true;
        match saved {
            Some(record) => {
                rt.shared.changed_here(&rt, &record);
                Ok(record)
            }
            None => Err(self.lost()),
        }
    }

    /// Releases the lock and writes nothing. Releasing a lock that was taken away meanwhile
    /// does nothing.
    pub async fn release(mut self) -> Result<(), Error> {
        let rt = Arc::clone(&self.shared.rt);
        let released = rt
            .store
            .shared_unlock(&self.shared.name, self.token, None, rt.clock.now())
            .await?;
        self.done = true;
        if let Some(record) = released {
            rt.shared.released_here(&rt, &record.name, record.version);
        }
        Ok(())
    }

    fn lost(&self) -> Error {
        Error::new(
            ErrorKind::LockLost,
            format!(
                "the lock on shared document `{}` was taken away before the save, so nothing \
                 was written: this node was declared dead (no heartbeat within the node \
                 timeout) and recovery freed its locks. Lock it again and redo the change; if \
                 this node is busy or paused for long, raise the node timeout",
                self.shared.name
            ),
        )
    }
}

impl Drop for SharedGuard {
    fn drop(&mut self) {
        if !self.done {
            let rt = &self.shared.rt;
            rt.shared.release_later(crate::runtime::shared::Release {
                name: Arc::clone(&self.shared.name),
                token: self.token,
                now: rt.clock.now(),
                queue: self.queue.take(),
            });
        }
    }
}

pub(crate) fn check_size(rt: &Inner, name: &str, bytes: usize) -> Result<(), Error> {
    let cap = rt.config.state_limit;
    if bytes > cap {
        return Err(Error::new(
            ErrorKind::StateTooLarge,
            format!(
                "the value for shared document `{name}` would be {bytes} bytes, over the cap of \
                 {cap} bytes: keep large data elsewhere (a table, a file) and put a reference in \
                 the document, or raise the cap with RuntimeBuilder::state_limit"
            ),
        ));
    }
    Ok(())
}

/// Changes to one shared document, from every node. Made by [`Shared::watch`].
pub struct SharedWatch {
    shared: Shared,
    changes: broadcast::Receiver<SharedChange>,
    current: Option<SharedRecord>,
    /// The newest version handed out (or shown by `current`).
    last: u64,
}

impl fmt::Debug for SharedWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedWatch")
            .field("name", &self.shared.name)
            .field("last", &self.last)
            .finish()
    }
}

impl SharedWatch {
    /// The document as it was when the watch began, or `None` if there was none.
    pub fn current(&self) -> Option<&SharedRecord> {
        self.current.as_ref()
    }

    /// Waits for the next change: a version newer than every one seen so far. Changes made on
    /// other nodes arrive as the store's notices carry them; where a notice is lost (or the
    /// store carries none, as between processes on one SQLite file), the store is read again
    /// every poll interval, so a change is late, never missed (though a watcher that falls
    /// behind sees only the latest of several).
    pub async fn changed(&mut self) -> Result<SharedChange, Error> {
        let poll = self.shared.rt.config.poll_interval;
        let mut deadline = tokio::time::Instant::now() + poll;
        loop {
            tokio::select! {
                change = self.changes.recv() => match change {
                    Ok(change) if *change.name == *self.shared.name && change.version > self.last => {
                        self.last = change.version;
                        return Ok(change);
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(change) = self.reread().await? {
                            return Ok(change);
                        }
                    }
                    // The sender lives as long as the runtime, which this watch keeps alive.
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(Error::new(
                            ErrorKind::ShuttingDown,
                            "the runtime stopped sending shared-state changes: watch again",
                        ));
                    }
                },
                () = tokio::time::sleep_until(deadline) => {
                    deadline = tokio::time::Instant::now() + poll;
                    if let Some(change) = self.reread().await? {
                        return Ok(change);
                    }
                }
            }
        }
    }

    async fn reread(&mut self) -> Result<Option<SharedChange>, Error> {
        let Some(record) = self.shared.record().await? else {
            return Ok(None);
        };
        if record.version <= self.last {
            return Ok(None);
        }
        self.last = record.version;
        Ok(Some(SharedChange {
            name: record.name,
            value: Arc::new(record.value),
            version: record.version,
        }))
    }
}
