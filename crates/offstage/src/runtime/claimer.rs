//! The **claimer**: claims queued tasks from the store whenever this node has free slots, and
//! starts them.
//!
//! Launches that can start at once skip it (see `launch.rs`). It wakes when a task is queued or
//! a slot frees up ([`super::slots::Slots::wake_claimer`]), at the next `run_at` of a delayed
//! task, and every poll interval to pick up tasks queued by other processes sharing the
//! database. Remote workers' connections claim for their workers with the same [`ClaimSet`]
//! (see `remote.rs`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{executor, Inner};
use crate::error::{Error, ErrorKind};
use crate::id::NodeId;
use crate::task::TaskRecord;

/// Most tasks claimed in one store call.
const CLAIM_BATCH: usize = 256;

/// A task type with a limit per concurrency key (see `concurrency_key.rs`), as the claims and
/// the end of a signal wait apply it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyLimit {
    /// The task type.
    pub(crate) name: String,
    /// At most this many of one key's tasks hold a place at once.
    pub(crate) per_key: usize,
    /// The type's global concurrency limit, if it has one.
    pub(crate) max_running: Option<usize>,
}

/// The task types one claimer claims, split the way the store claims them: types with a
/// per-key limit one by one (`Store::claim_keyed`, keys in turns), types with a concurrency
/// limit one by one (`Store::claim_limited`, which counts what runs on every node), the rest in
/// one `Store::claim`.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClaimSet {
    /// Types without a concurrency limit, in the form `Store::claim` takes them.
    unlimited: Vec<String>,
    /// Types with a concurrency limit (and no per-key limit), and the limit.
    limited: Vec<(String, usize)>,
    /// Types with a per-key limit.
    keyed: Vec<KeyLimit>,
}

impl ClaimSet {
    /// `names`, each with its per-key limit from `keyed` or its limit from `limits` if it has
    /// one.
    pub(crate) fn new(
        names: impl IntoIterator<Item = impl AsRef<str>>,
        limits: &[(String, usize)],
        keyed: &[KeyLimit],
    ) -> Self {
        let mut set = Self::default();
        for name in names {
            let name = name.as_ref();
            if let Some(key_limit) = keyed.iter().find(|k| k.name == name) {
                set.keyed.push(key_limit.clone());
                continue;
            }
            match limits.iter().find(|(limited, _)| limited == name) {
                Some((_, max)) => set.limited.push((name.to_owned(), *max)),
                None => set.unlimited.push(name.to_owned()),
            }
        }
        set
    }

    /// The types with a per-key limit.
    pub(crate) fn keyed(&self) -> &[KeyLimit] {
        &self.keyed
    }

    /// Type `name`'s per-key limit, if it has one.
    pub(crate) fn key_limit(&self, name: &str) -> Option<&KeyLimit> {
        self.keyed.iter().find(|k| k.name == name)
    }

    /// The limited types and their limits (the global limits of keyed types too).
    pub(crate) fn limited(&self) -> Vec<(String, usize)> {
        let keyed = self
            .keyed
            .iter()
            .filter_map(|k| Some((k.name.clone(), k.max_running?)));
        self.limited.iter().cloned().chain(keyed).collect()
    }

    /// True when `name` has a concurrency limit (global or per key) here.
    pub(crate) fn is_limited(&self, name: &str) -> bool {
        self.limited.iter().any(|(limited, _)| limited == name) || self.key_limit(name).is_some()
    }

