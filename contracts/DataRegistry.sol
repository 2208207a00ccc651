// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {RingVerifier} from "./RingVerifier.sol";

/// @title Anonymous data sharing (Model Chain): ring-signed data transactions and a seeded,
/// reproducible split of the shared pool into training data and the common test set.
/// @notice A data transaction carries the data's CID and digest, a timestamp, a ring of registered
/// keys and an LSAG ring signature: anyone can check that some ring member shared it, not which.
/// Linkability is scoped per (pool, data digest): the key image base is hashToPoint(keccak(SCOPE_TAG,
/// chainid, this, poolId, digest)), so one key can share one item once per pool (replays and
/// re-signing with another ring are refused), while its shares of different items stay unlinkable.
/// Acceptance rules (Model Chain): a timestamp at most `maxFutureSkew` (L) seconds ahead of the
/// block time; nothing stamped at or before the cut-off is accepted once the split has started
/// (block time past the cut-off), and a timestamp after the cut-off belongs to a later pool.
/// The split is seeded by the hash of a block mined after the cut-off; share i is in the test set
/// iff keccak(seed, digest_i) mod 100 < testPercent (by digest, so copies of one item never land on
/// both sides).
/// @dev The share transaction's sender is public: submit through a relayer or a fresh address,
/// never the address that registered the key. The seed block's proposer can grind its hash
/// (reorder transactions, pick extra data) and so bias the split; nobody else can predict it at
/// the cut-off, when the pool is already frozen.
contract DataRegistry {
    /// @notice Smallest ring: one member would name the sharer.
    uint256 public constant MIN_RING = 2;
    /// @notice Largest ring (gas grows ~25k per member).
    uint256 public constant MAX_RING = 64;
    /// @notice Upper bound of a pool's L (seconds a timestamp may be ahead of the block time).
    uint32 public constant MAX_FUTURE_SKEW = 1 days;
    /// @notice The seed block is this many blocks after the `startSplit` block.
    uint64 public constant SEED_DELAY = 1;
    /// @notice Domain tags of the signed message, the linkability scope, key possession proofs
    /// and the split seed.
    bytes32 public constant SHARE_TAG = keccak256("fedledger.DataRegistry.share.v1");
    bytes32 public constant SCOPE_TAG = keccak256("fedledger.DataRegistry.scope.v1");
    bytes32 public constant POSSESSION_TAG = keccak256("fedledger.DataRegistry.possession.v1");
    bytes32 public constant SPLIT_TAG = keccak256("fedledger.DataRegistry.split.v1");

    /// @notice An LSAG signature: first challenge, one response per ring member, key image.
    struct RingSignature {
        uint256 c0;
        uint256[] s;
        uint256[2] keyImage;
    }

    struct Pool {
        address creator;
        uint64 cutoff;
        uint8 testPercent;
        uint32 maxFutureSkew;
        uint32 shareCount;
        uint64 seedBlock; // 0 until startSplit
        bytes32 seed; // 0 until finalizeSplit
    }

    uint256[2][] private _keys;
    mapping(bytes32 => uint256) private _keyIndex1; // keccak(x, y) -> key id + 1
    Pool[] private _pools;
    mapping(uint256 => mapping(uint256 => bytes32)) private _digests; // pool -> share id -> digest
    mapping(bytes32 => bool) private _usedKeyImages; // keccak(I.x, I.y) -> used

    /// @notice Emitted when `owner` registers ring key `keyId` = (x, y).
    event KeyRegistered(uint256 indexed keyId, address indexed owner, uint256 x, uint256 y);
    /// @notice Emitted when a data pool is opened.
    event PoolCreated(
        uint256 indexed poolId, address indexed creator, uint64 cutoff, uint8 testPercent, uint32 maxFutureSkew
    );
    /// @notice Emitted for every accepted data transaction (the signature itself is in the calldata).
    event DataShared(
        uint256 indexed poolId,
        uint256 indexed shareId,
        bytes32 indexed keyImageHash,
        string cid,
        bytes32 digest,
        uint64 timestamp,
        uint256[] ringIds,
        uint256[2] keyImage
    );
    /// @notice Emitted when the split of `poolId` is armed: its seed is the hash of block `seedBlock`.
    event SplitStarted(uint256 indexed poolId, uint64 seedBlock, address caller);
    /// @notice Emitted when the split seed of `poolId` is fixed.
    event SplitFinalized(uint256 indexed poolId, bytes32 seed, uint64 seedBlock, uint32 shareCount);

    /// @notice Not a BN254 G1 point (or infinity, or unreduced coordinates).
    error InvalidPublicKey(uint256 x, uint256 y);
    /// @notice This public key is already registered as `keyId`.
    error KeyAlreadyRegistered(uint256 keyId);
    /// @notice The Schnorr proof of possession of the key's secret does not verify for the caller.
    error InvalidPossessionProof();
    /// @notice No registered key has this id.
    error UnknownKey(uint256 keyId);
    /// @notice No pool has this id.
    error UnknownPool(uint256 poolId);
    /// @notice Cut-off not in the future, test percentage outside 1..99, or L outside 1..MAX_FUTURE_SKEW.
    error InvalidPoolParameters();
    /// @notice Empty CID.
    error EmptyCID();
    /// @notice Ring size outside MIN_RING..MAX_RING.
    error InvalidRingSize(uint256 size);
    /// @notice Ring key ids must be strictly increasing (no duplicates; order carries no information).
    error RingNotSorted(uint256 position);
    /// @notice The number of responses differs from the ring size.
    error SignatureLengthMismatch(uint256 ringSize, uint256 responses);
    /// @notice The key image is not a G1 point.
    error InvalidKeyImage();
    /// @notice The ring signature does not verify for this pool, CID, digest, timestamp and ring.
    error InvalidRingSignature();
    /// @notice This key already shared this item in this pool (same key image).
    error KeyImageUsed(uint256 poolId, bytes32 keyImageHash);
    /// @notice Acceptance rule 1: the timestamp is more than L seconds ahead of the block time.
    error TimestampTooFarAhead(uint64 timestamp, uint256 blockTime, uint32 maxFutureSkew);
    /// @notice Acceptance rule 2: the split has started (block time past the cut-off), so nothing
    /// stamped at or before the cut-off is accepted any more.
    error SplitAlreadyStarted(uint256 poolId, uint64 cutoff);
    /// @notice The timestamp is after the pool's cut-off: the item belongs to a later pool.
    error TimestampAfterCutoff(uint64 timestamp, uint64 cutoff);
    /// @notice The split cannot start before the cut-off.
    error CutoffNotReached(uint256 poolId, uint64 cutoff);
    /// @notice The split is armed and its seed block is not yet stale.
    error SplitPending(uint256 poolId, uint64 seedBlock);
    /// @notice finalizeSplit before startSplit.
    error SplitNotStarted(uint256 poolId);
    /// @notice The seed block is not mined yet.
    error SeedBlockNotMined(uint256 poolId, uint64 seedBlock);
    /// @notice The seed block is older than 256 blocks: call startSplit again.
    error SeedBlockExpired(uint256 poolId, uint64 seedBlock);
    /// @notice The split seed is already fixed.
    error SplitAlreadyFinalized(uint256 poolId);
    /// @notice The split seed is not fixed yet.
    error SplitNotFinalized(uint256 poolId);
    /// @notice No share has this id in this pool.
    error UnknownShare(uint256 poolId, uint256 shareId);

    // ---- keys ---------------------------------------------------------------------------------

    /// @notice Register a ring key, proving possession of its secret so that rings only contain
    /// keys someone controls. Registering is public (the caller's address is linked to the key);
    /// the anonymity is among the ring's keys when sharing.
    /// @param pub Public key (x, y) on BN254 G1.
    /// @param popC Schnorr challenge c = keccak(abi.encode(POSSESSION_TAG, chainid, this, caller), pub, R) mod n.
    /// @param popS Schnorr response, R = popS*G + popC*pub.
    /// @return keyId The new key's id.
    /// @dev Emits a {KeyRegistered} event.
    function registerKey(uint256[2] calldata pub, uint256 popC, uint256 popS) external returns (uint256 keyId) {
        if (!RingVerifier.isOnCurve(pub[0], pub[1])) revert InvalidPublicKey(pub[0], pub[1]);
        bytes32 h = keccak256(abi.encode(pub));
        uint256 existing = _keyIndex1[h];
        if (existing != 0) revert KeyAlreadyRegistered(existing - 1);
        bytes memory context = abi.encode(POSSESSION_TAG, block.chainid, address(this), msg.sender);
        if (!RingVerifier.verifyPossession(context, pub, popC, popS)) revert InvalidPossessionProof();
        keyId = _keys.length;
        _keys.push(pub);
        _keyIndex1[h] = keyId + 1;
        emit KeyRegistered(keyId, msg.sender, pub[0], pub[1]);
    }

    // ---- pools and data transactions -----------------------------------------------------------

    /// @notice Open a data pool.
    /// @param cutoff Last timestamp a share may carry; the split can start after it.
    /// @param testPercent Percentage (1..99) of shares that go to the common test set.
    /// @param maxFutureSkew L: seconds a share's timestamp may be ahead of the block time.
    /// @return poolId The new pool's id.
    /// @dev Emits a {PoolCreated} event.
    function createPool(uint64 cutoff, uint8 testPercent, uint32 maxFutureSkew) external returns (uint256 poolId) {
        if (
            cutoff <= block.timestamp || testPercent == 0 || testPercent >= 100 || maxFutureSkew == 0
                || maxFutureSkew > MAX_FUTURE_SKEW
        ) revert InvalidPoolParameters();
        poolId = _pools.length;
        _pools.push(
            Pool({
                creator: msg.sender,
                cutoff: cutoff,
                testPercent: testPercent,
                maxFutureSkew: maxFutureSkew,
                shareCount: 0,
                seedBlock: 0,
                seed: bytes32(0)
            })
        );
        emit PoolCreated(poolId, msg.sender, cutoff, testPercent, maxFutureSkew);
    }

    /// @notice Share a data item anonymously: CID and digest on chain, bytes on IPFS, signed by some
    /// member of `ringIds`. Anyone may submit it (use a relayer or a fresh address).
    /// @param poolId The pool.
    /// @param cid IPFS CID of the data.
    /// @param digest sha256 of the data.
    /// @param timestamp The sharer's timestamp (acceptance rules above).
    /// @param ringIds Registered key ids, strictly increasing, MIN_RING..MAX_RING of them.
    /// @param sig LSAG signature on shareMessage(poolId, cid, digest, timestamp) with the key image
    /// on scopeBase(poolId, digest).
    /// @return shareId The share's id within the pool.
    /// @dev Emits a {DataShared} event.
    function share(
        uint256 poolId,
        string calldata cid,
        bytes32 digest,
        uint64 timestamp,
        uint256[] calldata ringIds,
        RingSignature calldata sig
    ) external returns (uint256 shareId) {
        Pool storage pool = _pool(poolId);
        if (bytes(cid).length == 0) revert EmptyCID();
        uint64 cutoff = pool.cutoff;
        uint32 skew = pool.maxFutureSkew;
        if (timestamp > block.timestamp + skew) revert TimestampTooFarAhead(timestamp, block.timestamp, skew);
        if (block.timestamp > cutoff) revert SplitAlreadyStarted(poolId, cutoff);
        if (timestamp > cutoff) revert TimestampAfterCutoff(timestamp, cutoff);
        bytes32 imageHash = keccak256(abi.encode(sig.keyImage));
        if (_usedKeyImages[imageHash]) revert KeyImageUsed(poolId, imageHash);
        if (!RingVerifier.isOnCurve(sig.keyImage[0], sig.keyImage[1])) revert InvalidKeyImage();
        if (!_verify(poolId, cid, digest, timestamp, ringIds, sig)) revert InvalidRingSignature();

        _usedKeyImages[imageHash] = true;
        shareId = pool.shareCount;
        pool.shareCount = uint32(shareId + 1);
        _digests[poolId][shareId] = digest;
        emit DataShared(poolId, shareId, imageHash, cid, digest, timestamp, ringIds, sig.keyImage);
    }

    /// @notice Arm the split of a pool after its cut-off: the seed will be the hash of block
    /// `block.number + SEED_DELAY`, unknown to everyone now. Anyone may call it; again if the seed
    /// block went stale (older than 256 blocks) before finalizeSplit.
    /// @param poolId The pool.
    /// @dev Emits a {SplitStarted} event.
    function startSplit(uint256 poolId) external {
        Pool storage pool = _pool(poolId);
        if (block.timestamp <= pool.cutoff) revert CutoffNotReached(poolId, pool.cutoff);
        if (pool.seed != bytes32(0)) revert SplitAlreadyFinalized(poolId);
        uint64 armed = pool.seedBlock;
        if (armed != 0 && block.number <= uint256(armed) + 256) revert SplitPending(poolId, armed);
        uint64 seedBlock = uint64(block.number) + SEED_DELAY;
        pool.seedBlock = seedBlock;
        emit SplitStarted(poolId, seedBlock, msg.sender);
    }

    /// @notice Fix the split seed = keccak(SPLIT_TAG, blockhash(seedBlock), this, poolId), once the
    /// seed block is mined (and at most 256 blocks old). Anyone may call it.
    /// @param poolId The pool.
    /// @return seed The split seed.
    /// @dev Emits a {SplitFinalized} event.
    function finalizeSplit(uint256 poolId) external returns (bytes32 seed) {
        Pool storage pool = _pool(poolId);
        if (pool.seed != bytes32(0)) revert SplitAlreadyFinalized(poolId);
        uint64 seedBlock = pool.seedBlock;
        if (seedBlock == 0) revert SplitNotStarted(poolId);
        if (block.number <= seedBlock) revert SeedBlockNotMined(poolId, seedBlock);
        bytes32 bh = blockhash(seedBlock);
        if (bh == bytes32(0)) revert SeedBlockExpired(poolId, seedBlock);
        seed = splitSeed(bh, poolId);
        pool.seed = seed;
        emit SplitFinalized(poolId, seed, seedBlock, pool.shareCount);
    }

    // ---- reads -----------------------------------------------------------------------------------

    /// @notice Number of registered keys (ids are 0..keyCount-1).
    function keyCount() external view returns (uint256) {
        return _keys.length;
    }

    /// @notice Public key of `keyId`.
    function keyOf(uint256 keyId) external view returns (uint256 x, uint256 y) {
        if (keyId >= _keys.length) revert UnknownKey(keyId);
        return (_keys[keyId][0], _keys[keyId][1]);
    }

    /// @notice Id of a registered public key.
    function keyIdOf(uint256[2] calldata pub) external view returns (bool registered, uint256 keyId) {
        uint256 i1 = _keyIndex1[keccak256(abi.encode(pub))];
        return (i1 != 0, i1 == 0 ? 0 : i1 - 1);
    }

    /// @notice Number of pools (ids are 0..poolCount-1).
    function poolCount() external view returns (uint256) {
        return _pools.length;
    }

    /// @notice Everything about a pool.
    function poolInfo(uint256 poolId) external view returns (Pool memory) {
        return _pool(poolId);
    }

    /// @notice Digest of share `shareId` of `poolId`.
    function shareDigest(uint256 poolId, uint256 shareId) external view returns (bytes32) {
        if (shareId >= _pool(poolId).shareCount) revert UnknownShare(poolId, shareId);
        return _digests[poolId][shareId];
    }

    /// @notice Whether a share is in the pool's common test set (else it is training data).
    function isTest(uint256 poolId, uint256 shareId) external view returns (bool) {
        Pool storage pool = _pool(poolId);
        if (pool.seed == bytes32(0)) revert SplitNotFinalized(poolId);
        if (shareId >= pool.shareCount) revert UnknownShare(poolId, shareId);
        return uint256(keccak256(abi.encode(pool.seed, _digests[poolId][shareId]))) % 100 < pool.testPercent;
    }

    /// @notice Whether a key image has been used (the key already shared that item in that pool).
    function keyImageUsed(uint256[2] calldata keyImage) external view returns (bool) {
        return _usedKeyImages[keccak256(abi.encode(keyImage))];
    }

    /// @notice The 32-byte message a share's ring signature signs.
    function shareMessage(uint256 poolId, string calldata cid, bytes32 digest, uint64 timestamp)
        public
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(SHARE_TAG, block.chainid, address(this), poolId, keccak256(bytes(cid)), digest, timestamp));
    }

    /// @notice The key-image base point of the linkability scope (pool, digest).
    function scopeBase(uint256 poolId, bytes32 digest) public view returns (uint256 x, uint256 y) {
        return RingVerifier.hashToPoint(keccak256(abi.encode(SCOPE_TAG, block.chainid, address(this), poolId, digest)));
    }

    /// @notice The split seed a block hash gives for a pool (so anyone can recompute it).
    function splitSeed(bytes32 blockHash, uint256 poolId) public view returns (bytes32) {
        return keccak256(abi.encode(SPLIT_TAG, blockHash, address(this), poolId));
    }

    /// @notice Check a share's ring signature without submitting it (no window or key-image checks).
    /// @return True iff the ring is well formed and the signature verifies.
    function verifyShare(
        uint256 poolId,
        string calldata cid,
        bytes32 digest,
        uint64 timestamp,
        uint256[] calldata ringIds,
        RingSignature calldata sig
    ) external view returns (bool) {
        _pool(poolId);
        return _verify(poolId, cid, digest, timestamp, ringIds, sig);
    }

    // ---- internals -------------------------------------------------------------------------------

    function _pool(uint256 poolId) private view returns (Pool storage) {
        if (poolId >= _pools.length) revert UnknownPool(poolId);
        return _pools[poolId];
    }

    /// @dev Ring checks (size, sorted registered ids, one response per member) revert with their
    /// own error; a bad signature returns false.
    function _verify(
        uint256 poolId,
        string calldata cid,
        bytes32 digest,
        uint64 timestamp,
        uint256[] calldata ringIds,
        RingSignature calldata sig
    ) private view returns (bool) {
        uint256 k = ringIds.length;
        if (k < MIN_RING || k > MAX_RING) revert InvalidRingSize(k);
        if (sig.s.length != k) revert SignatureLengthMismatch(k, sig.s.length);
        uint256 nKeys = _keys.length;
        uint256[] memory ring = new uint256[](2 * k);
        for (uint256 i = 0; i < k; ++i) {
            uint256 id = ringIds[i];
            if (i > 0 && id <= ringIds[i - 1]) revert RingNotSorted(i);
            if (id >= nKeys) revert UnknownKey(id);
            ring[2 * i] = _keys[id][0];
            ring[2 * i + 1] = _keys[id][1];
        }
        (uint256 hx, uint256 hy) = scopeBase(poolId, digest);
        return RingVerifier.verify(
            shareMessage(poolId, cid, digest, timestamp), ring, [hx, hy], sig.keyImage, sig.c0, sig.s
        );
    }
}
