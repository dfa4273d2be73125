"""The worker against a scripted server that speaks docs/worker-protocol.md message by message:
what the worker sends and when, independently of any server implementation."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server as WsServer
from websockets.sync.server import ServerConnection, serve

import offstage
from offstage.worker import _Session

WAIT = 10.0


class FakeServer:
    """A WebSocket server whose connections the test drives by hand."""

    def __init__(self, refuse: int | None = None) -> None:
        self.connections: queue.Queue[ServerConnection] = queue.Queue()
        self._release = threading.Event()

        def process_request(conn: ServerConnection, request: Any) -> Any:
            if refuse is not None:
                body = json.dumps({"error": {"code": "unauthorized", "message": "bad token"}})
                return conn.respond(refuse, body)
            return None

        self.server: WsServer = serve(
            self._handler, "127.0.0.1", 0, process_request=process_request
        )
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        port = self.server.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def _handler(self, conn: ServerConnection) -> None:
        self.connections.put(conn)
        # Returning would close the connection; the test closes it, or the release does.
        while not self._release.wait(0.05):
            if conn.state.name == "CLOSED":
                return

    def accept(self, heartbeat_ms: int = 5000) -> tuple[ServerConnection, dict[str, Any]]:
        """The next connection, its `hello`, and our `welcome`."""
        conn = self.connections.get(timeout=WAIT)
        hello = json.loads(conn.recv(timeout=WAIT))
        conn.send(json.dumps({"type": "welcome", "worker_id": "w-1", "heartbeat_ms": heartbeat_ms}))
        return conn, hello

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()


def expect_any(conn: ServerConnection, timeout: float = WAIT) -> dict[str, Any]:
    """The next message that is not a heartbeat."""
    while True:
        message = json.loads(conn.recv(timeout=timeout))
        if message["type"] != "heartbeat":
            return message


def expect(conn: ServerConnection, kind: str) -> dict[str, Any]:
    """The next message that is not a heartbeat, which must be of type `kind`."""
    message = expect_any(conn)
    assert message["type"] == kind, message
    return message


def assign(conn: ServerConnection, task_id: str, name: str, args: Any) -> None:
    conn.send(
        json.dumps(
            {
                "type": "assign",
                "task_id": task_id,
                "name": name,
                "args": args,
                "attempt": 1,
                "owner": None,
                "timeout_ms": None,
            }
        )
    )


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


release = threading.Event()


def add(a: int, b: int = 0) -> int:
    print("adding", a, b)
    offstage.task_state["step"] = "adding"
    offstage.task_state.update(a=a, b=b)
    return a + b


def whoami() -> str | None:
    assert offstage.context.background_task_id == offstage.get_current_task_id()
    return offstage.get_current_task_id()


def broken(month: str) -> None:
    raise ValueError(f"bad month {month}")


def listy() -> None:
    offstage.set_task_state([1, 2])
    offstage.task_state["x"] = 1  # the state is a list now: a TypeError that says so


def cooperative() -> str:
    while not offstage.task_killed():
        time.sleep(0.01)
    return "stopped"


def sleepy() -> None:
    offstage.get_current_task().sleep(600)


def stubborn() -> str:
    release.wait(WAIT)
    print("too late")
    return "too late"


TYPES: dict[str, Callable[..., Any]] = {
    "t.add": add,
    "t.whoami": whoami,
    "t.broken": broken,
    "t.listy": listy,
    "t.cooperative": cooperative,
    "t.sleepy": sleepy,
    "t.stubborn": stubborn,
}


def start(fake: FakeServer, **kwargs: Any) -> offstage.Worker:
    return offstage.Worker(fake.url, "w-secret", task_types=TYPES, **kwargs).start()


def test_hello_then_tasks_answer_with_their_state_log_and_result(fake: FakeServer) -> None:
    worker = start(fake, concurrency=2, name="test-worker")
    try:
        conn, hello = fake.accept()
        assert hello == {
            "type": "hello",
            "protocol": 1,
            "name": "test-worker",
            "task_types": sorted(TYPES),
            "concurrency": 2,
        }
        assert conn.request is not None
        assert conn.request.headers["Authorization"] == "Bearer w-secret"
        worker.wait_ready()
        assert worker.worker_id == "w-1"

        assign(conn, "t1", "t.add", {"args": [1], "kwargs": {"b": 2}})
        assert expect(conn, "log") == {
            "type": "log",
            "task_id": "t1",
            "level": "info",
            "message": "adding 1 2",
        }
        # Two writes in a row: the first may be coalesced into the second while it waits.
        messages = [expect_any(conn)]
        while messages[-1]["type"] == "state":
            messages.append(expect_any(conn))
        states = [m["state"] for m in messages[:-1]]
        assert states in (
            [{"step": "adding", "a": 1, "b": 2}],
            [{"step": "adding"}, {"step": "adding", "a": 1, "b": 2}],
        )
        assert messages[-1] == {"type": "completed", "task_id": "t1", "return_value": 3}

        assign(conn, "t2", "t.whoami", None)
        assert expect(conn, "completed")["return_value"] == "t2"
    finally:
        worker.stop()


def test_failures_carry_kind_message_and_traceback(fake: FakeServer) -> None:
    worker = start(fake)
    try:
        conn, _ = fake.accept()
        assign(conn, "t1", "t.broken", {"month": "2026-13"})
        error = expect(conn, "failed")["error"]
        assert (error["kind"], error["message"]) == ("ValueError", "bad month 2026-13")
        assert "Traceback" in error["detail"] and "broken" in error["detail"]

        assign(conn, "t2", "t.broken", {"year": 2026})
        error = expect(conn, "failed")["error"]
        assert error["kind"] == "invalid_args"
        assert "year" in error["message"]

        assign(conn, "t4", "t.listy", None)
        assert expect(conn, "state")["state"] == [1, 2]
        error = expect(conn, "failed")["error"]
        assert error["kind"] == "TypeError" and "not a dict" in error["message"]

        assign(conn, "t3", "t.unknown", None)
        assert expect(conn, "failed")["error"]["kind"] == "unknown_task_type"
    finally:
        worker.stop()


def test_kill_is_cooperative_and_abort_answers_at_once(fake: FakeServer) -> None:
    release.clear()
    worker = start(fake)
    try:
        conn, _ = fake.accept()
        assign(conn, "t1", "t.cooperative", None)
        assign(conn, "t2", "t.sleepy", None)
        assign(conn, "t3", "t.stubborn", None)
        for task_id in ("t1", "t2", "t3"):
            conn.send(json.dumps({"type": "kill", "task_id": task_id, "grace_ms": 100}))
        answers = {m["task_id"]: m for m in (expect_any(conn) for _ in range(2))}
        assert answers["t1"] == {"type": "completed", "task_id": "t1", "return_value": "stopped"}
        assert answers["t2"]["error"]["kind"] == "killed"

        # t3 ignores the kill: the grace period runs out and the server aborts it.
        conn.send(json.dumps({"type": "abort", "task_id": "t3"}))
        assert expect(conn, "failed")["error"]["kind"] == "aborted"
        release.set()
        # Its thread ends later; what it says then reaches nobody.
        with pytest.raises(TimeoutError):
            expect_any(conn, timeout=0.5)
    finally:
        release.set()
        worker.stop()


def test_heartbeats_and_silence_means_reconnect(fake: FakeServer) -> None:
    worker = start(fake)
    try:
        conn, _ = fake.accept(heartbeat_ms=100)
        assert json.loads(conn.recv(timeout=WAIT)) == {"type": "heartbeat"}
        # Say nothing for more than two intervals: the worker gives up on this connection.
        conn2, hello = fake.accept()
        assert hello["type"] == "hello"
    finally:
        worker.stop()


def test_a_protocol_error_sends_error_closes_1008_and_reconnects(fake: FakeServer) -> None:
    worker = start(fake)
    try:
        conn, _ = fake.accept()
        conn.send(json.dumps({"type": "bogus"}))
        error = expect(conn, "error")
        assert "bogus" in error["message"]
        with pytest.raises(ConnectionClosed):
            while True:
                conn.recv(timeout=WAIT)
        assert conn.close_code == 1008
        _, hello = fake.accept()
        assert hello["type"] == "hello"
    finally:
        worker.stop()


def test_a_refused_token_is_reported() -> None:
    refusing = FakeServer(refuse=401)
    worker = offstage.Worker(refusing.url, "wrong", task_types=TYPES).start()
    try:
        with pytest.raises(offstage.OffstageError, match="role `worker`"):
            worker.wait_ready(timeout=1)
        assert isinstance(worker.last_error, offstage.OffstageError)
        assert worker.last_error.status == 401
    finally:
        worker.stop()
        refusing.close()


def test_prints_in_other_threads_stay_on_stdout(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    release.clear()
    worker = start(fake)
    try:
        conn, _ = fake.accept()
        assign(conn, "t1", "t.stubborn", None)
        time.sleep(0.1)
        print("from the test thread")
        release.set()
        assert expect(conn, "log")["message"] == "too late"
        assert expect(conn, "completed")["return_value"] == "too late"
        assert "from the test thread" in capsys.readouterr().out
    finally:
        release.set()
        worker.stop()


def test_state_writes_waiting_to_be_sent_coalesce_into_the_latest() -> None:
    sent: list[str] = []
    gate = threading.Event()

    class SlowSocket:
        def send(self, text: str) -> None:
            gate.wait(WAIT)
            sent.append(text)

    session = _Session(SlowSocket(), heartbeat_s=60)  # type: ignore[arg-type]
    time.sleep(0.05)  # the first heartbeat is now stuck in SlowSocket.send
    for n in range(100):
        session.send({"type": "state", "task_id": "t1", "state": {"n": n}}, coalesce=True)
    session.send({"type": "log", "task_id": "t1", "level": "info", "message": "x"})
    session.send({"type": "state", "task_id": "t1", "state": {"n": 100}}, coalesce=True)
    gate.set()
    session.drain(WAIT)
    time.sleep(0.05)
    messages = [json.loads(text) for text in sent if json.loads(text)["type"] != "heartbeat"]
    assert messages == [
        {"type": "state", "task_id": "t1", "state": {"n": 99}},
        {"type": "log", "task_id": "t1", "level": "info", "message": "x"},
        {"type": "state", "task_id": "t1", "state": {"n": 100}},
    ]
    session.close()


def oversized() -> str:
    offstage.task_state["done"] = 1
    try:
        offstage.task_state["blob"] = "x" * 20_000_000
    except offstage.StateTooLarge as error:
        print("refused:", error.code)
    return "y" * (65 * 1024 * 1024)


TYPES["oversized"] = oversized


def test_an_oversized_state_or_answer_never_leaves_the_worker(fake: FakeServer) -> None:
    worker = start(fake)
    try:
        conn, _ = fake.accept()
        assign(conn, "t-big", "oversized", {})
        assert expect(conn, "state")["state"] == {"done": 1}
        refusal = expect(conn, "log")
        assert refusal["level"] == "warn" and "state refused" in refusal["message"], refusal
        assert "over the cap of 1048576 bytes" in refusal["message"]
        assert expect(conn, "log")["message"] == "refused: state_too_large"
        answer = expect(conn, "failed")
        assert answer["error"]["kind"] == "output_too_large", answer["error"]
    finally:
        worker.stop()