    /// Claims up to `room` due tasks for `node`: the keyed and limited types first, each
    /// within its limits, then the rest with what is left. A limited type's turn is bounded by
    /// its limit, so it cannot crowd out the others; taking them last would let a deep backlog
    /// of unlimited types starve them. (A keyed type with no global limit may take the whole
    /// room; its keys share it in turns.)
    ///
    /// [`ErrorKind::NodeDead`] drops whatever was claimed before it: recovery took those tasks
    /// over with the node's others. Any other failure after some tasks were claimed is logged
    /// and the claimed ones returned, since they are `running` on this node in the store now
    /// and must start here.
    pub(crate) async fn claim(
        &self,
        rt: &Inner,
        node: NodeId,
        now: DateTime<Utc>,
        room: usize,
    ) -> Result<Vec<TaskRecord>, Error> {
        let mut claimed = Vec::new();
        for keyed in &self.keyed {
            let left = room - claimed.len();
            if left == 0 {
                return Ok(claimed);
            }
            match rt
                .store
                .claim_keyed(
                    node,
                    keyed.name.as_str(),
                    now,
                    left,
                    keyed.per_key,
                    keyed.max_running,
                )
                .await
            {
                Ok(records) => claimed.extend(records),
                Err(error) if error.kind() == ErrorKind::NodeDead || claimed.is_empty() => {
                    return Err(error)
                }
                Err(error) => {
                    tracing::warn!(%error, task_type = %keyed.name, "claiming failed; retrying");
                    return Ok(claimed);
                }
            }
        }
        for (name, max_running) in &self.limited {
            let left = room - claimed.len();
            if left == 0 {
                return Ok(claimed);
            }
            match rt
                .store
                .claim_limited(node, name, now, left, *max_running)
                .await
            {
                Ok(records) => claimed.extend(records),
                Err(error) if error.kind() == ErrorKind::NodeDead || claimed.is_empty() => {
                    return Err(error)
                }
                Err(error) => {
                    tracing::warn!(%error, task_type = %name, "claiming failed; retrying");
                    return Ok(claimed);
                }
            }
        }
        let left = room - claimed.len();
        if left > 0 && !self.unlimited.is_empty() {
            match rt.store.claim(node, &self.unlimited, now, left).await {
                Ok(records) => claimed.extend(records),
                Err(error) if error.kind() == ErrorKind::NodeDead || claimed.is_empty() => {
                    return Err(error)
                }
                Err(error) => tracing::warn!(%error, "claiming queued tasks failed; retrying"),
            }
        }
        Ok(claimed)
    }
}

pub(crate) async fn run(rt: Weak<Inner>) {
    loop {
        let Some(inner) = rt.upgrade() else { return };
        if inner.is_shutting_down() {
            return;
        }
        let wait = claim_once(&inner).await;
        // Register for a wake-up before letting go of the runtime, so none is lost.
        let slots = Arc::clone(&inner.slots);
        let woken = slots.woken();
        drop(inner);
        match wait {
            Some(Duration::ZERO) => continue,
            Some(wait) => {
                tokio::select! {
                    () = woken => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
            None => woken.await,
        }
    }
}

/// Claims what fits; returns how long to sleep (`None`: until woken).
async fn claim_once(rt: &Arc<Inner>) -> Option<Duration> {
    let mut reserved = rt.slots.reserve(CLAIM_BATCH);
    if reserved.len() == 0 {
        // Full: a finishing task frees a slot and wakes us.
        return None;
    }
    let now = rt.clock.now();
    let node = rt.node();
    let claimed = match rt.claims.claim(rt, node, now, reserved.len()).await {
        Ok(claimed) => claimed,
        Err(error) if error.kind() == ErrorKind::NodeDead => {
            drop(reserved);
            super::maintenance::rejoin(rt, node).await;
            return Some(Duration::ZERO);
        }
        Err(error) => {
            tracing::warn!(%error, "claiming queued tasks failed; retrying");
            return Some(rt.config.poll_interval);
        }
    };
    if rt.node() != node {
        // Declared dead during this round: what it claimed before the store refused it was
        // taken over by recovery with the rest, so none of it starts here.
        return Some(Duration::ZERO);
    }
    let full = claimed.len() == reserved.len();
    rt.slots.set_backlog(full);
    for record in claimed {
        let permit = reserved.take().expect("one reserved slot per claimed task");
        executor::start(rt, Arc::new(record), None, permit);
    }
    // What was not needed goes back to the pool.
    drop(reserved);
    if full {
        return Some(Duration::ZERO);
    }
    let next = match rt.store.next_run_at(&rt.names).await {
        Ok(next) => next,
        Err(error) => {
            tracing::warn!(%error, "reading the next run_at failed");
            None
        }
    };
    let poll = rt.config.poll_interval;
    Some(match next {
        Some(at) if at > now => (at - rt.clock.now()).to_std().unwrap_or_default().min(poll),
        _ => poll,
    })
}
