"""What a running task holds: its id, its state, its log, and whether it was killed.

Inside a function a worker runs, ``offstage.get_current_task()`` is this task's
:class:`CurrentTask`, ``offstage.task_state`` its state (a dict whose writes stream to the
server) and ``print()`` writes its log. The context is thread-local: threads the task starts
itself are not inside the task (their prints go to the worker's own stdout).

    @offstage.background_task
    def crawl(urls):
        for done, url in enumerate(urls, 1):
            offstage.check_killed()                  # stops here once the task is killed
            fetch(url)
            offstage.task_state["done"] = done       # streams to every watcher
            print("fetched", url)                    # a line of this task's log
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from ._args import check_json
from .errors import OffstageError, StateTooLarge, TaskKilled

_local = threading.local()

LEVELS = ("trace", "debug", "info", "warn", "error")

# A line longer than this without a newline is sent as it is, so one endless line cannot grow
# without bound in the worker.
_MAX_PARTIAL = 64 * 1024

STATE_LIMIT = 1024 * 1024
"""The most bytes of JSON a state may take: the server's default state cap, checked here
before sending so an oversized state never leaves the worker."""


class CurrentTask:
    """The task the current thread is running (``offstage.get_current_task()``).

    Made by the worker for each assigned task; ``send`` is how its messages reach the server
    (``None`` once the connection that assigned it is gone, and after the task answered).
    """

    def __init__(
        self,
        task_id: str,
        name: str,
        args: Any,
        *,
        attempt: int = 1,
        owner: str | None = None,
        timeout_ms: int | None = None,
        checkpoint: Any = None,
        send: Callable[[dict[str, Any], bool], None],
        client: Any = None,
    ) -> None:
        self.task_id = task_id
        self.name = name
        self.args = args
        self.attempt = attempt
        self.owner = owner
        self.timeout_ms = timeout_ms
        self._send: Callable[[dict[str, Any], bool], None] | None = send
        self._state: Any = {}
        self._lock = threading.RLock()
        self._killed = threading.Event()
        self._partial: dict[str, str] = {}
        self._checkpoint: Any = checkpoint
        self._checkpoint_seq = 0
        # Checkpoints sent and not yet confirmed: seq -> [event, value, error or None].
        self._unconfirmed: dict[int, list[Any]] = {}
        # An HTTP client of the worker's server, with the worker's token: for limiters.
        self._client = client

    # -- who am I ---------------------------------------------------------------------------

    def get_id(self) -> str:
        """The task's id (Anvil: ``anvil.server.context.background_task_id``)."""
        return self.task_id

    def get_task_name(self) -> str:
        """The task type's name."""
        return self.name

    # -- kill -------------------------------------------------------------------------------

    def is_killed(self) -> bool:
        """True once somebody killed the task (or it timed out, or the worker lost its
        connection): the task should stop soon, and whatever it answers is recorded
        ``killed``."""
        return self._killed.is_set()

    def check_killed(self) -> None:
        """Raises :class:`offstage.TaskKilled` once the task was killed; else does nothing."""
        if self._killed.is_set():
            raise TaskKilled(f"task {self.task_id} was killed")

    def sleep(self, seconds: float) -> None:
        """Sleeps ``seconds``, waking at once (raising :class:`offstage.TaskKilled`) if the
        task is killed meanwhile: a ``time.sleep`` a kill can interrupt."""
        if self._killed.wait(seconds):
            raise TaskKilled(f"task {self.task_id} was killed")

    def _kill(self) -> None:
        self._killed.set()

    # -- state ------------------------------------------------------------------------------

    def limiter(self, name: str) -> Any:
        """Limiter ``name`` through the worker's server, naming this task as the holder; a
        wait for it ends with :class:`TaskKilled` when the task is killed::

            with offstage.limiter("stripe").acquire():
                charge(customer)
        """
        from .limiter import Limiter

        if self._client is None:
            raise OffstageError(
                "this task has no server to reach limiters through: run it in an "
                "offstage.Worker, or use Client(url, token).limiter(name)",
                code="no_server",
            )
        return Limiter(
            self._client, name, f"task {self.task_id} ({self.name})", stop=self.check_killed
        )

    def back_off(self, delay: float) -> Any:
        """The exception that sends this task back to the queue for ``delay`` seconds
        without counting the attempt: ``raise task.back_off(30)``."""
        from .limiter import BackOff

        return BackOff(delay)

    def get_state(self) -> Any:
        """The state as this task last wrote it."""
        with self._lock:
            return self._state

    def set_state(self, state: Any) -> None:
        """Replaces the whole state with ``state`` (any JSON value) and sends it."""
        text = check_json(state, "task state")
        size = len(text.encode())
        if size > STATE_LIMIT:
            error = StateTooLarge(
                f"the state of task {self.task_id} would be {size} bytes, over the cap of "
                f"{STATE_LIMIT} bytes: keep large data elsewhere (a table, a file) and put a "
                "reference in the state"
            )
            self.log(f"state refused: {error}", "warn")
            raise error
        with self._lock:
            self._state = state
            self._emit({"type": "state", "task_id": self.task_id, "state": state}, text)

    # -- checkpoint -------------------------------------------------------------------------

    def get_checkpoint(self) -> Any:
        """The last checkpoint this task saved, in this run or an earlier one (a retry, a run
        after its node died, a rerun from its checkpoint); ``None`` when there is none."""
        with self._lock:
            return self._checkpoint

    def save_checkpoint(self, checkpoint: Any, timeout: float = 30.0) -> None:
        """Saves ``checkpoint`` (any JSON value: a cursor, the last item done) as this task's
        checkpoint, and returns once the server has stored it: a later run of the task starts
        with it (``get_checkpoint()``). The state is not touched.

        Raises:
            StateTooLarge: over the state cap (1 MiB); nothing is sent.
            OffstageError: the server refused it (``code`` ``checkpoint_refused``), or did not
                confirm it within ``timeout`` seconds or before the connection ended
                (``checkpoint_unconfirmed``): a later run starts from the last confirmed one.
        """
        text = check_json(checkpoint, "checkpoint")
        size = len(text.encode())
        if size > STATE_LIMIT:
            raise StateTooLarge(
                f"the checkpoint of task {self.task_id} would be {size} bytes, over the cap of "
                f"{STATE_LIMIT} bytes (checkpoints have the state's cap): save what the task "
                "needs to resume (a cursor, an id, a file name) rather than the data"
            )
        value = json.loads(text)
        confirmed = threading.Event()
        with self._lock:
            send = self._send
            self._checkpoint_seq += 1
            seq = self._checkpoint_seq
            waiting = [confirmed, value, None]
            self._unconfirmed[seq] = waiting
        if send is not None:
            send(
                {"type": "checkpoint", "task_id": self.task_id, "seq": seq, "checkpoint": value},
                False,
            )
        else:
            waiting[2] = "the connection to the server is gone"
            confirmed.set()
        if not confirmed.wait(timeout):
            with self._lock:
                self._unconfirmed.pop(seq, None)
            raise OffstageError(
                f"the server did not confirm the checkpoint of task {self.task_id} within "
                f"{timeout} s: a later run starts from the last confirmed one",
                code="checkpoint_unconfirmed",
            )
        if waiting[2] is not None:
            unconfirmed = waiting[2] == "the connection to the server is gone"
            raise OffstageError(
                f"the checkpoint of task {self.task_id} was not saved: {waiting[2]}",
                code="checkpoint_unconfirmed" if unconfirmed else "checkpoint_refused",
            )

    def _confirm_checkpoint(self, seq: int, error: str | None) -> None:
        """The server's ``checkpoint_saved`` for checkpoint ``seq``."""
        with self._lock:
            waiting = self._unconfirmed.pop(seq, None)
            if waiting is None:
                return
            if error is None:
                self._checkpoint = waiting[1]
            waiting[2] = error
        waiting[0].set()

    def _emit(self, message: dict[str, Any], state_text: str | None = None) -> None:
        send = self._send
        if send is None:
            return
        if state_text is not None:
            # Snapshot: later in-place changes to the dict must not alter what is queued.
            message = dict(message, state=json.loads(state_text))
            send(message, True)
        else:
            send(message, False)

    # -- log --------------------------------------------------------------------------------

    def log(self, message: str, level: str = "info") -> None:
        """Adds ``message`` to the task's log at ``level`` (``trace``, ``debug``, ``info``,
        ``warn`` or ``error``)."""
        if level not in LEVELS:
            raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
        self._emit(
            {"type": "log", "task_id": self.task_id, "level": level, "message": str(message)}
        )

    def _write(self, stream: str, level: str, text: str) -> None:
        with self._lock:
            buffered = self._partial.get(stream, "") + text
            *lines, rest = buffered.split("\n")
            while len(rest) > _MAX_PARTIAL:
                lines.append(rest[:_MAX_PARTIAL])
                rest = rest[_MAX_PARTIAL:]
            self._partial[stream] = rest
            for line in lines:
                self.log(line.rstrip("\r"), level)

    def _flush_output(self) -> None:
        """Sends what was printed without a final newline."""
        with self._lock:
            for stream, rest in list(self._partial.items()):
                if rest:
                    self.log(rest, "info" if stream == "stdout" else "warn")
            self._partial.clear()

    def _answer(self, message: dict[str, Any]) -> bool:
        """Sends the task's one answer (``completed`` or ``failed``); later calls and every
        message after it are dropped. True if this call answered."""
        with self._lock:
            send, self._send = self._send, None
        if send is None:
            return False
        send(message, False)
        return True

    def _detach(self) -> None:
        """The connection is gone: whatever the task does now reaches nobody, and checkpoints
        waiting for their confirmation get none."""
        with self._lock:
            self._send = None
            waiting, self._unconfirmed = list(self._unconfirmed.values()), {}
        for entry in waiting:
            entry[2] = "the connection to the server is gone"
            entry[0].set()

    def __repr__(self) -> str:
        return f"<CurrentTask {self.name} {self.task_id}>"


