//! Concurrency keys as the runtime shows them: the counts per key of a keyed task type (see
//! `concurrency_key.rs` for the noun, `Store::claim_keyed` for the claim).

use crate::concurrency_key::KeyCount;
use crate::error::Error;

impl super::Runtime {
    /// Up to `limit` of the concurrency keys of task type `name` with tasks queued or holding
    /// a place (running, not waiting for a signal), with those counts: most running first,
    /// then most queued, then by key ([`KeyCount::TOP`] is what the API shows). Exact, and
    /// read from one row per key with work, however many tasks are queued. Empty for a type
    /// without keys.
    pub async fn concurrency_keys(&self, name: &str, limit: usize) -> Result<Vec<KeyCount>, Error> {
        self.inner.store.concurrency_keys(name, limit).await
    }
}
