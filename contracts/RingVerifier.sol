// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Linkable ring signatures (LSAG) over BN254 G1, verified with the EVM precompiles.
/// @notice LSAG of Liu, Wei and Wong (ACISP 2004) with a scope-derived key-image base:
/// a signature (c0, s[0..k-1], I) on message m for ring P[0..k-1] and base H is valid iff
/// the challenges c[i+1] = keccak(prefix, s[i]G + c[i]P[i], s[i]H + c[i]I) mod n close the ring
/// (c[k] == c0), with prefix = keccak(m, H, I, P[0], ..., P[k-1]). Same key + same H -> same I.
/// Mirror of `fedledger/core/ringsig.py`; the two must change together.
/// @dev Cost per ring member: 4 ecMul (0x07, 6,000 gas each) + 2 ecAdd (0x06, 150 each) + one
/// keccak. hashToPoint uses the modexp precompile (0x05) for the square root. G1 has cofactor 1,
/// so on-curve points (except infinity) are group members; ecMul rejects anything off the curve.
library RingVerifier {
    /// @dev BN254 base field modulus; P % 4 == 3, so sqrt(a) = a^((P+1)/4).
    uint256 internal constant P = 21888242871839275222246405745257275088696311157297823662689037894645226208583;
    /// @dev BN254 group order.
    uint256 internal constant N = 21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 internal constant SQRT_EXP = (P + 1) / 4;
    /// @dev Each try of hashToPoint succeeds with probability ~1/2: failing 256 times does not happen.
    uint256 internal constant MAX_HASH_TRIES = 256;

    /// @notice hashToPoint found no point (probability 2^-256).
    error RingHashToPointFailed(bytes32 seed);
    /// @notice The modexp precompile (0x05) failed.
    error RingModexpFailed();

    /// @notice Whether (x, y) is a point of BN254 G1 other than infinity, with reduced coordinates.
    function isOnCurve(uint256 x, uint256 y) internal pure returns (bool) {
        if (x >= P || y >= P || (x == 0 && y == 0)) return false;
        return mulmod(y, y, P) == addmod(mulmod(mulmod(x, x, P), x, P), 3, P);
    }

    /// @notice Try-and-increment map to G1: x = keccak(seed, uint256(ctr)) mod P for ctr = 0, 1, ...
    /// until x^3 + 3 is a square; returns (x, the even square root). Nobody knows its discrete log.
    function hashToPoint(bytes32 seed) internal view returns (uint256 x, uint256 y) {
        for (uint256 ctr = 0; ctr < MAX_HASH_TRIES; ++ctr) {
            x = uint256(keccak256(abi.encodePacked(seed, ctr))) % P;
            uint256 rhs = addmod(mulmod(mulmod(x, x, P), x, P), 3, P);
            y = _modexp(rhs, SQRT_EXP);
            if (mulmod(y, y, P) == rhs) {
                if (y & 1 == 1) y = P - y;
                return (x, y);
            }
        }
        revert RingHashToPointFailed(seed);
    }

    /// @notice Verify an LSAG signature.
    /// @param message 32-byte message hash.
    /// @param ring Ring members' public keys, flattened: x0, y0, x1, y1, ... (on-curve: the caller
    /// checks this when keys are registered).
    /// @param base Key-image base point H (from hashToPoint of the linkability scope).
    /// @param keyImage The signer's key image I = x*H.
    /// @param c0 First challenge.
    /// @param s One response per ring member.
    /// @return ok True iff the signature is valid and canonical (c0 and every s[i] below N).
    function verify(
        bytes32 message,
        uint256[] memory ring,
        uint256[2] memory base,
        uint256[2] memory keyImage,
        uint256 c0,
        uint256[] calldata s
    ) internal view returns (bool ok) {
        uint256 k = s.length;
        if (k == 0 || ring.length != 2 * k || c0 >= N) return false;
        if (!isOnCurve(keyImage[0], keyImage[1]) || !isOnCurve(base[0], base[1])) return false;
        bytes32 prefix = keccak256(abi.encodePacked(message, base, keyImage, ring));
        ok = true;
        assembly ("memory-safe") {
            // Scratch past the free-memory pointer (never allocated, so nothing else uses it):
            // [0x00, 0x60) ecMul input, [0x80, 0x100) two products (ecAdd input),
            // [0x100, 0x1a0) hash input: prefix, L.x, L.y, R.x, R.y.
            let buf := mload(0x40)
            mstore(add(buf, 0x100), prefix)
            let c := c0
            let hx := mload(base)
            let hy := mload(add(base, 0x20))
            let ix := mload(keyImage)
            let iy := mload(add(keyImage, 0x20))
            let ringData := add(ring, 0x20)
            for { let i := 0 } lt(i, k) { i := add(i, 1) } {
                let si := calldataload(add(s.offset, shl(5, i)))
                if iszero(lt(si, N)) { ok := 0 }
                // L = s_i*G + c*P_i
                mstore(buf, 1)
                mstore(add(buf, 0x20), 2)
                mstore(add(buf, 0x40), si)
                ok := and(ok, staticcall(gas(), 0x07, buf, 0x60, add(buf, 0x80), 0x40))
                let member := add(ringData, shl(6, i))
                mstore(buf, mload(member))
                mstore(add(buf, 0x20), mload(add(member, 0x20)))
                mstore(add(buf, 0x40), c)
                ok := and(ok, staticcall(gas(), 0x07, buf, 0x60, add(buf, 0xc0), 0x40))
                ok := and(ok, staticcall(gas(), 0x06, add(buf, 0x80), 0x80, add(buf, 0x120), 0x40))
                // R = s_i*H + c*I
                mstore(buf, hx)
                mstore(add(buf, 0x20), hy)
                mstore(add(buf, 0x40), si)
                ok := and(ok, staticcall(gas(), 0x07, buf, 0x60, add(buf, 0x80), 0x40))
                mstore(buf, ix)
                mstore(add(buf, 0x20), iy)
                mstore(add(buf, 0x40), c)
                ok := and(ok, staticcall(gas(), 0x07, buf, 0x60, add(buf, 0xc0), 0x40))
                ok := and(ok, staticcall(gas(), 0x06, add(buf, 0x80), 0x80, add(buf, 0x160), 0x40))
                c := mod(keccak256(add(buf, 0x100), 0xa0), N)
            }
            ok := and(ok, eq(c, c0))
        }
    }

    /// @notice Schnorr proof of knowledge of the secret key of `pub`: R = s*G + c*pub and
    /// c == keccak(context, pub, R) mod N.
    function verifyPossession(bytes memory context, uint256[2] memory pub, uint256 c, uint256 s)
        internal
        view
        returns (bool)
    {
        if (c >= N || s >= N || !isOnCurve(pub[0], pub[1])) return false;
        (bool ok1, uint256 ax, uint256 ay) = _mul(1, 2, s);
        (bool ok2, uint256 bx, uint256 by) = _mul(pub[0], pub[1], c);
        (bool ok3, uint256 rx, uint256 ry) = _add(ax, ay, bx, by);
        if (!(ok1 && ok2 && ok3) || (rx == 0 && ry == 0)) return false;
        return uint256(keccak256(abi.encodePacked(context, pub, rx, ry))) % N == c;
    }

    function _mul(uint256 x, uint256 y, uint256 scalar) private view returns (bool ok, uint256 rx, uint256 ry) {
        assembly ("memory-safe") {
            let buf := mload(0x40)
            mstore(buf, x)
            mstore(add(buf, 0x20), y)
            mstore(add(buf, 0x40), scalar)
            ok := staticcall(gas(), 0x07, buf, 0x60, buf, 0x40)
            rx := mload(buf)
            ry := mload(add(buf, 0x20))
        }
    }

    function _add(uint256 ax, uint256 ay, uint256 bx, uint256 by) private view returns (bool ok, uint256 rx, uint256 ry) {
        assembly ("memory-safe") {
            let buf := mload(0x40)
            mstore(buf, ax)
            mstore(add(buf, 0x20), ay)
            mstore(add(buf, 0x40), bx)
            mstore(add(buf, 0x60), by)
            ok := staticcall(gas(), 0x06, buf, 0x80, buf, 0x40)
            rx := mload(buf)
            ry := mload(add(buf, 0x20))
        }
    }

    /// @dev base^e mod P with the modexp precompile (0x05).
    function _modexp(uint256 base_, uint256 e) private view returns (uint256 r) {
        bool ok;
        assembly ("memory-safe") {
            let buf := mload(0x40)
            mstore(buf, 0x20)
            mstore(add(buf, 0x20), 0x20)
            mstore(add(buf, 0x40), 0x20)
            mstore(add(buf, 0x60), base_)
            mstore(add(buf, 0x80), e)
            mstore(add(buf, 0xa0), P)
            ok := staticcall(gas(), 0x05, buf, 0xc0, buf, 0x20)
            r := mload(buf)
        }
        if (!ok) revert RingModexpFailed();
    }
}
