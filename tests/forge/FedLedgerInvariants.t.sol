// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Vm} from "forge-std/Vm.sol";
import {FedLedger} from "../../contracts/FedLedger.sol";
import {Mechanism, Phase, Proposal, TaskSpec, TaskStatus} from "../../contracts/FedLedgerTypes.sol";
import {RoundProtocol} from "../../contracts/RoundProtocol.sol";
import {MinerStaking} from "../../contracts/MinerStaking.sol";

/// @notice Drives FedLedger with random but mostly well-formed calls from a fixed cast
/// (requesters, data owners, miners), so that the fuzzer reaches every phase of every round,
/// payouts, slashing, cancellations, reclaims and withdrawals. It records what each actor was
/// credited and withdrew, and the highest phase seen per round, for the invariants.
contract Handler {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    FedLedger public immutable fl;
    address[] public requesters;
    address[] public clients;
    address[] public miners;
    address[] public everyone;

    /// @dev Ghosts: wei credited to / withdrawn by each actor (credits seen as creditOf rising).
    mapping(address => uint256) public credited;
    mapping(address => uint256) public withdrawn;
    /// @dev Ghosts: wei each miner staked and got back.
    mapping(address => uint256) public staked;
    mapping(address => uint256) public unstaked;
    /// @dev Ghost: whether any call let ETH out other than withdraw/withdrawStake (must stay false).
    bool public leaked;
    /// @dev Ghost: a task's status went backwards or a round's phase did (must stay false).
    bool public wentBack;
    string public wentBackWhy;
    mapping(uint256 => uint8) public lastStatus;
    mapping(uint256 => uint32) public lastRound;
    mapping(uint256 => mapping(uint32 => uint8)) public lastPhase;

    uint256 public constant MAX_TASKS = 3;
    uint256 public calls;
    mapping(bytes32 => uint256) public hits; // successful calls by name (coverage check)

    string internal constant CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

    constructor(FedLedger fl_) {
        fl = fl_;
        for (uint256 i = 0; i < 2; ++i) requesters.push(address(uint160(0x1000 + i)));
        for (uint256 i = 0; i < 3; ++i) clients.push(address(uint160(0x2000 + i)));
        for (uint256 i = 0; i < 3; ++i) miners.push(address(uint160(0x3000 + i)));
        for (uint256 i = 0; i < requesters.length; ++i) everyone.push(requesters[i]);
        for (uint256 i = 0; i < clients.length; ++i) everyone.push(clients[i]);
        for (uint256 i = 0; i < miners.length; ++i) everyone.push(miners[i]);
        for (uint256 i = 0; i < everyone.length; ++i) vm.deal(everyone[i], 1_000_000 ether);
    }

    function everyoneCount() external view returns (uint256) {
        return everyone.length;
    }

    // ---- helpers --------------------------------------------------------------------------------

    function _pick(address[] storage list, uint256 seed) internal view returns (address) {
        return list[seed % list.length];
    }

    function _task(uint256 seed) internal view returns (uint256) {
        uint256 n = fl.taskCount();
        return n == 0 ? 1 : 1 + seed % n;
    }

    /// @dev Runs `data` as `who` on FedLedger; tracks credits, ETH movements and state order.
    function _act(address who, uint256 value, bytes memory data, bytes32 name) internal {
        uint256[] memory creditBefore = new uint256[](everyone.length);
        uint256[] memory balBefore = new uint256[](everyone.length);
        for (uint256 i = 0; i < everyone.length; ++i) {
            creditBefore[i] = fl.creditOf(everyone[i]);
            balBefore[i] = everyone[i].balance;
        }
        uint256 stakeBefore = fl.stakeOf(who).amount;
        vm.prank(who);
        (bool ok,) = address(fl).call{value: value}(data);
        calls++;
        if (!ok) return;
        hits[name]++;
        bool isWithdraw = bytes4(data) == fl.withdraw.selector;
        bool isWithdrawStake = bytes4(data) == fl.withdrawStake.selector;
        for (uint256 i = 0; i < everyone.length; ++i) {
            address a = everyone[i];
            uint256 c = fl.creditOf(a);
            if (c > creditBefore[i]) credited[a] += c - creditBefore[i];
            if (c < creditBefore[i]) withdrawn[a] += creditBefore[i] - c;
            uint256 expected = balBefore[i] - (a == who ? value : 0);
            if (a.balance > expected) {
                uint256 gain = a.balance - expected;
                if (isWithdraw && a == who) {
                    if (gain != creditBefore[i] - c) leaked = true; // paid other than the credit
                } else if (isWithdrawStake && a == who) {
                    unstaked[a] += gain;
                    if (gain != stakeBefore) leaked = true;
                } else {
                    leaked = true;
                }
            }
        }
        if (bytes4(data) == fl.stake.selector) staked[who] += value;
        _checkOrder();
    }

    /// @dev Status and phases only move forward; a closed round never reopens.
    function _checkOrder() internal {
        uint256 n = fl.taskCount();
        for (uint256 id = 1; id <= n; ++id) {
            if (lastStatus[id] == 3 || lastStatus[id] == 4) continue; // finished or cancelled: final
            (, TaskStatus status, uint32 round,,) = fl.taskInfo(id);
            uint8 s = uint8(status);
            uint8 before = lastStatus[id];
            // Open(1) -> Running(2) -> Finished(3); Open(1) -> Cancelled(4)
            bool ok = s == before || (before == 0 && s == 1) || (before == 1 && (s == 2 || s == 4))
                || (before == 2 && s == 3);
            if (!ok) _back("task status went back or skipped");
            lastStatus[id] = s;
            if (round < lastRound[id]) _back("current round decreased");
            for (uint32 r = lastRound[id] == 0 ? 1 : lastRound[id]; r <= round; ++r) {
                uint8 p = uint8(fl.roundInfo(id, r).phase);
                uint8 q = lastPhase[id][r];
                if (p < q) _back("a round's phase went back");
                lastPhase[id][r] = p;
            }
            lastRound[id] = round;
        }
    }

    function _back(string memory why) internal {
        wentBack = true;
        wentBackWhy = why;
    }

    function _spec(uint32 rounds, uint128 reward, uint16 minClients) internal pure returns (TaskSpec memory s) {
        s.modelSpec = "mlp";
        s.datasetId = "mnist";
        s.testSetId = "mnist:test";
        s.initialWeightsCID = CID;
        s.initialDigest = keccak256("initial");
        s.rounds = rounds;
        s.minClients = minClients;
        s.registrationDuration = 100;
        s.trainDuration = 50;
        s.commitDuration = 50;
        s.revealDuration = 50;
        s.aggregateDuration = 50;
        s.rewardPerRound = reward;
    }

    function _mech(uint16 committee, bool validate, uint256 seed) internal pure returns (Mechanism memory m) {
        m.defence = "bvfb";
        m.thetaBps = 6000;
        m.committeeSize = committee;
        m.quorumBps = 6667;
        m.repEvalBps = 5000;
        m.repPrevBps = 5000;
        m.selfWeights = [uint16(1), 1, 1];
        m.clientShareBps = uint16(seed % 7000);
        m.winnerShareBps = uint16((seed >> 16) % 2000);
        m.committeeShareBps = uint16((seed >> 32) % 1000);
        m.peerValidation = validate;
        m.selectionRule = uint8((seed >> 48) % 2);
        m.selectionN = 2;
    }

    function _digest(uint256 taskId, uint32 round, address c) internal pure returns (bytes32) {
        return keccak256(abi.encode("weights", taskId, round, c));
    }

    function _scores(uint256 n, uint256 seed) internal pure returns (bytes memory out) {
        out = new bytes(2 * n);
        for (uint256 i = 0; i < n; ++i) {
            uint16 s = uint16(uint256(keccak256(abi.encode(seed, i))) % 10001);
            out[2 * i] = bytes1(uint8(s >> 8));
            out[2 * i + 1] = bytes1(uint8(s));
        }
    }

    // ---- actions (the fuzzer calls these) ---------------------------------------------------------

    function publish(uint256 who, uint8 rounds, uint96 reward, uint8 committee, bool validate, uint256 seed) external {
        if (fl.taskCount() >= MAX_TASKS) return; // a few tasks, driven far, beat many fresh ones
        uint32 r = uint32(1 + rounds % 3);
        uint128 per = uint128(reward % 10 ether);
        TaskSpec memory s = _spec(r, per, uint16(1 + seed % 3));
        Mechanism memory m = _mech(uint16(1 + committee % 3), validate, seed);
        _act(
            _pick(requesters, who),
            uint256(per) * r,
            abi.encodeCall(fl.publishTask, (s, m)),
            "publish"
        );
    }

    function register(uint256 who, uint256 task, uint16 a, uint32 n) external {
        uint16[3] memory self = [uint16(a % 10001), uint16((a >> 3) % 10001), 5000];
        _act(_pick(clients, who), 0, abi.encodeCall(fl.register, (_task(task), self, 1 + n % 5000)), "register");
    }

    function stake(uint256 who, uint96 amount) external {
        _act(_pick(miners, who), 1 ether + amount % 5 ether, abi.encodeCall(fl.stake, ()), "stake");
    }

    function requestUnstake(uint256 who) external {
        _act(_pick(miners, who), 0, abi.encodeCall(fl.requestUnstake, ()), "requestUnstake");
    }

    function withdrawStake(uint256 who) external {
        _act(_pick(miners, who), 0, abi.encodeCall(fl.withdrawStake, ()), "withdrawStake");
    }

    function start(uint256 who, uint256 task) external {
        _act(_pick(everyone, who), 0, abi.encodeCall(fl.startTask, (_task(task))), "start");
    }

    function cancel(uint256 who, uint256 task) external {
        _act(_pick(everyone, who), 0, abi.encodeCall(fl.cancelTask, (_task(task))), "cancel");
    }

    function reclaim(uint256 who, uint256 task) external {
        _act(_pick(everyone, who), 0, abi.encodeCall(fl.reclaimEscrow, (_task(task))), "reclaim");
    }

    function withdraw(uint256 who) external {
        _act(_pick(everyone, who), 0, abi.encodeCall(fl.withdraw, ()), "withdraw");
    }

    function advance(uint256 who, uint256 task) external {
        _act(_pick(everyone, who), 0, abi.encodeCall(fl.advance, (_task(task))), "advance");
    }

    function warp(uint16 secs) external {
        vm.warp(block.timestamp + 1 + secs % 120);
        vm.roll(block.number + 1);
    }

    function warpFar(uint8 days_) external {
        vm.warp(block.timestamp + (1 + days_ % 10) * 1 days);
        vm.roll(block.number + 1);
    }

    function commitModel(uint256 who, uint256 task) external {
        uint256 id = _task(task);
        address c = _pick(clients, who);
        (,, uint32 round,,) = fl.taskInfo(id);
        bytes32 h = fl.modelCommitment(id, round, c, CID, _digest(id, round, c), "", 1000, bytes32(uint256(7)));
        _act(c, 0, abi.encodeCall(fl.commitModel, (id, round, h)), "commitModel");
    }

    function submitModel(uint256 who, uint256 task, bool lie) external {
        uint256 id = _task(task);
        address c = _pick(clients, who);
        (,, uint32 round,,) = fl.taskInfo(id);
        bytes32 d = lie ? bytes32(uint256(1)) : _digest(id, round, c);
        _act(
            c, 0, abi.encodeCall(fl.submitModel, (id, round, CID, d, "", 1000, bytes32(uint256(7)))), "submitModel"
        );
    }

    function commitScores(uint256 who, uint256 task, uint256 seed) external {
        uint256 id = _task(task);
        address c = _pick(clients, who);
        (,, uint32 round,,) = fl.taskInfo(id);
        uint256 n = fl.roundInfo(id, round).nClients;
        bytes32 h = fl.scoreCommitment(id, round, c, _scores(n, seed % 3), bytes32(seed % 3));
        _act(c, 0, abi.encodeCall(fl.commitScores, (id, round, h)), "commitScores");
    }

    function revealScores(uint256 who, uint256 task, uint256 seed) external {
        uint256 id = _task(task);
        address c = _pick(clients, who);
        (,, uint32 round,,) = fl.taskInfo(id);
        uint256 n = fl.roundInfo(id, round).nClients;
        _act(c, 0, abi.encodeCall(fl.revealScores, (id, round, _scores(n, seed % 3), bytes32(seed % 3))), "revealScores");
    }

    /// @dev A committee member (or anyone, to test refusals) votes for one of two proposals built
    /// from the round's real state, so that quorum, split votes and slashing all happen.
    function propose(uint256 who, uint256 task, uint256 variant, bool anyone) external {
        uint256 id = _task(task);
        (,, uint32 round,,) = fl.taskInfo(id);
        RoundProtocol.RoundView memory v = fl.roundInfo(id, round);
        address m;
        if (anyone || v.committee.length == 0) m = _pick(everyone, who);
        else m = v.committee[who % v.committee.length];
        uint256 all = (uint256(1) << v.nClients) - 1;
        Proposal memory p;
        p.globalCID = CID;
        p.globalDigest = keccak256(abi.encode("global", id, round, variant % 2));
        p.accepted = variant % 2 == 0 ? v.submitted : v.submitted & (v.submitted - 1);
        p.reputations = new uint32[](v.nClients);
        for (uint256 i = 0; i < v.nClients; ++i) p.reputations[i] = uint32((i + 1) * 1000 + variant % 2);
        p.winner = 0;
        for (uint256 i = 0; i < v.nClients; ++i) {
            if (p.accepted & (uint256(1) << i) != 0) {
                p.winner = uint16(i + 1);
                break;
            }
        }
        p.nextSelection = all;
        _act(m, 0, abi.encodeCall(fl.propose, (id, round, p)), "propose");
    }
}

