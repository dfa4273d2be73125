//! Events: every change to every task, in order, on one stream. The concept is on [`Event`]; the stream is [`EventBus`], read through [`Subscription`]s.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::id::TaskId;
use crate::log::LogLine;
use crate::task::TaskRecord;

/// **Events**: every change to every task, in order, on one stream.
///
/// A task produces `launched`, then `started`, any number of `state`, `log` and `checkpoint`
/// events, and finally `finished`. Each event carries a sequence number, increasing by one per
/// event on this node, so a subscriber that reconnects can ask for everything after the last one it saw
/// ([`crate::Runtime::events_since`], [`crate::Runtime::follow_since`]). SSE, the dashboard, the CLI's `--follow`, the examples and
/// the tests all read this one stream. Where nodes share a database that carries notices
/// (PostgreSQL), each node's stream also carries the other nodes' events, numbered in the order
/// they arrived here.
///
/// ```no_run
/// # async fn demo(rt: offstage::Runtime) {
/// let mut events = rt.events();
/// while let Ok(event) = events.recv().await {
///     println!("#{} {} {:?}", event.seq, event.task_id, event.kind);
/// }
/// # }
/// ```
///
/// One change to one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position on this node's stream: one more than the event before it.
    pub seq: u64,
    /// The task it is about.
    pub task_id: TaskId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened to a task. Closed: these six are all there is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EventKind {
    /// The task was launched and is durable. Carries the whole record as launched.
    Launched {
        /// The record at launch.
        task: Arc<TaskRecord>,
    },
    /// A node started running it.
    Started {
        /// The record as it started.
        task: Arc<TaskRecord>,
    },
    /// The task wrote its state.
    State {
        /// The whole new state.
        state: Arc<Value>,
    },
    /// The task saved a checkpoint ([`crate::Context::save_checkpoint`]); it is in the store.
    /// The event's `at` is the record's `checkpoint_at`.
    Checkpoint {
        /// The whole checkpoint.
        checkpoint: Arc<Value>,
    },
    /// The task logged a line.
    Log {
        /// The line.
        line: Arc<LogLine>,
    },
    /// The task reached its terminal status. The last event for this task.
    Finished {
        /// The final record.
        task: Arc<TaskRecord>,
    },
}

impl EventKind {
    /// The event's type name: `launched`, `started`, `state`, `checkpoint`, `log` or
    /// `finished`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Launched { .. } => "launched",
            EventKind::Started { .. } => "started",
            EventKind::State { .. } => "state",
            EventKind::Checkpoint { .. } => "checkpoint",
            EventKind::Log { .. } => "log",
            EventKind::Finished { .. } => "finished",
        }
    }
}

/// Why [`Subscription::recv`] returned no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The stream ended: the task finished, or the runtime was dropped.
    #[error("the event stream ended")]
    Closed,
    /// The subscriber fell so far behind that events `first..=last` are gone from the replay
    /// buffer. Re-read the current records from the store, then carry on: later events follow.
    #[error("missed events {first}..={last}; re-read current state from the store")]
    Gap {
        /// The first missed sequence number.
        first: u64,
        /// The last missed sequence number.
        last: u64,
    },
}

/// The broadcast stream of one node, with a replay buffer of recent events.
#[derive(Debug)]
pub(crate) struct EventBus {
    inner: Mutex<BusInner>,
    all: broadcast::Sender<Event>,
    replay_capacity: usize,
}

#[derive(Debug)]
struct BusInner {
    /// The sequence number the next event gets.
    next_seq: u64,
    /// The most recent events, oldest first, for subscribers that resume or lag.
    replay: VecDeque<Event>,
    /// Per-task channels, created when somebody subscribes to one task, dropped after its
    /// `finished` event. Keeps per-task subscribers from filtering every event of every task.
    per_task: HashMap<TaskId, broadcast::Sender<Event>>,
}

/// Events per-task channels hold before a slow subscriber lags.
const PER_TASK_CAPACITY: usize = 1024;

impl EventBus {
    /// A bus that keeps the last `replay_capacity` events for resuming subscribers.
    pub(crate) fn new(replay_capacity: usize) -> Self {
        let replay_capacity = replay_capacity.max(16);
        let (all, _) = broadcast::channel(replay_capacity);
        Self {
            inner: Mutex::new(BusInner {
                next_seq: 1,
                replay: VecDeque::with_capacity(replay_capacity),
                per_task: HashMap::new(),
            }),
            all,
            replay_capacity,
        }
    }

    /// Stamps `kind` with the next sequence number and sends it to every subscriber.
    pub(crate) fn publish(&self, task_id: TaskId, at: DateTime<Utc>, kind: EventKind) -> u64 {
        let finished = matches!(kind, EventKind::Finished { .. });
        let mut inner = self.inner.lock().expect("event bus poisoned");
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let event = Event {
            seq,
            task_id,
            at,
            kind,
        };
        if inner.replay.len() == self.replay_capacity {
            inner.replay.pop_front();
        }
        inner.replay.push_back(event.clone());
        if inner.per_task.len() > 1024 {
            // Drop channels nobody listens to any more (subscribers to tasks that never finish
            // on this node, or that went away early).
            inner
                .per_task
                .retain(|_, sender| sender.receiver_count() > 0);
        }
        if !inner.per_task.is_empty() {
            let sender = if finished {
                inner.per_task.remove(&task_id)
            } else {
                inner.per_task.get(&task_id).cloned()
            };
            if let Some(sender) = sender {
                let _ = sender.send(event.clone());
            }
        }
        // Sent under the lock so that the broadcast order is the sequence order.
        let _ = self.all.send(event);
        seq
    }

