"""Client.mint_token and scoped tokens, without a server.

These tests answer through `httpx.MockTransport`: they check the request the client sends and
how it reads the answer, refusals included, to the letter. What a minted token then does on a
real server (its owner's tasks read and killed, another owner's a 404) is in `test_client.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

import offstage

URL = "http://offstage.test"
MINTED = {"token": "ost1.eyJzIjoxfQ.c2ln", "expires_at": "2026-12-01T15:15:00.123456789Z"}

Handler = Callable[[httpx.Request], httpx.Response]


def recording(answer: httpx.Response) -> tuple[list[httpx.Request], Handler]:
    """A handler that keeps every request it is sent and answers each with `answer`."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    return seen, handle


def client(
    handler: Handler, token: str | offstage.ScopedToken | None = "c-secret"
) -> offstage.Client:
    """A client whose requests `handler` answers."""
    return offstage.Client(URL, token, transport=httpx.MockTransport(handler))


def test_mint_for_an_owner_sends_the_scope_rights_and_ttl_in_seconds() -> None:
    seen, handle = recording(httpx.Response(201, json=MINTED))

    minted = client(handle).mint_token(owner="user-42", rights=("read", "kill"), ttl=900)

    [request] = seen
    assert (request.method, request.url.path) == ("POST", "/api/tokens")
    assert request.headers["authorization"] == "Bearer c-secret"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    assert body == {"scope": {"owner": "user-42"}, "rights": ["read", "kill"], "ttl_s": 900}
    assert isinstance(body["ttl_s"], int)  # 900, not 900.0

    assert minted.token == "ost1.eyJzIjoxfQ.c2ln"
    assert minted.expires_at == datetime(2026, 12, 1, 15, 15, 0, 123456, tzinfo=timezone.utc)


def test_mint_for_a_task_takes_an_id_or_a_handle_and_reads_by_default() -> None:
    seen, handle = recording(httpx.Response(201, json=MINTED))
    c = client(handle)
    task = offstage.Task(c, {"id": "01a2-task", "name": "demo.echo", "status": "running"})

    c.mint_token(task="01a2-task", ttl=60)
    c.mint_token(task=task, rights="read", ttl=1.5)

    bodies = [json.loads(request.content) for request in seen]
    assert bodies == [
        {"scope": {"task": "01a2-task"}, "rights": ["read"], "ttl_s": 60},
        {"scope": {"task": "01a2-task"}, "rights": ["read"], "ttl_s": 1.5},
    ]


@pytest.mark.parametrize(
    ("arguments", "code", "says"),
    [
        ({"ttl": 60}, "invalid_scope", "exactly one of task=ID and owner=NAME"),
        ({"task": "t", "owner": "user-42", "ttl": 60}, "invalid_scope", "exactly one of"),
        ({"owner": "user-42", "ttl": 0}, "invalid_ttl", "in seconds"),
        ({"owner": "user-42", "ttl": -5}, "invalid_ttl", "ttl=-5"),
        ({"owner": "user-42", "ttl": "900"}, "invalid_ttl", "ttl='900'"),
        ({"owner": "user-42", "ttl": True}, "invalid_ttl", "ttl=True"),
    ],
)
def test_bad_arguments_are_refused_before_asking(
    arguments: dict[str, Any], code: str, says: str
) -> None:
    seen, handle = recording(httpx.Response(201, json=MINTED))
    with pytest.raises(offstage.OffstageError, match=re.escape(says)) as raised:
        client(handle).mint_token(**arguments)
    assert raised.value.code == code
    assert seen == []


def test_the_servers_refusal_is_an_offstage_error_with_its_code() -> None:
    refusal = {"error": {"code": "forbidden", "message": "minting a token needs role control"}}
    _, handle = recording(httpx.Response(403, json=refusal))
    with pytest.raises(offstage.OffstageError) as raised:
        client(handle, "l-secret").mint_token(owner="user-42", ttl=60)
    assert (raised.value.code, raised.value.status) == ("forbidden", 403)
    assert str(raised.value) == "minting a token needs role control"


@pytest.mark.parametrize(
    "answer",
    [
        {"token": "ost1.x"},
        {"expires_at": MINTED["expires_at"]},
        {"token": "ost1.x", "expires_at": "tomorrow"},
        {"token": "ost1.x", "expires_at": "2026-12-01T15:15:00"},  # no offset: not RFC 3339
        {"token": "", "expires_at": MINTED["expires_at"]},
        ["ost1.x"],
    ],
)
def test_an_answer_without_token_and_expiry_is_a_bad_response(answer: object) -> None:
    _, handle = recording(httpx.Response(201, json=answer))
    with pytest.raises(offstage.OffstageError) as raised:
        client(handle).mint_token(owner="user-42", ttl=60)
    assert raised.value.code == "bad_response"


def test_a_minted_token_is_the_bearer_token_of_another_client() -> None:
    _, mint = recording(httpx.Response(201, json=MINTED))
    minted = client(mint).mint_token(owner="user-42", ttl=60)

    seen, handle = recording(httpx.Response(200, json={"tasks": [], "next_before": None}))
    for token in (minted, minted.token):
        assert client(handle, token).list_background_tasks() == []
    assert [r.headers["authorization"] for r in seen] == ["Bearer " + MINTED["token"]] * 2
    assert client(handle, minted).token == MINTED["token"]


def test_the_repr_does_not_show_the_whole_token() -> None:
    _, handle = recording(httpx.Response(201, json=MINTED))
    minted = client(handle).mint_token(owner="user-42", ttl=60)
    assert MINTED["token"] not in repr(minted)
    assert "2026-12-01T15:15:00.123456+00:00" in repr(minted)
    assert str(minted) == MINTED["token"]
