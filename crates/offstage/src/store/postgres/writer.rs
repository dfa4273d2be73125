//! Group commit for the writes every task makes: its launch and its finish.
//!
//! Under load, thousands of tasks launch and finish each second, each a tiny write. Committing
//! each alone would spend the database's time on commits (and, with `synchronous_commit` on, on
//! WAL flushes). Instead every launch and finish goes to a queue; a few writer tasks each take
//! whatever has queued up, write all of it with one statement per kind (`unnest` over arrays)
//! in one transaction, and commit once. When idle, a write commits alone, at once.
//!
//! If a batch fails, each of its writes is retried alone, so one bad write reports its own
//! error and does not fail its neighbours.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use super::nodes::hold_node;
use super::rows::{LogArrays, TaskArrays};
use super::{pg_error, PostgresStore};
use crate::error::{Error, ErrorKind};
use crate::id::{NodeId, TaskId};
use crate::store::{json_text, node_dead, running_on, Finish};
use crate::task::TaskRecord;

/// Most writes in one transaction.
const MAX_BATCH: usize = 2048;

pub(super) enum Write {
    Launch(Box<TaskRecord>, oneshot::Sender<Result<(), Error>>),
    Finish(
        TaskId,
        NodeId,
        Box<Finish>,
        oneshot::Sender<Result<bool, Error>>,
    ),
}

impl PostgresStore {
    /// Queues the write `make` builds (around the sender of its answer) for the group commit,
    /// and returns its answer once its transaction has committed.
    pub(super) async fn write_op<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Write,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let gone = || {
            Error::new(
                ErrorKind::Store,
                "the PostgreSQL writers have stopped; reopen the store",
            )
        };
        self.writes.send(make(tx)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

/// Starts `writers` writer tasks on `pool`; they stop when the returned sender is dropped.
pub(super) fn start(pool: PgPool, writers: usize) -> mpsc::UnboundedSender<Write> {
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..writers.max(1) {
        let (pool, rx) = (pool.clone(), Arc::clone(&rx));
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            loop {
                // One writer at a time takes what queued up; the others commit meanwhile.
                let taken = rx.lock().await.recv_many(&mut batch, MAX_BATCH).await;
                if taken == 0 {
                    return;
                }
                write(&pool, std::mem::take(&mut batch)).await;
            }
        });
    }
    tx
}

async fn write(pool: &PgPool, batch: Vec<Write>) {
    if batch.len() == 1 {
        return write_alone(pool, batch.into_iter().next().expect("one write")).await;
    }
    match commit(pool, &batch).await {
        Ok(applied) => reply(batch, Ok(&applied)),
        Err(_) => {
            for write in batch {
                Box::pin(write_alone(pool, write)).await;
            }
        }
    }
}

async fn write_alone(pool: &PgPool, write: Write) {
    let batch = vec![write];
    let result = commit(pool, &batch).await;
    reply(batch, result.as_ref().map_err(Clone::clone));
}

/// What a committed batch did: which finishes applied, and which nodes' direct starts were
/// refused because the node is no longer registered.
#[derive(Default)]
struct Applied {
    finishes: HashSet<Uuid>,
    dead_nodes: HashSet<Uuid>,
}

/// Tells each write what became of it, or why the transaction failed.
fn reply(batch: Vec<Write>, result: Result<&Applied, ReplyError>) {
    for write in batch {
        match write {
            Write::Launch(task, tx) => {
                let _ = tx.send(match result.clone() {
                    Ok(applied) => match task.node {
                        Some(node) if applied.dead_nodes.contains(&node.as_uuid()) => {
                            Err(node_dead(node))
                        }
                        _ => Ok(()),
                    },
                    Err(error) => Err(error.error()),
                });
            }
            Write::Finish(id, _, _, tx) => {
                let _ = tx.send(
                    result
                        .clone()
                        .map(|applied| applied.finishes.contains(&id.as_uuid()))
                        .map_err(ReplyError::error),
                );
            }
        }
    }
}

/// A failed transaction's error, shareable between the writes that were in it.
#[derive(Clone)]
struct ReplyError(Arc<Error>);

impl ReplyError {
    fn error(self) -> Error {
        Error::new(self.0.kind(), self.0.message().to_owned())
    }
}

async fn commit(pool: &PgPool, batch: &[Write]) -> Result<Applied, ReplyError> {
    run(pool, batch)
        .await
        .map_err(|e| ReplyError(Arc::new(pg_error("write", e))))
}

