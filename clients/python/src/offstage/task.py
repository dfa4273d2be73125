"""A :class:`Task`: the handle on one launch of a task type, with Anvil's methods.

Every getter whose answer can change (state, status, return value, error) asks the server
afresh, as Anvil's do, so a handle never shows stale news; the id and name never change and
are answered from the handle. :meth:`Task.wait` follows the task's live event stream instead
of polling.

    task = offstage.launch_background_task("demo.count", to=5, interval_ms=100)
    task.get_state()               # {'done': 2, 'total': 5}
    task.wait(timeout=30)
    task.get_return_value()        # 5
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._sse import EventStream
from .errors import TaskError

if TYPE_CHECKING:
    from .client import Client

TERMINAL = ("completed", "failed", "killed", "missing")


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time from the server as an aware ``datetime`` (nanoseconds cut to micro)."""
    if text is None:
        return None
    value = text.replace("Z", "+00:00").replace("z", "+00:00")
    if "." in value:
        # fromisoformat before Python 3.11 takes at most 6 fractional digits.
        head, _, rest = value.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        value = f"{head}.{(digits + '000000')[:6]}{rest}"
    return datetime.fromisoformat(value)


def _ended_error(record: dict[str, Any]) -> TaskError | None:
    """The error of a task record that ended without completing; ``None`` for any other."""
    if record.get("status") in ("failed", "killed", "missing"):
        return TaskError.from_record(record)
    return None


@dataclass(frozen=True)
class LogLine:
    """One line of a task's log."""

    seq: int
    """1 for the task's first line, one more for each line after."""
    at: datetime
    """When it was written."""
    level: str
    """``trace``, ``debug``, ``info``, ``warn`` or ``error``."""
    message: str
    """The text."""

    @classmethod
    def from_json(cls, line: dict[str, Any]) -> LogLine:
        """A line as the API sends it."""
        at = parse_time(line["at"])
        assert at is not None
        return cls(int(line["seq"]), at, str(line["level"]), str(line["message"]))


