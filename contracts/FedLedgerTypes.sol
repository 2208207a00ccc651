// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Shared types of the fedledger round protocol.
/// @dev Fixed-point conventions: "Bps" fields are basis points (10000 = 1.0); "Milli" fields are
/// thousandths (10000 milli = 10.0); reputations use REP_SCALE (1e6 = 1.0).

/// @notice Life cycle of a task.
enum TaskStatus {
    None,
    Open, // published, data owners register, not started
    Running, // rounds in progress
    Finished, // every round closed (finalised or failed)
    Cancelled // cancelled by the requester before the start
}

/// @notice Phase of one round. A phase closes when every expected party has acted, or at its
/// deadline through `advance`.
enum Phase {
    None,
    Train, // selected data owners train and commit to their models (a hash bound to the sender)
    Submit, // ... and reveal them (CIDs, digest): nobody sees a model before every commitment
    Commit, // submitters commit to their peer-validation score vectors (if the task validates)
    Reveal, // ... and reveal them
    Aggregate, // the committee proposes and votes on the aggregate
    Finalised, // > quorum of the committee agreed: new global model recorded
    Failed // no quorum (or no submission) before the deadline: previous global model kept
}

/// @notice What the requester publishes: the learning problem and the round schedule.
struct TaskSpec {
    string modelSpec; // e.g. "mlp"
    string datasetId; // e.g. "mnist"
    string testSetId; // identity of the miners' test set
    string initialWeightsCID;
    bytes32 initialDigest; // sha256 of the initial weights bytes
    uint32 rounds;
    uint16 minClients; // registered data owners needed to start
    uint32 registrationDuration; // seconds after publication after which anyone may start
    uint32 trainDuration; // seconds, per phase
    uint32 commitDuration;
    uint32 revealDuration; // also the model reveal (submit) phase's
    uint32 aggregateDuration;
    uint128 rewardPerRound; // wei, escrowed for every round at publication
}

/// @notice The mechanism the agents run; the contract enforces selection size, committee and
/// quorum, and records the rest for the agents and auditors.
struct Mechanism {
    string defence; // e.g. "bvfb", "krum", "trust-root"
    uint16 thetaBps; // BVFB acceptance threshold
    uint8 dpMechanism; // 0 none, 1 Laplace, 2 Gaussian
    uint32 dpEpsilonMilli;
    uint32 dpClipMilli; // per-sample clipping bound C
    uint32 dpNoiseMilli; // Gaussian noise multiplier sigma
    uint8 selectionRule; // 0 all registered, 1 top-N by reputation
    uint16 selectionN;
    uint16 committeeSize;
    uint16 quorumBps; // finalised when votes * 10000 >= committeeSize * quorumBps (6667: > 2/3)
    uint16 repEvalBps; // LL-BCFL w4: weight of this round's evaluation
    uint16 repPrevBps; // LL-BCFL w5: weight of the previous reputation
    uint16[3] selfWeights; // weights of the self-assessment (data size, quality, category)
    uint16 clientShareBps; // share of the round reward split among accepted clients
    uint16 winnerShareBps; // bonus of the round winner
    uint16 committeeShareBps; // split among the committee members who voted for the result
    bool peerValidation; // submitters score each other (commit, reveal); false: train -> aggregate
    uint16 peerValidators; // peers that score each model, drawn from the round seed (0: every peer)
}

/// @notice A committee's result for one round. Client indexes are registration order.
struct Proposal {
    string globalCID;
    bytes32 globalDigest; // sha256 of the global weights bytes
    uint256 accepted; // bitmap of accepted submitters
    uint32[] reputations; // new reputation of every client registered when the round opened
    uint16 winner; // index + 1 of the round winner, 0 for none
    uint256 nextSelection; // bitmap of the clients selected for the next round
}
