"""Storage fixtures: one real js-ipfs daemon per session, fresh embedded stores per test, and a
'lying daemon' that serves wrong bytes (to prove the client checks what it receives)."""

from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fedledger.core.storage import EmbeddedStore, RpcStore
from fedledger.core.storage import daemon as ipfs_daemon


@pytest.fixture(scope="session")
def ipfs_daemon_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ipfs_daemon.Daemon]:
    """The real js-ipfs daemon, started and stopped by fedledger.core.storage.daemon."""
    state_dir = tmp_path_factory.mktemp("ipfs-state")
    daemon = ipfs_daemon.start(state_dir)
    try:
        yield daemon
    finally:
        ipfs_daemon.stop(state_dir)


@pytest.fixture(scope="session")
def ipfs_api(ipfs_daemon_proc: ipfs_daemon.Daemon) -> str:
    return ipfs_daemon_proc.api


@pytest.fixture
def rpc(ipfs_api: str) -> Iterator[RpcStore]:
    store = RpcStore(ipfs_api)
    yield store
    store.close()


@pytest.fixture
def rpc0(ipfs_api: str) -> Iterator[RpcStore]:
    store = RpcStore(ipfs_api, cid_version=0)
    yield store
    store.close()


@pytest.fixture
def embedded(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


def pseudo_random(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes."""
    return random.Random(size * 7919 + seed).randbytes(size)


@pytest.fixture
def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LyingDaemon:
    """A loopback HTTP server answering `/api/v0/cat` with whatever `payload` is set to."""

    def __init__(self) -> None:
        self.payload = b""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.startswith("/api/v0/cat"):
                    body, kind = outer.payload, "text/plain"
                else:
                    body, kind = json.dumps({"Message": "unsupported", "Code": 0}).encode(), "application/json"
                self.send_response(200 if kind == "text/plain" else 500)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def lying_daemon() -> Iterator[LyingDaemon]:
    server = LyingDaemon()
    yield server
    server.close()
