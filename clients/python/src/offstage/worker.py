"""A remote worker: Python functions that serve Offstage task types, over the worker protocol.

``@offstage.background_task`` registers a function as a task type (named after the function,
or as given). ``offstage.wait_forever()`` then connects to the server given to
``offstage.connect`` (``GET /api/workers``, a WebSocket, with a token of role ``worker``), says
which task types it serves, and runs each task the server assigns in a thread of its own,
streaming the task's state and prints back, until the program is stopped. It reconnects with
backoff when the connection drops.

    import offstage

    @offstage.background_task
    def add(a, b):
        offstage.task_state["step"] = "adding"
        print("adding", a, b)
        return a + b

    offstage.connect("http://127.0.0.1:7700", token="worker-secret")
    offstage.wait_forever()

The conversation is ``docs/worker-protocol.md`` in the Offstage repository: ``hello`` →
``welcome``, then ``assign`` / ``state`` / ``log`` / ``kill`` / ``completed`` / ``failed`` /
``abort``, and ``heartbeat`` both ways.
"""

from __future__ import annotations

import collections
import inspect
import json
import logging
import os
import random
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar, overload

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from . import _args
from .client import connection
from .context import CurrentTask, _set_current, install_streams
from .errors import OffstageError, TaskKilled
from .limiter import BackOff

