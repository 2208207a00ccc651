"""`fedledger ipfs ...` through the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedledger.core.storage import RpcStore
from fedledger.core.storage.cid import CHUNK_SIZE

from .conftest import pseudo_random
from .test_cid import daemon_only_hash

FEDLEDGER = str(Path(sys.executable).with_name("fedledger"))


def run(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [FEDLEDGER, "ipfs", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "120"},
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("command", ["", "up", "down", "cid", "put", "get", "push"])
def test_help(command: str) -> None:
    out = run(*([command] if command else []), "--help").stdout
    assert "Usage: fedledger ipfs" in out


@pytest.mark.parametrize("version", [0, 1])
def test_cid_command_matches_daemon(tmp_path: Path, ipfs_api: str, version: int) -> None:
    data = pseudo_random(CHUNK_SIZE * 3 + 5, seed=11)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    printed = run("cid", str(path), "--cid-version", str(version)).stdout.strip()
    assert printed == daemon_only_hash(ipfs_api, data, version)


def test_put_then_push_to_daemon(tmp_path: Path, ipfs_api: str) -> None:
    data = pseudo_random(700_000, seed=12)
    (tmp_path / "w.bin").write_bytes(data)
    cid = run("put", "w.bin", cwd=tmp_path).stdout.strip()  # default store ./.fedledger/store
    assert (tmp_path / ".fedledger" / "store" / "blocks").is_dir()
    assert "pushed" in run("push", cid, "--to", ipfs_api, cwd=tmp_path).stdout
    assert RpcStore(ipfs_api).get(cid) == data
    run("get", cid, "--store", ipfs_api, "-o", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == data


def test_push_unknown_cid_fails_cleanly(tmp_path: Path, ipfs_api: str) -> None:
    result = run(
        "push",
        "bafkreie5hxgd4yswo3xuhmikyn6yo5rymcvyb57qmbu6bdm5tkqikplpz4",
        "--to",
        ipfs_api,
        "--store",
        str(tmp_path),
        check=False,
    )
    assert result.returncode == 2 and "not in the embedded store" in result.stderr


def test_up_and_down(tmp_path: Path) -> None:
    """`up` starts a second, independent daemon recorded in ./.fedledger; `down` stops it."""
    out = run("up", cwd=tmp_path).stdout
    state = json.loads((tmp_path / ".fedledger" / "ipfs.json").read_text())
    try:
        assert state["api"] in out and Path(f"/proc/{state['pid']}").exists()
        assert RpcStore(state["api"]).version()["Version"]
        again = run("up", cwd=tmp_path, check=False)
        assert again.returncode == 2 and "already runs" in again.stderr
    finally:
        down = run("down", cwd=tmp_path).stdout
    assert f"stopped pid {state['pid']}" in down
    assert not (tmp_path / ".fedledger" / "ipfs.json").exists()
    assert not Path(state["repo"]).exists()
    assert "no daemon recorded" in run("down", cwd=tmp_path).stdout
