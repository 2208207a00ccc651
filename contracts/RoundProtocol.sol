// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ClientRegistry} from "./ClientRegistry.sol";
import {MinerStaking} from "./MinerStaking.sol";
import {Phase, Proposal, TaskStatus} from "./FedLedgerTypes.sol";

/// @title The round protocol: train (commit models) -> submit (reveal models) -> commit -> reveal
/// -> aggregate -> finalise.
/// @notice Round r opens with its selection fixed; selected clients commit to their models (a hash
/// of CIDs, digest and sample count bound to the sender and the round), then reveal them once every
/// commitment is in, so nobody can copy a model it has not seen; submitters commit then reveal
/// peer-validation scores (if the task asks for peer validation); committee members vote on a
/// proposal and the round is finalised when the votes for one proposal reach the quorum. A phase
/// closes when every expected party has acted, or at its deadline through `advance`, which anyone
/// may call, so a crashed party never stalls the task.
/// @dev Randomness: the round seed (committee, peer-validation assignment) is the hash of the
/// block mined right after the round opened (`seedBlock`), read when the model reveal closes.
/// Whoever closes the previous round acts before that block exists and cannot choose it; the
/// proposer of the seed block can (withhold or reorder to grind it), which is the trust
/// assumption, as for any block-hash randomness. If nobody acts for 256 blocks the latest
/// available block of the same residue mod 256 is used (liveness, not secrecy).
/// Slashing: when a round is finalised, a committee member that voted for another proposal loses
/// `SLASH_BPS` of its stake; when a round fails for lack of quorum, so does every member that did
/// not vote. Slashed stake goes to the task's escrow (back to the requester).
abstract contract RoundProtocol is ClientRegistry, MinerStaking {
    /// @dev Bit 127 of `revealed` is always set, so that slot is never written from zero.
    uint128 private constant _SENTINEL = uint128(1) << 127;
    /// @notice Share of a committee member's stake taken when it votes against the finalised
    /// proposal, or does not vote in a round that fails for lack of quorum.
    uint256 public constant SLASH_BPS = 1000;
    /// @dev 16-bit lanes of a score word: top bits, low 15 bits, and 0x7fff - 10000 in each.
    uint256 private constant _LANES_HIGH = 0x8000800080008000800080008000800080008000800080008000800080008000;
    uint256 private constant _LANES_LOW = 0x7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff;
    uint256 private constant _LANES_BIAS = 0x58ef58ef58ef58ef58ef58ef58ef58ef58ef58ef58ef58ef58ef58ef58ef58ef;

    /// @notice Why a round failed (see {RoundFailed}).
    enum FailReason {
        NoModel, // nobody committed to (or revealed) a model before the deadline
        NoCommittee, // fewer active miners than the task's committee size when the committee was drawn
        NoQuorum // no proposal reached the quorum before the aggregate deadline
    }

    /// @notice Which proposal field is inconsistent with the round (see {FedLedgerInvalidProposal}).
    enum ProposalField {
        GlobalModel,
        Accepted,
        Winner,
        Reputations,
        NextSelection
    }

    /// @dev Gas layout: a client's call touches only the first slot (phase, deadline and the
    /// bitmap of parties still expected in this phase) plus its own registration slot. The
    /// closer of a phase turns `pending` into the recorded set (models committed, submitted,
    /// committed, revealed).
    struct Round {
        Phase phase;
        uint64 deadline;
        uint16 nClients; // clients registered when the round opened
        uint128 pending; // train: selected not yet committed a model; submit: not yet revealed it; ...
        uint40 seedBlock; // the seed is this block's hash
        uint128 selected;
        uint128 submitted;
        uint128 committed;
        uint128 revealed; // with _SENTINEL
        uint64 openedAt;
        uint128 accepted;
        uint16 winner; // index + 1
        bytes32 seed;
        bytes32 result; // hash of the finalised proposal
        address[] committee;
        uint128 modelsCommitted;
    }

    /// @notice Read-only view of a round (revealed without the sentinel bit).
    struct RoundView {
        Phase phase;
        uint64 deadline;
        uint64 openedAt;
        uint16 nClients;
        uint128 selected;
        uint128 modelsCommitted;
        uint128 submitted;
        uint128 committed;
        uint128 revealed;
        uint128 accepted;
        uint16 winner;
        uint40 seedBlock;
        bytes32 seed;
        bytes32 result;
        address[] committee;
    }

    mapping(uint256 => mapping(uint32 => Round)) internal _rounds;
    mapping(uint256 => mapping(uint32 => mapping(address => bytes32))) internal _voteOf;
    mapping(uint256 => mapping(uint32 => mapping(bytes32 => uint16))) internal _votes;

    /// @notice Emitted when round `round` of `taskId` opens with its selection; its seed will be
    /// the hash of block `seedBlock`.
    event RoundOpened(uint256 indexed taskId, uint32 indexed round, uint128 selected, uint40 seedBlock, uint64 deadline);
    /// @notice Emitted when the round's seed is fixed and its committee drawn (model reveal closed).
    event CommitteeDrawn(uint256 indexed taskId, uint32 indexed round, bytes32 seed, address[] committee);
    /// @notice Emitted when a round moves to `phase`, which closes at `deadline`.
    event PhaseChanged(uint256 indexed taskId, uint32 indexed round, Phase phase, uint64 deadline);
    /// @notice Emitted when `client` commits to its model for a round.
    event ModelCommitted(uint256 indexed taskId, uint32 indexed round, address indexed client, bytes32 commitment);
    /// @notice Emitted when `client` reveals its committed model for a round.
    event ModelSubmitted(
        uint256 indexed taskId,
        uint32 indexed round,
        address indexed client,
        string weightsCID,
        bytes32 digest,
        string behaviourCID,
        uint32 nSamples
    );
    /// @notice Emitted when `client` commits to its peer-validation scores.
    event ScoresCommitted(uint256 indexed taskId, uint32 indexed round, address indexed client, bytes32 commitment);
    /// @notice Emitted when `client` reveals its scores: one big-endian uint16 (bps) per client index.
    event ScoresRevealed(uint256 indexed taskId, uint32 indexed round, address indexed client, bytes scores);
    /// @notice Emitted the first time a proposal is voted for, with its full content.
    event ProposalSubmitted(uint256 indexed taskId, uint32 indexed round, bytes32 indexed proposalHash, Proposal proposal);
    /// @notice Emitted when committee member `miner` votes for `proposalHash`, which now has `votes`.
    event ProposalVoted(
        uint256 indexed taskId, uint32 indexed round, address indexed miner, bytes32 proposalHash, uint16 votes
    );
    /// @notice Emitted when a round is finalised with the global model `globalCID`.
    event RoundFinalised(
        uint256 indexed taskId,
        uint32 indexed round,
        bytes32 indexed proposalHash,
        string globalCID,
        bytes32 globalDigest,
        uint256 accepted,
        uint16 winner
    );
    /// @notice Emitted when a round closes without a result; the global model is unchanged.
    event RoundFailed(uint256 indexed taskId, uint32 indexed round, Phase atPhase, FailReason reason);
    /// @notice Emitted when committee member `miner` loses `amount` wei of stake to the task's escrow.
    event MinerSlashed(uint256 indexed taskId, uint32 indexed round, address indexed miner, uint256 amount);
    /// @notice Emitted when the task starts (round 1 opens).
    event TaskStarted(uint256 indexed taskId, uint256 clients);
    /// @notice Emitted when the last round of a task closes.
    event TaskFinished(uint256 indexed taskId);

    /// @notice The call is not allowed in the round's current phase.
    error FedLedgerWrongPhase(uint256 taskId, uint32 round, Phase phase);
    /// @notice The phase's deadline has passed; call `advance`.
    error FedLedgerDeadlinePassed(uint256 taskId, uint32 round, uint64 deadline);
    /// @notice `advance` before the phase's deadline.
    error FedLedgerDeadlineNotReached(uint256 taskId, uint32 round, uint64 deadline);
    /// @notice The client is not selected for this round.
    error FedLedgerNotSelected(uint256 taskId, uint32 round, address client);
    /// @notice The client already submitted a model this round.
    error FedLedgerAlreadySubmitted(uint256 taskId, uint32 round, address client);
    /// @notice Empty CID, zero digest, zero samples or zero commitment.
    error FedLedgerInvalidSubmission();
    /// @notice Only clients that submitted this round validate their peers.
    error FedLedgerNotASubmitter(uint256 taskId, uint32 round, address client);
    /// @notice The client already committed (to its model, or to its scores) this round.
    error FedLedgerAlreadyCommitted(uint256 taskId, uint32 round, address client);
    /// @notice The client did not commit this round.
    error FedLedgerNotCommitted(uint256 taskId, uint32 round, address client);
    /// @notice The client already revealed this round.
    error FedLedgerAlreadyRevealed(uint256 taskId, uint32 round, address client);
    /// @notice Revealed values and salt do not match the commitment.
    error FedLedgerCommitmentMismatch(uint256 taskId, uint32 round, address client);
    /// @notice The score vector needs `expected` bytes (2 per client) with every score <= 10000.
    error FedLedgerInvalidScores(uint256 expected, uint256 length);
    /// @notice The caller is not on this round's committee.
    error FedLedgerNotInCommittee(uint256 taskId, uint32 round, address miner);
    /// @notice The committee member already voted this round.
    error FedLedgerAlreadyVoted(uint256 taskId, uint32 round, address miner);
    /// @notice The proposal is inconsistent with the round; `what` names the field.
    error FedLedgerInvalidProposal(ProposalField what);
    /// @notice Fewer registered clients than the task's minimum.
    error FedLedgerNotEnoughClients(uint256 registered, uint256 needed);
    /// @notice Fewer active miners than the task's committee size.
    error FedLedgerNotEnoughMiners(uint256 active, uint256 needed);
    /// @notice Only the requester may start before the registration period ends.
    error FedLedgerRegistrationOpen(uint256 taskId, uint256 until);

    /// @notice Start a task: round 1 opens with its selection. The requester may start once
    /// `minClients` registered; anyone may after the registration period.
    /// @param taskId The task. Emits {TaskStarted} and {RoundOpened}.
    function startTask(uint256 taskId) external {
        Task storage t = _task(taskId);
        if (t.status != TaskStatus.Open) revert FedLedgerWrongTaskStatus(taskId, t.status);
        uint256 until = t.publishedAt + t.spec.registrationDuration;
        if (msg.sender != t.requester && block.timestamp < until) revert FedLedgerRegistrationOpen(taskId, until);
        uint256 registered = _clients[taskId].length;
        if (registered < t.spec.minClients) revert FedLedgerNotEnoughClients(registered, t.spec.minClients);
        uint256 active = _activeMiners.length;
        if (active < t.mech.committeeSize) revert FedLedgerNotEnoughMiners(active, t.mech.committeeSize);
        t.status = TaskStatus.Running;
        emit TaskStarted(taskId, registered);
        uint128 selection = t.mech.selectionRule == 1 ? _topN(taskId, t.mech.selectionN) : _allClients(taskId);
        _openRound(taskId, t, 1, selection);
    }

    /// @notice Commit to this round's model (train phase, selected clients, once).
    /// @param taskId The task.
    /// @param round The current round (guards against committing to a round that moved on).
    /// @param commitment `modelCommitment(taskId, round, caller, weightsCID, digest, behaviourCID,
    /// nSamples, salt)`. Emits a {ModelCommitted} event.
    function commitModel(uint256 taskId, uint32 round, bytes32 commitment) external {
        Round storage r = _openPhase(taskId, round, Phase.Train);
        (uint256 word, uint128 bit) = _member(taskId);
        if (r.pending & bit == 0) {
            if (r.selected & bit == 0) revert FedLedgerNotSelected(taskId, round, msg.sender);
            revert FedLedgerAlreadyCommitted(taskId, round, msg.sender);
        }
        if (uint256(commitment) <= _INDEX_MASK) revert FedLedgerInvalidSubmission(); // nothing left in 240 bits
        r.pending &= ~bit;
        _members[taskId][msg.sender] = (uint256(commitment) & ~_INDEX_MASK) | (word & _INDEX_MASK);
        emit ModelCommitted(taskId, round, msg.sender, commitment);
        if (r.pending == 0) _closeTrain(taskId, round, _tasks[taskId], r);
    }

    /// @notice Reveal the committed model (submit phase, clients that committed, once).
    /// @param taskId The task.
    /// @param round The current round.
    /// @param weightsCID IPFS CID of the safetensors weights.
    /// @param digest sha256 of the weights bytes.
    /// @param behaviourCID IPFS CID of the BVFB behaviour model ("" if none).
    /// @param nSamples Samples trained on.
    /// @param salt The secret salt of the commitment. Emits a {ModelSubmitted} event.
    function submitModel(
        uint256 taskId,
        uint32 round,
        string calldata weightsCID,
        bytes32 digest,
        string calldata behaviourCID,
        uint32 nSamples,
        bytes32 salt
    ) external {
        Round storage r = _openPhase(taskId, round, Phase.Submit);
        (uint256 word, uint128 bit) = _member(taskId);
        if (r.pending & bit == 0) {
            if (r.modelsCommitted & bit == 0) revert FedLedgerNotCommitted(taskId, round, msg.sender);
            revert FedLedgerAlreadySubmitted(taskId, round, msg.sender);
        }
        if (bytes(weightsCID).length == 0 || digest == bytes32(0) || nSamples == 0) revert FedLedgerInvalidSubmission();
        bytes32 c = modelCommitment(taskId, round, msg.sender, weightsCID, digest, behaviourCID, nSamples, salt);
        if ((uint256(c) ^ word) > _INDEX_MASK) revert FedLedgerCommitmentMismatch(taskId, round, msg.sender);
        r.pending &= ~bit;
        emit ModelSubmitted(taskId, round, msg.sender, weightsCID, digest, behaviourCID, nSamples);
        if (r.pending == 0) _closeSubmit(taskId, round, _tasks[taskId], r);
    }

    /// @notice Commit to a peer-validation score vector (commit phase, submitters, once).
    /// @param taskId The task.
    /// @param round The current round.
    /// @param commitment `scoreCommitment(taskId, round, caller, scores, salt)`.
    function commitScores(uint256 taskId, uint32 round, bytes32 commitment) external {
        Round storage r = _openPhase(taskId, round, Phase.Commit);
        (uint256 word, uint128 bit) = _member(taskId);
        if (r.pending & bit == 0) {
            if (r.submitted & bit == 0) revert FedLedgerNotASubmitter(taskId, round, msg.sender);
            revert FedLedgerAlreadyCommitted(taskId, round, msg.sender);
        }
        r.pending &= ~bit;
        _members[taskId][msg.sender] = (uint256(commitment) & ~_INDEX_MASK) | (word & _INDEX_MASK);
        emit ScoresCommitted(taskId, round, msg.sender, commitment);
        if (r.pending == 0) _closeCommit(taskId, round, _tasks[taskId], r);
    }

    /// @notice Reveal the committed scores (reveal phase, committers, once).
    /// @param taskId The task.
    /// @param round The current round.
    /// @param scores One big-endian uint16 in bps per client index of the round (own and
    /// non-submitters' entries are ignored by the miners).
    /// @param salt The secret salt of the commitment.
    function revealScores(uint256 taskId, uint32 round, bytes calldata scores, bytes32 salt) external {
        Round storage r = _openPhase(taskId, round, Phase.Reveal);
        (uint256 word, uint128 bit) = _member(taskId);
        if (r.pending & bit == 0) {
            if (r.committed & bit == 0) revert FedLedgerNotCommitted(taskId, round, msg.sender);
            revert FedLedgerAlreadyRevealed(taskId, round, msg.sender);
        }
        _checkScores(scores, r.nClients);
        if ((uint256(scoreCommitment(taskId, round, msg.sender, scores, salt)) ^ word) > _INDEX_MASK) {
            revert FedLedgerCommitmentMismatch(taskId, round, msg.sender);
        }
        r.pending &= ~bit;
        emit ScoresRevealed(taskId, round, msg.sender, scores);
        if (r.pending == 0) _closeReveal(taskId, round, _tasks[taskId], r);
    }

    /// @notice Vote for a proposal as a committee member (aggregate phase, once). The first vote
    /// for a proposal publishes it; the round is finalised when its votes reach the quorum. A
    /// miner that computed a different result votes for its own proposal, i.e. against.
    /// @param taskId The task.
    /// @param round The current round.
    /// @param p The proposed result.
    function propose(uint256 taskId, uint32 round, Proposal calldata p) external {
        Round storage r = _openPhase(taskId, round, Phase.Aggregate);
        address[] storage committee = r.committee;
        bool member;
        for (uint256 i = 0; i < committee.length; ++i) {
            if (committee[i] == msg.sender) {
                member = true;
                break;
            }
        }
        if (!member) revert FedLedgerNotInCommittee(taskId, round, msg.sender);
        if (_voteOf[taskId][round][msg.sender] != bytes32(0)) revert FedLedgerAlreadyVoted(taskId, round, msg.sender);
        Task storage t = _tasks[taskId];
        _checkProposal(taskId, t, r, p);
        bytes32 h = proposalHash(p);
        _voteOf[taskId][round][msg.sender] = h;
        uint16 votes = ++_votes[taskId][round][h];
        if (votes == 1) {
            emit ProposalSubmitted(taskId, round, h, p);
        }
        emit ProposalVoted(taskId, round, msg.sender, h, votes);
        if (uint256(votes) * 10000 >= committee.length * t.mech.quorumBps) _finalise(taskId, round, t, r, p, h);
    }

    /// @notice Close the current phase after its deadline: train -> submit (failed if nobody
    /// committed), submit -> commit (aggregate when the task has no peer validation; failed if
    /// nobody revealed or the committee cannot be drawn), commit -> reveal (or aggregate if nobody
    /// committed), reveal -> aggregate, aggregate -> failed (no quorum: members that did not vote
    /// are slashed, the previous global model is kept and the next round opens).
    /// @param taskId The task.
    function advance(uint256 taskId) external {
        Task storage t = _task(taskId);
        if (t.status != TaskStatus.Running) revert FedLedgerWrongTaskStatus(taskId, t.status);
        uint32 round = t.currentRound;
        Round storage r = _rounds[taskId][round];
        if (block.timestamp <= r.deadline) revert FedLedgerDeadlineNotReached(taskId, round, r.deadline);
        Phase phase = r.phase;
        if (phase == Phase.Train) {
            if (r.pending == r.selected) return _fail(taskId, round, t, r, FailReason.NoModel); // nobody committed
            _closeTrain(taskId, round, t, r);
        } else if (phase == Phase.Submit) {
            if (r.pending == r.modelsCommitted) return _fail(taskId, round, t, r, FailReason.NoModel);
            _closeSubmit(taskId, round, t, r);
        } else if (phase == Phase.Commit) {
            _closeCommit(taskId, round, t, r);
        } else if (phase == Phase.Reveal) {
            _closeReveal(taskId, round, t, r);
        } else {
            address[] storage committee = r.committee;
            for (uint256 i = 0; i < committee.length; ++i) {
                if (_voteOf[taskId][round][committee[i]] == bytes32(0)) _slash(taskId, round, t, committee[i]);
            }
            _fail(taskId, round, t, r, FailReason.NoQuorum);
        }
    }

    /// @notice State of round `round` of `taskId`.
    /// @param taskId The task.
    /// @param round The round (1-based).
    function roundInfo(uint256 taskId, uint32 round) external view returns (RoundView memory v) {
        Round storage r = _rounds[taskId][round];
        // the open phase's set is still kept as `pending`
        Phase phase = r.phase;
        v = RoundView({
            phase: phase,
            deadline: r.deadline,
            openedAt: r.openedAt,
            nClients: r.nClients,
            selected: r.selected,
            modelsCommitted: phase == Phase.Train ? r.selected & ~r.pending : r.modelsCommitted,
            submitted: phase == Phase.Submit ? r.modelsCommitted & ~r.pending : r.submitted,
            committed: phase == Phase.Commit ? r.submitted & ~r.pending : r.committed,
            revealed: phase == Phase.Reveal ? r.committed & ~r.pending : r.revealed & ~_SENTINEL,
            accepted: r.accepted,
            winner: r.winner,
            seedBlock: r.seedBlock,
            seed: r.seed,
            result: r.result,
            committee: r.committee
        });
    }

    /// @notice The proposal hash `miner` voted for in a round (zero if none).
    /// @param taskId The task.
    /// @param round The round.
    /// @param miner The committee member.
    function voteOf(uint256 taskId, uint32 round, address miner) external view returns (bytes32) {
        return _voteOf[taskId][round][miner];
    }

    /// @notice Votes a proposal hash has in a round.
    /// @param taskId The task.
    /// @param round The round.
    /// @param proposalHash_ The proposal hash.
    function votesFor(uint256 taskId, uint32 round, bytes32 proposalHash_) external view returns (uint16) {
        return _votes[taskId][round][proposalHash_];
    }

    /// @notice Hash identifying a proposal: keccak256 of its ABI encoding.
    /// @param p The proposal.
    function proposalHash(Proposal calldata p) public pure returns (bytes32) {
        return keccak256(abi.encode(p));
    }

    /// @notice Commitment to a score vector: keccak256(abi.encodePacked(taskId, round, client, scores, salt)).
    /// @param taskId The task.
    /// @param round The round.
    /// @param client The committing client.
    /// @param scores The packed score vector.
    /// @param salt A secret random salt.
    function scoreCommitment(uint256 taskId, uint32 round, address client, bytes calldata scores, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked(taskId, round, client, scores, salt));
    }

    /// @notice Commitment to a model: keccak256(abi.encode(taskId, round, client, weightsCID, digest,
    /// behaviourCID, nSamples, salt)). The client's address is inside, so a copied commitment
    /// opens for nobody else.
    /// @param taskId The task.
    /// @param round The round.
    /// @param client The committing client.
    /// @param weightsCID IPFS CID of the weights.
    /// @param digest sha256 of the weights bytes.
    /// @param behaviourCID IPFS CID of the behaviour model ("" if none).
    /// @param nSamples Samples trained on.
    /// @param salt A secret random salt.
    function modelCommitment(
        uint256 taskId,
        uint32 round,
        address client,
        string calldata weightsCID,
        bytes32 digest,
        string calldata behaviourCID,
        uint32 nSamples,
        bytes32 salt
    ) public pure returns (bytes32) {
        return keccak256(abi.encode(taskId, round, client, weightsCID, digest, behaviourCID, nSamples, salt));
    }

    function _openPhase(uint256 taskId, uint32 round, Phase expected) private view returns (Round storage r) {
        r = _rounds[taskId][round];
        if (r.phase != expected) revert FedLedgerWrongPhase(taskId, round, r.phase);
        if (block.timestamp > r.deadline) revert FedLedgerDeadlinePassed(taskId, round, r.deadline);
    }

    /// @dev The caller's `_members` word (commitment and index) and its bit in the round's sets.
    function _member(uint256 taskId) private view returns (uint256 word, uint128 bit) {
        word = _members[taskId][msg.sender];
        if (word == 0) revert FedLedgerNotRegistered(taskId, msg.sender);
        bit = uint128(uint256(1) << ((word & _INDEX_MASK) - 1));
    }

    function _setPhase(uint256 taskId, uint32 round, Round storage r, Phase phase, uint32 duration) private {
        uint64 deadline = uint64(block.timestamp + duration);
        r.phase = phase;
        r.deadline = deadline;
        emit PhaseChanged(taskId, round, phase, deadline);
    }

    function _openRound(uint256 taskId, Task storage t, uint32 round, uint128 selection) private {
        Round storage r = _rounds[taskId][round];
        uint64 deadline = uint64(block.timestamp + t.spec.trainDuration);
        uint40 seedBlock = uint40(block.number + 1);
        t.currentRound = round;
        r.phase = Phase.Train;
        r.deadline = deadline;
        r.seedBlock = seedBlock;
        r.openedAt = uint64(block.timestamp);
        r.nClients = uint16(_clients[taskId].length);
        r.selected = selection;
        r.pending = selection;
        r.revealed = _SENTINEL;
        emit RoundOpened(taskId, round, selection, seedBlock, deadline);
        emit PhaseChanged(taskId, round, Phase.Train, deadline);
    }

    function _closeTrain(uint256 taskId, uint32 round, Task storage t, Round storage r) private {
        uint128 committers = r.selected & ~r.pending;
        r.modelsCommitted = committers;
        r.pending = committers;
        _setPhase(taskId, round, r, Phase.Submit, t.spec.revealDuration);
    }

    /// @dev Fixes the seed from the seed block (see the contract's notes) and draws the committee;
    /// a round whose committee cannot be filled fails here.
    function _closeSubmit(uint256 taskId, uint32 round, Task storage t, Round storage r) private {
        uint128 submitted = r.modelsCommitted & ~r.pending;
        r.submitted = submitted;
        uint256 b = r.seedBlock;
        if (block.number <= b) b = block.number - 1; // only when the whole round ran in one block
        else b += (block.number - 1 - b) / 256 * 256; // the seed block, or its latest available residue
        bytes32 seed = keccak256(abi.encode(blockhash(b), taskId, round));
        address[] memory committee = drawCommittee(seed, t.mech.committeeSize);
        r.seed = seed;
        emit CommitteeDrawn(taskId, round, seed, committee);
        if (committee.length < t.mech.committeeSize) return _fail(taskId, round, t, r, FailReason.NoCommittee);
        r.committee = committee;
        bool validate = t.mech.peerValidation;
        uint32 dutyUntil = uint32(
            block.timestamp + t.spec.aggregateDuration + (validate ? uint256(t.spec.commitDuration) + t.spec.revealDuration : 0)
        );
        for (uint256 i = 0; i < committee.length; ++i) {
            StakeInfo storage st = _stakes[committee[i]];
            if (st.dutyUntil < dutyUntil) st.dutyUntil = dutyUntil;
        }
        if (validate) {
            r.pending = submitted;
            _setPhase(taskId, round, r, Phase.Commit, t.spec.commitDuration);
        } else {
            r.pending = 0; // late revealers (closed by `advance`) are no longer expected
            _setPhase(taskId, round, r, Phase.Aggregate, t.spec.aggregateDuration);
        }
    }

    function _closeCommit(uint256 taskId, uint32 round, Task storage t, Round storage r) private {
        uint128 committed = r.submitted & ~r.pending;
        r.committed = committed;
        r.pending = committed;
        if (committed == 0) _setPhase(taskId, round, r, Phase.Aggregate, t.spec.aggregateDuration);
        else _setPhase(taskId, round, r, Phase.Reveal, t.spec.revealDuration);
    }

    function _closeReveal(uint256 taskId, uint32 round, Task storage t, Round storage r) private {
        r.revealed = (r.committed & ~r.pending) | _SENTINEL;
        r.pending = 0;
        _setPhase(taskId, round, r, Phase.Aggregate, t.spec.aggregateDuration);
    }

    function _closeRound(uint256 taskId, Task storage t, uint32 round, uint128 nextSelection) private {
        if (round >= t.spec.rounds) {
            t.status = TaskStatus.Finished;
            emit TaskFinished(taskId);
        } else {
            _openRound(taskId, t, round + 1, nextSelection);
        }
    }

    function _fail(uint256 taskId, uint32 round, Task storage t, Round storage r, FailReason reason) private {
        Phase atPhase = r.phase;
        r.phase = Phase.Failed;
        emit RoundFailed(taskId, round, atPhase, reason);
        emit PhaseChanged(taskId, round, Phase.Failed, r.deadline);
        _closeRound(taskId, t, round, r.selected);
    }

    function _finalise(uint256 taskId, uint32 round, Task storage t, Round storage r, Proposal calldata p, bytes32 h)
        private
    {
        r.phase = Phase.Finalised;
        r.result = h;
        r.accepted = uint128(p.accepted);
        r.winner = p.winner;
        t.globalCID = p.globalCID;
        t.globalDigest = p.globalDigest;
        _setReputations(taskId, p.reputations);
        emit RoundFinalised(taskId, round, h, p.globalCID, p.globalDigest, p.accepted, p.winner);
        emit PhaseChanged(taskId, round, Phase.Finalised, uint64(block.timestamp));
        _payRound(taskId, round, t, r, p, h);
        _closeRound(taskId, t, round, uint128(p.nextSelection));
    }

    /// @dev Credits the round reward from escrow: an equal share to each accepted client, the
    /// winner's bonus, an equal share to each committee member who voted for the result. What
    /// has no recipient (or is lost to rounding) stays in escrow for the requester.
    function _payRound(uint256 taskId, uint32 round, Task storage t, Round storage r, Proposal calldata p, bytes32 h)
        private
    {
        uint256 pool = t.spec.rewardPerRound;
        if (pool > t.escrow) pool = t.escrow;
        uint256 paid;
        address[] storage clients = _clients[taskId];
        uint256 nAccepted = _popcount(p.accepted);
        if (nAccepted > 0) {
            uint256 each = pool * t.mech.clientShareBps / 10000 / nAccepted;
            for (uint256 i = 0; i < r.nClients; ++i) {
                if (p.accepted & (uint256(1) << i) != 0) _credit(clients[i], taskId, each, CreditKind.ClientReward);
            }
            paid += each * nAccepted;
        }
        if (p.winner != 0) {
            uint256 bonus = pool * t.mech.winnerShareBps / 10000;
            _credit(clients[p.winner - 1], taskId, bonus, CreditKind.WinnerBonus);
            paid += bonus;
        }
        address[] storage committee = r.committee;
        uint256 nVoters = _votes[taskId][round][h];
        uint256 share = pool * t.mech.committeeShareBps / 10000 / nVoters;
        for (uint256 i = 0; i < committee.length; ++i) {
            bytes32 vote = _voteOf[taskId][round][committee[i]];
            if (vote == h) _credit(committee[i], taskId, share, CreditKind.CommitteeReward);
            else if (vote != bytes32(0)) _slash(taskId, round, t, committee[i]); // voted for a losing proposal
        }
        paid += share * nVoters;
        _spendEscrow(t, paid);
    }

    /// @dev Takes SLASH_BPS of what `miner` still holds into the task's escrow.
    function _slash(uint256 taskId, uint32 round, Task storage t, address miner) private {
        uint256 amount = _stakes[miner].amount * SLASH_BPS / 10000;
        if (amount == 0) return;
        _takeStake(miner, amount);
        _addEscrow(t, amount);
        emit MinerSlashed(taskId, round, miner, amount);
    }

    function _abandoned(uint256 taskId, Task storage t) internal view override returns (bool) {
        return block.timestamp > _rounds[taskId][t.currentRound].deadline + ABANDON_AFTER;
    }

    function _checkScores(bytes calldata scores, uint256 nClients) private pure {
        if (scores.length != 2 * nClients) revert FedLedgerInvalidScores(2 * nClients, scores.length);
        // 16 scores per calldata word, checked at once (SWAR): a 16-bit lane x is above 10000 iff
        // its top bit is set or (x & 0x7fff) + (0x7fff - 10000) carries into it; the sum stays
        // below 2^16, so no lane spills into the next.
        uint256 offset;
        assembly ("memory-safe") {
            offset := scores.offset
        }
        for (uint256 i = 0; i < scores.length; i += 32) {
            uint256 word;
            assembly ("memory-safe") {
                word := calldataload(add(offset, i))
            }
            uint256 left = scores.length - i;
            if (left < 32) word &= ~(type(uint256).max >> (8 * left)); // the bytes after the scores
            if ((word | ((word & _LANES_LOW) + _LANES_BIAS)) & _LANES_HIGH != 0) {
                revert FedLedgerInvalidScores(2 * nClients, scores.length);
            }
        }
    }

    function _checkProposal(uint256 taskId, Task storage t, Round storage r, Proposal calldata p) private view {
        if (bytes(p.globalCID).length == 0 || p.globalDigest == bytes32(0)) revert FedLedgerInvalidProposal(ProposalField.GlobalModel);
        if (p.accepted & ~uint256(r.submitted) != 0) revert FedLedgerInvalidProposal(ProposalField.Accepted);
        if (p.winner != 0 && (p.winner > r.nClients || r.submitted & (uint128(1) << (p.winner - 1)) == 0)) {
            revert FedLedgerInvalidProposal(ProposalField.Winner);
        }
        if (p.reputations.length != r.nClients) revert FedLedgerInvalidProposal(ProposalField.Reputations);
        uint256 all = _allClients(taskId);
        if (p.nextSelection == 0 || p.nextSelection & ~all != 0) revert FedLedgerInvalidProposal(ProposalField.NextSelection);
        if (t.mech.selectionRule == 1 && _popcount(p.nextSelection) > t.mech.selectionN) {
            revert FedLedgerInvalidProposal(ProposalField.NextSelection);
        }
    }

    function _popcount(uint256 x) private pure returns (uint256 n) {
        for (; x != 0; x &= x - 1) ++n;
    }
}
