"""`fedledger devnet up|down` and `fedledger deploy --json` as a user runs them, on anvil and Hardhat."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedledger.core.chain import FedLedger, Mechanism, TaskStatus, connect, devnet_account
from fedledger.core.processes import is_zombie
from tests.chain.helpers import spec

FEDLEDGER = [sys.executable, "-m", "fedledger.cli"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*FEDLEDGER, *args], cwd=cwd, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("kind", ["anvil", "hardhat"])
def test_devnet_up_deploy_down(tmp_path: Path, kind: str):
    up = run(["devnet", "up", "--kind", kind], tmp_path)
    assert up.returncode == 0, up.stderr
    rpc = up.stdout.strip().splitlines()[-1]
    record = json.loads((tmp_path / ".fedledger" / "devnet.json").read_text())
    assert record["rpc_url"] == rpc and record["kind"] == kind
    try:
        os.kill(record["pid"], 0)  # we own the real node process
        dep = run(["deploy", "--json"], tmp_path)
        assert dep.returncode == 0, dep.stderr
        manifest = json.loads(dep.stdout)
        assert manifest["chainId"] == 31337
        assert json.loads((tmp_path / "deployments" / "31337.json").read_text()) == manifest
        again = run(["deploy", "--json"], tmp_path)  # idempotent: the live deployment is reused
        assert json.loads(again.stdout)["contracts"] == manifest["contracts"]
        assert "already deployed" in again.stderr

        # the deployed contracts serve a task on this node too
        w3 = connect(rpc)
        fl = FedLedger.from_manifest(w3, tmp_path / "deployments" / "31337.json", devnet_account(0))
        task_id, _ = fl.publish_task(spec(), Mechanism())
        fl.as_account(devnet_account(1)).register(task_id, [1, 2, 3], 10)
        assert fl.task_info(task_id)["status"] == TaskStatus.OPEN and len(fl.clients(task_id)) == 1
    finally:
        down = run(["devnet", "down"], tmp_path)
    assert down.returncode == 0, down.stderr
    pid = record["pid"]
    assert not Path(f"/proc/{pid}").exists() or is_zombie(pid)  # gone (or exited, awaiting its reaper)


def test_deploy_to_an_unreachable_rpc_fails_clearly(tmp_path: Path):
    result = run(["deploy", "--rpc", "http://127.0.0.1:9"], tmp_path)
    assert result.returncode == 2 and "no Ethereum node answers" in result.stderr


def test_every_command_has_help(tmp_path: Path):
    for args in (["--help"], ["devnet", "--help"], ["devnet", "up", "--help"], ["deploy", "--help"]):
        result = run(args, tmp_path)
        assert result.returncode == 0 and "Usage" in result.stdout
