"""The fleet from Python, against a real server: pausing and resuming a task type, why a
queued task waits, and the nodes."""

from __future__ import annotations

import pytest
from conftest import start_server

import offstage


def test_a_paused_type_holds_its_tasks_and_says_why(fresh_db: str) -> None:
    server = start_server(fresh_db)
    try:
        client = offstage.Client(server.url)
        paused = client.pause_task_type("demo.echo")
        assert paused["name"] == "demo.echo"
        assert paused["killing"] == []
        types = {t["name"]: t for t in client.task_types()}
        assert types["demo.echo"]["paused"] is True
        assert types["demo.log"]["paused"] is False

        task = client.launch("demo.echo", {"value": "held"})
        waiting = task.get_waiting()
        assert waiting is not None
        assert waiting["code"] == "paused"
        assert "offstage resume demo.echo" in waiting["message"]
        assert task.get_status() == "queued"

        client.resume_task_type("demo.echo")
        assert task.wait(timeout=20).get_return_value() == "held"
        assert task.get_waiting() is None

        with pytest.raises(offstage.OffstageError) as raised:
            client.pause_task_type("demo.nope")
        assert raised.value.status == 404
        assert "demo.echo" in str(raised.value)
    finally:
        server.stop()


def test_pausing_with_kill_running_kills_them(fresh_db: str) -> None:
    server = start_server(fresh_db, ("--kill-grace-s", "0"))
    try:
        client = offstage.Client(server.url)
        task = client.launch("demo.sleep", {"seconds": 600})
        with task.events() as events:
            if task.get_status() != "running":
                for event in events:
                    if event["type"] == "started":
                        break
        paused = client.pause_task_type("demo.sleep", kill_running=True)
        assert paused["killing"] == [task.get_id()]
        assert task.wait(timeout=20).get_termination_status() == "killed"
    finally:
        server.stop()


def test_nodes_lists_the_server_s_node(server: object) -> None:
    client = offstage.Client(server.url)  # type: ignore[attr-defined]
    nodes = client.list_nodes()
    assert len(nodes) == 1
    node = nodes[0]
    assert node["pid"] == server.process.pid  # type: ignore[attr-defined]
    assert "demo.echo" in node["report"]["task_types"]
    assert node["report"]["slots"] > 0
    assert node["host"]