PROTOCOL = 1
"""The worker protocol version this package speaks."""

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""The largest message the server reads (docs/worker-protocol.md). A message over it would
close the connection (code 1009) and lose every task on it, so the sending thread makes each
message fit first (``_fit``)."""

logger = logging.getLogger("offstage.worker")

F = TypeVar("F", bound=Callable[..., Any])

_registry: dict[str, Callable[..., Any]] = {}
_registry_lock = threading.Lock()


@overload
def background_task(function: F) -> F: ...


@overload
def background_task(
    function: str | None = None, *, name: str | None = None
) -> Callable[[F], F]: ...


def background_task(
    function: F | str | None = None, *, name: str | None = None
) -> F | Callable[[F], F]:
    """Registers a function as a task type this program's worker serves.

    ``@background_task`` names it after the function (``def crawl`` serves ``crawl``);
    ``@background_task("crawler.run")`` or ``@background_task(name="crawler.run")`` names it.
    The function is returned unchanged: calling it directly still just calls it.
    """

    def register(f: F, task_name: str | None) -> F:
        task_name = task_name or f.__name__
        with _registry_lock:
            existing = _registry.get(task_name)
            if existing is not None and existing is not f:
                raise ValueError(
                    f"task type {task_name!r} is already registered by "
                    f"{existing.__module__}.{existing.__qualname__}: give one of them another "
                    "name with @background_task('other.name')"
                )
            _registry[task_name] = f
        return f

    if callable(function):
        return register(function, name)
    given = function or name
    return lambda f: register(f, given)


def registered_task_types() -> dict[str, Callable[..., Any]]:
    """The task types ``@background_task`` registered, by name."""
    with _registry_lock:
        return dict(_registry)


def _ws_url(url: str) -> str:
    base = url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/api/workers"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + "/api/workers"
    raise OffstageError(
        f"`{url}` is not an Offstage server URL: give one like http://127.0.0.1:7700",
        code="invalid_url",
    )


class _ProtocolError(Exception):
    """The server broke the protocol: we send `error` and close with 1008."""


class _Session:
    """One WebSocket connection: the sending thread, the tasks it assigned.

    Messages go out in the order they were queued, from one thread. Consecutive state writes
    of one task that wait in the queue are coalesced into the latest, so a task writing its
    state in a tight loop never floods the connection and the newest state always arrives.
    """

    def __init__(self, ws: ClientConnection, heartbeat_s: float) -> None:
        self.ws = ws
        self.heartbeat_s = heartbeat_s
        self.tasks: dict[str, CurrentTask] = {}
        self.tasks_lock = threading.Lock()
        self._queue: collections.deque[list[Any]] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._sender = threading.Thread(
            target=self._send_loop, name="offstage-worker-send", daemon=True
        )
        self._sender.start()

    def send(self, message: dict[str, Any], coalesce: bool = False) -> None:
        """Queues ``message``; a ``state`` with ``coalesce`` replaces its task's previous state
        if that is still the last message waiting."""
        with self._cond:
            if self._closed:
                return
            if coalesce and self._queue:
                last = self._queue[-1]
                if last[0] == "state" and last[1]["task_id"] == message["task_id"]:
                    last[1] = message
                    return
            self._queue.append(["state" if coalesce else "message", message])
            self._cond.notify()

    def _send_loop(self) -> None:
        next_heartbeat = time.monotonic()
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closed:
                        wait = next_heartbeat - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    if self._closed and not self._queue:
                        return
                    item = self._queue.popleft() if self._queue else None
                if item is None:
                    self.ws.send('{"type":"heartbeat"}')
                    next_heartbeat = time.monotonic() + self.heartbeat_s
                    continue
                self.ws.send(_fit(item[1]))
                if time.monotonic() >= next_heartbeat:
                    self.ws.send('{"type":"heartbeat"}')
                    next_heartbeat = time.monotonic() + self.heartbeat_s
        except ConnectionClosed:
            pass
        except Exception:  # noqa: BLE001 - a broken connection; the receiver notices too
            logger.debug("offstage worker: sending failed", exc_info=True)

    def drain(self, timeout: float) -> None:
        """Waits (up to ``timeout``) until everything queued was sent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if not self._queue:
                    return
            time.sleep(0.005)

    def close(self) -> None:
        """Stops sending; every task still running loses its connection: it is flagged killed
        and whatever it sends or answers from now on is dropped (the server has already
        recorded it missing)."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        with self.tasks_lock:
            tasks, self.tasks = list(self.tasks.values()), {}
        for task in tasks:
            task._detach()
            task._kill()


class Worker:
    """A connection to one server that runs tasks of the given types.

    Most programs use ``offstage.wait_forever()``, which makes one from ``offstage.connect``
    and the ``@background_task`` registrations and runs it until interrupted. Make one
    directly to run a worker in the background of a program that does other things:
    ``Worker(url, token).start()``, later ``stop()``.

    Args:
        url: the server's base URL (``http://…`` or ``https://…``).
        token: a token of role ``worker`` (none for an open server).
        task_types: name → function; default: every ``@background_task``.
        concurrency: how many tasks run at once (each in its own thread).
        name: shown in the server's API and dashboard; default ``py-<pid>@<host>``.
        reconnect: reconnect (with backoff) when the connection drops; otherwise stop.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        task_types: dict[str, Callable[..., Any]] | None = None,
        concurrency: int = 4,
        name: str | None = None,
        reconnect: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError(
                f"concurrency is {concurrency}: a worker runs at least 1 task at a time"
            )
        self.url = url
        self.ws_url = _ws_url(url)
        self.token = token
        self.task_types = dict(task_types) if task_types is not None else registered_task_types()
        if not self.task_types:
            raise OffstageError(
                "this worker would serve no task types: decorate functions with "
                "@offstage.background_task before starting it (or pass task_types={name: fn})",
                code="no_task_types",
            )
        self.concurrency = concurrency
        self.name = name or f"py-{os.getpid()}@{socket.gethostname()}"
        self.reconnect = reconnect
        self.worker_id: str | None = None
        """The id the server gave this worker on its current connection."""
        self.last_error: BaseException | None = None
        """Why the last connection attempt failed or the last connection ended."""
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: _Session | None = None

    # -- running ----------------------------------------------------------------------------

    def start(self) -> Worker:
        """Runs the worker in a background (daemon) thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("this worker was already started")
        self._thread = threading.Thread(
            target=self.run_forever, name="offstage-worker", daemon=True
        )
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 10.0) -> Worker:
        """Blocks until the server welcomed the worker.

        Raises:
            OffstageError: not welcomed within ``timeout`` seconds; says why when known.
        """
        deadline = time.monotonic() + timeout
        while not self._ready.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
            stopped = self._thread is not None and not self._thread.is_alive()
            if stopped or time.monotonic() >= deadline:
                why = f": {self.last_error}" if self.last_error else ""
                when = "and stopped" if stopped else f"within {timeout} s"
                raise OffstageError(
                    f"the worker did not connect to {self.ws_url} {when}{why}",
                    code="worker_not_ready",
                )
        return self

    def run_forever(self) -> None:
        """Serves tasks in the calling thread until :meth:`stop` (or, without ``reconnect``,
        until the connection ends)."""
        backoff = 0.5
        reported = ""  # the last failure logged: a server that stays down is logged once
        while not self._stop.is_set():
            welcomed = False
            try:
                welcomed = self._serve_once()
            except Exception as error:  # noqa: BLE001 - reported, then reconnect
                self.last_error = error
                if not self._stop.is_set() and str(error) != reported:
                    reported = str(error)
                    retry = "; retrying with backoff" if self.reconnect else ""
                    logger.warning("offstage worker: %s%s", error, retry)
            if welcomed:
                backoff = 0.5
                reported = ""
            if not self.reconnect or self._stop.is_set():
                break
            # Full jitter, so many workers do not reconnect in step.
            self._stop.wait(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, 30.0)

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnects and stops. Tasks still running are left to their threads (Python
        cannot stop a thread) and flagged killed; the server records them ``missing``."""
        self._stop.set()
        session = self._session
        if session is not None:
            try:
                session.ws.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- one connection ---------------------------------------------------------------------

    def _serve_once(self) -> bool:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            ws = ws_connect(
                self.ws_url,
                additional_headers=headers,
                open_timeout=10,
                ping_interval=None,
                max_size=None,
            )
        except InvalidStatus as error:
            raise _handshake_error(error, self.ws_url) from None
        except OSError as error:
            raise OffstageError(
                f"could not reach the Offstage server at {self.ws_url} ({error}): "
                "is `offstage serve` running there?",
                code="unreachable",
            ) from None
        with ws:
            hello = {
                "type": "hello",
                "protocol": PROTOCOL,
                "name": self.name,
                "task_types": sorted(self.task_types),
                "concurrency": self.concurrency,
            }
            ws.send(json.dumps(hello))
            welcome = _parse(ws.recv(timeout=10))
            if welcome.get("type") == "error":
                raise OffstageError(
                    f"the server refused this worker: {welcome.get('message')}",
                    code="worker_refused",
                )
            if welcome.get("type") != "welcome":
                raise OffstageError(
                    f"the server answered hello with {welcome.get('type')!r}, not welcome: "
                    "is it an Offstage server that speaks worker protocol 1?",
                    code="bad_response",
                )
            self.worker_id = welcome.get("worker_id")
            heartbeat_s = max(0.01, float(welcome.get("heartbeat_ms") or 1000) / 1000)
            session = _Session(ws, heartbeat_s)
            self._session = session
            # One line on stderr, so whoever started the worker sees that it is serving.
            print(
                f"offstage worker {self.name} connected to {self.url}: serving "
                f"{', '.join(sorted(self.task_types))} (concurrency {self.concurrency})",
                file=sys.stderr,
                flush=True,
            )
            self._ready.set()
            logger.info(
                "offstage worker %s serving %s", self.worker_id, ", ".join(sorted(self.task_types))
            )
            try:
                self._receive(session)
            except _ProtocolError as error:
                session.send({"type": "error", "message": str(error)})
                session.drain(1.0)
                ws.close(code=1008, reason=str(error)[:120])
                self.last_error = error
                logger.warning("offstage worker: protocol error: %s", error)
            except (ConnectionClosed, TimeoutError, _ServerError) as error:
                self.last_error = error
                if not self._stop.is_set():
                    logger.warning("offstage worker: connection lost (%s); reconnecting", error)
            finally:
                self._ready.clear()
                self._session = None
                session.close()
        return True

    def _receive(self, session: _Session) -> None:
        # Two heartbeat intervals of silence: the connection is dead.
        silence = 2 * session.heartbeat_s
        while not self._stop.is_set():
            try:
                raw = session.ws.recv(timeout=silence)
            except TimeoutError:
                raise TimeoutError(f"nothing heard from the server for {silence:.1f} s") from None
            message = _parse(raw)
            kind = message.get("type")
            if kind == "heartbeat":
                continue
            if kind == "assign":
                self._assign(session, message)
            elif kind in ("kill", "abort"):
                task_id = _field(message, "task_id", str)
                with session.tasks_lock:
                    task = session.tasks.get(task_id)
                if task is None:
                    # It ended and answered while the server was deciding: nothing to do.
                    continue
                task._kill()
                if kind == "abort":
                    # The server already recorded how it ended; answer so the slot frees up.
                    # The thread runs on (it cannot be stopped) and reaches nobody.
                    with session.tasks_lock:
                        session.tasks.pop(task_id, None)
                    task._answer(
                        {
                            "type": "failed",
                            "task_id": task_id,
                            "error": {
                                "kind": "aborted",
                                "message": "aborted after the grace period",
                            },
                        }
                    )
            elif kind == "checkpoint_saved":
                task_id = _field(message, "task_id", str)
                with session.tasks_lock:
                    task = session.tasks.get(task_id)
                if task is not None:
                    task._confirm_checkpoint(int(message.get("seq") or 0), message.get("error"))
            elif kind == "error":
                raise _ServerError(str(message.get("message")))
            elif kind == "welcome":
                raise _ProtocolError("`welcome` sent twice")
            else:
                raise _ProtocolError(f"unknown message type {kind!r}")

    def _client_for_tasks(self) -> Any:
        """An HTTP client of the server, with the worker's token, shared by its tasks (for
        limiters). Made on first use."""
        client = getattr(self, "_task_client", None)
        if client is None:
            from .client import Client

            client = self._task_client = Client(self.url, self.token)
        return client

    def _assign(self, session: _Session, message: dict[str, Any]) -> None:
        task_id = _field(message, "task_id", str)
        name = _field(message, "name", str)
        with session.tasks_lock:
            if task_id in session.tasks:
                raise _ProtocolError(f"task {task_id} assigned twice")
        task = CurrentTask(
            task_id,
            name,
            message.get("args"),
            attempt=int(message.get("attempt") or 1),
            owner=message.get("owner"),
            timeout_ms=message.get("timeout_ms"),
            checkpoint=message.get("checkpoint"),
            send=session.send,
            client=self._client_for_tasks(),
        )
        with session.tasks_lock:
            session.tasks[task_id] = task
        function = self.task_types.get(name)
        thread = threading.Thread(
            target=_run_task,
            args=(task, function, session),
            name=f"offstage-task-{task_id}",
            daemon=True,
        )
        thread.start()


