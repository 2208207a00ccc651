// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {TaskEscrow} from "./TaskEscrow.sol";
import {TaskStatus} from "./FedLedgerTypes.sol";

/// @title Data-owner registration per task, self-assessment and reputation (LL-BCFL).
/// @notice A client's initial reputation is its weighted self-assessment; afterwards only a
/// finalised committee proposal changes it.
abstract contract ClientRegistry is TaskEscrow {
    /// @notice At most this many data owners per task: client sets are 128-bit bitmaps and one
    /// bit is kept as a sentinel so per-round bookkeeping never writes a zero slot.
    uint256 public constant MAX_CLIENTS = 127;
    /// @notice Reputation fixed point: REP_SCALE is 1.0.
    uint32 public constant REP_SCALE = 1_000_000;
    /// @dev Low 16 bits of a `_members` word: the registration index + 1 (never 0 once registered).
    uint256 internal constant _INDEX_MASK = 0xffff;

    struct ClientInfo {
        uint16 index1; // registration index + 1; 0 = not registered
        uint32 reputation; // REP_SCALE fixed point
        uint32 nSamples;
        uint16 selfScoreBps;
        uint64 registeredAt;
    }

    mapping(uint256 => address[]) internal _clients;
    mapping(uint256 => mapping(address => ClientInfo)) internal _clientInfo;
    /// @dev Per task and client, the one word a round call reads: the registration index + 1 in
    /// the low 16 bits, the client's latest commitment (to its model, then to its scores; the round
    /// number is inside) in the high 240. Truncating a keccak commitment to 240 bits leaves ~2^120
    /// work to find a second opening. Non-zero from registration on, so a commit is a cheap
    /// non-zero to non-zero write, and it shares the read that finds the caller's bit.
    mapping(uint256 => mapping(address => uint256)) internal _members;

    /// @notice Emitted when `client` registers for `taskId` as client number `index`.
    event ClientRegistered(
        uint256 indexed taskId, address indexed client, uint16 index, uint32 nSamples, uint16[3] selfAssessment, uint32 reputation
    );

    /// @notice The caller is already registered for this task.
    error FedLedgerAlreadyRegistered(uint256 taskId, address client);
    /// @notice The address is not registered for this task.
    error FedLedgerNotRegistered(uint256 taskId, address client);
    /// @notice The task already has MAX_CLIENTS data owners.
    error FedLedgerTaskFull(uint256 taskId);
    /// @notice A self-assessment score above 10000 bps, or zero samples.
    error FedLedgerInvalidSelfAssessment();

    /// @notice Register as a data owner of `taskId` (before or during the task; late registrants
    /// are standby nodes until a committee selects them).
    /// @param taskId The task.
    /// @param selfAssessment Data size, data quality and category scores, each in bps.
    /// @param nSamples Number of local training samples.
    function register(uint256 taskId, uint16[3] calldata selfAssessment, uint32 nSamples) external {
        Task storage t = _task(taskId);
        if (t.status != TaskStatus.Open && t.status != TaskStatus.Running) revert FedLedgerWrongTaskStatus(taskId, t.status);
        ClientInfo storage c = _clientInfo[taskId][msg.sender];
        if (c.index1 != 0) revert FedLedgerAlreadyRegistered(taskId, msg.sender);
        address[] storage list = _clients[taskId];
        if (list.length >= MAX_CLIENTS) revert FedLedgerTaskFull(taskId);
        if (nSamples == 0) revert FedLedgerInvalidSelfAssessment();
        uint256 weighted;
        uint256 weightSum;
        for (uint256 i = 0; i < 3; ++i) {
            if (selfAssessment[i] > 10000) revert FedLedgerInvalidSelfAssessment();
            uint256 w = t.mech.selfWeights[i];
            weighted += w * selfAssessment[i];
            weightSum += w;
        }
        uint16 score = weightSum == 0
            ? uint16((uint256(selfAssessment[0]) + selfAssessment[1] + selfAssessment[2]) / 3)
            : uint16(weighted / weightSum);
        list.push(msg.sender);
        uint32 reputation = uint32(uint256(score) * (REP_SCALE / 10000));
        _clientInfo[taskId][msg.sender] = ClientInfo({
            index1: uint16(list.length),
            reputation: reputation,
            nSamples: nSamples,
            selfScoreBps: score,
            registeredAt: uint64(block.timestamp)
        });
        _members[taskId][msg.sender] = list.length;
        emit ClientRegistered(taskId, msg.sender, uint16(list.length - 1), nSamples, selfAssessment, reputation);
    }

    /// @notice The data owners of a task in registration order (index = bit position).
    /// @param taskId The task.
    function clientsOf(uint256 taskId) external view returns (address[] memory) {
        return _clients[taskId];
    }

    /// @notice Registration record of `client` in `taskId` (index1 == 0 when not registered).
    /// @param taskId The task.
    /// @param client The data owner.
    function clientInfo(uint256 taskId, address client) external view returns (ClientInfo memory) {
        return _clientInfo[taskId][client];
    }

    /// @notice Current reputations of all clients of a task, in registration order.
    /// @param taskId The task.
    function reputationsOf(uint256 taskId) external view returns (uint32[] memory reps) {
        address[] storage list = _clients[taskId];
        reps = new uint32[](list.length);
        for (uint256 i = 0; i < list.length; ++i) {
            reps[i] = _clientInfo[taskId][list[i]].reputation;
        }
    }

    /// @dev Bitmap of all registered clients.
    function _allClients(uint256 taskId) internal view returns (uint128) {
        return uint128((uint256(1) << _clients[taskId].length) - 1);
    }

    /// @dev Top `n` clients by reputation, ties to the lower index. O(n * clients): `n` passes
    /// of a max search, cheaper than sorting when n is small.
    function _topN(uint256 taskId, uint256 n) internal view returns (uint128 selection) {
        address[] storage list = _clients[taskId];
        uint256 count = list.length;
        if (n >= count) return _allClients(taskId);
        uint32[] memory reps = new uint32[](count);
        for (uint256 i = 0; i < count; ++i) {
            reps[i] = _clientInfo[taskId][list[i]].reputation;
        }
        for (uint256 k = 0; k < n; ++k) {
            uint256 best = type(uint256).max;
            for (uint256 i = 0; i < count; ++i) {
                if (selection & (uint256(1) << i) != 0) continue;
                if (best == type(uint256).max || reps[i] > reps[best]) best = i;
            }
            selection |= uint128(uint256(1) << best);
        }
    }

    function _setReputations(uint256 taskId, uint32[] calldata reps) internal {
        address[] storage list = _clients[taskId];
        for (uint256 i = 0; i < reps.length; ++i) {
            _clientInfo[taskId][list[i]].reputation = reps[i];
        }
    }
}
