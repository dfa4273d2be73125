//! Notices between nodes over `LISTEN`/`NOTIFY`.
//!
//! Each database schema has one channel, `offstage:<schema>`. A `notify` call packs its notices,
//! in order, into as few payloads as fit under PostgreSQL's 8,000-byte limit (a JSON array
//! each) and sends them all in one statement. A single notice too large for a payload (a big
//! state or log line) is written to `offstage_notices` and the payload names its row (`#42`).
//! Every payload starts with the sending node's id (32 hex digits; zeros for no node), so a
//! listener drops its own node's payloads without reading them.
//!
//! A store sends nothing while it knows of no other node: with one node, announcing its events
//! is pure cost (over a third of its throughput, measured). It learns of other nodes when it
//! registers, on every heartbeat, and at once when a new node announces itself (`!joined`).
//!
//! The listener is a connection of its own; when it drops, the receiver hears `Reconnected`
//! and the connection is made again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::mpsc;

use super::pg_error;
use crate::error::Error;
use crate::id::NodeId;
use crate::store::Notice;

/// The largest payload sent, under PostgreSQL's 8,000 bytes with room to spare.
const PAYLOAD_LIMIT: usize = 7_800;

/// Whether other nodes share the database, as far as this store knows.
#[derive(Debug, Default)]
pub(super) struct Peers {
    known: AtomicBool,
    /// How many `!joined` announcements arrived, so a count read from the table just before a
    /// node joined cannot overwrite the news of it.
    joins: AtomicU64,
}

impl Peers {
    pub(super) fn any(&self) -> bool {
        self.known.load(Ordering::SeqCst)
    }

    /// A mark to pass to [`Peers::counted`] after reading the nodes table.
    pub(super) fn mark(&self) -> u64 {
        self.joins.load(Ordering::SeqCst)
    }

    /// Records what the nodes table said, read after `mark`.
    pub(super) fn counted(&self, mark: u64, others: bool) {
        if others {
            self.known.store(true, Ordering::SeqCst);
            return;
        }
        // Clear, then look again: a join counted after the mark (before or during the clear)
        // sets it back, here or in `joined` itself, whichever runs last.
        self.known.store(false, Ordering::SeqCst);
        if self.joins.load(Ordering::SeqCst) != mark {
            self.known.store(true, Ordering::SeqCst);
        }
    }

    fn joined(&self) {
        self.joins.fetch_add(1, Ordering::SeqCst);
        self.known.store(true, Ordering::SeqCst);
    }
}

/// What a store's notices cost: payloads and bytes sent by this node, and received from the
/// others, since the store opened. Read with [`super::PostgresStore::notice_traffic`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoticeTraffic {
    /// `NOTIFY` payloads this node sent (events, wake-ups, kills, ... in batches).
    pub sent_payloads: u64,
    /// Their bytes, the sender's prefix included.
    pub sent_bytes: u64,
    /// Payloads other nodes sent that this node's listener read.
    pub received_payloads: u64,
    /// Their bytes.
    pub received_bytes: u64,
}

/// The counters behind [`NoticeTraffic`], shared by the sender and the listener.
#[derive(Debug, Default)]
pub(super) struct Traffic {
    sent_payloads: AtomicU64,
    sent_bytes: AtomicU64,
    received_payloads: AtomicU64,
    received_bytes: AtomicU64,
}

impl Traffic {
    pub(super) fn read(&self) -> NoticeTraffic {
        NoticeTraffic {
            sent_payloads: self.sent_payloads.load(Ordering::Relaxed),
            sent_bytes: self.sent_bytes.load(Ordering::Relaxed),
            received_payloads: self.received_payloads.load(Ordering::Relaxed),
            received_bytes: self.received_bytes.load(Ordering::Relaxed),
        }
    }

    fn sent(&self, payload: &str) {
        self.sent_payloads.fetch_add(1, Ordering::Relaxed);
        self.sent_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
    }

    fn received(&self, payload: &str) {
        self.received_payloads.fetch_add(1, Ordering::Relaxed);
        self.received_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
    }
}

/// The prefix of every payload `from` sends.
pub(super) fn sender(from: Option<NodeId>) -> String {
    from.map_or(uuid::Uuid::nil(), |n| n.as_uuid())
        .simple()
        .to_string()
}

/// Tells the other nodes on `channel` that `from` has joined, so they start sending.
pub(super) async fn announce_joined(
    pool: &PgPool,
    channel: &str,
    from: NodeId,
) -> Result<(), Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(format!("{}!joined", sender(Some(from))))
        .execute(pool)
        .await
        .map_err(|e| pg_error("NOTIFY", e))?;
    Ok(())
}