class _ServerError(Exception):
    """The server sent `error`: it is closing the connection."""

    def __str__(self) -> str:
        return f"the server ended the connection: {self.args[0]}"


def _run_task(task: CurrentTask, function: Callable[..., Any] | None, session: _Session) -> None:
    """Runs one task in its own thread and answers for it exactly once."""
    _set_current(task)
    install_streams()
    try:
        answer = _outcome(task, function)
    finally:
        task._flush_output()
        _set_current(None)
    task._answer(answer)
    with session.tasks_lock:
        session.tasks.pop(task.task_id, None)


def _outcome(task: CurrentTask, function: Callable[..., Any] | None) -> dict[str, Any]:
    def failed(kind: str, message: str, detail: str | None = None) -> dict[str, Any]:
        error = {"kind": kind, "message": message}
        if detail:
            error["detail"] = detail
        return {"type": "failed", "task_id": task.task_id, "error": error}

    if function is None:
        return failed(
            "unknown_task_type",
            f"this worker has no function for task type {task.name!r}: register one with "
            f"@offstage.background_task({task.name!r})",
        )
    positional, keywords = _args.unpack(task.args)
    try:
        inspect.signature(function).bind(*positional, **keywords)
    except TypeError as error:
        return failed(
            "invalid_args",
            f"{task.name} cannot be called with args {json.dumps(task.args)} ({error}): launch it "
            "with the arguments the function takes (see the args rule in the offstage README)",
        )
    except ValueError:
        pass  # no signature to check (a builtin): just call it
    try:
        result = function(*positional, **keywords)
    except TaskKilled as error:
        return failed("killed", str(error))
    except BackOff as error:
        # The node queues it again without counting the attempt (docs/worker-protocol.md).
        return failed("backed_off", str(error), json.dumps({"delay_s": error.delay}))
    except BaseException as error:  # noqa: BLE001 - every failure is the task's answer
        return failed(type(error).__name__, str(error) or repr(error), traceback.format_exc())
    try:
        _args.check_json(result, f"the return value of {task.name}")
    except TypeError as error:
        return failed("TypeError", str(error))
    return {"type": "completed", "task_id": task.task_id, "return_value": result}


