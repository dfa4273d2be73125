"""Child tasks from Python: a parent's children listed (``parent=``, ``Task.children``), a
child launched with ``parent=`` (how a task in a worker launches one), the kill of a parent
taking its children along, and the refusals."""

from __future__ import annotations

import pytest

import offstage


def test_a_fanout_s_children_are_found_from_the_parent_and_back(client: offstage.Client) -> None:
    parent = client.launch(
        "demo.fanout", {"children": 3, "to": 2, "interval_ms": 5}, owner="py"
    ).wait(timeout=30)
    assert parent.get_return_value() == {"completed": 3, "failed": 0}
    assert parent.parent is None

    children = parent.children()
    assert [c.get_task_name() for c in children] == ["demo.count"] * 3
    # Oldest first, as every list of this client.
    ids = [c.get_id() for c in children]
    assert ids == sorted(ids)
    for child in children:
        assert child.parent == parent.get_id()
        assert not child.detached
        assert child.record["owner"] == "py", "a child inherits its parent's owner"
        assert child.get_termination_status() == "completed"
    listed = client.list_background_tasks(parent=parent)
    assert [t.get_id() for t in listed] == ids
    assert client.list_background_tasks(parent=parent.get_id(), limit=1)[0].get_id() == ids[-1]


def test_a_child_launched_with_parent_is_killed_with_it(client: offstage.Client) -> None:
    parent = client.launch("demo.sleep", {"seconds": 600})
    child = client.launch("demo.sleep", {"seconds": 600}, parent=parent)
    detached = client.launch("demo.sleep", {"seconds": 600}, parent=parent.get_id(), detached=True)
    assert child.parent == parent.get_id()
    assert detached.detached
    parent.kill()
    for task in (parent, child, detached):
        assert task.wait(timeout=30).get_termination_status() == "killed"


def test_a_bad_parent_is_refused_with_what_to_do(client: offstage.Client) -> None:
    with pytest.raises(offstage.OffstageError) as refused:
        client.launch("demo.echo", {"value": 1}, parent="not-an-id")
    assert refused.value.status == 400
    assert "parent" in refused.value.message

    ended = client.launch("demo.echo", {"value": 1}).wait(timeout=20)
    with pytest.raises(offstage.OffstageError) as refused:
        client.launch("demo.echo", {"value": 1}, parent=ended)
    assert refused.value.status == 409
    assert "has ended" in refused.value.message

    with pytest.raises(offstage.OffstageError) as refused:
        client.launch("demo.echo", {"value": 1}, detached=True)
    assert refused.value.status == 400
    assert "detached applies to a child" in refused.value.message
