"""Reruns and bulk actions against a real server: a rerun linked to its original, a dry run
that changes nothing, a bulk kill and a paced bulk rerun recorded with who asked."""

from __future__ import annotations

import pytest

import offstage


def test_a_rerun_is_a_new_task_linked_to_the_original(client: offstage.Client) -> None:
    original = client.launch("demo.echo", {"value": "first"}, owner="py").wait(timeout=20)

    same = original.rerun().wait(timeout=20)
    assert same.get_id() != original.get_id()
    assert same.get_rerun_of() == original.get_id()
    assert same.get_return_value() == "first"
    assert same.record["owner"] == "py"

    edited = client.rerun(original.get_id(), args={"value": "second"}).wait(timeout=20)
    assert edited.get_return_value() == "second"
    assert original.get_rerun_of() is None

    live = client.launch("demo.sleep", {"seconds": 600})
    with pytest.raises(offstage.OffstageError) as refused:
        client.rerun(live.get_id())
    assert refused.value.code == "conflict"
    assert "Kill it or wait" in str(refused.value)
    live.kill(grace=0)

    with pytest.raises(offstage.OffstageError) as refused:
        client.rerun(original.get_id(), args={"nope": 1})
    assert refused.value.code == "invalid_args"


def test_bulk_counts_first_then_kills_and_reruns_with_a_record(client: offstage.Client) -> None:
    sleepers = [
        client.launch("demo.sleep", {"seconds": 600}, owner="py-bulk") for _ in range(3)
    ]
    dry = client.bulk("kill", owner="py-bulk", dry_run=True)
    assert dry == {"verb": "kill", "dry_run": True, "matched": 3}
    assert all(task.is_running() for task in sleepers)

    action = client.bulk("kill", owner="py-bulk")
    assert action["status"] == "running"
    assert action["matched"] == 3
    done = client.wait_action(action["id"], timeout=30)
    assert done["status"] == "completed"
    assert (done["done"], done["failed"]) == (3, 0)
    assert done["actor"] == "anonymous"
    assert done["filter"]["owner"] == "py-bulk"
    assert [task.wait(timeout=20).get_termination_status() for task in sleepers] == ["killed"] * 3
    assert client.get_action(action["id"]) == done
    assert client.list_actions(limit=1)[0]["id"] == action["id"]

    reruns = client.bulk("rerun", owner="py-bulk", status="killed", per_s=100)
    assert reruns["per_s"] == 100
    ended = client.wait_action(reruns["id"], timeout=30)
    assert (ended["status"], ended["done"]) == ("completed", 3)
    relaunched = client.list_background_tasks(owner="py-bulk", status="running")
    assert sorted(t.get_rerun_of() for t in relaunched) == sorted(t.get_id() for t in sleepers)
    client.wait_action(client.bulk("kill", owner="py-bulk")["id"], timeout=30)

    with pytest.raises(offstage.OffstageError) as refused:
        client.bulk("kill", owner="py-bulk", per_s=5)
    assert refused.value.code == "invalid_argument"
    with pytest.raises(offstage.OffstageError) as refused:
        client.get_action("0192f1c3-7d5e-7a8b-9c1d-2e3f4a5b6c7d")
    assert refused.value.code == "not_found"


def test_a_rerun_from_its_checkpoint_continues_where_the_original_stopped(
    client: offstage.Client,
) -> None:
    # Fails after item 7 (its last checkpoint: 6 done); its retry resumes after item 6.
    task = client.launch(
        "demo.import", {"items": 12, "every": 3, "interval_ms": 1, "fail_at": 7}
    ).wait(timeout=30)
    assert task.get_return_value() == {"imported": 12, "resumed_from": 6}
    assert task.get_checkpoint() == {"done": 12}
    assert task.checkpoint == {"done": 12}
    assert task.get_checkpoint_time() is not None
    assert task.get_state() == {"done": 12, "total": 12}, "the state is another thing"

    resumed = task.rerun(from_checkpoint=True)
    assert resumed.record["checkpoint"] == {"done": 12}
    assert resumed.wait(timeout=30).get_return_value() == {"imported": 12, "resumed_from": 12}
    plain = client.rerun(task.get_id())
    # As launched (it may checkpoint on its own at once): a plain rerun starts from none.
    assert plain.record["checkpoint"] is None

    echo = client.launch("demo.echo", {"value": 1}).wait(timeout=20)
    assert echo.get_checkpoint() is None and echo.get_checkpoint_time() is None
    with pytest.raises(offstage.OffstageError) as refused:
        echo.rerun(from_checkpoint=True)
    assert refused.value.code == "conflict"
    assert "without from_checkpoint" in str(refused.value)
    plain.wait(timeout=30)


def test_purge_counts_first_then_deletes_only_finished_tasks(client: offstage.Client) -> None:
    import uuid
    from datetime import datetime, timedelta, timezone

    owner = f"py-purge-{uuid.uuid4().hex[:8]}"
    done = [client.launch("demo.echo", {"value": i}, owner=owner).wait(timeout=20) for i in range(3)]
    live = client.launch("demo.sleep", {"seconds": 600}, owner=owner)

    assert client.purge(owner=owner, keep_newest=1, dry_run=True) == 2
    assert len(client.list_background_tasks(owner=owner)) == 4, "a dry run deletes nothing"
    assert client.purge(owner=owner, keep_newest=1) == 2
    left = {task.get_id() for task in client.list_background_tasks(owner=owner)}
    assert left == {done[2].get_id(), live.get_id()}, "the newest finished one and the live one stay"

    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    assert client.purge(owner=owner, finished_before=later) == 1
    assert [task.get_id() for task in client.list_background_tasks(owner=owner)] == [live.get_id()]
    live.kill(grace=0)

    with pytest.raises(offstage.OffstageError) as refused:
        client.purge()
    assert refused.value.code == "missing_finished_before"
    with pytest.raises(offstage.OffstageError) as refused:
        client.purge(finished_before=datetime.now())
    assert refused.value.code == "invalid_time"
