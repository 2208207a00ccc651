"""Ring-signature fixtures: one DataRegistry per test module on the session's real anvil, with
registered ring keys; each test opens its own pool, so tests do not see each other's shares."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest

from fedledger.core.chain.data_registry import DataRegistry
from fedledger.core.ringsig import KeyPair

N_KEYS = 6
CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def item(i: int | str) -> tuple[str, bytes]:
    """A (CID, digest) pair for a data item: the CID is only carried, the digest is signed."""
    return CID, hashlib.sha256(f"item {i}".encode()).digest()


@dataclass
class Setup:
    registry: DataRegistry
    keys: list[KeyPair]  # keys[i] is registered as key id i

    def now(self) -> int:
        return int(self.registry.w3.eth.get_block("latest")["timestamp"])

    def pool(self, *, cutoff_in: int = 3600, test_percent: int = 30, skew: int = 300) -> int:
        pool_id, _ = self.registry.create_pool(self.now() + cutoff_in, test_percent, skew)
        return pool_id


@pytest.fixture(scope="module")
def setup(w3) -> Setup:
    from fedledger.core.chain import devnet_account
    from fedledger.core.chain.binding import load_abi
    from fedledger.deploy.deployer import deploy_data_registry

    entry = deploy_data_registry(w3, devnet_account(0))
    registry = DataRegistry(w3, entry["address"], load_abi("DataRegistry"), devnet_account(0))
    keys = [KeyPair.generate() for _ in range(N_KEYS)]
    for i, k in enumerate(keys):
        key_id, _ = registry.register_key(k)
        assert key_id == i
    return Setup(registry, keys)
