"""Off-chain LSAG (fedledger.core.ringsig): correctness, forgeries, linkability, anonymity.

No chain here; tests/ringsig/test_registry.py checks the contract agrees.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from fedledger.core import ringsig
from fedledger.core.ringsig import KeyPair, N, RingSigError, hash_to_point, is_valid_point, key_image, sign, verify

KEYS = [KeyPair.generate() for _ in range(4)]
RING = [k.public for k in KEYS]
BASE = hash_to_point(b"\x01" * 32)
MSG = b"\x42" * 32


def test_every_member_signs_and_verifies() -> None:
    for k in KEYS:
        sig = sign(MSG, RING, k, BASE)
        assert verify(MSG, RING, sig, BASE)
        assert sig.key_image == key_image(k.secret, BASE)


def test_forged_and_altered_signatures_fail() -> None:
    sig = sign(MSG, RING, KEYS[1], BASE)
    assert not verify(b"\x43" + MSG[1:], RING, sig, BASE)  # altered message
    assert not verify(MSG, RING, replace(sig, c0=(sig.c0 + 1) % N), BASE)
    assert not verify(MSG, RING, replace(sig, s=(sig.s[0] ^ 1, *sig.s[1:])), BASE)
    assert not verify(MSG, RING, replace(sig, s=(sig.s[0] + N, *sig.s[1:])), BASE)  # non-canonical twin
    other = KeyPair.generate()
    assert not verify(MSG, [other.public, *RING[1:]], sig, BASE)  # wrong ring
    assert not verify(MSG, RING[::-1], sig, BASE)  # same keys, other order
    assert not verify(MSG, RING, sig, hash_to_point(b"\x02" * 32))  # other scope
    # a key image from another key: the ring no longer closes
    assert not verify(MSG, RING, replace(sig, key_image=key_image(KEYS[2].secret, BASE)), BASE)
    # an outsider cannot sign for a ring it is not in
    with pytest.raises(RingSigError):
        sign(MSG, RING, other, BASE)
    # an outsider's signature on a ring containing it does not pass for the real ring
    outsider_sig = sign(MSG, [other.public, *RING[1:]], other, BASE)
    assert not verify(MSG, RING, outsider_sig, BASE)


def test_linkability_is_per_scope() -> None:
    k = KEYS[0]
    a = sign(MSG, RING, k, BASE)
    b = sign(b"\x07" * 32, RING[:2], k, BASE)  # other message, other ring, same scope
    assert ringsig.linked(a, b)
    c = sign(MSG, RING, k, hash_to_point(b"\x03" * 32))  # other scope: unlinkable
    assert not ringsig.linked(a, c)
    assert not ringsig.linked(a, sign(MSG, RING, KEYS[1], BASE))


def test_hash_to_point_is_deterministic_and_on_curve() -> None:
    for _ in range(8):
        seed = os.urandom(32)
        p = hash_to_point(seed)
        assert p == hash_to_point(seed) and is_valid_point(p) and p[1] % 2 == 0


def test_possession_proof() -> None:
    k = KEYS[0]
    proof = ringsig.prove_possession(k, b"context A")
    assert ringsig.verify_possession(k.public, proof, b"context A")
    assert not ringsig.verify_possession(k.public, proof, b"context B")  # replay elsewhere
    assert not ringsig.verify_possession(KEYS[1].public, proof, b"context A")


def test_secret_never_in_repr() -> None:
    k = KEYS[0]
    assert str(k.secret) not in repr(k) and hex(k.secret) not in repr(k)


# ---- anonymity --------------------------------------------------------------------------------


def _challenges(sig: ringsig.RingSignature, ring: list, base) -> list[int]:
    """The verifier's challenge chain c_0..c_{k-1}: everything an observer can derive."""
    from py_ecc.optimized_bn128 import G1, add, multiply

    h, img = ringsig._to_jac(base), ringsig._to_jac(sig.key_image)
    prefix = ringsig._prefix(MSG, base, sig.key_image, ring)
    cs, c = [], sig.c0
    for p, s in zip(ring, sig.s, strict=True):
        cs.append(c)
        c = ringsig._challenge(
            prefix, add(multiply(G1, s), multiply(ringsig._to_jac(p), c)), add(multiply(h, s), multiply(img, c))
        )
    return cs


def test_signature_does_not_reveal_signer_index() -> None:
    """Signatures by different members have the same shape, and natural distinguishers (largest or
    smallest response, largest or smallest challenge) guess the signer no better than chance."""
    ring, k = RING[:3], 3
    trials = 10  # per signer; 30 signatures in all
    hits = {"argmax s": 0, "argmin s": 0, "argmax c": 0, "argmin c": 0}
    total = 0
    for pi in range(k):
        for _ in range(trials):
            sig = sign(MSG, ring, KEYS[pi], BASE)
            assert len(sig.s) == k and all(0 <= s < N for s in sig.s) and 0 <= sig.c0 < N
            cs = _challenges(sig, ring, BASE)
            hits["argmax s"] += max(range(k), key=lambda i: sig.s[i]) == pi
            hits["argmin s"] += min(range(k), key=lambda i: sig.s[i]) == pi
            hits["argmax c"] += max(range(k), key=lambda i: cs[i]) == pi
            hits["argmin c"] += min(range(k), key=lambda i: cs[i]) == pi
            total += 1
    # chance is 1/3 (10 of 30); P(>= 20 of 30 | p = 1/3) < 2e-4 for each distinguisher
    for name, h in hits.items():
        assert h < 20, f"{name} finds the signer {h}/{total} times"


def test_key_image_is_independent_of_ring_and_position() -> None:
    """The key image is x*H: a function of the key and the scope only. The same key at positions
    0, 1 and 2 of different rings gives the same image, so it cannot encode a position, and it is
    none of the ring's public keys."""
    k = KEYS[3]
    rings = [[k.public, RING[0], RING[1]], [RING[0], k.public, RING[1]], [RING[0], RING[1], k.public]]
    images = {sign(MSG, r, k, BASE).key_image for r in rings}
    assert images == {key_image(k.secret, BASE)}
    assert key_image(k.secret, BASE) not in RING
