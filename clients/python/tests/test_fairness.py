"""Fairness between tenants from Python, against a real server: `demo.tenant` runs at most 2
per tenant (its concurrency key), a busy tenant's next task waits and says why, another
tenant's runs, ``concurrency_key=`` is kept, and ``task_types()`` shows the top keys."""

from __future__ import annotations

import pytest
from conftest import start_server

import offstage


def running(task: offstage.Task) -> None:
    """Waits (on its events) until ``task`` runs."""
    with task.events() as events:
        if task.refresh()["status"] == "running":
            return
        while True:
            event = events.next(timeout=20)
            assert event is not None, "the events ended before the task ran"
            if event["type"] in ("started", "state"):
                return


def test_a_busy_tenant_waits_and_another_runs(fresh_db: str) -> None:
    server = start_server(fresh_db)
    try:
        client = offstage.Client(server.url)
        job = {"tenant": "acme", "seconds": 60}
        held = [client.launch("demo.tenant", job) for _ in range(2)]
        for task in held:
            running(task)
        third = client.launch("demo.tenant", job)
        other = client.launch("demo.tenant", {"tenant": "globex", "seconds": 60})
        mine = client.launch("demo.tenant", job, concurrency_key="acme-batch")
        assert third.concurrency_key == "acme"
        assert mine.concurrency_key == "acme-batch"

        waiting = third.get_waiting()
        assert waiting is not None
        assert waiting["code"] == "key_limit", waiting
        assert waiting["concurrency_key"] == "acme"
        assert set(waiting["holders"]) == {t.get_id() for t in held}
        assert third.get_status() == "queued"
        running(other)
        running(mine)

        types = {t["name"]: t for t in client.task_types()}
        tenant = types["demo.tenant"]
        assert tenant["concurrency_per_key"] == 2
        keys = {k["key"]: (k["running"], k["queued"]) for k in tenant["concurrency_keys"]}
        assert keys["acme"] == (2, 1)
        assert "concurrency_keys" not in types["demo.echo"]

        with pytest.raises(offstage.OffstageError) as raised:
            client.launch("demo.tenant", job, concurrency_key="")
        assert raised.value.status == 400
        assert "non-empty" in str(raised.value)

        held[0].kill()
        running(third)
    finally:
        server.stop()
