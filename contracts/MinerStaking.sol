// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title Miner staking and stake-weighted committee sampling (BCS-FL proof of stake).
/// @notice Miners stake ETH to be eligible for committees; unstaking takes `unstakeDelay`
/// seconds so a miner cannot leave in the middle of the rounds it sits on.
abstract contract MinerStaking is ReentrancyGuardTransient {
    struct StakeInfo {
        uint128 amount;
        uint64 unlockAt; // 0 while active
        uint32 index1; // position + 1 in the active list; 0 when not active
    }

    /// @notice Minimum stake to become an active miner, in wei.
    uint256 public immutable minStake;
    /// @notice Seconds between `requestUnstake` and `withdrawStake`.
    uint256 public immutable unstakeDelay;

    address[] internal _activeMiners;
    mapping(address => StakeInfo) internal _stakes;
    /// @dev All stakes held, active or unlocking, for the escrow invariant.
    uint256 internal _totalStaked;

    /// @notice Emitted when `miner` adds `amount` wei, its stake becoming `total`.
    event Staked(address indexed miner, uint256 amount, uint256 total);
    /// @notice Emitted when `miner` leaves the active set; its stake unlocks at `unlockAt`.
    event UnstakeRequested(address indexed miner, uint256 unlockAt);
    /// @notice Emitted when `miner` withdraws its `amount` wei stake.
    event StakeWithdrawn(address indexed miner, uint256 amount);

    /// @notice The stake would stay below `minStake`.
    error StakeTooLow(address miner, uint256 stake, uint256 minStake);
    /// @notice The caller is not an active miner.
    error NotStaked(address miner);
    /// @notice The caller's stake is unlocking; withdraw it first.
    error UnstakePending(address miner, uint256 unlockAt);
    /// @notice The stake is still locked.
    error StakeLocked(address miner, uint256 unlockAt);

    constructor(uint256 minStake_, uint256 unstakeDelay_) {
        minStake = minStake_;
        unstakeDelay = unstakeDelay_;
    }

    /// @notice Stake (or add to the stake of) the caller. Emits a {Staked} event.
    function stake() external payable {
        StakeInfo storage s = _stakes[msg.sender];
        if (s.unlockAt != 0) revert UnstakePending(msg.sender, s.unlockAt);
        uint256 total = s.amount + msg.value;
        if (total < minStake || msg.value == 0) revert StakeTooLow(msg.sender, total, minStake);
        s.amount = uint128(total);
        _totalStaked += msg.value;
        if (s.index1 == 0) {
            _activeMiners.push(msg.sender);
            s.index1 = uint32(_activeMiners.length);
        }
        emit Staked(msg.sender, msg.value, total);
    }

    /// @notice Leave the active miners; the stake can be withdrawn after `unstakeDelay`.
    /// Emits an {UnstakeRequested} event.
    function requestUnstake() external {
        StakeInfo storage s = _stakes[msg.sender];
        if (s.index1 == 0) revert NotStaked(msg.sender);
        // swap-and-pop keeps the active list dense
        uint256 i = s.index1 - 1;
        address last = _activeMiners[_activeMiners.length - 1];
        _activeMiners[i] = last;
        _stakes[last].index1 = uint32(i + 1);
        _activeMiners.pop();
        s.index1 = 0;
        s.unlockAt = uint64(block.timestamp + unstakeDelay);
        emit UnstakeRequested(msg.sender, s.unlockAt);
    }

    /// @notice Withdraw an unlocked stake. Emits a {StakeWithdrawn} event.
    function withdrawStake() external nonReentrant {
        StakeInfo storage s = _stakes[msg.sender];
        if (s.unlockAt == 0) revert NotStaked(msg.sender);
        if (block.timestamp < s.unlockAt) revert StakeLocked(msg.sender, s.unlockAt);
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

    /// @notice Active miners and their stakes, in the order committee sampling walks them.
    function activeMiners() public view returns (address[] memory miners, uint256[] memory stakes) {
        miners = _activeMiners;
        stakes = new uint256[](miners.length);
        for (uint256 i = 0; i < miners.length; ++i) {
            stakes[i] = _stakes[miners[i]].amount;
        }
    }

    /// @notice Draw `size` distinct active miners with probability proportional to stake,
    /// without replacement: draw i picks r = keccak256(abi.encode(seed, i)) mod remaining stake
    /// and walks the active list. Reproducible off chain from the seed and the active list.
    /// @param seed Random seed (a round's seed).
    /// @param size Committee size; capped at the number of active miners.
    function drawCommittee(bytes32 seed, uint256 size) public view returns (address[] memory committee) {
        (address[] memory miners, uint256[] memory stakes) = activeMiners();
        uint256 m = miners.length;
        if (size > m) size = m;
        committee = new address[](size);
        uint256 remaining;
        for (uint256 j = 0; j < m; ++j) {
            remaining += stakes[j];
        }
        bool[] memory taken = new bool[](m);
        for (uint256 i = 0; i < size; ++i) {
            uint256 r = uint256(keccak256(abi.encode(seed, i))) % remaining;
            for (uint256 j = 0; j < m; ++j) {
                if (taken[j]) continue;
                if (r < stakes[j]) {
                    taken[j] = true;
                    committee[i] = miners[j];
                    remaining -= stakes[j];
                    break;
                }
                r -= stakes[j];
            }
        }
    }
}
