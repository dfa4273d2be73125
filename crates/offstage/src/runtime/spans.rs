//! The **spans** of a task's trace (feature `otel`): one for its launch, one for each attempt.
//!
//! A launch is a `send {name}` span of kind producer, a child of the trace context the launch
//! was given ([`crate::Launch::trace_parent`], a parent task's attempt) or of the current
//! `tracing` span; its context is what the task's record keeps. Each attempt is a
//! `process {name}` span of kind consumer, a child of that context and linked to it (the
//! OpenTelemetry messaging conventions for a consumer that processes one message), with the
//! task's `tracing` events on it and its status at the end. A rerun's launch span links to the
//! original's trace. The spans are `tracing` spans (target `offstage::trace`, level INFO), made
//! OpenTelemetry spans by the app's `tracing-opentelemetry` layer; without one they cost a
//! disabled span each. Without the feature every type here is empty and costs nothing.
//!
//! The spans go through the app's own subscriber, not the runtime's log capture that wraps it
//! around task bodies: the capture cannot hand out the `tracing-opentelemetry` layer's context,
//! so a span made through it could not be given a parent.

use super::executor::Body;
use crate::id::TaskId;
use crate::task::TaskRecord;
use crate::trace::TraceContext;

/// The span of one launch; ended when dropped (the launch returned).
#[derive(Debug, Default)]
pub(crate) struct Launching {
    #[cfg(feature = "otel")]
    span: Option<tracing::Span>,
}

/// The span of one attempt of a task, from its start until its end is recorded.
#[derive(Debug, Default)]
pub(crate) struct Attempt {
    #[cfg(feature = "otel")]
    span: Option<tracing::Span>,
}

#[cfg(not(feature = "otel"))]
impl Launching {
    pub(crate) fn new(
        _name: &str,
        _id: TaskId,
        _parent: Option<&TraceContext>,
        _link: Option<String>,
    ) -> Self {
        Self {}
    }

    pub(crate) fn context(&self) -> Option<TraceContext> {
        None
    }
}

#[cfg(not(feature = "otel"))]
impl Attempt {
    pub(crate) fn start(_record: &TaskRecord) -> Self {
        Self {}
    }

    pub(crate) fn context(&self) -> Option<TraceContext> {
        None
    }

    pub(crate) fn instrument(&self, body: Body) -> Body {
        body
    }

    pub(crate) fn end(&self, _record: &TaskRecord) {}
}

#[cfg(feature = "otel")]
mod otel {
    use futures::FutureExt;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing::field::Empty;
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::*;
    use crate::log::TaskLogCapture;
    use crate::status::Status;

    /// The app's own dispatcher: the current one, or, inside a task body, the one the
    /// runtime's log capture forwards to.
    fn app_dispatch() -> tracing::Dispatch {
        tracing::dispatcher::get_default(|dispatch| {
            match dispatch.downcast_ref::<TaskLogCapture>() {
                Some(capture) => capture.inner().clone(),
                None => dispatch.clone(),
            }
        })
    }

    /// `cx` as an OpenTelemetry span context (remote: it came from elsewhere).
    fn span_context(cx: &TraceContext) -> SpanContext {
        let flags = if cx.sampled() {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from_hex(cx.trace_id()).unwrap_or(TraceId::INVALID),
            SpanId::from_hex(cx.span_id()).unwrap_or(SpanId::INVALID),
            flags,
            true,
            cx.tracestate()
                .and_then(|state| state.parse::<TraceState>().ok())
                .unwrap_or_default(),
        )
    }

    fn parent_context(cx: &TraceContext) -> opentelemetry::Context {
        opentelemetry::Context::new().with_remote_span_context(span_context(cx))
    }

