"""Server-Sent Events: the parser, and a stream that can be waited on with a timeout.

The server sends each event as ``id: <seq>``, ``event: <type>`` and one ``data:`` line of JSON,
then a blank line; lines starting with ``:`` are keep-alive comments. :class:`EventStream`
reads the response in a daemon thread and hands events over through a queue, so a caller can
wait for the next event with a timeout (a blocking socket read cannot be given a deadline
across several events otherwise).
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SseMessage:
    """One Server-Sent Event as it arrived on the wire."""

    event: str
    data: str
    id: str | None


def parse(lines: Iterable[str]) -> Iterator[SseMessage]:
    """Turns the lines of an event stream into messages (comments and retries skipped)."""
    event, last_id = "message", None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line == "":
            if data:
                yield SseMessage(event, "\n".join(data), last_id)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            last_id = value
    if data:
        yield SseMessage(event, "\n".join(data), last_id)


_END = object()


class EventStream:
    """The events of one open SSE response, each a dict parsed from the event's JSON data.

    A ``gap`` event (the server's replay buffer no longer holds events the client asked for)
    arrives as ``{"type": "gap", "first": …, "last": …}``.

    Use as an iterator, or call :meth:`next` with a timeout; always :meth:`close` it (or use
    ``with``), which ends the reading thread.
    """

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._queue: queue.Queue[dict[str, Any] | BaseException | object] = queue.Queue()
        self._closed = False
        self._ended = False
        self.last_event_id: str | None = None
        self._thread = threading.Thread(target=self._read, name="offstage-sse", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in parse(self._response.iter_lines()):
                try:
                    event = json.loads(message.data)
                except ValueError:
                    event = {"type": message.event, "data": message.data}
                if isinstance(event, dict):
                    event.setdefault("type", message.event)
                else:
                    event = {"type": message.event, "data": event}
                if message.id is not None:
                    self.last_event_id = message.id
                self._queue.put(event)
        except BaseException as error:  # noqa: BLE001 - handed to the reader, or dropped if closed
            if not self._closed:
                self._queue.put(error)
        finally:
            self._queue.put(_END)

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event; ``None`` once the stream has ended.

        Raises:
            TimeoutError: no event within ``timeout`` seconds.
            httpx.HTTPError: the connection broke.
        """
        if self._ended:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no event within {timeout} s") from None
        if item is _END:
            self._ended = True
            return None
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        assert isinstance(item, dict)
        return item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            event = self.next()
            if event is None:
                return
            yield event

    def close(self) -> None:
        """Stops reading and closes the connection."""
        self._closed = True
        self._response.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
