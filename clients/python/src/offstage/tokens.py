"""A :class:`ScopedToken`: a signed, expiring token for one task or one owner's tasks, with
rights ``read`` (state, logs, events, signals, result) and optionally ``kill`` and
``signal``.

An app mints one with a ``control`` token (``Client.mint_token``, which is
``POST /api/tokens``) and hands it to its own user, whose browser or program then sees only
that scope's tasks. It is an ordinary bearer token: give it to a client as ``token=``.

    app = offstage.Client("http://127.0.0.1:7700", token="control-secret")
    minted = app.mint_token(owner="user-42", rights=("read", "kill"), ttl=900)
    user = offstage.Client("http://127.0.0.1:7700", token=minted)   # or minted.token
    user.list_background_tasks()    # user-42's tasks only
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import OffstageError
from .task import Task, parse_time


@dataclass(frozen=True)
class ScopedToken:
    """A token minted for one scope, as ``POST /api/tokens`` answers it."""

    token: str = field(repr=False)
    """The bearer token itself (``ost1.…``): a secret, so the ``repr`` shows only its start."""
    expires_at: datetime
    """When the server stops accepting it (an aware ``datetime``, UTC)."""

    def __str__(self) -> str:
        return self.token

    def __repr__(self) -> str:
        return f"ScopedToken(token={self.token[:5]!r}…, expires_at={self.expires_at.isoformat()})"

    @classmethod
    def from_json(cls, answer: Any) -> ScopedToken:
        """The token in a ``201`` answer of ``POST /api/tokens``.

        Raises:
            OffstageError: code ``bad_response`` when the answer lacks ``token`` or a valid
                ``expires_at``.
        """
        try:
            token = answer["token"]
            expires_at = parse_time(answer["expires_at"])
            if not isinstance(token, str) or not token or expires_at is None:
                raise ValueError
            if expires_at.tzinfo is None:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise OffstageError(
                f"POST /api/tokens answered {answer!r}, not {{'token', 'expires_at'}}: "
                "is the server a version of Offstage that mints tokens?",
                code="bad_response",
            ) from None
        return cls(token, expires_at)


def request_body(
    task: str | Task | None, owner: str | None, rights: str | Iterable[str], ttl: float
) -> dict[str, Any]:
    """The JSON body of ``POST /api/tokens`` for these arguments of ``Client.mint_token``.

    Raises:
        OffstageError: code ``invalid_scope`` unless exactly one of ``task`` and ``owner`` is
            given; ``invalid_ttl`` unless ``ttl`` is a positive number of seconds.
    """
    if (task is None) == (owner is None):
        raise OffstageError(
            "a token is for one task or for one owner's tasks: give exactly one of "
            "task=ID and owner=NAME",
            code="invalid_scope",
        )
    if isinstance(task, Task):
        task = task.get_id()
    scope = {"task": task} if task is not None else {"owner": owner}
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise OffstageError(
            f"ttl={ttl!r}: give how long the token lasts, in seconds (e.g. ttl=900)",
            code="invalid_ttl",
        )
    # A whole number of seconds goes as an integer (900, not 900.0), so a server that reads
    # whole seconds takes it; a fraction goes as it is, and the server says if it refuses it.
    ttl_s: int | float = int(ttl) if float(ttl).is_integer() else float(ttl)
    listed = [rights] if isinstance(rights, str) else list(rights)
    return {"scope": scope, "rights": listed, "ttl_s": ttl_s}
