//! **Logs**: every task has its own, sequence-numbered and capped.
//!
//! Lines come from [`crate::Context::log`], from `tracing` events emitted inside the task (the
//! runtime captures them with [`TaskLogCapture`], forwarding everything to the subscriber the
//! app installed), and later from an isolated worker's stdout and stderr. A task's log is capped
//! in lines and bytes; the line that would cross the cap is replaced by a visible truncation
//! mark and later lines are dropped.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Dispatch, Event, Level, LevelFilter, Metadata, Subscriber};

/// How important a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Fine-grained tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Ordinary progress (what `ctx.log` writes).
    Info,
    /// Something odd.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    pub(crate) fn parse(s: &str) -> LogLevel {
        match s {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => LogLevel::Info,
        }
    }
}

impl From<Level> for LogLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::TRACE => LogLevel::Trace,
            Level::DEBUG => LogLevel::Debug,
            Level::INFO => LogLevel::Info,
            Level::WARN => LogLevel::Warn,
            _ => LogLevel::Error,
        }
    }
}

/// One line of one task's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLine {
    /// 1 for the task's first line, one more for each line after.
    pub seq: u64,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// How important it is.
    pub level: LogLevel,
    /// The text (one line or several; never cut).
    pub message: String,
}

/// The log sequence numbers of attempt `attempt` (1 for the first run): each attempt numbers
/// its lines in a range of its own, `(attempt - 1) * 2^32 + 1 ..= attempt * 2^32`, after every
/// earlier attempt's lines. A retried task's log reads in order, and a line written about an
/// attempt after it ended (recovery's "went missing" note, at the end of the lost attempt's
/// range) never collides with a line the attempt wrote itself.
pub(crate) fn attempt_log_seqs(attempt: u32) -> std::ops::RangeInclusive<u64> {
    let attempt = u64::from(attempt.max(1));
    ((attempt - 1) << 32) + 1..=attempt << 32
}

/// Caps on one task's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLimits {
    /// Most lines kept per task, the truncation mark included.
    pub max_lines: u64,
    /// Most bytes of message text kept per task.
    pub max_bytes: u64,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_lines: 10_000,
            max_bytes: 1024 * 1024,
        }
    }
}

/// The message of the line that marks a truncated log.
pub(crate) fn truncation_mark(limits: LogLimits) -> String {
    format!(
        "[offstage] log truncated: this task reached its cap of {} lines or {} bytes; later \
         lines are dropped (raise the cap with RuntimeBuilder::log_limits)",
        limits.max_lines, limits.max_bytes
    )
}

tokio::task_local! {
    /// The task whose body is being polled, so `tracing` events can find their log.
    pub(crate) static CURRENT_TASK: Arc<crate::runtime::live::LiveTask>;
}

/// The `tracing` subscriber the runtime installs around every task body: events inside a task
/// at or above its level land in that task's log, and everything (spans and events, inside
/// tasks or not) is forwarded to the subscriber that was the default when the runtime was
/// built. Install your own subscriber before building the runtime.
pub(crate) struct TaskLogCapture {
    inner: Dispatch,
    level: LevelFilter,
}

impl fmt::Debug for TaskLogCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLogCapture")
            .field("level", &self.level)
            .finish()
    }
}

impl TaskLogCapture {
    /// Captures events at `level` and above, forwarding everything to `inner`.
    pub(crate) fn new(inner: Dispatch, level: LevelFilter) -> Self {
        Self { inner, level }
    }

    /// The app's own dispatcher, which everything is forwarded to.
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) fn inner(&self) -> &Dispatch {
        &self.inner
    }

    fn captures(&self, meta: &Metadata<'_>) -> bool {
        meta.is_event() && self.level >= *meta.level()
    }
}

fn in_task() -> bool {
    CURRENT_TASK.try_with(|_| ()).is_ok()
}

impl Subscriber for TaskLogCapture {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        let inner = self.inner.register_callsite(meta);
        if self.captures(meta) && !inner.is_always() {
            Interest::sometimes()
        } else {
            inner
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        (self.captures(meta) && in_task()) || self.inner.enabled(meta)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.inner.new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.inner.record(span, values)
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.inner.record_follows_from(span, follows)
    }

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        if self.captures(meta) {
            let _ = CURRENT_TASK.try_with(|task| {
                let mut text = MessageText::default();
                event.record(&mut text);
                task.append_log(LogLevel::from(*meta.level()), text.finish());
            });
        }
        if self.inner.enabled(meta) {
            self.inner.event(event)
        }
    }

    fn enter(&self, span: &Id) {
        self.inner.enter(span)
    }

    fn exit(&self, span: &Id) {
        self.inner.exit(span)
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.inner.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.inner.try_close(id)
    }

    fn current_span(&self) -> tracing_core::span::Current {
        self.inner.current_span()
    }
}

/// Renders an event as `message key=value key=value`.
#[derive(Default)]
struct MessageText {
    message: String,
    fields: String,
}

impl MessageText {
    fn finish(mut self) -> String {
        if !self.fields.is_empty() {
            if !self.message.is_empty() {
                self.message.push(' ');
            }
            self.message.push_str(self.fields.trim_start());
        }
        self.message
    }
}

impl Visit for MessageText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}
