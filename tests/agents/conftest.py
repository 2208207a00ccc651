"""Fixtures for agent tests: a real js-ipfs daemon, and a freshly deployed ledger with a store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def ipfs_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real js-ipfs daemon (offline, loopback) for the session; yields its RPC URL."""
    from fedledger.core.storage import daemon

    state = tmp_path_factory.mktemp("ipfs-agents")
    d = daemon.start(state)
    yield d.api
    daemon.stop(state)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def deployed(w3, tmp_path: Path):
    """(FedLedger bound to the requester, manifest path) on a fresh deployment."""
    from fedledger.core.chain import FedLedger, devnet_account
    from fedledger.deploy.deployer import deploy

    deploy(w3, devnet_account(0), force=True, directory=tmp_path / "deployments")
    manifest = tmp_path / "deployments" / "31337.json"
    return FedLedger.from_manifest(w3, manifest, devnet_account(0)), manifest
