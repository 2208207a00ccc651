"""Linkable ring signatures (LSAG) over BN254 G1, in the exact form `contracts/RingVerifier.sol` checks.

Scheme: LSAG of Liu, Wei and Wong ("Linkable Spontaneous Anonymous Group Signature for Ad Hoc
Groups", ACISP 2004), with the key-image base point taken from a *scope* instead of the ring
(the "event-oriented" variant), so that linkability is per scope whatever ring is used:

    keys        x in [1, n),  P = x*G                       (G = (1, 2), n = curve order)
    scope base  H = hash_to_point(scope_seed)               (try-and-increment, see below)
    key image   I = x*H                                     (same key + same scope -> same I)
    prefix      = keccak(m || H || I || P_0 || ... || P_{k-1})      (points as 2 x uint256)
    challenge   c_{i+1} = keccak(prefix || s_i*G + c_i*P_i || s_i*H + c_i*I) mod n
    signature   (c_0, s_0..s_{k-1}, I);  valid iff the chain of challenges closes: c_k == c_0

BN254 is the curve of the EVM's ecAdd (0x06) and ecMul (0x07) precompiles, so the contract verifies
a ring of k keys with 4k ecMul + 2k ecAdd. G1 has cofactor 1: every curve point other than
infinity is in the prime-order group, so "on the curve" is the whole membership check.

Anonymity assumes DDH is hard in BN254's G1 (BN254 is a type-3 pairing curve: SXDH). The key
image is x*H, so linking it to a member P_j = x_j*G means deciding DDH(G, P_j, H, I).

Curve arithmetic is py_ecc's `optimized_bn128`; keys are never printed (`KeyPair.__repr__`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from eth_utils import keccak
from py_ecc.optimized_bn128 import FQ, G1, add, b, curve_order, field_modulus, is_inf, is_on_curve, multiply, normalize

N = curve_order  # order of G1
P_FIELD = field_modulus  # base field; P_FIELD % 4 == 3, so sqrt(a) = a^((p+1)/4)
_SQRT_EXP = (field_modulus + 1) // 4
MAX_HASH_TRIES = 256  # each try succeeds with probability ~1/2; the contract uses the same bound

Point = tuple[int, int]  # affine coordinates as plain ints, as the contract stores them


class RingSigError(ValueError):
    """A malformed key, ring or signature (a *wrong* signature is `verify(...) == False`)."""


@dataclass(frozen=True)
class KeyPair:
    """A ring-signature key. `secret` is excluded from repr so it never ends up in a log."""

    secret: int = field(repr=False)
    public: Point

    @classmethod
    def generate(cls) -> KeyPair:
        """A fresh key from the OS CSPRNG."""
        x = 1 + secrets.randbelow(N - 1)
        return cls(x, public_key(x))

    @classmethod
    def from_secret(cls, secret: int) -> KeyPair:
        if not 0 < secret < N:
            raise RingSigError("secret key must be in [1, curve order)")
        return cls(secret, public_key(secret))


@dataclass(frozen=True)
class RingSignature:
    """(c_0, s_0..s_{k-1}, key image). Nothing in it depends on the signer's position."""

    c0: int
    s: tuple[int, ...]
    key_image: Point


def _to_jac(p: Point) -> tuple[FQ, FQ, FQ]:
    return (FQ(p[0]), FQ(p[1]), FQ(1))


def _to_affine(p: tuple[FQ, FQ, FQ]) -> Point:
    if is_inf(p):
        raise RingSigError("point at infinity")
    x, y = normalize(p)
    return (int(x), int(y))


def _word(v: int) -> bytes:
    return int(v).to_bytes(32, "big")


def is_valid_point(p: Point) -> bool:
    """On the curve, coordinates reduced, not infinity (the contract's `isOnCurve`)."""
    x, y = p
    if not (0 <= x < P_FIELD and 0 <= y < P_FIELD) or (x == 0 and y == 0):
        return False
    return bool(is_on_curve(_to_jac(p), b))


def public_key(secret: int) -> Point:
    return _to_affine(multiply(G1, secret % N))


def hash_to_point(seed: bytes) -> Point:
    """Try-and-increment: x = keccak(seed || uint256(ctr)) mod p for ctr = 0, 1, ... until
    x^3 + 3 is a square; y is its even root. The contract repeats this with the modexp precompile."""
    if len(seed) != 32:
        raise RingSigError("seed must be 32 bytes")
    for ctr in range(MAX_HASH_TRIES):
        x = int.from_bytes(keccak(seed + _word(ctr)), "big") % P_FIELD
        rhs = FQ(x) ** 3 + b
        y = rhs**_SQRT_EXP
        if y * y == rhs:
            yi = int(y)
            return (x, yi if yi % 2 == 0 else P_FIELD - yi)
    raise RingSigError("hash_to_point: no point found")  # probability 2^-256


