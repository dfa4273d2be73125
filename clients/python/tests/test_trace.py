"""Trace context from Python: a launch with ``traceparent=`` is in that trace, and a child in
its parent's."""

from __future__ import annotations

import offstage

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_launch_with_a_traceparent_shows_its_trace_id(client: offstage.Client) -> None:
    task = client.launch(
        "demo.fanout",
        {"children": 1, "to": 1, "interval_ms": 1},
        traceparent=f"00-{TRACE}-00f067aa0ba902b7-01",
    )
    assert task.trace_id == TRACE
    task.wait(timeout=30)
    assert client.get_background_task(task.get_id()).trace_id == TRACE
    (child,) = task.children()
    assert child.trace_id == TRACE


def test_a_bad_traceparent_is_ignored(client: offstage.Client) -> None:
    task = client.launch("demo.echo", {"value": 1}, traceparent="not-a-traceparent")
    assert task.trace_id != "not-a-traceparent"
    assert task.wait(timeout=30).get_termination_status() == "completed"
