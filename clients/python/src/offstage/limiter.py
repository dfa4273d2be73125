"""Limiters: named budgets for calls to something rate-limited, shared by every node.

A limiter has a token bucket (a rate a second and a burst), a number of concurrent holders,
or both; it is defined on the server (``Client.set_limiter``, ``offstage limiter set``, or in
the Rust app). :meth:`Limiter.acquire` waits until the limiter lets the caller go and returns
a :class:`Permit`: use it as a context manager, so its hold is released at the end::

    stripe = client.limiter("stripe")
    with stripe.acquire():
        charge(customer)

Inside a worker task, ``offstage.limiter("stripe")`` is the same through the worker's server.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from .errors import OffstageError

if TYPE_CHECKING:
    from .client import Client

#: The longest one request waits on the server; longer waits ask again.
_MAX_WAIT_S = 60.0


class Permit:
    """What :meth:`Limiter.acquire` got: one token (spent) and, for a limiter with
    ``max_holders``, a hold (``hold``), released by :meth:`release` or at the end of a
    ``with`` block. A hold nobody releases is freed after the ``hold`` seconds it was taken
    for, or when the server that gave it stops."""

    def __init__(self, limiter: Limiter, hold: str | None) -> None:
        self.limiter = limiter
        self.hold = hold

    def release(self) -> bool:
        """Gives the hold back; False if it was not held any more (released, or expired).
        Does nothing for a permit without a hold."""
        if self.hold is None:
            return False
        hold, self.hold = self.hold, None
        answer = self.limiter._client._request(
            "POST", f"{self.limiter._path}/release", json={"hold": hold}
        )
        return bool(answer["released"])

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Permit({self.limiter.name!r}, hold={self.hold!r})"


class Limiter:
    """Limiter ``name`` on a server (:meth:`Client.limiter`). ``holder`` names the caller in
    the limiter's list of holders."""

    def __init__(
        self,
        client: Client,
        name: str,
        holder: str | None = None,
        *,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        from .client import _quote

        self._client = client
        self.name = name
        self.holder = holder
        self._path = f"/api/limiters/{_quote(name)}"
        self._stop = stop

    def _try(self, wait: float, hold: float) -> Permit | None:
        body: dict[str, Any] = {"wait_s": wait, "hold_s": hold}
        if self.holder is not None:
            body["holder"] = self.holder
        answer = self._client._request("POST", f"{self._path}/acquire", json=body)
        if not answer["acquired"]:
            return None
        return Permit(self, answer.get("hold"))

    def acquire(self, timeout: float | None = None, hold: float = 60.0) -> Permit:
        """Waits until the limiter lets the caller go (at most ``timeout`` seconds; none:
        as long as it takes) and returns its :class:`Permit`. ``hold``: how many seconds a
        hold lasts unless released.

        Raises:
            OffstageError: ``limiter_timeout`` when ``timeout`` passed first; ``not_found``
                (404) for a limiter nobody defined (the message says how to define it).
            TaskKilled: inside a worker task that was killed while it waited.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._stop is not None:
                self._stop()
            left = _MAX_WAIT_S if deadline is None else deadline - time.monotonic()
            # Short rounds inside a task, so a kill ends the wait soon.
            wait = min(max(left, 0.0), 1.0 if self._stop is not None else _MAX_WAIT_S)
            permit = self._try(wait, hold)
            if permit is not None:
                return permit
            if deadline is not None and time.monotonic() >= deadline:
                raise OffstageError(
                    f"limiter {self.name!r} did not let this caller go within {timeout} s: "
                    "try again later, or wait longer",
                    code="limiter_timeout",
                )

    def try_acquire(self, hold: float = 60.0) -> Permit | None:
        """A :class:`Permit` if the limiter lets the caller go at once, else ``None``."""
        return self._try(0.0, hold)

    def record(self) -> dict[str, Any] | None:
        """The limiter as the server has it: ``rate``, ``burst``, ``max_holders``,
        ``tokens`` (now) and ``holders``; ``None`` if nobody defined it."""
        for limiter in self._client.list_limiters():
            if limiter["name"] == self.name:
                return limiter
        return None

    def __repr__(self) -> str:
        return f"Limiter({self.name!r})"


class BackOff(Exception):
    """Raised by a worker task to go back to the queue for ``delay`` seconds without counting
    the attempt (the API it calls said to come back later): ``raise offstage.back_off(30)``.
    The task runs again after the delay, its state and checkpoint kept."""

    def __init__(self, delay: float) -> None:
        if not 0 <= delay <= 31_536_000:
            raise ValueError(f"a back-off of {delay} s: give a number of seconds from 0 to a year")
        super().__init__(f"backed off for {round(delay, 3):g}s")
        self.delay = float(delay)


def back_off(delay: float) -> BackOff:
    """The exception that backs the running task off for ``delay`` seconds:
    ``raise offstage.back_off(30)``."""
    return BackOff(delay)
