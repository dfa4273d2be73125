//! Notices between store handles on the same SQLite file in this process.
//!
//! SQLite has no way to tell another process anything, so two processes on one file fall back
//! to polling (the claimer's poll, heartbeats). Handles in one process, though, share a
//! broadcast channel per database file, so runtimes in one process hear each other at once,
//! the same way nodes on PostgreSQL do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{broadcast, mpsc};

use crate::id::NodeId;
use crate::store::Notice;

/// Batches of notices a slow listener may fall behind by before it hears `Reconnected`.
const CAPACITY: usize = 1024;

/// Notices from one node, in order.
pub(super) type Batch = Arc<(NodeId, Vec<Notice>)>;

fn hubs() -> &'static Mutex<HashMap<PathBuf, broadcast::Sender<Batch>>> {
    static HUBS: OnceLock<Mutex<HashMap<PathBuf, broadcast::Sender<Batch>>>> = OnceLock::new();
    HUBS.get_or_init(Default::default)
}

/// The channel of the database at `path` (canonical, so two spellings of one file meet).
pub(super) fn channel(path: &Path) -> broadcast::Sender<Batch> {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut hubs = hubs().lock().expect("hubs poisoned");
    // Forget channels of databases no store handle has open any more (the map holds one).
    hubs.retain(|_, sender| sender.strong_count() > 1);
    hubs.entry(key)
        .or_insert_with(|| broadcast::channel(CAPACITY).0)
        .clone()
}

/// Sends `notices` to every listening handle, unless this is the only one.
pub(super) fn send(channel: &broadcast::Sender<Batch>, from: NodeId, notices: Vec<Notice>) {
    if channel.receiver_count() > 1 {
        let _ = channel.send(Arc::new((from, notices)));
    }
}

/// A receiver of the notices of nodes other than `me` on `channel`, one at a time.
pub(super) fn listen(
    channel: &broadcast::Sender<Batch>,
    me: NodeId,
) -> mpsc::UnboundedReceiver<Notice> {
    let mut batches = channel.subscribe();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = batches.recv() => next,
                // The runtime went away: stop holding a receiver nobody reads.
                () = tx.closed() => return,
            };
            let delivered = match next {
                Ok(batch) if batch.0 == me => true,
                Ok(batch) => batch.1.iter().all(|notice| tx.send(notice.clone()).is_ok()),
                Err(broadcast::error::RecvError::Lagged(_)) => tx.send(Notice::Reconnected).is_ok(),
                Err(broadcast::error::RecvError::Closed) => false,
            };
            if !delivered {
                return;
            }
        }
    });
    rx
}
