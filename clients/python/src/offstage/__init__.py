"""Offstage from Python: launch and watch background tasks, and serve task types as a worker,
in Anvil's vocabulary.

As a client (anywhere)::

    import offstage
    offstage.connect("http://127.0.0.1:7700", token="launch-secret")
    task = offstage.launch_background_task("reports.monthly", month="2026-10")
    task.get_state(); task.is_running(); task.wait(timeout=60).get_return_value()

As a worker (serving task types written in Python)::

    @offstage.background_task
    def monthly(month):
        offstage.task_state["step"] = "fetching"
        print("fetching", month)         # lands in this task's log
        return {"rows": 3}

    offstage.connect("http://127.0.0.1:7700", token="worker-secret")
    offstage.wait_forever()
"""

import sys as _sys
import types as _types
from typing import Any as _Any

from ._sse import EventStream
from .client import (
    Client,
    connect,
    connection,
    get_background_task,
    launch_background_task,
    list_background_tasks,
)
from .context import (
    CurrentTask,
    _require,
    check_killed,
    get_checkpoint,
    get_current_task,
    get_current_task_id,
    limiter,
    log,
    save_checkpoint,
    set_task_state,
    task_killed,
    task_state,
)
from .errors import OffstageError, StateTooLarge, TaskError, TaskKilled
from .limiter import BackOff, Limiter, Permit, back_off
from .task import LogLine, Task
from .tokens import ScopedToken
from .worker import Worker, background_task, registered_task_types, start_worker, wait_forever

__version__ = "0.1.0"

__all__ = [
    "BackOff",
    "Client",
    "CurrentTask",
    "EventStream",
    "Limiter",
    "LogLine",
    "OffstageError",
    "Permit",
    "ScopedToken",
    "StateTooLarge",
    "Task",
    "TaskError",
    "TaskKilled",
    "Worker",
    "back_off",
    "background_task",
    "check_killed",
    "connect",
    "connection",
    "get_background_task",
    "get_checkpoint",
    "get_current_task",
    "get_current_task_id",
    "launch_background_task",
    "limiter",
    "list_background_tasks",
    "log",
    "registered_task_types",
    "save_checkpoint",
    "set_task_state",
    "start_worker",
    "task_killed",
    "task_state",
    "wait_forever",
]


class _Module(_types.ModuleType):
    """The ``offstage`` module, so that ``offstage.task_state = {...}`` replaces the running
    task's whole state (as Anvil allows) instead of silently rebinding a module attribute."""

    def __setattr__(self, name: str, value: _Any) -> None:
        if name == "task_state":
            # Outside a task this raises, saying so; `offstage.task_state = offstage.task_state`
            # changes nothing.
            if value is not task_state:
                _require("offstage.task_state = ...").set_state(value)
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Module
