"""The :class:`Client`: one Offstage server over HTTP, and the module-level connection.

``offstage.connect(url, token)`` makes the connection every module-level function uses
(``launch_background_task``, ``get_background_task``, ``list_background_tasks``, and the
worker's ``wait_forever``), as ``anvil.server.connect`` does. A program that talks to several
servers makes a :class:`Client` for each instead; it has the same methods.

    client = offstage.Client("http://127.0.0.1:7700", token="s3cret")
    task = client.launch("demo.echo", args={"value": 1})
    task.wait().get_return_value()     # 1
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import httpx

from . import _args
from ._sse import EventStream
from .errors import OffstageError
from .limiter import Limiter
from .task import LogLine, Task
from .tokens import ScopedToken, request_body


class Client:
    """One Offstage server, over HTTP.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:7700`` (with a path prefix if the
            API is mounted under one).
        token: a bearer token (``offstage serve --token ROLE:SECRET``), or a
            :class:`ScopedToken` minted by :meth:`mint_token`; none for an open server.
            Reading needs role ``read``, launching ``launch``, killing ``control``; serving
            tasks needs role ``worker``. A scoped token sees only its scope's tasks.
        timeout: seconds any one request may take (event streams are not cut by it).
        transport: the ``httpx`` transport to send requests through, instead of the network
            (``httpx.MockTransport`` in tests, or a custom connection).
    """

    def __init__(
        self,
        url: str,
        token: str | ScopedToken | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise OffstageError(
                f"`{url}` is not an Offstage server URL: give one like http://127.0.0.1:7700",
                code="invalid_url",
            )
        self.url = url.rstrip("/")
        self.token = token.token if isinstance(token, ScopedToken) else token
        headers = {"accept": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise OffstageError(
                f"could not reach the Offstage server at {self.url} ({error}): "
                "is `offstage serve` running there?",
                code="unreachable",
            ) from error
        return self._json(response)

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code == 204:
            return None
        if response.is_success:
            try:
                return response.json()
            except ValueError:
                raise OffstageError(
                    f"{response.request.method} {response.request.url.path} answered "
                    f"{response.status_code} with something that is not JSON: is {self.url} "
                    "an Offstage server?",
                    code="bad_response",
                    status=response.status_code,
                ) from None
        raise _error_of(response, self.url)

    def _get_record(self, task_id: str) -> dict[str, Any]:
        record = self._request("GET", f"/api/tasks/{task_id}")
        assert isinstance(record, dict)
        return record

    def _kill(self, task_id: str, grace: float | None) -> dict[str, Any]:
        body = {} if grace is None else {"grace_s": float(grace)}
        record = self._request("POST", f"/api/tasks/{task_id}/kill", json=body)
        assert isinstance(record, dict)
        return record

    def _signal(self, task_id: str, name: str, payload: Any) -> dict[str, Any]:
        signal = self._request(
            "POST", f"/api/tasks/{_quote(task_id)}/signals/{_quote(name)}", json=payload
        )
        assert isinstance(signal, dict)
        return signal

    def _logs(self, task_id: str, after: int) -> list[LogLine]:
        lines: list[LogLine] = []
        while True:
            page = self._request(
                "GET", f"/api/tasks/{task_id}/logs", params={"after": after, "limit": 10_000}
            )
            batch = [LogLine.from_json(line) for line in page["lines"]]
            lines.extend(batch)
            if len(batch) < 10_000:
                return lines
            after = int(page["next_after"])

    def _open_events(self, path: str, last_event_id: int | None = None) -> EventStream:
        headers = {"accept": "text/event-stream"}
        if last_event_id is not None:
            headers["last-event-id"] = str(last_event_id)
        request = self._http.build_request(
            "GET",
            path,
            headers=headers,
            # No read timeout: the server sends a comment every 15 s on quiet streams.
            timeout=httpx.Timeout(self._http.timeout.connect, read=None),
        )
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as error:
            raise OffstageError(
                f"could not reach the Offstage server at {self.url} ({error}): "
                "is `offstage serve` running there?",
                code="unreachable",
            ) from error
        if not response.is_success:
            response.read()
            response.close()
            raise _error_of(response, self.url)
        return EventStream(response)

    def _task_events(self, task_id: str) -> EventStream:
        return self._open_events(f"/api/tasks/{task_id}/events")

    # -- launching and finding tasks --------------------------------------------------------

    def launch(
        self,
        name: str,
        args: Any = None,
        *,
        key: str | None = None,
        owner: str | None = None,
        timeout: float | None = None,
        priority: int | None = None,
        run_at: datetime | None = None,
        on_conflict: str | None = None,
        isolated: bool | None = None,
        parent: str | Task | None = None,
        detached: bool | None = None,
        concurrency_key: str | None = None,
        traceparent: str | None = None,
    ) -> Task:
        """Launches task type ``name`` with ``args`` sent exactly as given (any JSON value).

        Args:
            key: a key to find the task by later (``list_background_tasks(key=…)``).
            owner: who the task belongs to.
            timeout: fail the task (error kind ``timeout``) if it runs longer, in seconds
                (fractions allowed); sent as ``timeout_s``.
            priority: higher runs first among queued tasks.
            run_at: do not start before this time (an aware ``datetime``).
            on_conflict: with ``key``, when a task of the type with that key is live:
                ``reject``, ``existing`` or ``supersede``.
            isolated: run it in a worker process of its own (or, ``False``, in-process),
                whatever its task type says.
            parent: launch it as a child of this task (a :class:`Task` or its id), which must
                be queued or running: it inherits the parent's owner unless ``owner`` is
                given, and is killed when the parent is killed, or ends while it still runs.
                How a task in a worker launches children.
            detached: with ``parent``, leave the child running when its parent ends by
                itself (a kill of the parent still kills it).
            concurrency_key: the concurrency key the task counts under, for a task type with a
                limit per key (instead of the key the type takes from the owner or the args):
                at most that many tasks of one key run at once, and keys take turns.
            traceparent: a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``), sent as
                the header of the same name: the task is launched in that trace
                (``Task.trace_id``), and with OpenTelemetry on the server each attempt is a
                span in it. From OpenTelemetry's Python API: ``propagate.inject(carrier)``
                then ``carrier["traceparent"]``. A value that is not one is ignored by the
                server, as the W3C specification asks.
        """
        body: dict[str, Any] = {"name": name}
        if args is not None:
            _args.check_json(args, "the task's args")
            body["args"] = args
        body.update(
            _options(
                key=key,
                owner=owner,
                timeout=timeout,
                priority=priority,
                on_conflict=on_conflict,
                isolated=isolated,
            )
        )
        if parent is not None:
            body["parent"] = _task_id(parent)
        if detached is not None:
            body["detached"] = detached
        if concurrency_key is not None:
            body["concurrency_key"] = concurrency_key
        if run_at is not None:
            if run_at.tzinfo is None:
                raise OffstageError(
                    "run_at has no time zone: give an aware datetime, "
                    "e.g. datetime.now(timezone.utc) + timedelta(minutes=5)",
                    code="invalid_run_at",
                )
            body["run_at"] = run_at.isoformat()
        headers = {} if traceparent is None else {"traceparent": traceparent}
        return Task(self, self._request("POST", "/api/tasks", json=body, headers=headers))

    def launch_background_task(self, name: str, *args: Any, **kwargs: Any) -> Task:
        """Launches task type ``name``, Anvil's way: the call's arguments become the task's
        args by the rule in the package README (keyword arguments only → an object; one
        scalar → that value; several → a list; …)."""
        return self.launch(name, _args.pack(args, kwargs))

    def get_background_task(self, task_id: str) -> Task:
        """The task with id ``task_id``.

        Raises:
            OffstageError: code ``not_found`` (404) when no task has that id.
        """
        return Task(self, self._get_record(task_id))

    def list_background_tasks(
        self,
        name: str | None = None,
        *,
        status: str | None = None,
        owner: str | None = None,
        key: str | None = None,
        parent: str | Task | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        """The tasks, **newest last** (as Anvil lists them), optionally only those of task type
        ``name``, with ``status``, ``owner`` or ``key``, or children of ``parent`` (a
        :class:`Task` or its id). ``limit`` keeps only the newest that many; without it every
        task the server holds is listed (page by page)."""
        wanted = {
            "name": name,
            "status": status,
            "owner": owner,
            "key": key,
            "parent": None if parent is None else _task_id(parent),
        }
        params: dict[str, Any] = {k: v for k, v in wanted.items() if v is not None}
        records: list[dict[str, Any]] = []
        before: str | None = None
        while limit is None or len(records) < limit:
            page_size = 1000 if limit is None else min(1000, limit - len(records))
            query = dict(params, limit=page_size)
            if before is not None:
                query["before"] = before
            page = self._request("GET", "/api/tasks", params=query)
            records.extend(page["tasks"])
            before = page.get("next_before")
            if before is None:
                break
        return [Task(self, record) for record in reversed(records)]

    # -- reruns and bulk actions -------------------------------------------------------------

    def rerun(self, task_id: str, args: Any = None, *, from_checkpoint: bool = False) -> Task:
        """Launches the finished task ``task_id`` again as a new task linked to it (its
        ``rerun_of``): the same task type and launch options, with ``args`` if given (any JSON
        value) and the original's otherwise. With ``from_checkpoint`` the new task starts with
        the original's last checkpoint, so it continues where the original stopped. Needs role
        ``launch``.

        Raises:
            OffstageError: ``not_found`` (404) for an unknown id; ``conflict`` (409) while the
                task is queued or running (kill it or wait), while a live task of its type
                has its key, or with ``from_checkpoint`` for a task that saved none;
                ``invalid_args`` (422) when the task type refuses ``args``.
        """
        body: dict[str, Any] = {}
        if args is not None:
            _args.check_json(args, "the rerun's args")
            body["args"] = args
        if from_checkpoint:
            body["from_checkpoint"] = True
        return Task(self, self._request("POST", f"/api/tasks/{_quote(task_id)}/rerun", json=body))

    def bulk(
        self,
        verb: str,
        *,
        name: str | None = None,
        status: str | None = None,
        owner: str | None = None,
        key: str | None = None,
        parent: str | Task | None = None,
        launched_after: datetime | str | None = None,
        launched_before: datetime | str | None = None,
        dry_run: bool = False,
        per_s: float | None = None,
    ) -> dict[str, Any]:
        """Kills (``verb="kill"``: the live tasks), purges or reruns (``"purge"``, ``"rerun"``:
        the finished tasks) every task matching the filter, as the server's background action;
        needs role ``control``. Returns the action's record (``id``, ``status``, ``matched``,
        ``done``, ``failed``, ``actor``, …) as it starts: follow it with :meth:`get_action` or
        :meth:`wait_action`.

        With ``dry_run``, changes nothing and returns ``{"verb", "dry_run": True, "matched"}``:
        how many tasks it would act on. ``per_s`` paces a rerun (launches a second).
        ``launched_after`` / ``launched_before`` are aware datetimes or RFC 3339 text;
        ``parent`` (a :class:`Task` or its id) picks that task's children.
        """
        filter_ = _filter(
            name=name,
            status=status,
            owner=owner,
            key=key,
            parent=None if parent is None else _task_id(parent),
            launched_after=launched_after,
            launched_before=launched_before,
        )
        body: dict[str, Any] = {"verb": verb, "filter": filter_, "dry_run": dry_run}
        if per_s is not None:
            body["per_s"] = per_s
        return dict(self._request("POST", "/api/actions", json=body))

    def purge(
        self,
        *,
        finished_before: datetime | str | None = None,
        keep_newest: int | None = None,
        name: str | None = None,
        status: str | None = None,
        owner: str | None = None,
        key: str | None = None,
        launched_after: datetime | str | None = None,
        launched_before: datetime | str | None = None,
        dry_run: bool = False,
    ) -> int:
        """Deletes finished tasks, with their logs, and returns how many went (with
        ``dry_run``, how many would go, deleting nothing); needs role ``control``.

        ``finished_before`` (an aware datetime or RFC 3339 text) keeps the tasks that finished
        later; ``keep_newest`` keeps the newest that many of those matching the rest; the
        other arguments filter as :meth:`bulk`'s do. At least one condition
        is required, so that no call empties the store by accident.
        """
        params = _filter(
            finished_before=finished_before,
            keep_newest=keep_newest,
            name=name,
            status=status,
            owner=owner,
            key=key,
            launched_after=launched_after,
            launched_before=launched_before,
        )
        if dry_run:
            params["dry_run"] = "true"
        answer = self._request("DELETE", "/api/tasks", params=params)
        return int(answer["would_purge"] if dry_run else answer["purged"])

    def get_action(self, action_id: str) -> dict[str, Any]:
        """Bulk action ``action_id``'s record: its progress while ``status`` is ``running``,
        then how it ended (``completed`` or ``failed``, with ``error``).

        Raises:
            OffstageError: ``not_found`` (404) when no action has that id.
        """
        return dict(self._request("GET", f"/api/actions/{_quote(action_id)}"))

    def list_actions(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ``limit`` bulk actions, newest first: who did what."""
        return list(self._request("GET", "/api/actions", params={"limit": limit})["actions"])

    def wait_action(
        self, action_id: str, timeout: float | None = None, poll: float = 0.25
    ) -> dict[str, Any]:
        """Reads action ``action_id`` every ``poll`` seconds until it has ended (no stream
        carries an action's progress); its final record.

        Raises:
            TimeoutError: when ``timeout`` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            action = self.get_action(action_id)
            if action["status"] != "running":
                return action
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"action {action_id} is still running after {timeout} s "
                    f"({action['done']} of {action['matched']} done)"
                )
            time.sleep(poll)

    def kill(self, task_id: str, grace: float | None = None) -> None:
        """Kills the task with id ``task_id`` (see :meth:`Task.kill`)."""
        self._kill(task_id, grace)

    def signal(self, task_id: str, name: str, payload: Any = None) -> dict[str, Any]:
        """Sends the task with id ``task_id`` the signal ``name`` with ``payload`` (see
        :meth:`Task.signal`); returns the signal as the server keeps it."""
        return self._signal(task_id, name, payload)

    def signals(self, task_id: str) -> list[dict[str, Any]]:
        """The signals sent to the task with id ``task_id``, oldest first: each ``{"seq",
        "name", "payload", "sent_at", "sent_by", "received_attempt", "received_at",
        "settled"}``."""
        answer = self._request("GET", f"/api/tasks/{_quote(task_id)}/signals")
        return list(answer["signals"])

    def task_types(self) -> list[dict[str, Any]]:
        """The task types the server knows, each ``{"name", "workers", "counts"}``; a type with
        a limit per concurrency key also has ``concurrency_per_key``, ``concurrency_key``
        (where keys come from) and ``concurrency_keys``, its top ten keys with work
        (``{"key", "running", "queued"}``, most running first)."""
        return list(self._request("GET", "/api/task-types")["task_types"])

    def stats(self, window: str = "hour") -> dict[str, Any]:
        """What each task type did over the last ``"hour"`` (60 one-minute buckets) or
        ``"day"`` (144 ten-minute buckets): ``{"window", "from", "to", "bucket_s", "types"}``,
        each type with one list per measure (``started``, ``completed``, ``failed``,
        ``killed``, ``missing``, ``retried``, ``queued``, ``wait_p50_s`` …) and its
        ``totals``. Another window raises :class:`OffstageError` (code ``invalid_window``)."""
        return dict(self._request("GET", "/api/stats", params={"window": window}))

    def events(self, last_event_id: int | None = None) -> EventStream:
        """Every task's live events, as dicts, from now on (or after ``last_event_id``).
        Close the stream when done (it is a context manager)."""
        return self._open_events("/api/events", last_event_id)

    # -- scoped tokens -----------------------------------------------------------------------

    def mint_token(
        self,
        task: str | Task | None = None,
        owner: str | None = None,
        rights: str | Iterable[str] = ("read",),
        *,
        ttl: float,
    ) -> ScopedToken:
        """Mints a token for one task (``task``, an id or a :class:`Task`) or for every task
        launched with ``owner`` — exactly one of the two — that lasts ``ttl`` seconds and
        allows ``rights``: ``("read",)`` (state, logs, events, result) or
        ``("read", "kill")``. Hand it to your own user: a client made with it sees only that
        scope. Needs a token with role ``control``. This is ``POST /api/tokens``.

            minted = client.mint_token(owner="user-42", rights=("read", "kill"), ttl=900)
            minted.token, minted.expires_at      # 'ost1.…', datetime(… tzinfo=utc)

        Raises:
            OffstageError: the server refused (``forbidden`` 403 without role ``control``,
                its own code for a bad scope, right or ttl); code ``invalid_scope`` or
                ``invalid_ttl`` before asking it, for arguments it could not take.
        """
        body = request_body(task, owner, rights, ttl)
        return ScopedToken.from_json(self._request("POST", "/api/tokens", json=body))

    # -- shared state ------------------------------------------------------------------------

    def get_shared(self, name: str) -> dict[str, Any] | None:
        """Shared document ``name`` as ``{"name", "value", "version", "updated_at",
        "locked_by"}`` (a snapshot), or ``None`` if nobody has written it."""
        try:
            record = self._request("GET", f"/api/shared/{_quote(name)}")
        except OffstageError as error:
            if error.status == 404:
                return None
            raise
        return dict(record)

    def set_shared(self, name: str, value: Any, version: int | None = None) -> dict[str, Any]:
        """Writes shared document ``name`` under its lock (needs the ``control`` role). With
        ``version``, only if the document is still at that version: else an
        :class:`OffstageError` with status 409, and nothing written. Returns the saved record."""
        body: dict[str, Any] = {"value": value}
        if version is not None:
            body["version"] = int(version)
        return dict(self._request("PUT", f"/api/shared/{_quote(name)}", json=body))

    def watch_shared(self, name: str, last_version: int | None = None) -> EventStream:
        """Shared document ``name``'s changes, as ``{"name", "value", "version"}`` dicts: first
        its current value (unless ``last_version`` is already it), then each change on any
        node. Close the stream when done (it is a context manager)."""
        return self._open_events(f"/api/shared/{_quote(name)}/events", last_version)

    # -- limiters ----------------------------------------------------------------------------

    def limiter(self, name: str, holder: str | None = None) -> Limiter:
        """Limiter ``name``, to acquire permits from (needs the ``launch`` or ``worker``
        role): ``with client.limiter("stripe").acquire(): ...``."""
        return Limiter(self, name, holder)

    def set_limiter(
        self,
        name: str,
        rate: float | None = None,
        burst: int | None = None,
        max_holders: int | None = None,
    ) -> dict[str, Any]:
        """Defines (or redefines) limiter ``name`` for every node: ``rate`` tokens a second
        with up to ``burst`` saved up, at most ``max_holders`` permits held at once, or both.
        Needs the ``control`` role. Returns the limiter."""
        body = {"rate": rate, "burst": burst, "max_holders": max_holders}
        body = {key: value for key, value in body.items() if value is not None}
        return dict(self._request("PUT", f"/api/limiters/{_quote(name)}", json=body))

    def list_limiters(self) -> list[dict[str, Any]]:
        """Every limiter: ``name``, ``rate``, ``burst``, ``max_holders``, ``tokens`` (now),
        ``holders`` and ``updated_at``."""
        return list(self._request("GET", "/api/limiters")["limiters"])

    def delete_limiter(self, name: str) -> None:
        """Deletes limiter ``name`` and its holds (needs the ``control`` role)."""
        self._request("DELETE", f"/api/limiters/{_quote(name)}")

    # -- schedules ---------------------------------------------------------------------------

    def list_schedules(self) -> list[dict[str, Any]]:
        """Every schedule, with ``paused``, ``next_tick_at``, ``last_tick_at`` and
        ``last_task_id``."""
        return list(self._request("GET", "/api/schedules")["schedules"])

    def set_schedule(
        self,
        name: str,
        cron: str,
        task: str,
        args: Any = None,
        *,
        key: str | None = None,
        on_conflict: str | None = None,
        owner: str | None = None,
        priority: int | None = None,
        timeout: float | None = None,
        isolated: bool | None = None,
    ) -> dict[str, Any]:
        """Creates or changes schedule ``name``: task type ``task`` launched with ``args`` on
        every tick of ``cron`` (five fields, or six with seconds first; UTC), once per tick
        across all nodes. The options are :meth:`launch`'s, in the same units (``timeout``
        in seconds), less ``run_at`` (the tick is the run time); ``on_conflict`` is
        ``reject`` or ``existing`` (a tick launches nothing while the last launch with
        ``key`` is live). Needs the ``control`` role."""
        options = _options(
            key=key,
            on_conflict=on_conflict,
            owner=owner,
            priority=priority,
            timeout=timeout,
            isolated=isolated,
        )
        body = {"cron": cron, "task": task, "args": args, "options": options}
        return dict(self._request("PUT", f"/api/schedules/{_quote(name)}", json=body))

    def pause_schedule(self, name: str) -> dict[str, Any]:
        """Pauses schedule ``name`` on every node; its ticks pass without launching."""
        return dict(self._request("POST", f"/api/schedules/{_quote(name)}/pause"))

    def resume_schedule(self, name: str) -> dict[str, Any]:
        """Resumes schedule ``name`` from its next tick."""
        return dict(self._request("POST", f"/api/schedules/{_quote(name)}/resume"))

    def delete_schedule(self, name: str) -> None:
        """Deletes schedule ``name`` (the tasks it launched stay)."""
        self._request("DELETE", f"/api/schedules/{_quote(name)}")

    # -- the fleet ---------------------------------------------------------------------------

    def pause_task_type(self, name: str, kill_running: bool = False) -> dict[str, Any]:
        """Pauses task type ``name`` on every node: its queued tasks wait (their
        :meth:`Task.get_waiting` says so) until :meth:`resume_task_type`, across restarts;
        launches are still accepted. Its running tasks go on, unless ``kill_running``: then
        each is killed, and ``killing`` lists their ids. Needs the ``control`` role.
        Returns ``{"name", "paused_at", "killing"}``.

        Raises:
            OffstageError: ``not_found`` (404) for a type no node serves and not paused.
        """
        body = {"kill_running": bool(kill_running)}
        return dict(self._request("POST", f"/api/task-types/{_quote(name)}/pause", json=body))

    def resume_task_type(self, name: str) -> dict[str, Any]:
        """Resumes task type ``name`` on every node: its queued tasks run again. Resuming a
        type that is not paused changes nothing. Needs the ``control`` role."""
        return dict(self._request("POST", f"/api/task-types/{_quote(name)}/resume"))

    def list_nodes(self) -> list[dict[str, Any]]:
        """Every node sharing the server's store: ``id``, ``host``, ``pid``, ``started_at``,
        ``heartbeat_at`` and ``report`` (``task_types``, ``slots``, ``running``, ``workers``,
        ``isolated``: what it served and ran at its latest heartbeat)."""
        return list(self._request("GET", "/api/nodes")["nodes"])

    def close(self) -> None:
        """Closes the client's connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<offstage.Client {self.url}>"


