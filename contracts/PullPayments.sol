// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title Pull payments: rewards and refunds are credited, then withdrawn by their owner.
/// @dev OpenZeppelin 5 removed `PullPayment`/`Escrow`, so this is our own small version:
/// checks-effects-interactions plus a transient reentrancy guard.
abstract contract PullPayments is ReentrancyGuardTransient {
    /// @notice Why a payment was credited.
    enum CreditKind {
        ClientReward,
        WinnerBonus,
        CommitteeReward,
        EscrowRefund
    }

    mapping(address => uint256) private _credits;
    /// @dev Sum of all unpaid credits, for the escrow invariant.
    uint256 internal _totalCredits;

    /// @notice Emitted when `amount` wei is credited to `payee` for task `taskId`.
    event PaymentCredited(address indexed payee, uint256 indexed taskId, uint256 amount, CreditKind kind);
    /// @notice Emitted when `payee` withdraws `amount` wei.
    event PaymentWithdrawn(address indexed payee, uint256 amount);

    /// @notice The caller has no credit to withdraw.
    /// @param payee The caller.
    error FedLedgerNothingToWithdraw(address payee);

    /// @notice Unpaid credit of `payee`, in wei.
    /// @param payee The account to look up.
    function creditOf(address payee) external view returns (uint256) {
        return _credits[payee];
    }

    /// @notice Withdraw all of the caller's credit. Emits a {PaymentWithdrawn} event.
    function withdraw() external nonReentrant {
        uint256 amount = _credits[msg.sender];
        if (amount == 0) revert FedLedgerNothingToWithdraw(msg.sender);
        _credits[msg.sender] = 0;
        _totalCredits -= amount;
        emit PaymentWithdrawn(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    function _credit(address payee, uint256 taskId, uint256 amount, CreditKind kind) internal {
        if (amount == 0) return;
        _credits[payee] += amount;
        _totalCredits += amount;
        emit PaymentCredited(payee, taskId, amount, kind);
    }
}
