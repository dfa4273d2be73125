"""The client against a real server: every Task method on demo tasks that complete, fail, are
killed and go missing; listing; the server's errors as OffstageError; tokens."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from conftest import TOKENS, Server, start_server

import offstage


def test_a_completed_task_round_trips_every_method(client: offstage.Client) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    task = offstage.launch_background_task("demo.count", to=3, interval_ms=100)

    assert task.get_task_name() == "demo.count"
    assert len(task.get_id()) == 36
    assert task.is_running()
    assert task.get_termination_status() is None
    assert task.is_completed() is False
    assert task.get_return_value() is None
    task.get_error()  # running: nothing to raise
    assert task.get_error_info() is None
    assert before <= task.get_start_time() <= datetime.now(timezone.utc)

    assert task.wait(timeout=20) is task
    assert task.get_termination_status() == "completed"
    assert task.is_completed() is True
    assert not task.is_running()
    assert task.get_return_value() == 3
    assert task.get_state() == {"done": 3, "total": 3}
    task.get_error()  # completed: nothing to raise
    assert task.get_error_info() is None
    assert task.get_status() == "completed"
    assert [line.message for line in task.get_logs()] == [f"counted {n} of 3" for n in (1, 2, 3)]
    assert [line.seq for line in task.get_logs(after=2)] == [3]

    task.kill()  # a finished task: nothing happens
    assert task.get_termination_status() == "completed"

    again = offstage.get_background_task(task.get_id())
    assert again == task
    assert again.get_return_value() == 3
    assert again.get_start_time() == task.get_start_time()


def test_a_failed_task_reraises_its_error_from_get_error_and_is_completed(
    client: offstage.Client,
) -> None:
    task = offstage.launch_background_task("demo.fail", message="bad input").wait(timeout=20)

    assert task.get_termination_status() == "failed"
    assert not task.is_running()
    assert task.get_return_value() is None

    # As Anvil's get_error(): it raises the error that made the task terminate.
    with pytest.raises(offstage.TaskError) as raised:
        task.get_error()
    assert (raised.value.kind, raised.value.message, raised.value.termination_status) == (
        "demo_failure",
        "bad input",
        "failed",
    )
    assert raised.value.task_id == task.get_id()
    assert str(raised.value) == "demo_failure: bad input"

    # A fresh handle, as get_background_task gives one, raises the same.
    with pytest.raises(offstage.TaskError, match="bad input"):
        offstage.get_background_task(task.get_id()).get_error()

    # The same error, returned instead of raised.
    info = task.get_error_info()
    assert isinstance(info, offstage.TaskError)
    assert (info.kind, info.message, info.task_id) == ("demo_failure", "bad input", task.get_id())

    with pytest.raises(offstage.TaskError) as raised:
        task.is_completed()
    assert raised.value.kind == "demo_failure"
    assert raised.value.task_id == task.get_id()


def test_get_error_tells_a_running_task_from_a_failed_one(client: offstage.Client) -> None:
    # Anvil's pattern: poll is_completed(), and call get_error() while the task runs, which
    # must not raise until the task has failed.
    task = offstage.launch_background_task("demo.sleep", seconds=600)
    assert task.is_completed() is False
    task.get_error()  # running: does not raise
    assert task.get_error_info() is None
    task.kill(grace=0)
    task.wait(timeout=20)
    with pytest.raises(offstage.TaskError) as raised:
        task.get_error()
    assert raised.value.termination_status == "killed"


def test_a_killed_task_ends_killed_with_its_last_state(client: offstage.Client) -> None:
    task = offstage.launch_background_task("demo.sleep", seconds=600)
    with pytest.raises(TimeoutError, match="still running"):
        task.wait(timeout=0.3)
    assert task.get_state() == {"sleeping_s": 600}
    assert task.is_running()

    task.kill()
    task.wait(timeout=20)

    assert task.get_termination_status() == "killed"
    assert task.get_state() == {"sleeping_s": 600}
    error = task.get_error_info()
    assert error is not None and error.termination_status == "killed"
    with pytest.raises(offstage.TaskError) as raised:
        task.get_error()
    assert raised.value.termination_status == "killed"
    with pytest.raises(offstage.TaskError) as raised:
        task.is_completed()
    assert raised.value.termination_status == "killed"


def test_a_task_whose_server_died_reads_missing_after_restart(fresh_db: str) -> None:
    first = start_server(fresh_db)
    try:
        task = offstage.Client(first.url).launch_background_task("demo.sleep", seconds=600)
        assert task.is_running()
        first.sigkill()
    finally:
        first.stop()

    second = start_server(fresh_db)
    try:
        task = offstage.Client(second.url).get_background_task(task.get_id())
        assert task.get_termination_status() == "missing"
        assert not task.is_running()
        with pytest.raises(offstage.TaskError) as raised:
            task.is_completed()
        assert (raised.value.kind, raised.value.termination_status) == ("missing", "missing")
        with pytest.raises(offstage.TaskError) as raised:
            task.get_error()
        assert raised.value.termination_status == "missing"
    finally:
        second.stop()


def test_list_is_newest_last_and_filters(client: offstage.Client) -> None:
    launched = [client.launch("demo.echo", {"value": n}, owner="list-test") for n in range(3)]
    listed = offstage.list_background_tasks(owner="list-test")
    assert [t.get_id() for t in listed] == [t.get_id() for t in launched]
    newest = offstage.list_background_tasks(owner="list-test", limit=2)
    assert [t.get_id() for t in newest] == [t.get_id() for t in launched[1:]]
    assert all(
        t.get_task_name() == "demo.echo" for t in offstage.list_background_tasks("demo.echo")
    )


def test_task_events_arrive_live(client: offstage.Client) -> None:
    task = offstage.launch_background_task("demo.count", to=2, interval_ms=100)
    kinds = [(e["type"], e.get("state"), e.get("line", {}).get("message")) for e in task.events()]
    assert ("state", {"done": 1, "total": 2}, None) in kinds
    assert ("log", None, "counted 2 of 2") in kinds
    assert kinds[-1][0] == "finished"


def test_args_follow_the_rule(client: offstage.Client) -> None:
    echo = offstage.launch_background_task("demo.echo", value=[1, {"a": None}]).wait(timeout=20)
    assert echo.get_return_value() == [1, {"a": None}]
    # A lone dict is wrapped, so a worker can call f(that_dict): a Rust task type that takes a
    # struct is given keyword arguments instead, or the raw value with Client.launch.
    with pytest.raises(offstage.OffstageError) as raised:
        offstage.launch_background_task("demo.echo", {"value": 1})
    assert (raised.value.code, raised.value.status) == ("invalid_args", 422)
    assert client.launch("demo.echo", {"value": 1}).wait(timeout=20).get_return_value() == 1
    # The timeout is in seconds, sent and recorded as `timeout_s`.
    timed = client.launch("demo.echo", {"value": 1}, timeout=1.5)
    assert timed.record["timeout_s"] == 1.5
    with pytest.raises(TypeError, match="must be JSON"):
        client.launch("demo.echo", {"value": object()})


def test_server_errors_say_how_to_fix_them(client: offstage.Client, server: Server) -> None:
    with pytest.raises(offstage.OffstageError) as raised:
        offstage.launch_background_task("demo.nope")
    assert (raised.value.code, raised.value.status) == ("unknown_task_type", 400)
    assert "demo.echo" in raised.value.message

    with pytest.raises(offstage.OffstageError) as raised:
        offstage.get_background_task("01900000-0000-7000-8000-000000000000")
    assert (raised.value.code, raised.value.status) == ("not_found", 404)

    with pytest.raises(offstage.OffstageError) as raised:
        offstage.get_background_task("not-an-id")
    assert (raised.value.code, raised.value.status) == ("invalid_id", 400)

    with pytest.raises(offstage.OffstageError) as raised:
        offstage.Client("http://127.0.0.1:9").list_background_tasks()
    assert raised.value.code == "unreachable" and raised.value.status is None
    assert "offstage serve" in str(raised.value)

    with pytest.raises(offstage.OffstageError, match="not an Offstage server URL"):
        offstage.connect("127.0.0.1:7700")


def test_not_connected_says_to_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offstage.client, "_default", None)
    with pytest.raises(offstage.OffstageError) as raised:
        offstage.list_background_tasks()
    assert raised.value.code == "not_connected"
    assert "offstage.connect" in str(raised.value)


def test_tokens_and_roles(token_server: Server) -> None:
    url = token_server.url
    for token in (None, "wrong"):
        with pytest.raises(offstage.OffstageError) as raised:
            offstage.Client(url, token).list_background_tasks()
        assert (raised.value.code, raised.value.status) == ("unauthorized", 401)

    reader = offstage.Client(url, TOKENS["read"])
    assert reader.list_background_tasks() == []
    with pytest.raises(offstage.OffstageError) as raised:
        reader.launch_background_task("demo.echo", value=1)
    assert (raised.value.code, raised.value.status) == ("forbidden", 403)
    assert "role launch" in raised.value.message

    launched = offstage.Client(url, TOKENS["launch"]).launch_background_task(
        "demo.sleep", seconds=600
    )
    with pytest.raises(offstage.OffstageError) as raised:
        launched.kill()
    assert raised.value.status == 403

    controller = offstage.Client(url, TOKENS["control"])
    task = controller.get_background_task(launched.get_id())
    task.kill(grace=0.5)
    assert task.wait(timeout=20).get_termination_status() == "killed"
    assert reader.get_background_task(task.get_id()).get_termination_status() == "killed"


def test_an_owner_token_reads_and_kills_that_owners_tasks_only(token_server: Server) -> None:
    # The server is given no token secret: it signs with one of its own, good for as long as
    # this one process runs, which is all a single-server test needs.
    url = token_server.url
    launcher = offstage.Client(url, TOKENS["launch"])
    mine = launcher.launch("demo.sleep", {"seconds": 600}, owner="py-alice")
    theirs = launcher.launch("demo.sleep", {"seconds": 600}, owner="py-bob")

    controller = offstage.Client(url, TOKENS["control"])
    minted = controller.mint_token(owner="py-alice", rights=("read", "kill"), ttl=60)
    assert minted.token.startswith("ost1.")
    now = datetime.now(timezone.utc)
    assert now + timedelta(seconds=30) < minted.expires_at <= now + timedelta(seconds=62)
    alice = offstage.Client(url, minted)

    # Her own task, and only hers: the other owner's answers as an id no task has.
    seen = alice.get_background_task(mine.get_id())
    assert seen.is_running() and seen.get_state() == {"sleeping_s": 600}
    assert [t.get_id() for t in alice.list_background_tasks()] == [mine.get_id()]
    with pytest.raises(offstage.OffstageError) as raised:
        alice.get_background_task(theirs.get_id())
    assert (raised.value.code, raised.value.status) == ("not_found", 404)
    with pytest.raises(offstage.OffstageError) as raised:
        alice.kill(theirs.get_id())
    assert (raised.value.code, raised.value.status) == ("not_found", 404)
    with pytest.raises(offstage.OffstageError) as raised:
        alice.launch("demo.echo", {"value": 1}, owner="py-alice")
    assert raised.value.status == 403
    assert "owner `py-alice`" in raised.value.message

    # Without the kill right, her own task is visible but not stoppable.
    reader = offstage.Client(url, controller.mint_token(owner="py-alice", ttl=60))
    with pytest.raises(offstage.OffstageError) as raised:
        reader.kill(mine.get_id())
    assert raised.value.status == 403
    assert reader.get_background_task(mine.get_id()).is_running()

    # With it, Stop works, and the task ends killed as its owner's token watches.
    seen.kill(grace=0.5)
    assert seen.wait(timeout=20).get_termination_status() == "killed"
    assert launcher.get_background_task(theirs.get_id()).is_running()
    controller.kill(theirs.get_id())


def test_every_tasks_events_on_one_stream(client: offstage.Client) -> None:
    with client.events() as events:
        task = offstage.launch_background_task("demo.echo", value="all")
        seen = []
        while not seen or seen[-1] != "finished":
            event = events.next(timeout=20)
            assert event is not None
            if event["task_id"] == task.get_id():
                seen.append(event["type"])
    assert seen[0] == "launched" and seen[-1] == "finished"


def test_shared_state_reads_writes_and_watches(client: offstage.Client) -> None:
    name = f"py.flags.{datetime.now(timezone.utc).timestamp()}"
    assert client.get_shared(name) is None
    with client.watch_shared(name) as changes:
        saved = client.set_shared(name, {"beta": True})
        assert (saved["version"], saved["value"]) == (1, {"beta": True})
        change = changes.next(timeout=10)
        assert change is not None and change["value"] == {"beta": True}
    with pytest.raises(offstage.OffstageError) as stale:
        client.set_shared(name, {"beta": False}, version=0)
    assert stale.value.status == 409
    assert "version 1" in str(stale.value)
    record = client.get_shared(name)
    assert record is not None and record["value"] == {"beta": True}


def test_schedules_launch_on_their_ticks_and_pause(client: offstage.Client) -> None:
    name = f"py.every-second.{datetime.now(timezone.utc).timestamp()}"
    with client.events() as events:
        record = client.set_schedule(
            name, "* * * * * *", "demo.echo", {"value": name}, timeout=60, priority=2
        )
        assert record["paused"] is False and record["next_tick_at"]
        # The timeout is in seconds, as on a launch: 60 s, not 60 ms.
        assert record["options"]["timeout_s"] == 60 and record["options"]["priority"] == 2
        while True:
            event = events.next(timeout=10)
            assert event is not None, "a tick launches within the second"
            task = event.get("task") or {}
            if event.get("type") == "launched" and task.get("args") == {"value": name}:
                break
    assert task["timeout_s"] == 60
    paused = client.pause_schedule(name)
    assert paused["paused"] is True and paused["next_tick_at"] is None
    assert any(s["name"] == name and s["paused"] for s in client.list_schedules())
    assert client.resume_schedule(name)["paused"] is False
    with pytest.raises(offstage.OffstageError) as bad:
        client.set_schedule(name, "every second", "demo.echo", {"value": 1})
    assert bad.value.status == 400 and "minute hour" in str(bad.value)
    client.delete_schedule(name)
    assert all(s["name"] != name for s in client.list_schedules())


def test_stats_count_each_task_type_per_bucket(client: offstage.Client) -> None:
    def totals() -> dict[str, int]:
        for series in client.stats()["types"]:
            if series["name"] == "demo.fail":
                return series["totals"]
        return {"started": 0, "failed": 0}

    before = totals()
    for _ in range(2):
        task = client.launch_background_task("demo.fail", message="counted")
        with pytest.raises(offstage.TaskError):
            task.wait(timeout=20).is_completed()
    after = totals()
    assert after["failed"] - before["failed"] == 2
    assert after["started"] - before["started"] == 2
    day = client.stats("day")
    assert day["bucket_s"] == 600
    assert all(len(t["completed"]) == 144 for t in day["types"])
    with pytest.raises(offstage.OffstageError) as raised:
        client.stats("week")
    assert raised.value.code == "invalid_window" and raised.value.status == 400
    assert "`day`" in raised.value.message