def _options(*, timeout: float | None, **options: Any) -> dict[str, Any]:
    """Launch options as the API takes them, on a launch and on a schedule alike: the ones
    given, with the timeout in seconds as ``timeout_s``."""
    options["timeout_s"] = timeout
    return {k: v for k, v in options.items() if v is not None}


def _filter(**fields: Any) -> dict[str, Any]:
    """The fields given, times as RFC 3339 text (refusing a datetime without a time zone)."""
    out: dict[str, Any] = {}
    for field, value in fields.items():
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise OffstageError(
                    f"{field} has no time zone: give an aware datetime, "
                    "e.g. datetime.now(timezone.utc) - timedelta(hours=1)",
                    code="invalid_time",
                )
            value = value.isoformat()
        if value is not None:
            out[field] = value
    return out


def _task_id(task: str | Task) -> str:
    """A task's id, from a handle or the id itself."""
    return task.get_id() if isinstance(task, Task) else str(task)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _error_of(response: httpx.Response, url: str) -> OffstageError:
    """The :class:`OffstageError` for a non-2xx answer."""
    try:
        error = response.json()["error"]
        return OffstageError(
            str(error["message"]), code=str(error["code"]), status=response.status_code
        )
    except (ValueError, KeyError, TypeError):
        return OffstageError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code} {response.reason_phrase}: is {url} an Offstage server?",
            code="bad_response",
            status=response.status_code,
        )


