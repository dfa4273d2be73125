//! **Telemetry** for `offstage serve`: the log on stderr and, when the standard OpenTelemetry
//! variables ask for it, traces exported over OTLP.
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set
//! (and `OTEL_SDK_DISABLED` is not `true`). Then the SDK reads the rest as it always does:
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (the service is `offstage` when neither
//! names one), `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`. The export is HTTP/protobuf, spans go in
//! batches from a thread of the SDK's, and [`Telemetry::shutdown`] flushes them.

use crate::cli::Failure;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// What `serve` installed; [`Telemetry::shutdown`] flushes the spans not sent yet.
pub(crate) struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

/// Installs the process's `tracing` subscriber: the log on stderr (`RUST_LOG`, default
/// `info`), and the OpenTelemetry layer when it is configured.
pub(crate) fn init() -> Result<Telemetry, Failure> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // The task spans' fields would prefix every line a task logs: the log has the task.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,offstage::trace=off"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour only on a terminal, and never with NO_COLOR set: a log file gets plain text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_filter(filter);
    #[cfg(feature = "otel")]
    {
        let provider = provider()?;
        let otel = provider.as_ref().map(|provider| {
            use opentelemetry::trace::TracerProvider as _;
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("offstage"))
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
        });
        let _ = tracing_subscriber::registry()
            .with(fmt)
            .with(otel)
            .try_init();
        Ok(Telemetry { provider })
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = tracing_subscriber::registry().with(fmt).try_init();
        Ok(Telemetry {})
    }
}

impl Telemetry {
    /// Sends the spans not sent yet and stops the exporter (at most the SDK's timeout).
    pub(crate) async fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider {
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(error) = provider.shutdown() {
                    tracing::warn!(%error, "flushing the last spans failed");
                }
            })
            .await;
        }
    }
}

/// True when `name` is set to something.
#[cfg(feature = "otel")]
fn set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|value| !value.is_empty())
}

/// The tracer provider the variables ask for, or `None`.
#[cfg(feature = "otel")]
fn provider() -> Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>, Failure> {
    use opentelemetry_otlp::WithExportConfig;

    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if disabled
        || !(set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    {
        return Ok(None);
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        match std::env::var(name) {
            Ok(protocol) if !protocol.is_empty() && protocol != "http/protobuf" => {
                return Err(format!(
                    "{name}={protocol}: offstage serve exports OTLP over HTTP/protobuf only; set \
                     {name}=http/protobuf (or unset it) and point the endpoint at the \
                     receiver's HTTP port (4318 on an OpenTelemetry Collector)"
                )
                .into())
            }
            _ => {}
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| {
            format!(
                "cannot export traces to the OTLP endpoint in OTEL_EXPORTER_OTLP_ENDPOINT: {e}; \
                 give an http:// URL of an OTLP/HTTP receiver, or unset it"
            )
        })?;
    let named = set("OTEL_SERVICE_NAME")
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES")
            .is_ok_and(|attributes| attributes.contains("service.name="));
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !named {
        resource = resource.with_service_name("offstage");
    }
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    Ok(Some(provider))
}
