"""Limiters from Python against a real server: defined, listed and deleted by a Client,
permits acquired and released (a worker token will do), a task in a Python worker acquiring
through its worker and backing off, queued again without counting the attempt."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import TOKENS, Server, start_server, worker_endpoint_or_skip

import offstage

WAIT = 20.0


def test_a_client_defines_lists_acquires_and_releases(token_server: Server) -> None:
    control = offstage.Client(token_server.url, TOKENS["control"])
    worker = offstage.Client(token_server.url, TOKENS["worker"])
    read = offstage.Client(token_server.url, TOKENS["read"])
    defined = control.set_limiter("py.llm", rate=0.001, burst=2, max_holders=1)
    assert (defined["burst"], defined["max_holders"]) == (2, 1)
    with pytest.raises(offstage.OffstageError) as refused:
        control.set_limiter("py.bad", burst=2)
    assert "without a rate" in str(refused.value)

    llm = worker.limiter("py.llm", holder="pytest")
    with llm.acquire(timeout=WAIT) as permit:
        assert permit.hold is not None
        assert llm.try_acquire() is None
        listed = {limiter["name"]: limiter for limiter in read.list_limiters()}
        assert listed["py.llm"]["holders"][0]["holder"] == "pytest"
        with pytest.raises(offstage.OffstageError) as timed_out:
            llm.acquire(timeout=0.2)
        assert timed_out.value.code == "limiter_timeout"
    assert permit.release() is False  # released by the with block already
    second = llm.try_acquire()
    assert second is not None and second.release() is True
    # The burst of 2 is spent (a token every 1,000 s).
    assert llm.try_acquire() is None

    with pytest.raises(offstage.OffstageError) as unknown:
        worker.limiter("py.nobody").try_acquire()
    assert unknown.value.status == 404 and "PUT /api/limiters/py.nobody" in str(unknown.value)
    with pytest.raises(offstage.OffstageError) as forbidden:
        read.limiter("py.llm").try_acquire()
    assert forbidden.value.status == 403
    control.delete_limiter("py.llm")
    assert "py.llm" not in {limiter["name"] for limiter in read.list_limiters()}


calls: list[int] = []
holding = threading.Event()
may_go = threading.Event()


def charge(customer: str) -> dict[str, Any]:
    with offstage.limiter("py.stripe").acquire(timeout=WAIT) as permit:
        offstage.task_state["hold"] = permit.hold
        holding.set()
        may_go.wait(WAIT)
    calls.append(offstage.get_current_task().attempt)
    if offstage.get_checkpoint() is None:
        offstage.task_state["asked"] = customer
        offstage.save_checkpoint("asked once")
        raise offstage.back_off(0.2)  # the API said 429: come back later
    return {"attempt": offstage.get_current_task().attempt, "from": offstage.get_checkpoint()}


def test_a_worker_task_acquires_and_backs_off_without_counting_an_attempt(
    fresh_db: str,
) -> None:
    server = start_server(fresh_db)
    lone = None
    try:
        worker_endpoint_or_skip(server)
        client = offstage.Client(server.url)
        client.set_limiter("py.stripe", max_holders=1)
        lone = (
            offstage.Worker(server.url, task_types={"py.charge": charge})
            .start()
            .wait_ready(WAIT)
        )
        task = client.launch_background_task("py.charge", "cus_1")
        assert holding.wait(WAIT)
        limiter = client.list_limiters()[0]
        assert limiter["holders"][0]["holder"].startswith(f"task {task.get_id()}")
        may_go.set()
        task.wait(timeout=WAIT)
        assert task.get_termination_status() == "completed"
        assert task.get_return_value() == {"attempt": 1, "from": "asked once"}
        assert calls == [1, 1], "the back-off did not count as an attempt"
        logs = [line.message for line in task.get_logs()]
        assert any(m.startswith("[offstage] backed off for 0.2") for m in logs), logs
        assert client.list_limiters()[0]["holders"] == []
    finally:
        may_go.set()
        if lone is not None:
            lone.stop()
        server.stop()