    /// The W3C trace context of `span`, once the app's layer made it an OpenTelemetry span.
    fn context_of(span: &tracing::Span) -> Option<TraceContext> {
        let cx = span.context();
        let otel = cx.span();
        let sc = otel.span_context();
        if !sc.is_valid() {
            return None;
        }
        let state = sc.trace_state().header();
        TraceContext::parse(
            &format!(
                "00-{}-{}-{:02x}",
                sc.trace_id(),
                sc.span_id(),
                sc.trace_flags().to_u8()
            ),
            Some(state.as_str()),
        )
        .ok()
    }

    impl Launching {
        pub(crate) fn new(
            name: &str,
            id: TaskId,
            parent: Option<&TraceContext>,
            link: Option<String>,
        ) -> Self {
            let span = tracing::dispatcher::with_default(&app_dispatch(), || {
                tracing::info_span!(
                    target: "offstage::trace",
                    "send",
                    otel.name = %format_args!("send {name}"),
                    otel.kind = "producer",
                    messaging.system = "offstage",
                    messaging.operation.type = "send",
                    messaging.operation.name = "send",
                    messaging.destination.name = %name,
                    messaging.message.id = %id,
                    offstage.task.name = %name,
                    offstage.task.id = %id,
                )
            });
            if span.is_disabled() {
                return Self { span: None };
            }
            if let Some(parent) = parent {
                let _ = span.set_parent(parent_context(parent));
            }
            if let Some(link) = link.and_then(|link| TraceContext::parse(&link, None).ok()) {
                span.add_link_with_attributes(
                    span_context(&link),
                    vec![opentelemetry::KeyValue::new("offstage.link", "rerun_of")],
                );
            }
            Self { span: Some(span) }
        }

        pub(crate) fn context(&self) -> Option<TraceContext> {
            self.span.as_ref().and_then(context_of)
        }
    }

    impl Attempt {
        pub(crate) fn start(record: &TaskRecord) -> Self {
            let name = &record.name;
            let span = tracing::dispatcher::with_default(&app_dispatch(), || {
                tracing::info_span!(
                    target: "offstage::trace",
                    parent: None,
                    "process",
                    otel.name = %format_args!("process {name}"),
                    otel.kind = "consumer",
                    otel.status_code = Empty,
                    otel.status_description = Empty,
                    messaging.system = "offstage",
                    messaging.operation.type = "process",
                    messaging.operation.name = "process",
                    messaging.destination.name = %name,
                    messaging.message.id = %record.id,
                    offstage.task.name = %name,
                    offstage.task.id = %record.id,
                    offstage.task.attempt = record.attempt,
                    offstage.task.status = Empty,
                    error.type = Empty,
                )
            });
            if span.is_disabled() {
                return Self { span: None };
            }
            let launch = record
                .traceparent
                .as_deref()
                .and_then(|parent| TraceContext::parse(parent, record.tracestate.as_deref()).ok());
            if let Some(launch) = launch {
                // In the launch's trace (one task is one message: the conventions allow the
                // parent), and linked to it, as they ask of every consumer span.
                let _ = span.set_parent(parent_context(&launch));
                span.add_link(span_context(&launch));
            }
            Self { span: Some(span) }
        }

        pub(crate) fn context(&self) -> Option<TraceContext> {
            self.span.as_ref().and_then(context_of)
        }

        /// The body, inside the span: its `tracing` events land on it, and its own spans
        /// nest under it.
        pub(crate) fn instrument(&self, body: Body) -> Body {
            match &self.span {
                Some(span) => body.instrument(span.clone()).boxed(),
                None => body,
            }
        }

        /// Records how the attempt ended: `retried` when it is queued again.
        pub(crate) fn end(&self, record: &TaskRecord) {
            let Some(span) = &self.span else {
                return;
            };
            let status = match record.status {
                Status::Queued => "retried",
                status => status.as_str(),
            };
            span.record("offstage.task.status", status);
            if let Some(error) = &record.error {
                if record.status != Status::Completed {
                    span.record("otel.status_code", "error");
                    span.record("otel.status_description", error.message.as_str());
                    span.record("error.type", error.kind.as_str());
                }
            }
        }
    }
}