# -- the module-level connection, as anvil.server.connect makes it ---------------------------

_lock = threading.Lock()
_default: Client | None = None


def connect(url: str, token: str | ScopedToken | None = None) -> Client:
    """Connects this program to the Offstage server at ``url`` (as ``anvil.server.connect``):
    the module-level functions use this connection from now on, and ``wait_forever()`` serves
    the ``@background_task`` functions through it. Returns the :class:`Client`."""
    global _default
    client = Client(url, token)
    with _lock:
        previous, _default = _default, client
    if previous is not None:
        previous.close()
    return client


def connection() -> Client:
    """The connection ``offstage.connect`` made.

    Raises:
        OffstageError: code ``not_connected`` when ``connect`` was not called.
    """
    with _lock:
        client = _default
    if client is None:
        raise OffstageError(
            "not connected: call offstage.connect('http://host:7700', token=...) first",
            code="not_connected",
        )
    return client


def launch_background_task(name: str, *args: Any, **kwargs: Any) -> Task:
    """Launches task type ``name`` with the call's arguments (see the args rule) and returns
    its :class:`Task`, as ``anvil.server.launch_background_task``."""
    return connection().launch_background_task(name, *args, **kwargs)


def get_background_task(task_id: str) -> Task:
    """The task with id ``task_id``, as ``anvil.server.get_background_task``."""
    return connection().get_background_task(task_id)


def list_background_tasks(
    name: str | None = None,
    *,
    status: str | None = None,
    owner: str | None = None,
    key: str | None = None,
    parent: str | Task | None = None,
    limit: int | None = None,
) -> list[Task]:
    """The tasks, newest last, as ``anvil.server.list_background_tasks``."""
    return connection().list_background_tasks(
        name, status=status, owner=owner, key=key, parent=parent, limit=limit
    )