def current() -> CurrentTask | None:
    """The task the calling thread runs, or ``None``."""
    return getattr(_local, "task", None)


def _set_current(task: CurrentTask | None) -> None:
    _local.task = task


def _require(what: str) -> CurrentTask:
    task = current()
    if task is None:
        raise RuntimeError(
            f"{what} is only available inside a @background_task function that a worker runs "
            "(offstage.wait_forever()); threads the task starts itself are not inside it"
        )
    return task


def get_current_task() -> CurrentTask:
    """The task the calling thread is running.

    Raises:
        RuntimeError: outside a task.
    """
    return _require("offstage.get_current_task()")


def get_current_task_id() -> str | None:
    """The id of the task the calling thread runs, or ``None`` outside a task (Anvil:
    ``anvil.server.context.background_task_id``)."""
    task = current()
    return None if task is None else task.task_id


def task_killed() -> bool:
    """True once the current task was killed: check it in long loops, and return."""
    return _require("offstage.task_killed()").is_killed()


def check_killed() -> None:
    """Raises :class:`offstage.TaskKilled` once the current task was killed."""
    _require("offstage.check_killed()").check_killed()


def set_task_state(state: Any) -> None:
    """Replaces the current task's whole state with ``state`` (any JSON value)."""
    _require("offstage.set_task_state()").set_state(state)


