// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {PullPayments} from "./PullPayments.sol";
import {Mechanism, TaskSpec, TaskStatus} from "./FedLedgerTypes.sol";

/// @title Task publication with reward escrow.
/// @notice A requester publishes a task with its model, data, schedule and mechanism, escrowing
/// the reward of every round. It may cancel before the start and reclaim unspent escrow after
/// the end.
abstract contract TaskEscrow is PullPayments {
    struct Task {
        address requester;
        TaskStatus status;
        uint32 currentRound; // 0 before the start
        uint64 publishedAt;
        uint256 escrow; // unspent reward, wei
        string globalCID; // current global model (initial weights until round 1 finalises)
        bytes32 globalDigest;
        TaskSpec spec;
        Mechanism mech;
    }

    /// @notice Number of tasks published; task ids are 1..taskCount.
    uint256 public taskCount;
    mapping(uint256 => Task) internal _tasks;
    /// @dev Sum of all tasks' unspent escrow, for the escrow invariant.
    uint256 internal _totalEscrow;

    /// @notice Emitted when `requester` publishes task `taskId` escrowing `escrow` wei.
    event TaskPublished(
        uint256 indexed taskId, address indexed requester, uint256 escrow, string modelSpec, string datasetId, string defence
    );
    /// @notice Emitted when the requester cancels task `taskId` before its start.
    event TaskCancelled(uint256 indexed taskId, uint256 refund);
    /// @notice Emitted when the requester reclaims `amount` wei of unspent escrow after the end.
    event EscrowReclaimed(uint256 indexed taskId, uint256 amount);

    /// @notice Which task parameter is out of range (see {FedLedgerInvalidTaskParameter}).
    enum TaskParameter {
        Rounds,
        MinClients,
        InitialWeightsCID,
        InitialDigest,
        Durations,
        CommitteeSize,
        QuorumBps,
        SelectionRule,
        SelectionN,
        DpMechanism,
        RewardShares
    }

    /// @notice A task stuck this long after its current phase's deadline (no party could move
    /// it) may be ended by its requester, who then reclaims the unspent escrow.
    uint256 public constant ABANDON_AFTER = 7 days;
    /// @notice Largest committee a task may ask for (committee loops stay bounded).
    uint256 public constant MAX_COMMITTEE = 64;

    /// @notice No task has this id.
    error FedLedgerUnknownTask(uint256 taskId);
    /// @notice Only the task's requester may do this.
    error FedLedgerNotRequester(uint256 taskId, address caller);
    /// @notice The task is not in the status this call needs.
    error FedLedgerWrongTaskStatus(uint256 taskId, TaskStatus status);
    /// @notice The ETH sent is not reward per round times rounds.
    error FedLedgerEscrowMismatch(uint256 sent, uint256 required);
    /// @notice A task parameter is out of range; `what` names it.
    error FedLedgerInvalidTaskParameter(TaskParameter what);

    /// @notice Publish a task, escrowing `spec.rewardPerRound * spec.rounds` wei (send exactly that).
    /// @param spec Model, data, schedule and reward.
    /// @param mech Defence, DP, selection, committee and reward split.
    /// @return taskId The new task's id. Emits a {TaskPublished} event.
    function publishTask(TaskSpec calldata spec, Mechanism calldata mech) external payable returns (uint256 taskId) {
        _validate(spec, mech);
        uint256 required = uint256(spec.rewardPerRound) * spec.rounds;
        if (msg.value != required) revert FedLedgerEscrowMismatch(msg.value, required);
        taskId = ++taskCount;
        Task storage t = _tasks[taskId];
        t.requester = msg.sender;
        t.status = TaskStatus.Open;
        t.publishedAt = uint64(block.timestamp);
        t.escrow = msg.value;
        t.globalCID = spec.initialWeightsCID;
        t.globalDigest = spec.initialDigest;
        t.spec = spec;
        t.mech = mech;
        _totalEscrow += msg.value;
        emit TaskPublished(taskId, msg.sender, msg.value, spec.modelSpec, spec.datasetId, mech.defence);
    }

    /// @notice Cancel a task that has not started; its escrow is credited back to the requester.
    /// @param taskId The task. Emits {TaskCancelled} and {PaymentCredited}.
    function cancelTask(uint256 taskId) external {
        Task storage t = _requesterTask(taskId);
        if (t.status != TaskStatus.Open) revert FedLedgerWrongTaskStatus(taskId, t.status);
        t.status = TaskStatus.Cancelled;
        uint256 refund = _releaseEscrow(t);
        emit TaskCancelled(taskId, refund);
        _credit(t.requester, taskId, refund, CreditKind.EscrowRefund);
    }

    /// @notice After the last round, credit the unspent escrow (failed rounds, rounding, slashed
    /// stakes) back to the requester, who then withdraws it. A running task whose current phase
    /// passed its deadline more than `ABANDON_AFTER` ago is ended (Finished) first.
    /// @param taskId The task. Emits {EscrowReclaimed} and {PaymentCredited}.
    function reclaimEscrow(uint256 taskId) external {
        Task storage t = _requesterTask(taskId);
        if (t.status == TaskStatus.Running && _abandoned(taskId, t)) t.status = TaskStatus.Finished;
        if (t.status != TaskStatus.Finished) revert FedLedgerWrongTaskStatus(taskId, t.status);
        uint256 amount = _releaseEscrow(t);
        emit EscrowReclaimed(taskId, amount);
        _credit(t.requester, taskId, amount, CreditKind.EscrowRefund);
    }

    /// @notice Requester, status, current round, publication time and unspent escrow of a task.
    /// @param taskId The task.
    function taskInfo(uint256 taskId)
        external
        view
        returns (address requester, TaskStatus status, uint32 currentRound, uint64 publishedAt, uint256 escrow)
    {
        Task storage t = _task(taskId);
        return (t.requester, t.status, t.currentRound, t.publishedAt, t.escrow);
    }

    /// @notice The published specification of a task.
    /// @param taskId The task.
    function taskSpec(uint256 taskId) external view returns (TaskSpec memory) {
        return _task(taskId).spec;
    }

    /// @notice The mechanism configuration of a task.
    /// @param taskId The task.
    function taskMechanism(uint256 taskId) external view returns (Mechanism memory) {
        return _task(taskId).mech;
    }

    /// @notice The task's current global model: the last finalised round's, or the initial one.
    /// @param taskId The task.
    function globalModel(uint256 taskId) external view returns (string memory cid, bytes32 digest) {
        Task storage t = _task(taskId);
        return (t.globalCID, t.globalDigest);
    }

    /// @notice Balance accounting: unpaid credits, unspent escrow (the contract also holds stakes).
    function accounting() external view returns (uint256 credits, uint256 escrow) {
        return (_totalCredits, _totalEscrow);
    }

    /// @dev Whether a running task is stuck past its current deadline by `ABANDON_AFTER`.
    function _abandoned(uint256 taskId, Task storage t) internal view virtual returns (bool);

    function _task(uint256 taskId) internal view returns (Task storage t) {
        t = _tasks[taskId];
        if (t.status == TaskStatus.None) revert FedLedgerUnknownTask(taskId);
    }

    function _requesterTask(uint256 taskId) private view returns (Task storage t) {
        t = _task(taskId);
        if (msg.sender != t.requester) revert FedLedgerNotRequester(taskId, msg.sender);
    }

    function _releaseEscrow(Task storage t) private returns (uint256 amount) {
        amount = t.escrow;
        t.escrow = 0;
        _totalEscrow -= amount;
    }

    function _spendEscrow(Task storage t, uint256 amount) internal {
        t.escrow -= amount;
        _totalEscrow -= amount;
    }

    function _addEscrow(Task storage t, uint256 amount) internal {
        t.escrow += amount;
        _totalEscrow += amount;
    }

    function _validate(TaskSpec calldata spec, Mechanism calldata mech) private pure {
        if (spec.rounds == 0) revert FedLedgerInvalidTaskParameter(TaskParameter.Rounds);
        if (spec.minClients == 0) revert FedLedgerInvalidTaskParameter(TaskParameter.MinClients);
        if (bytes(spec.initialWeightsCID).length == 0) {
            revert FedLedgerInvalidTaskParameter(TaskParameter.InitialWeightsCID);
        }
        if (spec.initialDigest == bytes32(0)) revert FedLedgerInvalidTaskParameter(TaskParameter.InitialDigest);
        if (spec.trainDuration == 0 || spec.commitDuration == 0 || spec.revealDuration == 0 || spec.aggregateDuration == 0) {
            revert FedLedgerInvalidTaskParameter(TaskParameter.Durations);
        }
        if (mech.committeeSize == 0 || mech.committeeSize > MAX_COMMITTEE) {
            revert FedLedgerInvalidTaskParameter(TaskParameter.CommitteeSize);
        }
        if (mech.quorumBps <= 5000 || mech.quorumBps > 10000) revert FedLedgerInvalidTaskParameter(TaskParameter.QuorumBps);
        if (mech.selectionRule > 1) revert FedLedgerInvalidTaskParameter(TaskParameter.SelectionRule);
        if (mech.selectionRule == 1 && mech.selectionN == 0) revert FedLedgerInvalidTaskParameter(TaskParameter.SelectionN);
        if (mech.dpMechanism > 2) revert FedLedgerInvalidTaskParameter(TaskParameter.DpMechanism);
        if (uint256(mech.clientShareBps) + mech.winnerShareBps + mech.committeeShareBps > 10000) {
            revert FedLedgerInvalidTaskParameter(TaskParameter.RewardShares);
        }
    }
}
