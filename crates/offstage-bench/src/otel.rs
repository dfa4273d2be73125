//! With feature `otel`: the OpenTelemetry layer installed as an app would, over the SDK's
//! batch processor and an exporter that drops what it is given, so the figures carry the whole
//! cost of the spans on the node (made, recorded, batched) and none of a receiver's.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

/// Installs the layer as the global subscriber (before any runtime is built).
pub(crate) fn install() {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(Discard)
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")))
        .init();
    // Kept for the process's life: dropping the provider would stop its batch thread.
    std::mem::forget(provider);
}