def get_checkpoint() -> Any:
    """The current task's last checkpoint (``None`` when it has none)."""
    return _require("offstage.get_checkpoint()").get_checkpoint()


def save_checkpoint(checkpoint: Any) -> None:
    """Saves the current task's checkpoint, returning once the server has stored it."""
    _require("offstage.save_checkpoint()").save_checkpoint(checkpoint)


def limiter(name: str) -> Any:
    """Limiter ``name`` for the running task (:meth:`CurrentTask.limiter`)."""
    return _require("offstage.limiter").limiter(name)


def log(message: str, level: str = "info") -> None:
    """Adds a line to the current task's log at ``level``."""
    _require("offstage.log()").log(message, level)


class TaskState(MutableMapping):  # type: ignore[type-arg]
    """``offstage.task_state``: the current task's state as a dict.

    Every write (``task_state["done"] = 3``, ``del``, ``update``, ``clear``, ``setdefault``…)
    sends the whole state to the server, which shows it to every watcher at once; bursts of
    writes are coalesced while the connection is busy, so the latest state always arrives.
    Changing a value in place (``task_state["urls"].append(u)``) is not seen: assign it again,
    or call ``offstage.set_task_state(...)``.
    """

    def _dict(self) -> dict[str, Any]:
        state = _require("offstage.task_state").get_state()
        if not isinstance(state, dict):
            raise TypeError(
                f"the task's state is a {type(state).__name__}, not a dict: read it with "
                "offstage.get_current_task().get_state()"
            )
        return state

    def _write(self, change: Callable[[dict[str, Any]], None]) -> None:
        task = _require("offstage.task_state")
        with task._lock:
            updated = dict(self._dict())
            change(updated)
            task.set_state(updated)

    def __getitem__(self, key: str) -> Any:
        return self._dict()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._write(lambda state: state.__setitem__(key, value))

    def __delitem__(self, key: str) -> None:
        self._write(lambda state: state.__delitem__(key))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._dict()))

    def __len__(self) -> int:
        return len(self._dict())

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Updates several keys with one write."""
        self._write(lambda state: state.update(*args, **kwargs))

    def clear(self) -> None:
        """Empties the state with one write."""
        self._write(lambda state: state.clear())

    def __repr__(self) -> str:
        task = current()
        return "<task_state outside a task>" if task is None else repr(task.get_state())


task_state = TaskState()


class _TaskStream:
    """``sys.stdout`` / ``sys.stderr`` while a worker runs: inside a task thread, writes go
    to that task's log, a line at a time; in any other thread, to the stream it replaced."""

    def __init__(self, original: Any, stream: str, level: str) -> None:
        self._original = original
        self._stream = stream
        self._level = level

    def write(self, text: str) -> int:
        task = current()
        if task is None:
            return int(self._original.write(text) or 0)
        task._write(self._stream, self._level, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if current() is None:
            self._original.flush()

    def isatty(self) -> bool:
        return current() is None and bool(self._original.isatty())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


_install_lock = threading.Lock()


def install_streams() -> None:
    """Routes ``print()`` in task threads to their tasks' logs (idempotent; done again if
    something, such as a test runner, swapped ``sys.stdout`` since)."""
    with _install_lock:
        if not isinstance(sys.stdout, _TaskStream):
            sys.stdout = _TaskStream(sys.stdout, "stdout", "info")
        if not isinstance(sys.stderr, _TaskStream):
            sys.stderr = _TaskStream(sys.stderr, "stderr", "warn")


def __getattr__(name: str) -> Any:
    # `offstage.context.background_task_id`, spelled as Anvil's `anvil.server.context`.
    if name == "background_task_id":
        return get_current_task_id()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