async fn run(pool: &PgPool, batch: &[Write]) -> sqlx::Result<Applied> {
    let mut tx = pool.begin().await?;
    // Direct starts are fenced: a task goes in `running` only on a registered node, whose row
    // is held until the commit so that recovery cannot remove it in between.
    let starters: HashSet<NodeId> = batch
        .iter()
        .filter_map(|write| match write {
            Write::Launch(task, _) => running_on(task),
            Write::Finish(..) => None,
        })
        .collect();
    let mut applied = Applied::default();
    for node in starters {
        if !hold_node(&mut tx, node).await? {
            applied.dead_nodes.insert(node.as_uuid());
        }
    }
    let mut launches = TaskArrays::default();
    let mut finishes = FinishArrays::default();
    for write in batch {
        match write {
            Write::Launch(task, _) => {
                let refused = running_on(task)
                    .is_some_and(|node| applied.dead_nodes.contains(&node.as_uuid()));
                if !refused {
                    launches.push(task);
                }
            }
            Write::Finish(id, node, finish, _) => finishes.push(*id, *node, finish),
        }
    }
    if !launches.is_empty() {
        launches.insert(&mut tx).await?;
    }
    applied.finishes = finishes.update(&mut tx).await?;
    // Fenced: the lines of a finish that did not apply (the task is no longer this node's)
    // are dropped with it.
    let mut logs = LogArrays::default();
    for write in batch {
        if let Write::Finish(id, _, finish, _) = write {
            if applied.finishes.contains(&id.as_uuid()) {
                logs.push(*id, &finish.logs);
            }
        }
    }
    // Only applied finishes' lines are here: no fence needed.
    logs.insert(&mut tx, None).await?;
    tx.commit().await?;
    Ok(applied)
}

/// Ends each task of the arrays still running on the node that finishes it (and counts the
/// change, see `counts.rs`), returning the ids of those it ended.
static FINISH_TASKS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH changed AS (UPDATE offstage_tasks t SET status = f.status, state = f.state, \
         return_value = f.return_value, error = f.error, kill_grace_ms = NULL, \
         waiting_for = NULL, waiting_until = NULL, \
         finished_at = CASE WHEN f.retry_at IS NULL THEN f.finished_at END, \
         run_at = coalesce(f.retry_at, t.run_at), \
         node = CASE WHEN f.retry_at IS NULL THEN t.node END \
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], \
                     $7::timestamptz[], $8::timestamptz[]) \
              AS f(id, node, status, state, return_value, error, finished_at, retry_at) \
         WHERE t.id = f.id AND t.node = f.node AND t.status = 'running' \
         RETURNING t.id, t.name, t.status), {} \
         SELECT id FROM changed",
        super::counts::count_change(super::counts::Change::Move(crate::status::Status::Running))
    )
});

#[derive(Default)]
struct FinishArrays {
    id: Vec<Uuid>,
    node: Vec<Uuid>,
    status: Vec<&'static str>,
    state: Vec<String>,
    return_value: Vec<Option<String>>,
    error: Vec<Option<String>>,
    finished_at: Vec<chrono::DateTime<chrono::Utc>>,
    retry_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
}

impl FinishArrays {
    fn push(&mut self, id: TaskId, node: NodeId, finish: &Finish) {
        self.id.push(id.as_uuid());
        self.node.push(node.as_uuid());
        self.status.push(finish.status.as_str());
        self.state.push(finish.state.clone());
        self.return_value
            .push(finish.return_value.as_ref().map(json_text));
        self.error.push(finish.error.as_ref().map(json_text));
        self.finished_at.push(finish.finished_at);
        self.retry_at.push(finish.retry_at);
    }

    /// Ends the tasks still running on the node that finishes them; returns which did.
    async fn update(self, conn: &mut sqlx::PgConnection) -> sqlx::Result<HashSet<Uuid>> {
        if self.id.is_empty() {
            return Ok(HashSet::new());
        }
        let ids: Vec<Uuid> = sqlx::query_scalar(&FINISH_TASKS)
            .bind(self.id)
            .bind(self.node)
            .bind(self.status)
            .bind(self.state)
            .bind(self.return_value)
            .bind(self.error)
            .bind(self.finished_at)
            .bind(self.retry_at)
            .fetch_all(conn)
            .await?;
        Ok(ids.into_iter().collect())
    }
}
