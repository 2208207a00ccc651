"""Typed bindings of the DataRegistry contract (Model Chain's anonymous data sharing), plus the
off-chain replicas of everything it hashes, so anyone can re-check shares and the split.

The replicas (`share_message`, `scope_seed`, `split_seed`, `is_test_assignment`) must match
`contracts/DataRegistry.sol` byte for byte; tests compare them with the contract's views.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from fedledger.core import ringsig
from fedledger.core.chain.binding import Binding
from fedledger.core.chain.tx import Receipt
from fedledger.core.ringsig import KeyPair, Point, RingSignature

FINALIZE_GAS = 120_000
SHARE_TAG = keccak(text="fedledger.DataRegistry.share.v1")
SCOPE_TAG = keccak(text="fedledger.DataRegistry.scope.v1")
POSSESSION_TAG = keccak(text="fedledger.DataRegistry.possession.v1")
SPLIT_TAG = keccak(text="fedledger.DataRegistry.split.v1")


# ---- off-chain replicas of the contract's hashes ------------------------------------------------


def share_message(chain_id: int, registry: str, pool_id: int, cid: str, digest: bytes, timestamp: int) -> bytes:
    """The 32-byte message a share's ring signature signs (`DataRegistry.shareMessage`)."""
    return keccak(
        encode(
            ["bytes32", "uint256", "address", "uint256", "bytes32", "bytes32", "uint64"],
            [SHARE_TAG, chain_id, registry, pool_id, keccak(cid.encode()), digest, timestamp],
        )
    )


def scope_seed(chain_id: int, registry: str, pool_id: int, digest: bytes) -> bytes:
    """Linkability scope (pool, item): its hashToPoint is the key-image base."""
    return keccak(
        encode(
            ["bytes32", "uint256", "address", "uint256", "bytes32"], [SCOPE_TAG, chain_id, registry, pool_id, digest]
        )
    )


def possession_context(chain_id: int, registry: str, owner: str) -> bytes:
    """What a key-possession proof is bound to: this chain, this registry, the registering address."""
    return encode(["bytes32", "uint256", "address", "address"], [POSSESSION_TAG, chain_id, registry, owner])


def split_seed(block_hash: bytes, registry: str, pool_id: int) -> bytes:
    """`DataRegistry.splitSeed`: the seed a (post-cut-off) block hash gives a pool."""
    return keccak(encode(["bytes32", "bytes32", "address", "uint256"], [SPLIT_TAG, block_hash, registry, pool_id]))


def is_test_assignment(seed: bytes, digest: bytes, test_percent: int) -> bool:
    """Share goes to the common test set iff keccak(seed, digest) mod 100 < testPercent."""
    return int.from_bytes(keccak(encode(["bytes32", "bytes32"], [seed, digest])), "big") % 100 < test_percent


def pick_ring(signer_id: int, key_count: int, size: int) -> list[int]:
    """The signer's key id plus `size - 1` other registered ids drawn uniformly (CSPRNG), sorted:
    the contract wants increasing ids, so the signer's position carries no information."""
    if not 0 <= signer_id < key_count:
        raise ValueError(f"key {signer_id} is not registered")
    if size > key_count:
        raise ValueError(f"ring of {size} needs {size} registered keys; {key_count} are registered")
    others = [i for i in range(key_count) if i != signer_id]
    rng = secrets.SystemRandom()
    return sorted([signer_id, *rng.sample(others, size - 1)])


@dataclass(frozen=True)
class PoolInfo:
    creator: str
    cutoff: int
    test_percent: int
    max_future_skew: int
    share_count: int
    seed_block: int
    seed: bytes

    @property
    def finalized(self) -> bool:
        return self.seed != b"\0" * 32


@dataclass(frozen=True)
class Share:
    """One accepted data transaction, from its `DataShared` event."""

    pool_id: int
    share_id: int
    cid: str
    digest: bytes
    timestamp: int
    ring_ids: tuple[int, ...]
    key_image: Point
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class Split:
    seed: bytes
    seed_block: int
    train: list[Share]
    test: list[Share]


def split_shares(seed: bytes, shares: Sequence[Share], test_percent: int) -> tuple[list[Share], list[Share]]:
    """(train, test) by the contract's rule, in share order."""
    train: list[Share] = []
    test: list[Share] = []
    for s in shares:
        (test if is_test_assignment(seed, s.digest, test_percent) else train).append(s)
    return train, test


def signature_abi(sig: RingSignature) -> tuple[int, list[int], list[int]]:
    """The `RingSignature` struct as web3 encodes it: (c0, s, keyImage)."""
    return (sig.c0, list(sig.s), list(sig.key_image))