/// Sends `notices` from `from` on `channel`, in order.
pub(super) async fn send(
    pool: &PgPool,
    channel: &str,
    from: NodeId,
    notices: Vec<Notice>,
    traffic: &Traffic,
) -> Result<(), Error> {
    let prefix = sender(Some(from));
    let mut payloads: Vec<String> = Vec::new();
    let mut current = String::new();
    for notice in &notices {
        let text = serde_json::to_string(notice).expect("notices always serialize");
        if text.len() + 2 > PAYLOAD_LIMIT {
            if !current.is_empty() {
                payloads.push(std::mem::take(&mut current) + "]");
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO offstage_notices (payload) VALUES ($1) RETURNING id",
            )
            .bind(format!("[{text}]"))
            .fetch_one(pool)
            .await
            .map_err(|e| pg_error("storing a large notice", e))?;
            payloads.push(format!("{prefix}#{id}"));
            continue;
        }
        if !current.is_empty() && current.len() + text.len() + 2 > PAYLOAD_LIMIT {
            payloads.push(std::mem::take(&mut current) + "]");
        }
        if current.is_empty() {
            current.push_str(&prefix);
            current.push('[');
        } else {
            current.push(',');
        }
        current.push_str(&text);
    }
    if !current.is_empty() {
        payloads.push(current + "]");
    }
    for payload in &payloads {
        traffic.sent(payload);
    }
    sqlx::query(
        "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS n(p, i) ORDER BY i",
    )
    .bind(channel)
    .bind(payloads)
    .execute(pool)
    .await
    .map_err(|e| pg_error("NOTIFY", e))?;
    Ok(())
}

/// Deletes the large notices stored more than a minute ago: a listener reads one as soon as
/// the payload naming it arrives, so by then it has been read or lost (notices are hints).
/// Part of recovery's transaction, which every node runs on each heartbeat.
pub(super) async fn delete_old(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM offstage_notices WHERE sent_at < now() - interval '1 minute'")
        .execute(conn)
        .await?;
    Ok(())
}

/// Listens on `channel` and forwards the notices of nodes other than `me` until the receiver
/// is dropped. Sets `peers` when another node announces itself.
pub(super) async fn listen(
    pool: &PgPool,
    channel: &str,
    me: NodeId,
    peers: Arc<Peers>,
    traffic: Arc<Traffic>,
) -> Result<mpsc::UnboundedReceiver<Notice>, Error> {
    let own = sender(Some(me));
    let mut listener = PgListener::connect_with(pool)
        .await
        .map_err(|e| pg_error("connecting the notice listener", e))?;
    listener
        .listen(channel)
        .await
        .map_err(|e| pg_error("LISTEN", e))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let pool = pool.clone();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = listener.try_recv() => next,
                () = tx.closed() => return,
            };
            let delivered = match next {
                Ok(Some(notification)) if notification.payload().starts_with(&own) => true,
                Ok(Some(notification)) if notification.payload().ends_with("!joined") => {
                    peers.joined();
                    true
                }
                Ok(Some(notification)) => match read(&pool, notification.payload(), &traffic).await
                {
                    Ok(notices) => notices.into_iter().all(|n| tx.send(n).is_ok()),
                    Err(error) => {
                        tracing::warn!(%error, "an unreadable notice was dropped");
                        tx.send(Notice::Reconnected).is_ok()
                    }
                },
                // The connection dropped; the next `try_recv` connects again and listens anew.
                Ok(None) => tx.send(Notice::Reconnected).is_ok(),
                Err(error) => {
                    tracing::warn!(%error, "the notice listener lost PostgreSQL; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    tx.send(Notice::Reconnected).is_ok()
                }
            };
            if !delivered {
                return;
            }
        }
    });
    Ok(rx)
}

async fn read(pool: &PgPool, payload: &str, traffic: &Traffic) -> Result<Vec<Notice>, Error> {
    traffic.received(payload);
    let payload = payload.get(32..).unwrap_or_default();
    let stored;
    let text = match payload.strip_prefix('#') {
        Some(id) => {
            let id: i64 = id.parse().map_err(|_| {
                Error::new(
                    crate::ErrorKind::Store,
                    format!("bad notice payload `{payload}`"),
                )
            })?;
            stored = sqlx::query_scalar::<_, String>(
                "SELECT payload FROM offstage_notices WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(|e| pg_error("reading a large notice", e))?
            .unwrap_or_else(|| "[]".to_owned());
            stored.as_str()
        }
        None => payload,
    };
    serde_json::from_str(text).map_err(|e| {
        Error::new(
            crate::ErrorKind::Store,
            format!("a notice is not one this Offstage understands ({e}): are all nodes on the same version?"),
        )
    })
}
