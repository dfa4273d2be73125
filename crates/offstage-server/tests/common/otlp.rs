//! A real OTLP/HTTP trace receiver on a loopback port: `POST /v1/traces` with a protobuf
//! `ExportTraceServiceRequest`, decoded with the protocol's own types (`opentelemetry-proto`),
//! as an OpenTelemetry Collector's `otlphttp` receiver takes it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::sync::Notify;

/// A span as received, with the service that sent it.
#[derive(Clone, Debug)]
pub struct Received {
    pub service: String,
    pub span: Span,
}

impl Received {
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// An attribute's value as text (strings as they are, numbers and booleans written out).
    pub fn attr(&self, key: &str) -> Option<String> {
        attr(&self.span.attributes, key)
    }
}

pub fn attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    Some(match value.value.as_ref()? {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Default)]
struct Inbox {
    spans: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
}

/// The receiver; it stops when dropped.
pub struct Receiver {
    /// The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter adds `/v1/traces`).
    pub url: String,
    inbox: Inbox,
    server: tokio::task::JoinHandle<()>,
}

async fn traces(State(inbox): State<Inbox>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut received = Vec::new();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|r| attr(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                received.push(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
    inbox.spans.lock().unwrap().extend(received);
    inbox.arrived.notify_waiters();
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

impl Receiver {
    pub async fn start() -> Receiver {
        let inbox = Inbox::default();
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(traces))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, inbox, server }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.inbox.spans.lock().unwrap().clone()
    }

    /// Waits (30 s at most) until the spans received satisfy `done`; returns them all.
    pub async fn until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let wait = async {
            loop {
                let arrived = self.inbox.arrived.notified();
                let spans = self.spans();
                if done(&spans) {
                    return spans;
                }
                arrived.await;
            }
        };
        match tokio::time::timeout(Duration::from_secs(30), wait).await {
            Ok(spans) => spans,
            Err(_) => panic!(
                "waiting for {what}; received: {:#?}",
                self.spans()
                    .iter()
                    .map(|s| (
                        s.span.name.clone(),
                        s.trace_id(),
                        s.span_id(),
                        s.parent_id()
                    ))
                    .collect::<Vec<_>>()
            ),
        }
    }

    /// The spans of trace `trace_id` named `name`.
    pub fn named(spans: &[Received], trace_id: &str, name: &str) -> Vec<Received> {
        spans
            .iter()
            .filter(|s| s.trace_id() == trace_id && s.span.name == name)
            .cloned()
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
