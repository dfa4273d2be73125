"""The errors this package raises.

An :class:`OffstageError` is anything that went wrong talking to the server: the server's own
``{"error": {"code", "message"}}`` answers keep their ``code`` and HTTP ``status``, and the
message says how to fix the problem. A :class:`TaskError` is how a *task* ended when it did not
complete: ``Task.get_error()`` and ``Task.is_completed()`` raise it, as Anvil does, and
``Task.get_error_info()`` returns it.

    try:
        offstage.launch_background_task("reports.monthyl")
    except offstage.OffstageError as e:
        print(e.code, e.status, e)   # unknown_task_type 400 no task type is named ...
"""

from __future__ import annotations

from typing import Any


class OffstageError(Exception):
    """An error from the Offstage server, or from reaching it.

    Attributes:
        code: the server's stable machine-readable code (``not_found``, ``unknown_task_type``,
            ``unauthorized``, ``forbidden`` …), or one of this client's own: ``unreachable``
            (no server answered), ``not_connected`` (``offstage.connect`` was not called),
            ``bad_response`` (the server's answer was not what this client expects).
        status: the HTTP status of the answer, or ``None`` when there was no answer.
        message: what went wrong and how to fix it.
    """

    def __init__(self, message: str, *, code: str = "error", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, "
            f"message={self.message!r})"
        )


class TaskError(OffstageError):
    """How a task ended when it did not complete: it failed, was killed or went missing.

    ``code`` is the same as ``kind``; ``status`` is ``None`` (this is not an HTTP error).

    Attributes:
        kind: what kind of error: the exception class name for a Python task
            (``ValueError``), ``killed``, ``timeout``, ``missing``, ``worker_lost``, or whatever
            the task type chose.
        message: the error's message.
        detail: more, when there is more (a Python task's traceback).
        task_id: the task it belongs to.
        termination_status: ``"failed"``, ``"killed"`` or ``"missing"``.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        detail: str | None = None,
        *,
        task_id: str | None = None,
        termination_status: str | None = None,
    ) -> None:
        super().__init__(message, code=kind)
        self.kind = kind
        self.detail = detail
        self.task_id = task_id
        self.termination_status = termination_status

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TaskError:
        """The error of a task record that ended without completing."""
        error = record.get("error") or {}
        status = record.get("status")
        return cls(
            str(error.get("kind") or status or "error"),
            str(error.get("message") or f"the task ended {status}"),
            error.get("detail"),
            task_id=record.get("id"),
            termination_status=status,
        )

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"TaskError(kind={self.kind!r}, message={self.message!r}, "
            f"termination_status={self.termination_status!r}, task_id={self.task_id!r})"
        )


class StateTooLarge(OffstageError, ValueError):
    """Raised by a state write (``task_state[...] = ...``, ``set_task_state``) in a worker when
    the new state is over the server's state cap (1 MiB of JSON by default).

    The write does not happen: the task keeps its previous state, and a ``warn`` line in its
    log says why, as the server does for a state it refuses. Keep large data elsewhere (a
    table, a file) and put a reference in the state.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, code="state_too_large")


class TaskKilled(Exception):
    """Raised inside a running task by ``offstage.check_killed()`` once the task was killed.

    Let it propagate: the worker then answers the server, which records the task ``killed``.
    It derives from ``Exception`` on purpose, so a bare ``except Exception`` in a task's loop
    swallows it; re-raise it if you catch broadly.
    """
