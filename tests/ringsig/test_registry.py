"""DataRegistry on a real anvil: the EVM verifies the same LSAG signatures as fedledger.core.ringsig,
rejects every bad share with a named custom error, and splits a pool reproducibly."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fedledger.core.chain import ContractRevert, devnet_account
from fedledger.core.chain.data_registry import is_test_assignment, scope_seed, share_message, split_seed
from fedledger.core.ringsig import KeyPair, N, hash_to_point, key_image, prove_possession
from tests.chain.helpers import increase_time
from tests.ringsig.conftest import CID, Setup, item


def _revert(fn, *args, **kw) -> ContractRevert:
    with pytest.raises(ContractRevert) as exc:
        fn(*args, **kw)
    return exc.value


def test_replicas_match_the_contract(setup: Setup) -> None:
    reg = setup.registry
    _, digest = item("replica")
    c = reg.contract.functions
    assert c.shareMessage(3, CID, digest, 1234).call() == share_message(reg.chain_id, reg.address, 3, CID, digest, 1234)
    for i in range(6):  # several seeds: some need more than one try of try-and-increment
        _, d = item(f"scope {i}")
        assert tuple(c.scopeBase(7, d).call()) == hash_to_point(scope_seed(reg.chain_id, reg.address, 7, d))
    assert c.splitSeed(b"\x11" * 32, 5).call() == split_seed(b"\x11" * 32, reg.address, 5)


def test_valid_shares_verify_on_and_off_chain(setup: Setup) -> None:
    """Every member of one ring can share (anonymity: all verify, on and off chain)."""
    reg, pool = setup.registry, setup.pool()
    ring_ids = [0, 2, 3, 5]
    ts = setup.now()
    for n, signer in enumerate(ring_ids):
        cid, digest = item(f"valid {n}")
        sig = reg.sign_share(setup.keys[signer], pool, cid, digest, ts, ring_ids)
        assert reg.verify_share_offchain(pool, cid, digest, ts, ring_ids, sig)
        assert reg.verify_share(pool, cid, digest, ts, ring_ids, sig)
        share_id, _ = reg.share(pool, cid, digest, ts, ring_ids, sig)
        assert share_id == n
        assert reg.key_image_used(sig.key_image)
    shares = reg.shares(pool)
    assert [s.share_id for s in shares] == [0, 1, 2, 3]
    assert all(s.ring_ids == tuple(ring_ids) and s.cid == CID for s in shares)
    assert reg.pool_info(pool).share_count == 4
    # the share is relayed: the submitting account is none of the ring's key owners' concern
    relayed = reg.as_account(devnet_account(9))
    cid, digest = item("relayed")
    sig = reg.sign_share(setup.keys[1], pool, cid, digest, ts, [1, 4])
    assert relayed.share(pool, cid, digest, ts, [1, 4], sig)[0] == 4


def test_forged_signatures_are_rejected(setup: Setup) -> None:
    reg, pool = setup.registry, setup.pool()
    ring_ids, ts = [0, 1, 2], setup.now()
    cid, digest = item("forged")
    sig = reg.sign_share(setup.keys[1], pool, cid, digest, ts, ring_ids)
    forgeries = [
        replace(sig, c0=(sig.c0 + 1) % N),
        replace(sig, s=(sig.s[0], (sig.s[1] + 1) % N, sig.s[2])),
        replace(sig, s=(sig.s[0] + N, *sig.s[1:])),  # non-canonical twin of a valid response
        replace(sig, key_image=key_image(setup.keys[2].secret, reg.scope_base(pool, digest))),  # someone else's image
    ]
    for forged in forgeries:
        assert not reg.verify_share_offchain(pool, cid, digest, ts, ring_ids, forged)
        assert not reg.verify_share(pool, cid, digest, ts, ring_ids, forged)
        assert _revert(reg.share, pool, cid, digest, ts, ring_ids, forged).name == "InvalidRingSignature"
    # an outsider (registered, but not in the ring) signs with itself in the ring, then swaps it out
    outsider = reg.sign_share(setup.keys[5], pool, cid, digest, ts, [0, 1, 5])
    assert _revert(reg.share, pool, cid, digest, ts, ring_ids, outsider).name == "InvalidRingSignature"
    # a key image that is not a curve point
    bad_point = replace(sig, key_image=(1, 3))
    assert _revert(reg.share, pool, cid, digest, ts, ring_ids, bad_point).name == "InvalidKeyImage"
    # none of this consumed the real signature
    assert reg.share(pool, cid, digest, ts, ring_ids, sig)[0] == 0


def test_altered_messages_are_rejected(setup: Setup) -> None:
    reg, pool, other_pool = setup.registry, setup.pool(), setup.pool()
    ring_ids, ts = [1, 3], setup.now()
    cid, digest = item("original")
    sig = reg.sign_share(setup.keys[3], pool, cid, digest, ts, ring_ids)
    _, other_digest = item("altered")
    altered = [
        (pool, cid, other_digest, ts),  # other data
        (pool, "bafkreialtered", digest, ts),  # other CID
        (pool, cid, digest, ts - 1),  # other timestamp
        (other_pool, cid, digest, ts),  # replayed into another pool
    ]
    for p, c, d, t in altered:
        assert not reg.verify_share(p, c, d, t, ring_ids, sig)
        assert _revert(reg.share, p, c, d, t, ring_ids, sig).name == "InvalidRingSignature"


def test_wrong_rings_are_rejected(setup: Setup) -> None:
    reg, pool = setup.registry, setup.pool()
    ts = setup.now()
    cid, digest = item("ring")
    sig = reg.sign_share(setup.keys[2], pool, cid, digest, ts, [0, 2, 4])
    assert _revert(reg.share, pool, cid, digest, ts, [1, 2, 4], sig).name == "InvalidRingSignature"
    assert _revert(reg.share, pool, cid, digest, ts, [0, 2, 5], sig).name == "InvalidRingSignature"
    e = _revert(reg.share, pool, cid, digest, ts, [2, 0, 4], sig)
    assert (e.name, e.args_["position"]) == ("RingNotSorted", 1)
    assert _revert(reg.share, pool, cid, digest, ts, [0, 2, 2], sig).name == "RingNotSorted"  # duplicate
    e = _revert(reg.share, pool, cid, digest, ts, [0, 2, 99], sig)
    assert (e.name, e.args_["keyId"]) == ("UnknownKey", 99)
    e = _revert(reg.share, pool, cid, digest, ts, [0, 2, 4, 5], sig)
    assert e.name == "SignatureLengthMismatch"
    solo = reg.sign_share(setup.keys[2], pool, cid, digest, ts, [2])
    assert _revert(reg.share, pool, cid, digest, ts, [2], solo).name == "InvalidRingSize"


def test_key_image_blocks_a_second_share_of_the_same_item(setup: Setup) -> None:
    """Linkability is per (pool, item): the same key cannot share an item twice in a pool, with
    any ring; it can share other items and the same item in another pool, unlinkably."""
    reg, pool = setup.registry, setup.pool()
    ts = setup.now()
    cid, digest = item("once")
    sig = reg.sign_share(setup.keys[0], pool, cid, digest, ts, [0, 1])
    reg.share(pool, cid, digest, ts, [0, 1], sig)
    e = _revert(reg.share, pool, cid, digest, ts, [0, 1], sig)  # replay
    assert e.name == "KeyImageUsed" and e.args_["poolId"] == pool
    again = reg.sign_share(setup.keys[0], pool, cid, digest, ts, [0, 3, 4, 5])  # fresh sig, other ring
    assert again.key_image == sig.key_image
    assert _revert(reg.share, pool, cid, digest, ts, [0, 3, 4, 5], again).name == "KeyImageUsed"
    # another holder of the same item may share it (its own key image)
    other = reg.sign_share(setup.keys[1], pool, cid, digest, ts, [0, 1])
    reg.share(pool, cid, digest, ts, [0, 1], other)
    # the same key, another item: accepted, with an unrelated key image
    cid2, digest2 = item("twice")
    sig2 = reg.sign_share(setup.keys[0], pool, cid2, digest2, ts, [0, 1])
    assert sig2.key_image != sig.key_image
    reg.share(pool, cid2, digest2, ts, [0, 1], sig2)
    # the same key and item in another pool: accepted
    pool2 = setup.pool()
    sig3 = reg.sign_share(setup.keys[0], pool2, cid, digest, ts, [0, 1])
    reg.share(pool2, cid, digest, ts, [0, 1], sig3)


def test_acceptance_window(setup: Setup) -> None:
    """Model Chain's rules: timestamp at most L ahead of now; nothing (at or before the cut-off)
    once the split has started; a timestamp after the cut-off belongs to a later pool."""
    reg = setup.registry
    pool = setup.pool(cutoff_in=600, skew=60)
    cutoff = reg.pool_info(pool).cutoff
    ring_ids, now = [0, 4], setup.now()

    def signed(tag: str, ts: int):
        cid, digest = item(tag)
        return cid, digest, ts, ring_ids, reg.sign_share(setup.keys[4], pool, cid, digest, ts, ring_ids)

    e = _revert(reg.share, pool, *signed("future", now + 600))
    assert e.name == "TimestampTooFarAhead" and e.args_["maxFutureSkew"] == 60
    reg.share(pool, *signed("near future", now + 30))  # within L
    reg.share(pool, *signed("past", now - 10_000))  # old data is fine before the split
    increase_time(reg.w3, 580)  # 20 s before the cut-off
    e = _revert(reg.share, pool, *signed("after cutoff", cutoff + 10))
    assert (e.name, e.args_["cutoff"]) == ("TimestampAfterCutoff", cutoff)
    late = signed("late", cutoff - 100)
    increase_time(reg.w3, 30)  # past the cut-off: the split has started
    e = _revert(reg.share, pool, *late)
    assert (e.name, e.args_["poolId"]) == ("SplitAlreadyStarted", pool)
    assert reg.pool_info(pool).share_count == 2


def test_key_registration_rules(setup: Setup) -> None:
    reg = setup.registry
    e = _revert(reg.register_key_raw, (1, 3), (1, 1))
    assert e.name == "InvalidPublicKey"
    e = _revert(reg.register_key, setup.keys[0])
    assert (e.name, e.args_["keyId"]) == ("KeyAlreadyRegistered", 0)
    k = KeyPair.generate()
    # a possession proof made for another address cannot be replayed by this one
    from fedledger.core.chain.data_registry import possession_context

    stolen = prove_possession(k, possession_context(reg.chain_id, reg.address, devnet_account(9).address))
    assert _revert(reg.register_key_raw, k.public, stolen).name == "InvalidPossessionProof"
    # nobody can register a key without its secret (here: someone else's public key, made-up proof)
    assert _revert(reg.register_key_raw, KeyPair.generate().public, (5, 7)).name == "InvalidPossessionProof"


def test_split_is_seeded_after_cutoff_and_reproducible(setup: Setup) -> None:
    reg = setup.registry
    pool = setup.pool(cutoff_in=300, test_percent=40)
    ts = setup.now()
    for i in range(10):
        cid, digest = item(f"split {i}")
        signer = i % 3
        reg.share(
            pool, cid, digest, ts, [0, 1, 2], reg.sign_share(setup.keys[signer], pool, cid, digest, ts, [0, 1, 2])
        )
    assert _revert(reg.start_split, pool).name == "CutoffNotReached"
    assert _revert(reg.finalize_split, pool).name == "SplitNotStarted"
    increase_time(reg.w3, 301)
    start = reg.start_split(pool)
    seed_block = reg.pool_info(pool).seed_block
    assert seed_block == start.block_number + 1  # a block nobody knew at the cut-off
    assert _revert(reg.start_split, pool).name == "SplitPending"
    assert _revert(reg.finalize_split, pool).name == "SeedBlockNotMined"
    reg.w3.provider.make_request("evm_mine", [])
    reg.finalize_split(pool)
    assert _revert(reg.finalize_split, pool).name == "SplitAlreadyFinalized"

    info = reg.pool_info(pool)
    block_hash = bytes(reg.w3.eth.get_block(seed_block)["hash"])
    assert info.seed == split_seed(block_hash, reg.address, pool)
    first, second = reg.recompute_split(pool), reg.recompute_split(pool)
    assert first == second
    assert sorted(s.share_id for s in first.train + first.test) == list(range(10))
    for s in first.train + first.test:  # the contract's own assignment agrees
        assert reg.is_test(pool, s.share_id) == is_test_assignment(info.seed, s.digest, 40) == (s in first.test)
    # a read-only observer with another binding gets the same sets
    from fedledger.core.chain.data_registry import DataRegistry

    observer = DataRegistry(reg.w3, reg.address, reg.abi)
    assert observer.recompute_split(pool) == first


def test_stale_seed_block_is_rearmed(setup: Setup) -> None:
    reg = setup.registry
    pool = setup.pool(cutoff_in=60)
    increase_time(reg.w3, 61)
    reg.start_split(pool)
    reg.w3.provider.make_request("anvil_mine", [hex(300)])  # blockhash only reaches 256 blocks back
    assert _revert(reg.finalize_split, pool).name == "SeedBlockExpired"
    reg.start_split(pool)  # re-arm on a fresh block
    reg.w3.provider.make_request("evm_mine", [])
    reg.finalize_split(pool)
    assert reg.pool_info(pool).finalized