def key_image(secret: int, base: Point) -> Point:
    return _to_affine(multiply(_to_jac(base), secret))


def _prefix(message: bytes, base: Point, image: Point, ring: Sequence[Point]) -> bytes:
    # abi.encodePacked(message, base, keyImage, ring) in the contract: all uint256 words
    words = [*base, *image, *(c for p in ring for c in p)]
    return keccak(message + b"".join(_word(w) for w in words))


def _challenge(prefix: bytes, left: tuple[FQ, FQ, FQ], right: tuple[FQ, FQ, FQ]) -> int:
    # ecAdd returns (0, 0) for infinity; only reachable with negligible probability
    lx, ly = (0, 0) if is_inf(left) else map(int, normalize(left))
    rx, ry = (0, 0) if is_inf(right) else map(int, normalize(right))
    return int.from_bytes(keccak(prefix + _word(lx) + _word(ly) + _word(rx) + _word(ry)), "big") % N


def _check_inputs(message: bytes, ring: Sequence[Point], base: Point) -> None:
    if len(message) != 32:
        raise RingSigError("message must be a 32-byte hash")
    if len(ring) < 1:
        raise RingSigError("empty ring")
    if not all(is_valid_point(p) for p in ring) or not is_valid_point(base):
        raise RingSigError("ring member or base point not on the curve")


def sign(message: bytes, ring: Sequence[Point], key: KeyPair, base: Point) -> RingSignature:
    """Sign a 32-byte `message` for `ring` (which must contain `key.public`), key image on `base`."""
    _check_inputs(message, ring, base)
    try:
        pi = list(ring).index(key.public)
    except ValueError:
        raise RingSigError("the signer's public key is not in the ring") from None
    k, x = len(ring), key.secret
    h = _to_jac(base)
    image_j = multiply(h, x)
    image = _to_affine(image_j)
    prefix = _prefix(message, base, image, ring)
    alpha = 1 + secrets.randbelow(N - 1)
    s = [0] * k
    c = [0] * k
    c[(pi + 1) % k] = _challenge(prefix, multiply(G1, alpha), multiply(h, alpha))
    i = (pi + 1) % k
    while i != pi:  # every other member gets a uniformly random response
        s[i] = secrets.randbelow(N)
        left = add(multiply(G1, s[i]), multiply(_to_jac(ring[i]), c[i]))
        right = add(multiply(h, s[i]), multiply(image_j, c[i]))
        c[(i + 1) % k] = _challenge(prefix, left, right)
        i = (i + 1) % k
    s[pi] = (alpha - c[pi] * x) % N  # closes the ring: s*G + c*P = alpha*G
    return RingSignature(c[0], tuple(s), image)


def verify(message: bytes, ring: Sequence[Point], sig: RingSignature, base: Point) -> bool:
    """True iff `sig` is a valid LSAG on `message` by some member of `ring` with key image on `base`."""
    try:
        _check_inputs(message, ring, base)
    except RingSigError:
        return False
    if len(sig.s) != len(ring) or not is_valid_point(sig.key_image):
        return False
    if not 0 <= sig.c0 < N or not all(0 <= s < N for s in sig.s):  # canonical: no s + n twins
        return False
    h, image = _to_jac(base), _to_jac(sig.key_image)
    prefix = _prefix(message, base, sig.key_image, ring)
    c = sig.c0
    for p, s in zip(ring, sig.s, strict=True):
        left = add(multiply(G1, s), multiply(_to_jac(p), c))
        right = add(multiply(h, s), multiply(image, c))
        c = _challenge(prefix, left, right)
    return c == sig.c0


def linked(a: RingSignature, b_: RingSignature) -> bool:
    """Two signatures on the same scope come from the same key iff their key images are equal."""
    return a.key_image == b_.key_image


# ---- proof of possession (Schnorr), so only keys someone controls can join rings ----------


def prove_possession(key: KeyPair, context: bytes) -> tuple[int, int]:
    """Schnorr proof of knowledge of `key.secret`, bound to `context` (the registry binds chain,
    contract and owner address), so nobody can register a key they do not hold or replay a proof.
    Returns (c, s) with c = H(context, P, s*G + c*P)."""
    k = 1 + secrets.randbelow(N - 1)
    r = _to_affine(multiply(G1, k))
    c = possession_challenge(context, key.public, r)
    return c, (k - c * key.secret) % N


def possession_challenge(context: bytes, public: Point, r: Point) -> int:
    return int.from_bytes(keccak(context + b"".join(_word(w) for w in (*public, *r))), "big") % N


def verify_possession(public: Point, proof: tuple[int, int], context: bytes) -> bool:
    c, s = proof
    if not is_valid_point(public) or not (0 <= c < N and 0 <= s < N):
        return False
    r = add(multiply(G1, s), multiply(_to_jac(public), c))
    if is_inf(r):
        return False
    return possession_challenge(context, public, _to_affine(r)) == c