def _fit(message: dict[str, Any]) -> str:
    """``message`` as JSON text within :data:`MAX_MESSAGE_BYTES`: a log line or an error's
    text that would not fit is cut (and says so), a return value that would not fit becomes a
    failure of kind ``output_too_large``. (A state is capped at 1 MiB when it is written.)"""
    text = json.dumps(message)
    size = len(text.encode())
    if size <= MAX_MESSAGE_BYTES:
        return text
    room = (MAX_MESSAGE_BYTES - 4096) // 6

    def cut(value: str, what: str) -> str:
        return (
            f"{value[:room]}… [cut by the worker: the {what} was {len(value.encode())} bytes, "
            f"over the worker protocol's {MAX_MESSAGE_BYTES >> 20} MiB message limit]"
        )

    kind = message.get("type")
    if kind == "log":
        message = dict(message, message=cut(message["message"], "log line"))
    elif kind == "completed":
        message = {
            "type": "failed",
            "task_id": message["task_id"],
            "error": {
                "kind": "output_too_large",
                "message": f"the return value is {size} bytes of JSON, over the worker "
                f"protocol's {MAX_MESSAGE_BYTES >> 20} MiB message limit: return a reference "
                "(a table, a file) instead of the data",
            },
        }
    elif kind == "failed":
        error = dict(message["error"])
        error["message"] = cut(str(error.get("message", "")), "error message")
        if error.get("detail"):
            error["detail"] = cut(str(error["detail"]), "error detail")
        message = dict(message, error=error)
    return json.dumps(message)