    /// The sequence number of the newest event, 0 before the first.
    pub(crate) fn last_seq(&self) -> u64 {
        self.inner.lock().expect("event bus poisoned").next_seq - 1
    }

    /// Every event from now on.
    pub(crate) fn subscribe(&self) -> Subscription {
        let inner = self.inner.lock().expect("event bus poisoned");
        Subscription {
            rx: self.all.subscribe(),
            backlog: VecDeque::new(),
            last_seq: inner.next_seq - 1,
            task: None,
            bus: None,
            ended: false,
        }
    }

    /// Every event after `seq`: first those still in the replay buffer, then live ones. If
    /// events after `seq` have already left the buffer, the first `recv` reports the gap.
    pub(crate) fn subscribe_since(self: &Arc<Self>, seq: u64) -> Subscription {
        self.subscribe_since_filtered(seq, None)
    }

    /// One task's events after `seq`, replayed from the buffer, then live.
    pub(crate) fn subscribe_task_since(
        self: &Arc<Self>,
        task_id: TaskId,
        seq: u64,
    ) -> Subscription {
        self.subscribe_since_filtered(seq, Some(task_id))
    }

    fn subscribe_since_filtered(self: &Arc<Self>, seq: u64, task: Option<TaskId>) -> Subscription {
        let mut inner = self.inner.lock().expect("event bus poisoned");
        let rx = match task {
            Some(id) => inner
                .per_task
                .entry(id)
                .or_insert_with(|| broadcast::channel(PER_TASK_CAPACITY).0)
                .subscribe(),
            None => self.all.subscribe(),
        };
        let oldest = inner.replay.front().map_or(inner.next_seq, |e| e.seq);
        let mut backlog: VecDeque<Result<Event, RecvError>> = VecDeque::new();
        // `seq` comes from a client (`Last-Event-ID`) and may be anything, `u64::MAX`
        // included: no arithmetic on it may overflow, since a panic here, under the lock,
        // would poison the bus for every subscriber.
        if seq.saturating_add(1) < oldest {
            backlog.push_back(Err(RecvError::Gap {
                first: seq + 1,
                last: oldest - 1,
            }));
        }
        // The replay buffer is in sequence order: start at the first event after `seq` (none,
        // for a subscriber that starts now) instead of filtering the whole buffer.
        let first = inner.replay.partition_point(|e| e.seq <= seq);
        backlog.extend(
            inner
                .replay
                .range(first..)
                .filter(|e| task.is_none_or(|id| e.task_id == id))
                .cloned()
                .map(Ok),
        );
        Subscription {
            rx,
            backlog,
            last_seq: inner.next_seq - 1,
            task,
            bus: Some(Arc::clone(self)),
            ended: false,
        }
    }

    /// Events after `seq` still in the replay buffer, or `None` if some are gone.
    fn replay_after(&self, seq: u64, task: Option<TaskId>) -> Option<Vec<Event>> {
        let inner = self.inner.lock().expect("event bus poisoned");
        let oldest = inner.replay.front().map_or(inner.next_seq, |e| e.seq);
        if seq.saturating_add(1) < oldest {
            return None;
        }
        Some(
            inner
                .replay
                .iter()
                .filter(|e| e.seq > seq && task.is_none_or(|id| e.task_id == id))
                .cloned()
                .collect(),
        )
    }
}

/// A subscriber's view of the stream. Receives events in sequence order.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Event>,
    /// Replayed events (and possibly a gap) to hand out before live ones.
    backlog: VecDeque<Result<Event, RecvError>>,
    /// The newest sequence number handed out or already covered by `backlog`.
    last_seq: u64,
    /// The task this subscription follows, if it follows one.
    task: Option<TaskId>,
    /// Kept by resumable subscriptions, to recover from lag out of the replay buffer.
    bus: Option<Arc<EventBus>>,
    /// Set once a followed task's `finished` event has been handed out: nothing follows it.
    ended: bool,
}

impl Subscription {
    /// The next event; [`RecvError::Closed`] after a followed task's `finished` event.
    pub async fn recv(&mut self) -> Result<Event, RecvError> {
        if self.ended {
            return Err(RecvError::Closed);
        }
        let next = self.next().await;
        if let Ok(event) = &next {
            if self.task.is_some() && matches!(event.kind, EventKind::Finished { .. }) {
                self.ended = true;
            }
        }
        next
    }