class DataRegistry(Binding):
    """The DataRegistry deployment, seen from one account (or read-only without one)."""

    contract_name = "DataRegistry"

    def __init__(self, w3: Web3, address: str, abi: list[dict[str, Any]], account: LocalAccount | None = None) -> None:
        super().__init__(w3, address, abi, account)
        self.chain_id = int(w3.eth.chain_id)

    # ---- off-chain replicas bound to this deployment ------------------------------------------
    def share_message(self, pool_id: int, cid: str, digest: bytes, timestamp: int) -> bytes:
        return share_message(self.chain_id, self.address, pool_id, cid, digest, timestamp)

    def scope_base(self, pool_id: int, digest: bytes) -> Point:
        return ringsig.hash_to_point(scope_seed(self.chain_id, self.address, pool_id, digest))

    def sign_share(
        self, key: KeyPair, pool_id: int, cid: str, digest: bytes, timestamp: int, ring_ids: Sequence[int]
    ) -> RingSignature:
        """Sign a share for the ring `ring_ids` (registered ids, must include `key`)."""
        ring = [self.key_of(i) for i in ring_ids]
        return ringsig.sign(
            self.share_message(pool_id, cid, digest, timestamp), ring, key, self.scope_base(pool_id, digest)
        )

    def verify_share_offchain(
        self, pool_id: int, cid: str, digest: bytes, timestamp: int, ring_ids: Sequence[int], sig: RingSignature
    ) -> bool:
        ring = [self.key_of(i) for i in ring_ids]
        return ringsig.verify(
            self.share_message(pool_id, cid, digest, timestamp), ring, sig, self.scope_base(pool_id, digest)
        )

    # ---- transactions -----------------------------------------------------------------------------
    def register_key(self, key: KeyPair) -> tuple[int, Receipt]:
        """Register `key.public` with a proof of possession bound to this account; returns (key id, receipt)."""
        proof = ringsig.prove_possession(key, possession_context(self.chain_id, self.address, self.sender))
        receipt = self._send("registerKey", list(key.public), *proof)
        return int(self.receipt_events(receipt, "KeyRegistered")[0]["keyId"]), receipt

    def register_key_raw(self, public: Point, proof: tuple[int, int]) -> Receipt:
        """Register with a given proof (tests: forged or someone else's proof)."""
        return self._send("registerKey", list(public), *proof)

    def create_pool(self, cutoff: int, test_percent: int, max_future_skew: int) -> tuple[int, Receipt]:
        receipt = self._send("createPool", cutoff, test_percent, max_future_skew)
        return int(self.receipt_events(receipt, "PoolCreated")[0]["poolId"]), receipt

    def share(
        self,
        pool_id: int,
        cid: str,
        digest: bytes,
        timestamp: int,
        ring_ids: Sequence[int],
        sig: RingSignature,
        *,
        gas: int | None = None,
    ) -> tuple[int, Receipt]:
        """Submit a signed data transaction; returns (share id, receipt). Reverts raise `ContractRevert`."""
        receipt = self._send("share", pool_id, cid, digest, timestamp, list(ring_ids), signature_abi(sig), gas=gas)
        return int(self.receipt_events(receipt, "DataShared")[0]["shareId"]), receipt

    def start_split(self, pool_id: int) -> Receipt:
        return self._send("startSplit", pool_id)

    def finalize_split(self, pool_id: int) -> Receipt:
        # fixed gas: nodes estimate against the latest block, where the seed block may be
        # `block.number` itself (not yet usable); the transaction lands in a later block
        return self._send("finalizeSplit", pool_id, gas=FINALIZE_GAS)

    # ---- reads -------------------------------------------------------------------------------------
    def key_count(self) -> int:
        return int(self._call("keyCount"))

    def key_of(self, key_id: int) -> Point:
        x, y = self._call("keyOf", key_id)
        return (int(x), int(y))

    def key_id_of(self, public: Point) -> int | None:
        registered, key_id = self._call("keyIdOf", list(public))
        return int(key_id) if registered else None

    def pool_count(self) -> int:
        return int(self._call("poolCount"))

    def pool_info(self, pool_id: int) -> PoolInfo:
        creator, cutoff, pct, skew, count, seed_block, seed = self._call("poolInfo", pool_id)
        return PoolInfo(creator, int(cutoff), int(pct), int(skew), int(count), int(seed_block), bytes(seed))

    def is_test(self, pool_id: int, share_id: int) -> bool:
        return bool(self._call("isTest", pool_id, share_id))

    def key_image_used(self, key_image: Point) -> bool:
        return bool(self._call("keyImageUsed", list(key_image)))

    def verify_share(
        self, pool_id: int, cid: str, digest: bytes, timestamp: int, ring_ids: Sequence[int], sig: RingSignature
    ) -> bool:
        """The contract's own verdict on a signature (eth_call; no window or key-image checks)."""
        return bool(self._call("verifyShare", pool_id, cid, digest, timestamp, list(ring_ids), signature_abi(sig)))

    def shares(self, pool_id: int, *, from_block: int = 0) -> list[Share]:
        """Every accepted share of a pool, in share-id order."""
        out = []
        for a in self.decoded_events("DataShared", from_block=from_block, poolId=pool_id):
            out.append(
                Share(
                    pool_id=int(a["poolId"]),
                    share_id=int(a["shareId"]),
                    cid=str(a["cid"]),
                    digest=bytes(a["digest"]),
                    timestamp=int(a["timestamp"]),
                    ring_ids=tuple(int(i) for i in a["ringIds"]),
                    key_image=(int(a["keyImage"][0]), int(a["keyImage"][1])),
                    block_number=int(a["block_number"]),
                    tx_hash=str(a["tx_hash"]),
                )
            )
        return sorted(out, key=lambda s: s.share_id)

    def recompute_split(self, pool_id: int, *, from_block: int = 0) -> Split:
        """The pool's split from public data only: the seed block's hash (any node, any time), the
        shares' events and the pool's test percentage. Checks it against the stored seed."""
        pool = self.pool_info(pool_id)
        if not pool.finalized:
            raise ValueError(f"pool {pool_id}: split not finalized (seed block {pool.seed_block or 'not armed'})")
        block_hash = bytes(self.w3.eth.get_block(pool.seed_block)["hash"])
        seed = split_seed(block_hash, self.address, pool_id)
        if seed != pool.seed:
            raise ValueError(f"pool {pool_id}: recomputed seed 0x{seed.hex()} differs from the stored one")
        shares = self.shares(pool_id, from_block=from_block)
        if len(shares) != pool.share_count:
            raise ValueError(f"pool {pool_id}: {len(shares)} DataShared events for {pool.share_count} shares")
        train, test = split_shares(seed, shares, pool.test_percent)
        return Split(seed, pool.seed_block, train, test)
