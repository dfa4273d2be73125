"""Real `offstage serve --demo` processes for the tests, on free loopback ports.

The binary is `$OFFSTAGE_BIN`, or `target/debug/offstage` in the repository (build it with
`cargo build -p offstage-server`). Each server gets a fresh SQLite file in a temp directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import offstage

REPO = Path(__file__).resolve().parents[3]

# Tokens of the token-protected server, one per role.
TOKENS = {"read": "r-secret", "launch": "l-secret", "control": "c-secret", "worker": "w-secret"}


def binary() -> str:
    path = os.environ.get("OFFSTAGE_BIN") or str(REPO / "target" / "debug" / "offstage")
    if not Path(path).exists():
        pytest.exit(
            f"no offstage binary at {path}: build it with `cargo build -p offstage-server`, "
            "or point OFFSTAGE_BIN at one",
            returncode=2,
        )
    return path


class Server:
    """One `offstage serve --demo` process; `stop()` (or the fixture) ends it."""

    def __init__(self, db: str, extra: tuple[str, ...] = ()) -> None:
        self.db = db
        self.extra = extra
        self.log = open(db + ".log", "ab")
        self.process = subprocess.Popen(
            [binary(), "serve", "--demo", "--addr", "127.0.0.1:0", "--db", db, *extra],
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline().decode().strip()
        prefix = "offstage listening on "
        if not first.startswith(prefix):
            self.process.kill()
            raise RuntimeError(f"offstage serve did not start: {first!r} (log: {db}.log)")
        self.url = first[len(prefix) :]

    def sigkill(self) -> None:
        """Kills the server as a crash would: no drain, no goodbye."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def has_worker_endpoint(self) -> bool:
        answer = httpx.get(self.url + "/api/workers")
        return answer.status_code != 404


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="offstage-py-") as root:
        yield root


@pytest.fixture(scope="session")
def server(tmp_root: str) -> Iterator[Server]:
    """An open server (no tokens), shared by the whole session."""
    s = Server(os.path.join(tmp_root, "open.db"))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def token_server(tmp_root: str) -> Iterator[Server]:
    """A server that needs a token, with one token per role (see TOKENS)."""
    args: list[str] = []
    for role, secret in TOKENS.items():
        args += ["--token", f"{role}:{secret}"]
    s = Server(os.path.join(tmp_root, "tokens.db"), tuple(args))
    yield s
    s.stop()


@pytest.fixture
def client(server: Server) -> Iterator[offstage.Client]:
    """The module-level connection, to the open server."""
    c = offstage.connect(server.url)
    yield c


@pytest.fixture
def fresh_db(tmp_root: str, request: pytest.FixtureRequest) -> str:
    return os.path.join(tmp_root, f"{request.node.name}.db")


def start_server(db: str, extra: tuple[str, ...] = ()) -> Server:
    return Server(db, extra)


def worker_endpoint_or_skip(s: Server) -> None:
    """Skips the calling test, saying why, when the server has no `GET /api/workers` yet."""
    if not s.has_worker_endpoint():
        pytest.skip(
            "this offstage binary has no worker endpoint (GET /api/workers answers 404): "
            "the Python worker is tested against the protocol's fake server only"
        )
