-- The W3C trace context current when the task was launched: its `traceparent` (version 00,
-- checked at launch) and the `tracestate` that came with it. Each attempt of the task is a
-- span in that trace (with the `otel` feature); the API shows the trace id read from it.
-- Plain columns, no index: nothing looks tasks up by trace.
ALTER TABLE offstage_tasks ADD COLUMN traceparent text;
ALTER TABLE offstage_tasks ADD COLUMN tracestate text;
