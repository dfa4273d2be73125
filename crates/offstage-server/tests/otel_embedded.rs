//! An app that embeds the library with its own `tracing-opentelemetry` layer: a launch inside
//! the app's request span is in that span's trace, without the app passing anything on, and
//! the spans go to a real OTLP/HTTP receiver through the SDK's exporter.
//!
//! One test in this binary: it installs the process's global subscriber.

mod common;

use common::otlp::Receiver;
use offstage::{Context, Runtime, TaskError};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use serde_json::{json, Value};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_request_span_is_the_parent_of_the_tasks_it_launches() {
    let receiver = Receiver::start().await;
    // What the app's main does: an exporter, a provider, the layer in its subscriber.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", receiver.url))
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("the-app")))
        .init();

    use offstage::testing::conformance::Backend;
    let db = offstage::testing::conformance::SqliteBackend.new_database();
    let rt = Runtime::builder()
        .sqlite(&db)
        .task("report.page", |_ctx: Context, page: u64| async move {
            tracing::info!("rendering page {page}");
            Ok::<_, TaskError>(page)
        })
        .task("report", |ctx: Context, pages: u64| async move {
            tracing::info!(pages, "building the report");
            let page = ctx.launch_json("report.page", json!(pages)).await?;
            ctx.wait(&page).await?;
            Ok::<_, TaskError>(json!(ctx.trace_parent().map(|cx| cx.span_id().to_owned())))
        })
        .build()
        .await
        .unwrap();

    // A request handler, instrumented as tower-http's TraceLayer would.
    let request = tracing::info_span!("GET /reports");
    let task = async { rt.launch_json("report", json!(2)).await.unwrap() }
        .instrument(request.clone())
        .await;
    let request_cx = request.context();
    let request_cx = opentelemetry::trace::TraceContextExt::span(&request_cx)
        .span_context()
        .clone();
    drop(request);
    let trace = request_cx.trace_id().to_string();
    assert_eq!(task.snapshot().trace_id(), Some(trace.as_str()));
    let ended = task.wait().await.unwrap();
    let attempt_span = ended.return_value.unwrap();

    let flushing = provider.clone();
    tokio::task::spawn_blocking(move || flushing.force_flush().unwrap())
        .await
        .unwrap();
    let spans = receiver
        .until("the request, the report and its page", |spans| {
            Receiver::named(spans, &trace, "process report.page").len() == 1
                && Receiver::named(spans, &trace, "GET /reports").len() == 1
                && Receiver::named(spans, &trace, "process report").len() == 1
        })
        .await;
    let request = &Receiver::named(&spans, &trace, "GET /reports")[0];
    let send = &Receiver::named(&spans, &trace, "send report")[0];
    assert_eq!(
        send.parent_id(),
        request.span_id(),
        "launched inside the request's span"
    );
    let process = &Receiver::named(&spans, &trace, "process report")[0];
    assert_eq!(process.parent_id(), send.span_id());
    assert_eq!(
        Value::String(process.span_id()),
        attempt_span,
        "Context::trace_parent"
    );
    let events: Vec<_> = process
        .span
        .events
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(events, ["building the report"]);
    let page_send = &Receiver::named(&spans, &trace, "send report.page")[0];
    assert_eq!(
        page_send.parent_id(),
        process.span_id(),
        "the child nests under its parent"
    );
    let page = &Receiver::named(&spans, &trace, "process report.page")[0];
    assert_eq!(page.parent_id(), page_send.span_id());
    let events: Vec<_> = page.span.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(events, ["rendering page 2"]);
    rt.shutdown().await.unwrap();
    tokio::task::spawn_blocking(move || provider.shutdown().unwrap())
        .await
        .unwrap();
}
