//! **Waiting reasons** as the runtime computes them: read on demand from the store (paused
//! types, kill requests, running tasks) and the nodes' reports, never kept.

use chrono::{DateTime, SecondsFormat, Utc};

use super::Inner;
use crate::error::Error;
use crate::fleet::NodeRecord;
use crate::status::Status;
use crate::task::{ListFilter, TaskRecord};
use crate::waiting::{Waiting, WaitingCode};

impl super::Runtime {
    /// Why `record` is not running (queued) or still running (a kill asked and its grace
    /// period over), or what it waits for (a signal), as of now; `None` when there is nothing to say (running as it should,
    /// or over). Reads the store and the nodes' reports each time, so call it for one task
    /// at a time, not for every task of a list.
    pub async fn waiting(&self, record: &TaskRecord) -> Result<Option<Waiting>, Error> {
        match record.status {
            Status::Queued => queued(&self.inner, record).await.map(Some),
            Status::Running => match kill_overdue(&self.inner, record).await? {
                Some(overdue) => Ok(Some(overdue)),
                None => Ok(signal(record)),
            },
            _ => Ok(None),
        }
    }
}

/// A time as the sentences write it.
fn at(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A span in seconds, as the sentences write it.
fn secs(span: chrono::Duration) -> String {
    format!("{:.1}s", span.num_milliseconds().max(0) as f64 / 1000.0)
}

async fn kill_overdue(rt: &Inner, record: &TaskRecord) -> Result<Option<Waiting>, Error> {
    let Some((asked, grace)) = rt.store.kill_asked(record.id).await? else {
        return Ok(None);
    };
    let grace = grace.unwrap_or(rt.config.kill_grace);
    let due = asked + chrono::Duration::from_std(grace).unwrap_or_default();
    let now = rt.clock.now();
    if now <= due {
        return Ok(None);
    }
    let node = record
        .node
        .map_or_else(|| "its node".to_owned(), |n| format!("node {n}"));
    let mut waiting = Waiting::new(
        WaitingCode::KillOverdue,
        format!(
            "a kill was asked at {} with a grace period of {}, and the task still runs {} \
             past it: {node} has not acted on it, so it may be stuck or cut off from the \
             store. If the node is gone, recovery marks the task missing within the node \
             timeout; otherwise look at that node's logs",
            at(asked),
            secs(chrono::Duration::from_std(grace).unwrap_or_default()),
            secs(now - due),
        ),
    );
    waiting.since = Some(asked);
    Ok(Some(waiting))
}

/// What a running task waits for, if it waits for a signal.
fn signal(record: &TaskRecord) -> Option<Waiting> {
    let name = record.waiting_for.as_ref()?;
    let until = record.waiting_until.map_or_else(
        || " (no timeout)".to_owned(),
        |u| format!(" until {}", at(u)),
    );
    let mut waiting = Waiting::new(
        WaitingCode::Signal,
        format!(
            "waiting for {name:?}{until}, holding no slot: send it with `offstage signal {} \
             {name} --payload JSON`, POST /api/tasks/{}/signals/{name}, or the dashboard's Send \
             signal",
            record.id, record.id
        ),
    );
    waiting.signal = Some(name.clone());
    waiting.run_at = record.waiting_until;
    Some(waiting)
}

/// What serves `name` on `node`, as one line for people; `None` if nothing there does.
fn served_lines(node: &NodeRecord) -> Vec<String> {
    let Some(report) = &node.report else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    if !report.task_types.is_empty() {
        lines.push(format!(
            "node {} on {} ({}/{} slots taken): {}",
            node.id,
            node.host,
            report.running,
            report.slots,
            report.task_types.join(", ")
        ));
    }
    for worker in &report.workers {
        lines.push(format!(
            "worker {} on node {} ({}/{} slots taken): {}",
            worker.name,
            node.id,
            worker.running,
            worker.concurrency,
            worker.task_types.join(", ")
        ));
    }
    lines
}

async fn queued(rt: &Inner, record: &TaskRecord) -> Result<Waiting, Error> {
    let name = &record.name;
    let now = rt.clock.now();
    if let Some(paused) = rt
        .store
        .paused_task_types()
        .await?
        .into_iter()
        .find(|p| &p.name == name)
    {
        let mut waiting = Waiting::new(
            WaitingCode::Paused,
            format!(
                "its task type `{name}` is paused on every node (since {}): it waits until \
                 the type is resumed (`offstage resume {name}`, or the Resume button on the \
                 dashboard's task types)",
                at(paused.paused_at)
            ),
        );
        waiting.since = Some(paused.paused_at);
        return Ok(waiting);
    }
    let stale = chrono::Duration::from_std(rt.config.node_timeout).unwrap_or_default();
    let live: Vec<NodeRecord> = super::fleet::nodes(rt)
        .await?
        .into_iter()
        .filter(|n| n.heartbeat_at + stale >= now)
        .collect();
    let serving: Vec<&NodeRecord> = live
        .iter()
        .filter(|n| n.report.as_ref().is_some_and(|r| r.serves(name)))
        .collect();
    if serving.is_empty() {
        let served: Vec<String> = live.iter().flat_map(served_lines).collect();
        let elsewhere = if served.is_empty() {
            "no live node serves any task type".to_owned()
        } else {
            format!("what is served now: {}", served.join("; "))
        };
        let mut waiting = Waiting::new(
            WaitingCode::NoWorker,
            format!(
                "no live node or connected worker serves `{name}`, so nothing can run it: \
                 start a node that registers it, or connect a worker that serves it \
                 ({elsewhere})"
            ),
        );
        waiting.served = served;
        return Ok(waiting);
    }
    if record.run_at > now {
        let backed_off = record
            .error
            .as_ref()
            .filter(|e| e.kind == crate::TaskError::BACKED_OFF);
        let (code, why) = if let Some(error) = backed_off {
            (
                WaitingCode::BackedOff,
                format!(
                    "it {} (the API it calls said to come back later), so it runs again without \
                     counting an attempt",
                    error.message
                ),
            )
        } else if record.attempt == 0 {
            (
                WaitingCode::Scheduled,
                "it was launched to run later".to_owned(),
            )
        } else {
            let how = record
                .error
                .as_ref()
                .map_or_else(String::new, |e| format!(" ({})", e.kind));
            (
                WaitingCode::RetryBackoff,
                format!(
                    "attempt {} ended{how} and its retry policy runs it again after a backoff",
                    record.attempt
                ),
            )
        };
        let mut waiting = Waiting::new(
            code,
            format!(
                "{why}: it becomes due at {} (in {})",
                at(record.run_at),
                secs(record.run_at - now)
            ),
        );
        waiting.run_at = Some(record.run_at);
        return Ok(waiting);
    }
    if let Some(waiting) = key_full(rt, record).await? {
        return Ok(waiting);
    }
    let limit = rt
        .claims
        .limited()
        .iter()
        .find(|(limited, _)| limited == name)
        .map(|(_, max)| *max);
    if let Some(limit) = limit {
        // Tasks waiting for a signal hold no place: the holders are those the claims count.
        let holders = rt
            .store
            .limit_holders(name, limit.clamp(1, ListFilter::MAX_LIMIT))
            .await?;
        if holders.len() >= limit {
            let ids: Vec<_> = holders.iter().take(Waiting::MAX_HOLDERS).copied().collect();
            let shown: Vec<String> = ids.iter().map(ToString::to_string).collect();
            let more = if holders.len() > ids.len() {
                ", …"
            } else {
                ""
            };
            let mut waiting = Waiting::new(
                WaitingCode::ConcurrencyLimit,
                format!(
                    "`{name}` runs at most {limit} at once on all nodes, and {limit} are \
                     running ({}{more}): it starts when one of them ends",
                    shown.join(", ")
                ),
            );
            waiting.limit = Some(limit as u32);
            waiting.holders = ids;
            return Ok(waiting);
        }
    }
    if serving
        .iter()
        .all(|n| n.report.as_ref().is_some_and(|r| !r.has_room_for(name)))
    {
        let served: Vec<String> = serving.iter().flat_map(|n| served_lines(n)).collect();
        let mut waiting = Waiting::new(
            WaitingCode::SlotsBusy,
            format!(
                "every node and worker that serves `{name}` has all its slots taken: it starts \
                 when one frees up (or add a node or worker, or raise their concurrency). \
                 Serving it: {}",
                served.join("; ")
            ),
        );
        waiting.served = served;
        return Ok(waiting);
    }
    Ok(Waiting::new(
        WaitingCode::Due,
        format!(
            "it is due and a node with room serves `{name}`: it is about to be claimed (nodes \
             claim on every launch and freed slot, and poll every {})",
            secs(chrono::Duration::from_std(rt.config.poll_interval).unwrap_or_default())
        ),
    ))
}

/// `key_limit`, when `record`'s concurrency key has as many tasks holding a place as its
/// type's per-key limit allows.
async fn key_full(rt: &Inner, record: &TaskRecord) -> Result<Option<Waiting>, Error> {
    let name = &record.name;
    let (Some(limit), Some(key)) = (rt.claims.key_limit(name), &record.concurrency_key) else {
        return Ok(None);
    };
    let per_key = limit.per_key;
    let holders = rt
        .store
        .key_holders(name, key, per_key.clamp(1, ListFilter::MAX_LIMIT))
        .await?;
    if holders.len() < per_key {
        return Ok(None);
    }
    let ids: Vec<_> = holders.iter().take(Waiting::MAX_HOLDERS).copied().collect();
    let shown: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let more = if holders.len() > ids.len() {
        ", …"
    } else {
        ""
    };
    let mut waiting = Waiting::new(
        WaitingCode::KeyLimit,
        format!(
            "`{name}` runs at most {per_key} at once per concurrency key on all nodes, and \
             {per_key} of key {key:?} are running ({}{more}): it starts when one of them ends \
             (tasks of other keys are not held up)",
            shown.join(", ")
        ),
    );
    waiting.limit = Some(per_key.min(u32::MAX as usize) as u32);
    waiting.holders = ids;
    waiting.concurrency_key = Some(key.clone());
    Ok(Some(waiting))
}
