// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {MinerStaking} from "./MinerStaking.sol";
import {RoundProtocol} from "./RoundProtocol.sol";

/// @title fedledger: tasks, data owners, miners and rounds of blockchain-based federated learning.
/// @notice One deployed contract assembled from one-concern modules (TaskEscrow, ClientRegistry,
/// MinerStaking, RoundProtocol, PullPayments). They share storage instead of calling each other,
/// which keeps a client's per-round transactions cheap (no cross-contract calls).
/// @dev Escrow invariant: address(this).balance == unpaid credits + unspent escrow + stakes.
contract FedLedger is RoundProtocol {
    /// @param minStake_ Minimum miner stake, wei.
    /// @param unstakeDelay_ Seconds a stake stays locked after `requestUnstake`.
    constructor(uint256 minStake_, uint256 unstakeDelay_) MinerStaking(minStake_, unstakeDelay_) {}

    /// @notice Stakes held (active and unlocking), in wei.
    function totalStaked() external view returns (uint256) {
        return _totalStaked;
    }
}