def _parse(raw: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except ValueError:
        raise _ProtocolError("a message that is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise _ProtocolError("a message that is not a JSON object with a `type`")
    return message


def _field(message: dict[str, Any], name: str, kind: type) -> Any:
    value = message.get(name)
    if not isinstance(value, kind):
        raise _ProtocolError(f"`{message.get('type')}` without a valid `{name}`")
    return value


def _handshake_error(error: InvalidStatus, url: str) -> OffstageError:
    status = error.response.status_code
    try:
        detail = json.loads(error.response.body or b"{}")["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "bad_response", f"{url} answered {status}"
    if status == 401:
        message += " (a worker needs a token of role `worker`: offstage.connect(url, token=...))"
    elif status == 403:
        message += " (a worker's token must have role `worker`)"
    elif status == 404:
        message = (
            f"{url} has no worker endpoint ({status}): this server does not serve remote "
            "workers; upgrade `offstage`"
        )
    return OffstageError(message, code=code, status=status)


# -- module level, as anvil.server ----------------------------------------------------------

_worker_lock = threading.Lock()
_worker: Worker | None = None


def start_worker(concurrency: int = 4, name: str | None = None) -> Worker:
    """Starts serving the ``@background_task`` functions through the connection
    ``offstage.connect`` made, in a background thread; returns the :class:`Worker`."""
    global _worker
    client = connection()
    with _worker_lock:
        if _worker is not None and not _worker._stop.is_set():
            return _worker
        _worker = Worker(client.url, client.token, concurrency=concurrency, name=name)
        return _worker.start()


def wait_forever(concurrency: int = 4, name: str | None = None) -> None:
    """Serves the ``@background_task`` functions through the connection ``offstage.connect``
    made, until the program is interrupted (Ctrl-C), as ``anvil.server.wait_forever``."""
    worker = start_worker(concurrency=concurrency, name=name)
    try:
        while worker._thread is not None and worker._thread.is_alive():
            worker._thread.join(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()