/// @notice Invariants of FedLedger's money and its task/round state machine under random call
/// sequences (see the Handler). Run by tests/chain/test_forge_invariants.py.
contract FedLedgerInvariants {
    FedLedger internal fl;
    Handler internal handler;

    function setUp() public {
        fl = new FedLedger(1 ether, 300);
        handler = new Handler(fl);
    }

    /// @dev Forge fuzzes the public functions of these contracts only.
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @notice balance == unpaid credits + unspent escrow + stakes.
    function check_balanceIsCreditsPlusEscrowPlusStakes() public view {
        (uint256 credits, uint256 escrow) = fl.accounting();
        require(address(fl).balance == credits + escrow + fl.totalStaked(), "balance != credits + escrow + stakes");
    }

    /// @notice The totals the contract keeps agree with the per-account and per-task records.
    function check_totalsMatchTheRecords() public view {
        (uint256 credits, uint256 escrow) = fl.accounting();
        uint256 sumCredits;
        uint256 sumStakes;
        for (uint256 i = 0; i < handler.everyoneCount(); ++i) {
            address a = handler.everyone(i);
            sumCredits += fl.creditOf(a);
            sumStakes += fl.stakeOf(a).amount;
        }
        require(sumCredits == credits, "sum of credits != total credits");
        require(sumStakes == fl.totalStaked(), "sum of stakes != total staked");
        uint256 sumEscrow;
        for (uint256 id = 1; id <= fl.taskCount(); ++id) {
            (,,,, uint256 e) = fl.taskInfo(id);
            sumEscrow += e;
        }
        require(sumEscrow == escrow, "sum of task escrows != total escrow");
    }

    /// @notice Nobody withdraws more than was credited to them, nor more stake than they staked,
    /// and no ETH leaves except through withdraw / withdrawStake, exactly as recorded.
    function check_nobodyWithdrawsMoreThanCredited() public view {
        require(!handler.leaked(), "ETH left the contract other than as a recorded withdrawal");
        for (uint256 i = 0; i < handler.everyoneCount(); ++i) {
            address a = handler.everyone(i);
            require(handler.withdrawn(a) <= handler.credited(a), "withdrew more than credited");
            require(handler.credited(a) - handler.withdrawn(a) == fl.creditOf(a), "credit record out of step");
            require(handler.unstaked(a) <= handler.staked(a), "withdrew more stake than staked");
        }
    }

    /// @notice Task status and round phases only move forward; a running task's current round is
    /// open, every earlier round is closed (finalised or failed), and a finished task has closed
    /// all of its rounds.
    function check_taskAndRoundStateMachine() public view {
        require(!handler.wentBack(), handler.wentBackWhy());
        for (uint256 id = 1; id <= fl.taskCount(); ++id) {
            (, TaskStatus status, uint32 round,, uint256 escrow) = fl.taskInfo(id);
            uint32 rounds = fl.taskSpec(id).rounds;
            require(round <= rounds, "current round beyond the task's rounds");
            if (status == TaskStatus.Open || status == TaskStatus.Cancelled) {
                require(round == 0, "a task that never started has a round");
            }
            if (status == TaskStatus.Cancelled) require(escrow == 0, "a cancelled task kept escrow");
            if (status == TaskStatus.Running) {
                require(round >= 1, "a running task has no round");
                Phase p = fl.roundInfo(id, round).phase;
                require(p >= Phase.Train && p <= Phase.Aggregate, "a running task's current round is closed");
            }
            if (status == TaskStatus.Finished && round == rounds) {
                Phase p = fl.roundInfo(id, round).phase;
                require(p == Phase.Finalised || p == Phase.Failed, "a finished task's last round is open");
            }
            for (uint32 r = 1; r < round; ++r) {
                Phase p = fl.roundInfo(id, r).phase;
                require(p == Phase.Finalised || p == Phase.Failed, "an earlier round is still open");
            }
        }
    }

    /// @notice Every invariant, checked in one campaign (forge runs one campaign of `runs`
    /// sequences per invariant function): money first, then the state machine.
    function invariant_escrowAndStateMachine() public view {
        check_balanceIsCreditsPlusEscrowPlusStakes();
        check_totalsMatchTheRecords();
        check_nobodyWithdrawsMoreThanCredited();
        check_taskAndRoundStateMachine();
    }

    /// @notice The handler can drive a task through a whole finalised round with payouts and a
    /// withdrawal (so the random sequences can reach them too), and the checks hold on the way.
    function test_handlerReachesPayoutsAndWithdrawals() public {
        handler.publish(0, 0, 3 ether, 0, true, 3000); // 1 round, committee 1, all selected, 30 % to clients
        for (uint256 c = 0; c < 3; ++c) handler.register(c, 0, 5000, 100);
        handler.stake(0, 0);
        handler.start(0, 0);
        for (uint256 c = 0; c < 3; ++c) handler.commitModel(c, 0);
        for (uint256 c = 0; c < 3; ++c) handler.submitModel(c, 0, false);
        for (uint256 c = 0; c < 3; ++c) handler.commitScores(c, 0, 0);
        for (uint256 c = 0; c < 3; ++c) handler.revealScores(c, 0, 0);
        handler.propose(0, 0, 0, false);
        (, TaskStatus status,,,) = fl.taskInfo(1);
        require(status == TaskStatus.Finished, "the one round did not finalise");
        require(fl.roundInfo(1, 1).phase == Phase.Finalised, "round 1 not finalised");
        address client = handler.clients(0);
        uint256 credit = fl.creditOf(client);
        require(credit > 0, "no client reward credited");
        handler.withdraw(2); // everyone[2] is clients[0]
        require(fl.creditOf(client) == 0 && handler.withdrawn(client) == credit, "withdrawal not recorded");
        invariant_escrowAndStateMachine();
    }
}
