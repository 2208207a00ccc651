"""Shared fixtures: a real anvil devnet per test session, and a fresh FedLedger deployment per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run `fedledger ARGS...` in-process through the real entry point (`fedledger.cli.main`, where
    user mistakes become one line and exit code 2); returns (exit code, stdout + stderr)."""
    from fedledger.cli import main

    def run(*args: str) -> tuple[int, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


@pytest.fixture(scope="session")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A real anvil process for the whole session (anvil slows down as blocks pile up, so one per
    session, never a long-lived shared one)."""
    from fedledger.deploy import devnet as devnet_mod

    net = devnet_mod.start("anvil", log_dir=tmp_path_factory.mktemp("anvil"))
    yield net
    net.stop()


@pytest.fixture(scope="session")
def w3(devnet):
    from fedledger.core.chain import connect

    return connect(devnet.rpc_url)


@pytest.fixture
def fl(w3, tmp_path: Path):
    """A fresh FedLedger deployment (isolates staking and tasks between tests), bound to the
    requester (devnet account 0). Short unstake delay so tests can exercise it."""
    from fedledger.core.chain import FedLedger, devnet_account
    from fedledger.deploy.deployer import deploy

    deploy(w3, devnet_account(0), force=True, directory=tmp_path, min_stake=10**18, unstake_delay=3600)
    return FedLedger.from_manifest(w3, tmp_path / "31337.json", devnet_account(0))
