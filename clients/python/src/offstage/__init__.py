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
    check_killed,
    get_current_task,
    get_current_task_id,
    log,
    set_task_state,
    task_killed,
    task_state,
)
from .errors import OffstageError, StateTooLarge, TaskError, TaskKilled
from .task import LogLine, Task
from .worker import Worker, background_task, registered_task_types, start_worker, wait_forever

__version__ = "0.1.0"

__all__ = [
    "Client",
    "CurrentTask",
    "EventStream",
    "LogLine",
    "OffstageError",
    "StateTooLarge",
    "Task",
    "TaskError",
    "TaskKilled",
    "Worker",
    "background_task",
    "check_killed",
    "connect",
    "connection",
    "get_background_task",
    "get_current_task",
    "get_current_task_id",
    "launch_background_task",
    "list_background_tasks",
    "log",
    "registered_task_types",
    "set_task_state",
    "start_worker",
    "task_killed",
    "task_state",
    "wait_forever",
]
