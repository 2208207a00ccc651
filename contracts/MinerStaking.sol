// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title Miner staking and stake-weighted committee sampling (BCS-FL proof of stake).
/// @notice Miners stake ETH to be eligible for committees; a miner on a committee cannot request
/// to unstake before its duty ends, and unstaking then takes `unstakeDelay` seconds.
/// @dev Bounded work: the active stakes are kept in a Fenwick (binary indexed) tree over the
/// active list, so staking, unstaking and slashing cost O(log n) and a committee draw
/// O(size * log n) storage reads, however many miners join (n of 1,000 or 100,000 alike).
abstract contract MinerStaking is ReentrancyGuardTransient {
    struct StakeInfo {
        uint128 amount;
        uint64 unlockAt; // 0 while active
        uint32 index1; // position + 1 in the active list; 0 when not active
        uint32 dutyUntil; // end of the last committee duty (timestamp): no unstake request before
    }

    /// @notice Minimum stake to become an active miner, in wei.
    uint256 public immutable minStake;
    /// @notice Seconds between `requestUnstake` and `withdrawStake`.
    uint256 public immutable unstakeDelay;

    address[] internal _activeMiners;
    mapping(address => StakeInfo) internal _stakes;
    /// @dev Fenwick tree (1-based) over the stakes of `_activeMiners`; nodes above the list's
    /// length are stale and rebuilt when the list grows again.
    mapping(uint256 => uint256) private _tree;
    /// @dev Sum of the active stakes.
    uint256 internal _activeStake;
    /// @dev All stakes held, active or unlocking, for the escrow invariant.
    uint256 internal _totalStaked;

    /// @notice Emitted when `miner` adds `amount` wei, its stake becoming `total`.
    event Staked(address indexed miner, uint256 amount, uint256 total);
    /// @notice Emitted when `miner` leaves the active set; its stake unlocks at `unlockAt`.
    event UnstakeRequested(address indexed miner, uint256 unlockAt);
    /// @notice Emitted when `miner` withdraws its `amount` wei stake.
    event StakeWithdrawn(address indexed miner, uint256 amount);

    /// @notice The stake would stay below `minStake`.
    error FedLedgerStakeTooLow(address miner, uint256 stake, uint256 minStake);
    /// @notice The caller is not an active miner.
    error FedLedgerNotStaked(address miner);
    /// @notice The caller's stake is unlocking; withdraw it first.
    error FedLedgerUnstakePending(address miner, uint256 unlockAt);
    /// @notice The stake is still locked.
    error FedLedgerStakeLocked(address miner, uint256 unlockAt);
    /// @notice The miner sits on a committee whose round may still need it until `until`.
    error FedLedgerMinerOnDuty(address miner, uint256 until);

    constructor(uint256 minStake_, uint256 unstakeDelay_) {
        minStake = minStake_;
        unstakeDelay = unstakeDelay_;
    }

    /// @notice Stake (or add to the stake of) the caller. Emits a {Staked} event.
    function stake() external payable {
        StakeInfo storage s = _stakes[msg.sender];
        if (s.unlockAt != 0) revert FedLedgerUnstakePending(msg.sender, s.unlockAt);
        uint256 total = s.amount + msg.value;
        if (total < minStake || msg.value == 0) revert FedLedgerStakeTooLow(msg.sender, total, minStake);
        s.amount = uint128(total);
        _totalStaked += msg.value;
        _activeStake += msg.value;
        if (s.index1 == 0) {
            _activeMiners.push(msg.sender);
            uint256 k = _activeMiners.length;
            s.index1 = uint32(k);
            // a new last node: its own stake plus the nodes it covers
            uint256 node = msg.value;
            for (uint256 j = k - 1; j > k - (k & (~k + 1)); j -= j & (~j + 1)) {
                node += _tree[j];
            }
            _tree[k] = node;
        } else {
            _treeUpdate(s.index1, msg.value, 0);
        }
        emit Staked(msg.sender, msg.value, total);
    }

    /// @notice Leave the active miners; the stake can be withdrawn after `unstakeDelay`. Refused
    /// while the caller's committee duty lasts. Emits an {UnstakeRequested} event.
    function requestUnstake() external {
        StakeInfo storage s = _stakes[msg.sender];
        if (s.index1 == 0) revert FedLedgerNotStaked(msg.sender);
        if (block.timestamp < s.dutyUntil) revert FedLedgerMinerOnDuty(msg.sender, s.dutyUntil);
        // swap-and-pop keeps the active list dense; the tree follows
        uint256 i = s.index1;
        uint256 n = _activeMiners.length;
        address last = _activeMiners[n - 1];
        uint256 lastStake = _stakes[last].amount;
        if (i != n) _treeUpdate(i, lastStake, s.amount);
        _treeUpdate(n, 0, lastStake);
        _activeMiners[i - 1] = last;
        _stakes[last].index1 = uint32(i);
        _activeMiners.pop();
        _activeStake -= s.amount;
        s.index1 = 0;
        s.unlockAt = uint64(block.timestamp + unstakeDelay);
        emit UnstakeRequested(msg.sender, s.unlockAt);
    }

    /// @notice Withdraw an unlocked stake. Emits a {StakeWithdrawn} event.
    function withdrawStake() external nonReentrant {
        StakeInfo storage s = _stakes[msg.sender];
        if (s.unlockAt == 0) revert FedLedgerNotStaked(msg.sender);
        if (block.timestamp < s.unlockAt) revert FedLedgerStakeLocked(msg.sender, s.unlockAt);
        uint256 amount = s.amount;
        delete _stakes[msg.sender];
        _totalStaked -= amount;
        emit StakeWithdrawn(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    /// @notice Stake record of `miner`.
    /// @param miner The miner.
    function stakeOf(address miner) external view returns (StakeInfo memory) {
        return _stakes[miner];
    }

    /// @notice Active miners and their stakes, in the order committee sampling walks them. A view
    /// for agents and auditors (O(n)); no transaction calls it.
    function activeMiners() external view returns (address[] memory miners, uint256[] memory stakes) {
        miners = _activeMiners;
        stakes = new uint256[](miners.length);
        for (uint256 i = 0; i < miners.length; ++i) {
            stakes[i] = _stakes[miners[i]].amount;
        }
    }

    /// @notice Draw `size` distinct active miners with probability proportional to stake,
    /// without replacement: draw i picks r = keccak256(abi.encode(seed, i)) mod the stake not yet
    /// drawn and takes the first active miner whose cumulative undrawn stake exceeds r (a walk of
    /// the active list off chain; a descent of the stake tree here, O(size * log n)).
    /// @param seed Random seed (a round's seed).
    /// @param size Committee size; capped at the number of active miners.
    function drawCommittee(bytes32 seed, uint256 size) public view returns (address[] memory committee) {
        uint256 n = _activeMiners.length;
        if (size > n) size = n;
        committee = new address[](size);
        uint256[] memory takenPos = new uint256[](size);
        uint256[] memory takenStake = new uint256[](size);
        uint256 remaining = _activeStake;
        uint256 top = 1;
        while (top * 2 <= n) top *= 2;
        for (uint256 i = 0; i < size; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i))) % remaining;
            uint256 pos;
            for (uint256 step = top; step != 0; step >>= 1) {
                uint256 next = pos + step;
                if (next > n) continue;
                uint256 sum = _tree[next];
                for (uint256 j = 0; j < i; ++j) {
                    if (takenPos[j] > pos && takenPos[j] <= next) sum -= takenStake[j];
                }
                if (sum <= r) {
                    pos = next;
                    r -= sum;
                }
            }
            address m = _activeMiners[pos];
            uint256 st = _stakes[m].amount;
            committee[i] = m;
            takenPos[i] = pos + 1;
            takenStake[i] = st;
            remaining -= st;
        }
    }

    /// @dev Take `amount` wei of `miner`'s stake (slashing); the caller accounts for where it goes.
    function _takeStake(address miner, uint256 amount) internal {
        StakeInfo storage s = _stakes[miner];
        s.amount -= uint128(amount);
        _totalStaked -= amount;
        if (s.index1 != 0) {
            _activeStake -= amount;
            _treeUpdate(s.index1, 0, amount);
        }
    }

    function _treeUpdate(uint256 pos, uint256 add, uint256 sub) private {
        uint256 n = _activeMiners.length;
        for (uint256 k = pos; k <= n; k += k & (~k + 1)) {
            _tree[k] = _tree[k] + add - sub;
        }
    }
}