class Task:
    """One task: one launch of a task type. Get one from ``launch_background_task``,
    ``get_background_task`` or ``list_background_tasks``.

    Any handle can read a task and kill it (with a token that may); only the task itself, in
    its worker, writes its state.
    """

    def __init__(self, client: Client, record: dict[str, Any]) -> None:
        self._client = client
        self._record = record

    # -- the record -------------------------------------------------------------------------

    def refresh(self) -> dict[str, Any]:
        """Reads the task's record from the server again, and returns it."""
        self._record = self._client._get_record(self.get_id())
        return self._record

    @property
    def record(self) -> dict[str, Any]:
        """The task's record as last read (every field the API has), without asking again."""
        return self._record

    def _live(self) -> dict[str, Any]:
        # A finished task never changes again: no need to ask.
        if self._record.get("status") in TERMINAL:
            return self._record
        return self.refresh()

    # -- Anvil's Task methods ---------------------------------------------------------------

    def get_id(self) -> str:
        """The task's id (time-ordered, as text)."""
        return str(self._record["id"])

    def get_task_name(self) -> str:
        """The task type's name."""
        return str(self._record["name"])

    def get_rerun_of(self) -> str | None:
        """The id of the task this one reruns (``Client.rerun``), or ``None``."""
        value = self._record.get("rerun_of")
        return None if value is None else str(value)

    @property
    def trace_id(self) -> str | None:
        """The id of the trace the task was launched in (32 hex digits): the W3C trace
        context current at launch (``launch(..., traceparent=…)``, the launching task's, or the
        server's own span with OpenTelemetry on). ``None`` when the launch had none."""
        value = self._record.get("trace_id")
        return None if value is None else str(value)

    @property
    def parent(self) -> str | None:
        """The id of the task that launched this one as its child (from its context, or with
        ``parent=``), or ``None``."""
        value = self._record.get("parent")
        return None if value is None else str(value)

    @property
    def detached(self) -> bool:
        """True for a child left running when its parent ends by itself."""
        return bool(self._record.get("detached", False))

    @property
    def concurrency_key(self) -> str | None:
        """The concurrency key the task counts under (for a task type with a limit per key),
        resolved once at launch; ``None`` for a task without one."""
        value = self._record.get("concurrency_key")
        return None if value is None else str(value)

    def children(self) -> list[Task]:
        """This task's children, oldest first (as ``list_background_tasks`` lists tasks)."""
        return self._client.list_background_tasks(parent=self.get_id())

    def rerun(self, args: Any = None, *, from_checkpoint: bool = False) -> Task:
        """Launches this finished task again as a new task linked to it, with ``args`` if given
        and this one's otherwise, and with this one's last checkpoint if ``from_checkpoint``
        (see ``Client.rerun``)."""
        return self._client.rerun(self.get_id(), args, from_checkpoint=from_checkpoint)

    def get_checkpoint(self) -> Any:
        """The last checkpoint the task saved (what a later run of it starts from); ``None``
        until it saves one. Not the state: the state is what people see, the checkpoint what
        the task needs to resume."""
        return self._live().get("checkpoint")

    @property
    def checkpoint(self) -> Any:
        """The last checkpoint the task saved (``get_checkpoint()``)."""
        return self.get_checkpoint()

    def get_checkpoint_time(self) -> datetime | None:
        """When that checkpoint was saved; ``None`` while there is none."""
        return parse_time(self._live().get("checkpoint_at"))

    def get_state(self) -> Any:
        """The state the task last wrote: ``{}`` until it writes one."""
        return self._live().get("state")

    def get_start_time(self) -> datetime:
        """When the task started running; while it is still queued, when it was launched."""
        record = self._record if self._record.get("started_at") else self._live()
        when = parse_time(record.get("started_at") or record.get("launched_at"))
        assert when is not None
        return when

    def get_return_value(self) -> Any:
        """What the task returned once it completed; ``None`` until then (and if it did not)."""
        return self._live().get("return_value")

    def get_error(self) -> None:
        """Raises the error that made the task terminate, as Anvil's ``get_error()`` re-raises
        the task's exception: a :class:`TaskError` (``kind``, ``message``, ``detail``) once the
        task failed, was killed or went missing. Returns ``None`` while the task runs and once
        it completed. To look at the error without raising it, use :meth:`get_error_info`.

            task.get_error()   # re-raises here if the task failed

        Raises:
            TaskError: the task failed, was killed or went missing.
        """
        error = self.get_error_info()
        if error is not None:
            raise error

    def get_error_info(self) -> TaskError | None:
        """The error that made the task terminate, returned rather than raised (not in Anvil):
        a :class:`TaskError` once the task failed, was killed or went missing; ``None`` while
        it runs and once it completed."""
        return _ended_error(self._live())

    def get_termination_status(self) -> str | None:
        """``None`` while queued or running, then ``"completed"``, ``"failed"``, ``"killed"``
        or ``"missing"``."""
        status = self._live().get("status")
        return status if status in TERMINAL else None

    def is_running(self) -> bool:
        """True while the task is queued or running."""
        return self._live().get("status") not in TERMINAL

    def is_completed(self) -> bool:
        """True once the task completed, False while it runs.

        Raises:
            TaskError: the task failed, was killed or went missing (as Anvil raises the task's
                error), the same error :meth:`get_error` raises.
        """
        record = self._live()
        error = _ended_error(record)
        if error is not None:
            raise error
        return record.get("status") == "completed"

    def kill(self, grace: float | None = None) -> None:
        """Kills the task: it is asked to stop, and stopped for real after the grace period
        (the server's default unless ``grace`` is given, in seconds). It ends ``killed``; killing a
        task that already ended does nothing. Needs a token with role ``control``.

        A Python task in a remote worker is asked through ``offstage.task_killed()``; see the
        package README for what a kill can and cannot do to a Python thread.
        """
        self._record = self._client._kill(self.get_id(), grace)

    # -- beyond Anvil -----------------------------------------------------------------------

    def get_status(self) -> str:
        """``queued``, ``running``, ``completed``, ``failed``, ``killed`` or ``missing``."""
        return str(self._live().get("status"))

    def get_waiting(self) -> dict[str, Any] | None:
        """Why the task is not running yet (queued), still runs after a kill, or what it waits
        for: a dict with ``code`` (``paused``, ``scheduled``, ``retry_backoff``,
        ``concurrency_limit``, ``no_worker``, ``slots_busy``, ``due``, ``kill_overdue``,
        ``signal``), ``message`` (a sentence) and the details of the code (``run_at``,
        ``since``, ``holders``, ``served``, ``signal``…). ``None``
        when there is nothing to say. Asks the server each time: the reason depends on other
        tasks and on the nodes."""
        waiting = self.refresh().get("waiting")
        return dict(waiting) if waiting else None

    def signal(self, name: str, payload: Any = None) -> dict[str, Any]:
        """Sends the task the signal ``name`` with ``payload`` (any JSON value): kept until the
        task waits for it (``ctx.wait_signal(name)`` in Rust), so it may be sent before.
        Returns the signal as the server keeps it (``seq``, ``name``, ``payload``,
        ``sent_at``, ``received_attempt``…). Needs a token with role ``control``, or a scoped
        token with the ``signal`` right.

            task.signal("approve", {"approved": True, "by": "ann"})

        Raises:
            OffstageError: ``conflict`` (409) when the task has ended, ``not_found``,
                ``invalid_argument`` for a bad name, ``too_large`` for a payload over the cap.
        """
        return self._client._signal(self.get_id(), name, payload)

    def get_signals(self) -> list[dict[str, Any]]:
        """The signals sent to the task, oldest first, received or not (see
        :meth:`Client.signals`)."""
        return self._client.signals(self.get_id())

    def get_waiting_for(self) -> str | None:
        """The name of the signal the task waits for while it runs (it holds no slot
        meanwhile), or ``None``."""
        value = self._live().get("waiting_for")
        return None if value is None else str(value)

    def get_waiting_until(self) -> datetime | None:
        """When the task's wait for a signal times out, if it waits with a timeout."""
        return parse_time(self._live().get("waiting_until"))

    def get_logs(self, after: int = 0) -> list[LogLine]:
        """The task's log lines in order (those numbered after ``after``)."""
        return self._client._logs(self.get_id(), after)

    def events(self) -> EventStream:
        """The task's live events from this call on (``state``, ``log``, ``finished``…), each
        a dict as the API sends it; iterating ends after ``finished``. The stream is open
        when this returns, so nothing the task does afterwards is missed. Close it (or use
        ``with``) to stop following early; ``next(timeout=…)`` waits with a deadline.

            with task.events() as events:
                for event in events:
                    if event["type"] == "state":
                        print(event["state"])
        """
        return self._client._task_events(self.get_id())

    def wait(self, timeout: float | None = None) -> Task:
        """Blocks until the task ends (following its live events, not polling) and returns
        this handle, its record up to date: ``task.wait().get_return_value()``.

        Raises:
            TimeoutError: it had not ended within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._live().get("status") not in TERMINAL:
            with self._client._task_events(self.get_id()) as stream:
                while True:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(
                            f"task {self.get_id()} ({self.get_task_name()}) was still running "
                            f"after {timeout} s: wait longer, or kill it"
                        )
                    try:
                        event = stream.next(timeout=remaining)
                    except TimeoutError:
                        continue
                    except Exception:  # noqa: BLE001 - the stream broke: re-read and follow again
                        break
                    if event is None:
                        break
                    if event.get("type") == "finished" and isinstance(event.get("task"), dict):
                        self._record = event["task"]
                        break
        return self

    def __repr__(self) -> str:
        return f"<Task {self.get_task_name()} {self.get_id()} {self._record.get('status')}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other.get_id() == self.get_id()

    def __hash__(self) -> int:
        return hash(self.get_id())
