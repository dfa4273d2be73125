"""A Python worker serving a real server: its tasks' state and prints arrive live over SSE, and
every Task method round-trips on Python tasks that complete, fail, are killed or lose their
worker. Skipped, saying so, when the binary has no worker endpoint."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TOKENS, Server, start_server, worker_endpoint_or_skip

import offstage

WAIT = 20.0

started = threading.Event()  # the test released the task
may_finish = threading.Event()  # the test saw what it waited for


@offstage.background_task("py.report")
def report(month: str, rows: int = 1) -> dict[str, Any]:
    started.wait(WAIT)
    offstage.task_state["month"] = month
    print(f"report for {month}")
    may_finish.wait(WAIT)
    for done in range(1, rows + 1):
        offstage.task_state["done"] = done
    return {"rows": rows, "task_id": offstage.get_current_task_id()}


@offstage.background_task
def py_fail(key: str) -> None:
    {}[key]


@offstage.background_task(name="py.loop")
def loop() -> str:
    offstage.task_state["looping"] = True
    while not offstage.task_killed():
        time.sleep(0.01)
    print("stopping")
    return "stopped"


@offstage.background_task("py.assign")
def assign(phase: str) -> None:
    offstage.task_state = {"phase": phase, "rows": [1, 2]}  # the whole state, as in Anvil
    offstage.task_state["done"] = True


@offstage.background_task("py.resume")
def resume(items: int) -> dict[str, Any]:
    start = offstage.get_checkpoint() or 0
    for done in range(start + 1, items + 1):
        offstage.task_state["done"] = done
        offstage.save_checkpoint(done)  # returns once the server has stored it
        if done == 3 and start == 0:
            raise RuntimeError("stopped after item 3")
    with pytest.raises(offstage.StateTooLarge):
        offstage.save_checkpoint("x" * (2 << 20))
    return {"from": start, "read_back": offstage.get_checkpoint()}


@pytest.fixture(scope="module")
def worker(server: Server) -> Iterator[offstage.Worker]:
    """The Anvil way: connect, then serve every @background_task (in a thread here, where a
    worker program would call wait_forever())."""
    worker_endpoint_or_skip(server)
    offstage.connect(server.url)
    w = offstage.start_worker(concurrency=4, name="pytest").wait_ready(WAIT)
    assert w.name == "pytest"
    assert {"py.report", "py_fail", "py.loop", "py.assign", "py.resume"} <= set(w.task_types)
    yield w
    w.stop()


def test_a_python_tasks_state_and_prints_arrive_live_over_sse(
    client: offstage.Client, worker: offstage.Worker
) -> None:
    started.clear()
    may_finish.clear()
    task = offstage.launch_background_task("py.report", "2026-10", rows=2)
    with task.events() as events:
        started.set()
        seen: dict[str, Any] = {}
        while "state" not in seen or "log" not in seen:
            event = events.next(timeout=WAIT)
            assert event is not None, "the stream ended before the task wrote its state"
            seen.setdefault(event["type"], event)
        # Both arrived while the task is still blocked inside its body: live, not at the end.
        assert not may_finish.is_set()
        assert seen["state"]["state"] == {"month": "2026-10"}
        assert seen["log"]["line"]["message"] == "report for 2026-10"
        assert task.is_running() and task.get_state() == {"month": "2026-10"}
        may_finish.set()
        last = [event for event in events][-1]
    assert last["type"] == "finished"
    assert last["task"]["status"] == "completed"

    assert task.get_termination_status() == "completed"
    assert task.is_completed()
    assert task.get_return_value() == {"rows": 2, "task_id": task.get_id()}
    assert task.get_state() == {"month": "2026-10", "done": 2}
    assert [line.message for line in task.get_logs()] == ["report for 2026-10"]
    assert task.get_task_name() == "py.report"
    task.get_error()  # completed: does not raise
    assert task.get_error_info() is None


def test_a_python_task_that_raises_fails_with_its_exception(
    client: offstage.Client, worker: offstage.Worker
) -> None:
    task = offstage.launch_background_task("py_fail", "missing-key").wait(timeout=WAIT)
    assert task.get_termination_status() == "failed"
    with pytest.raises(offstage.TaskError) as raised:
        task.get_error()
    error = raised.value
    assert (error.kind, error.message) == ("KeyError", "'missing-key'")
    assert error.detail is not None and "Traceback" in error.detail
    with pytest.raises(offstage.TaskError, match="KeyError"):
        task.is_completed()

    wrong = offstage.launch_background_task("py_fail", "a", "b").wait(timeout=WAIT)
    info = wrong.get_error_info()
    assert info is not None and info.kind == "invalid_args"


def test_killing_a_python_task_is_cooperative(
    client: offstage.Client, worker: offstage.Worker
) -> None:
    task = offstage.launch_background_task("py.loop")
    with task.events() as events:
        while task.get_state() != {"looping": True}:
            events.next(timeout=WAIT)
    task.kill()
    task.wait(timeout=WAIT)
    assert task.get_termination_status() == "killed"
    assert task.get_state() == {"looping": True}
    assert "stopping" in [line.message for line in task.get_logs()]
    with pytest.raises(offstage.TaskError) as raised:
        task.is_completed()
    assert raised.value.termination_status == "killed"


def test_a_lost_worker_leaves_its_tasks_missing(fresh_db: str) -> None:
    server = start_server(fresh_db)
    lone = None
    try:
        worker_endpoint_or_skip(server)
        started.clear()
        may_finish.clear()
        lone = (
            offstage.Worker(server.url, task_types={"py.report": report}).start().wait_ready(WAIT)
        )
        task = offstage.Client(server.url).launch_background_task("py.report", "2026-11")
        with task.events() as events:
            started.set()
            while task.get_state() != {"month": "2026-11"}:
                events.next(timeout=WAIT)
            lone.stop()
            task.wait(timeout=WAIT)
        assert task.get_termination_status() == "missing"
        error = task.get_error_info()
        assert error is not None and error.kind == "worker_lost"
    finally:
        may_finish.set()
        if lone is not None:
            lone.stop()
        server.stop()


def test_a_worker_needs_a_worker_token(token_server: Server) -> None:
    worker_endpoint_or_skip(token_server)
    for token in ("wrong", TOKENS["control"]):
        refused = offstage.Worker(
            token_server.url, token, task_types={"py.report": report}, reconnect=False
        )
        refused.start()
        with pytest.raises(offstage.OffstageError):
            refused.wait_ready(timeout=5)
        refused.stop()
        assert isinstance(refused.last_error, offstage.OffstageError)
        assert refused.last_error.status in (401, 403)

    served = offstage.Worker(
        token_server.url, TOKENS["worker"], task_types={"py_fail": py_fail}
    ).start()
    try:
        served.wait_ready(WAIT)
        launcher = offstage.Client(token_server.url, TOKENS["launch"])
        task = launcher.launch_background_task("py_fail", "k").wait(timeout=WAIT)
        error = task.get_error_info()
        assert error is not None and error.kind == "KeyError"
    finally:
        served.stop()


def test_a_worker_program_serves_until_interrupted(server: Server) -> None:
    """The example worker, run as its own program with wait_forever(), as a user runs it."""
    worker_endpoint_or_skip(server)
    example = Path(__file__).resolve().parents[1] / "examples" / "report_worker.py"
    program = subprocess.Popen(
        [sys.executable, str(example), server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert program.stdout is not None
        assert "serving reports.monthly" in program.stdout.readline()
        client = offstage.Client(server.url)
        deadline = time.monotonic() + WAIT
        while not any(t["name"] == "reports.monthly" and t["workers"] for t in client.task_types()):
            assert time.monotonic() < deadline, "the worker program never connected"
            time.sleep(0.05)
        task = client.launch_background_task("reports.monthly", "2026-10", days=3)
        assert task.wait(timeout=WAIT).get_return_value() == {"month": "2026-10", "total": 6}
        assert task.get_state() == {"month": "2026-10", "done": 3, "total": 3}
        assert [line.message for line in task.get_logs()][-1] == "2026-10-03: running total 6"
        program.send_signal(signal.SIGINT)
        assert program.wait(timeout=WAIT) == 0
    finally:
        if program.poll() is None:
            program.kill()
            program.wait()


def test_assigning_task_state_replaces_the_whole_state(
    client: offstage.Client, worker: offstage.Worker
) -> None:
    task = offstage.launch_background_task("py.assign", "loaded").wait(timeout=WAIT)
    assert task.get_termination_status() == "completed", task.get_error_info()
    assert task.get_state() == {"phase": "loaded", "rows": [1, 2], "done": True}
    # The module attribute is still the live view, not the dict assigned to it.
    assert isinstance(offstage.task_state, offstage.context.TaskState)


def test_assigning_task_state_outside_a_task_raises_at_once() -> None:
    with pytest.raises(RuntimeError, match=r"offstage.task_state = \.\.\. is only available"):
        offstage.task_state = {"lost": True}
    assert isinstance(offstage.task_state, offstage.context.TaskState)


def test_a_type_only_workers_serve_says_how_while_none_is_connected(fresh_db: str) -> None:
    server = start_server(fresh_db)
    try:
        worker_endpoint_or_skip(server)
        client = offstage.Client(server.url)
        with pytest.raises(offstage.OffstageError) as raised:
            client.launch_background_task("py.report", "2026-12")
        error = raised.value
        assert error.code == "unknown_task_type", error
        for words in ("no worker is connected", "--remote-type py.report", "demo.sleep"):
            assert words in str(error), error

        # With the type declared (`--remote-type`), the same launch waits queued for a worker.
        server.stop()
        server = start_server(fresh_db, ("--remote-type", "py.report"))
        queued = offstage.Client(server.url).launch_background_task("py.report", "2026-12")
        assert queued.get_status() == "queued"
    finally:
        server.stop()


def test_a_worker_says_on_stderr_where_it_connected_and_what_it_serves(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    worker_endpoint_or_skip(server)
    w = offstage.Worker(
        server.url, task_types={"py_fail": py_fail}, concurrency=2, name="announcer"
    ).start()
    try:
        w.wait_ready(WAIT)
        err = capsys.readouterr().err
        assert (
            f"offstage worker announcer connected to {server.url}: serving py_fail "
            "(concurrency 2)" in err
        ), err
    finally:
        w.stop()


def test_a_python_tasks_checkpoint_is_stored_and_a_rerun_starts_from_it(
    client: offstage.Client, worker: offstage.Worker
) -> None:
    first = offstage.launch_background_task("py.resume", 5).wait(timeout=WAIT)
    assert first.get_termination_status() == "failed"
    assert first.get_checkpoint() == 3, "confirmed saves are in the store"
    assert first.get_state() == {"done": 3}

    again = first.rerun(from_checkpoint=True).wait(timeout=WAIT)
    assert again.get_termination_status() == "completed", again.get_error_info()
    assert again.get_return_value() == {"from": 3, "read_back": 5}
    assert again.get_checkpoint() == 5
    assert any(
        line.message.startswith("[offstage] resuming from checkpoint") for line in again.get_logs()
    )
