"""Where a command finds the chain and the deployment: the RPC URL (the recorded devnet, else the
usual local port) and the manifest `deployments/<chainId>.json` written by `fedledger deploy`."""

from __future__ import annotations

import json
from pathlib import Path

from fedledger.core.paths import state_dir

DEFAULT_RPC = "http://127.0.0.1:8545"
DEVNET_RECORD = "devnet.json"  # under the state directory; written by `fedledger devnet up`


def default_rpc() -> str:
    """The RPC URL of the devnet `fedledger devnet up` recorded, else the usual local port."""
    path = state_dir() / DEVNET_RECORD
    try:
        return str(json.loads(path.read_text())["rpc_url"])
    except (OSError, ValueError, KeyError):
        return DEFAULT_RPC


def manifest_path(chain_id: int, directory: Path | None = None) -> Path:
    """`deployments/<chainId>.json` (in the current directory unless `directory` is given)."""
    return (directory or Path("deployments")) / f"{chain_id}.json"