    async fn next(&mut self) -> Result<Event, RecvError> {
        loop {
            if let Some(next) = self.backlog.pop_front() {
                if let Ok(event) = &next {
                    self.last_seq = self.last_seq.max(event.seq);
                }
                return next;
            }
            match self.rx.recv().await {
                Ok(event) if event.seq <= self.last_seq => continue,
                Ok(event) => {
                    self.last_seq = event.seq;
                    return Ok(event);
                }
                Err(broadcast::error::RecvError::Closed) => return Err(RecvError::Closed),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let replay = self
                        .bus
                        .as_ref()
                        .and_then(|bus| bus.replay_after(self.last_seq, self.task));
                    match replay {
                        Some(events) => self.backlog.extend(events.into_iter().map(Ok)),
                        None => {
                            let first = self.last_seq + 1;
                            // Skip to what the channel still has; report what was lost.
                            let next = match self.rx.recv().await {
                                Ok(event) => event,
                                Err(_) => return Err(RecvError::Closed),
                            };
                            let last = next.seq.saturating_sub(1).max(first);
                            self.last_seq = next.seq;
                            self.backlog.push_back(Ok(next));
                            return Err(RecvError::Gap { first, last });
                        }
                    }
                }
            }
        }
    }

    /// Ends a one-task subscription whose task is already over with its `finished` event:
    /// the replayed events, then `finished` carrying `record` (unless the replay has it),
    /// numbered `seq`; nothing live after it.
    pub(crate) fn end_with(&mut self, record: crate::task::TaskRecord, seq: u64) {
        let has_finished = self.backlog.iter().any(|event| {
            matches!(
                event,
                Ok(Event {
                    kind: EventKind::Finished { .. },
                    ..
                })
            )
        });
        if !has_finished {
            let task_id = record.id;
            let at = record.finished_at.unwrap_or(record.launched_at);
            self.backlog.push_back(Ok(Event {
                seq,
                task_id,
                at,
                kind: EventKind::Finished {
                    task: Arc::new(record),
                },
            }));
        }
    }

    /// The newest sequence number this subscription has handed out (or started after).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The subscription as a `Stream` of events that ends when the stream closes.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<Event, RecvError>> + Send {
        futures::stream::unfold(self, |mut sub| async move {
            match sub.recv().await {
                Err(RecvError::Closed) => None,
                item => Some((item, sub)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(n: i64) -> EventKind {
        EventKind::State {
            state: Arc::new(serde_json::json!({ "n": n })),
        }
    }

    #[tokio::test]
    async fn resume_replays_after_the_given_sequence_without_gaps_or_duplicates() {
        let bus = Arc::new(EventBus::new(64));
        let id = TaskId::new();
        for n in 0..5 {
            bus.publish(id, Utc::now(), state(n));
        }
        let mut sub = bus.subscribe_since(2);
        bus.publish(id, Utc::now(), state(5));
        let seqs: Vec<u64> = [(); 4].iter().map(|_| 0).collect();
        let mut got = Vec::new();
        for _ in seqs {
            got.push(sub.recv().await.unwrap().seq);
        }
        assert_eq!(got, vec![3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn resume_from_beyond_the_buffer_reports_the_gap() {
        let bus = Arc::new(EventBus::new(16));
        let id = TaskId::new();
        for n in 0..40 {
            bus.publish(id, Utc::now(), state(n));
        }
        let mut sub = bus.subscribe_since(3);
        assert_eq!(sub.recv().await, Err(RecvError::Gap { first: 4, last: 24 }));
        assert_eq!(sub.recv().await.unwrap().seq, 25);
    }

    /// Found by schemathesis: `Last-Event-ID: 18446744073709551615` overflowed under the bus's
    /// lock, and the poisoned lock broke every event stream of the server after it.
    #[tokio::test]
    async fn a_last_event_id_of_u64_max_neither_panics_nor_poisons_the_bus() {
        let bus = Arc::new(EventBus::new(16));
        let id = TaskId::new();
        bus.publish(id, Utc::now(), state(0));
        let _all = bus.subscribe_since(u64::MAX);
        let _one = bus.subscribe_task_since(id, u64::MAX);
        assert_eq!(bus.replay_after(u64::MAX, Some(id)), Some(Vec::new()));
        let mut sub = bus.subscribe_since(0);
        bus.publish(id, Utc::now(), state(1));
        assert_eq!(sub.recv().await.unwrap().seq, 1);
    }

    #[tokio::test]
    async fn task_subscription_ends_after_finished() {
        let bus = Arc::new(EventBus::new(16));
        let id = TaskId::new();
        let other = TaskId::new();
        let mut sub = bus.subscribe_task_since(id, bus.last_seq());
        bus.publish(other, Utc::now(), state(0));
        bus.publish(id, Utc::now(), state(1));
        let record = crate::testing::sample_record(id);
        bus.publish(
            id,
            Utc::now(),
            EventKind::Finished {
                task: Arc::new(record),
            },
        );
        assert_eq!(sub.recv().await.unwrap().kind.name(), "state");
        assert_eq!(sub.recv().await.unwrap().kind.name(), "finished");
        assert_eq!(sub.recv().await, Err(RecvError::Closed));
    }
}
