"""Where fedledger finds its repository files (contracts, node_modules) and its state directory."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def project_root() -> Path:
    """The directory holding `contracts/` and `package.json` (env `FEDLEDGER_ROOT` overrides)."""
    env = os.environ.get("FEDLEDGER_ROOT")
    return Path(env).resolve() if env else PACKAGE_ROOT


def node_modules() -> Path:
    """The npm tree with the pinned JS tools (env `FEDLEDGER_NODE_MODULES` overrides)."""
    env = os.environ.get("FEDLEDGER_NODE_MODULES")
    if env:
        return Path(env).resolve()
    for start in (Path.cwd(), project_root()):
        for d in (start, *start.parents):
            if (d / "node_modules" / "solc").is_dir():
                return d / "node_modules"
    raise FileNotFoundError("node_modules with the JS tools not found: run `make setup`")


def state_dir() -> Path:
    """`.fedledger/` in the current directory: devnet and daemon records, logs."""
    d = Path.cwd() / ".fedledger"
    d.mkdir(exist_ok=True)
    return d
