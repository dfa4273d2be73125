"""Signals from Python against a real server: a task waiting for approval shows what it waits
for, ``Task.signal`` completes it, a signal to a finished task is refused, and scoped tokens
send one only with the ``signal`` right."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from conftest import TOKENS, Server

import offstage


def waiting_approval(client: offstage.Client, owner: str | None = None) -> offstage.Task:
    """Launches ``demo.approval`` and returns once it waits for the signal ``approve``."""
    task = client.launch("demo.approval", {"what": "refund 7"}, owner=owner)
    for event in task.events():
        message = event.get("line", {}).get("message", "")
        if event["type"] == "log" and message.startswith('waiting for signal "approve"'):
            return task
    raise AssertionError(f"{task.get_id()} ended without waiting: {task.refresh()}")


def test_a_waiting_task_shows_what_it_waits_for_and_a_signal_completes_it(
    client: offstage.Client,
) -> None:
    task = waiting_approval(client)
    assert task.get_status() == "running"
    assert task.get_waiting_for() == "approve"
    assert task.get_waiting_until() is not None
    waiting = task.get_waiting()
    assert waiting is not None and waiting["code"] == "signal"
    assert waiting["signal"] == "approve"

    sent = task.signal("approve", {"approved": True, "by": "ann"})
    assert (sent["name"], sent["payload"]) == ("approve", {"approved": True, "by": "ann"})
    assert task.wait(timeout=20).get_return_value() == {"approved_by": "ann"}
    assert task.get_waiting_for() is None
    [signal] = task.get_signals()
    assert signal["received_attempt"] == 1

    with pytest.raises(offstage.OffstageError) as raised:
        task.signal("approve", True)
    assert (raised.value.code, raised.value.status) == ("conflict", 409)
    assert "already ended (completed)" in raised.value.message
    with pytest.raises(offstage.OffstageError) as raised:
        client.signal(task.get_id(), "a\nb")
    assert raised.value.status == 400


def test_a_refusal_sent_before_the_wait_fails_the_task(client: offstage.Client) -> None:
    soon = datetime.now(timezone.utc) + timedelta(seconds=1)
    task = client.launch("demo.approval", {}, run_at=soon)
    client.signal(task.get_id(), "approve", {"approved": False, "by": "bob"})
    task.wait(timeout=20)
    error = task.get_error_info()
    assert error is not None and error.kind == "refused"


def test_scoped_tokens_signal_with_the_signal_right_only(token_server: Server) -> None:
    url = token_server.url
    controller = offstage.Client(url, TOKENS["control"])
    task = waiting_approval(controller, owner="py-carol")
    reader = offstage.Client(url, controller.mint_token(owner="py-carol", ttl=60))
    with pytest.raises(offstage.OffstageError) as raised:
        reader.signal(task.get_id(), "approve", {"approved": True})
    assert raised.value.status == 403
    assert "signal" in raised.value.message

    approver = offstage.Client(
        url, controller.mint_token(owner="py-carol", rights=("read", "signal"), ttl=60)
    )
    approver.get_background_task(task.get_id()).signal("approve", {"approved": True, "by": "c"})
    assert task.wait(timeout=20).get_return_value() == {"approved_by": "c"}
