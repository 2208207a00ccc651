"""Python mirrors of the contract's structs and enums, with their ABI tuple conversions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple, dataclass, field
from enum import IntEnum
from typing import Any

from eth_abi import encode
from eth_utils import keccak

REP_SCALE = 1_000_000
MAX_CLIENTS = 127


class TaskStatus(IntEnum):
    NONE = 0
    OPEN = 1
    RUNNING = 2
    FINISHED = 3
    CANCELLED = 4


class Phase(IntEnum):
    NONE = 0
    TRAIN = 1  # selected owners train and commit to their models
    SUBMIT = 2  # ... and reveal them (CIDs, digest)
    COMMIT = 3
    REVEAL = 4
    AGGREGATE = 5
    FINALISED = 6
    FAILED = 7


class FailReason(IntEnum):
    """Why a round failed (`RoundFailed.reason`)."""

    NO_MODEL = 0
    NO_COMMITTEE = 1
    NO_QUORUM = 2


class ProposalField(IntEnum):
    """The field a rejected proposal got wrong (`FedLedgerInvalidProposal.what`)."""

    GLOBAL_MODEL = 0
    ACCEPTED = 1
    WINNER = 2
    REPUTATIONS = 3
    NEXT_SELECTION = 4


class TaskParameter(IntEnum):
    """The task parameter out of range (`FedLedgerInvalidTaskParameter.what`)."""

    ROUNDS = 0
    MIN_CLIENTS = 1
    INITIAL_WEIGHTS_CID = 2
    INITIAL_DIGEST = 3
    DURATIONS = 4
    COMMITTEE_SIZE = 5
    QUORUM_BPS = 6
    SELECTION_RULE = 7
    SELECTION_N = 8
    DP_MECHANISM = 9
    REWARD_SHARES = 10


#: Solidity enums that custom errors and events carry, by name (ABI `internalType` "enum X.Name").
ENUMS: dict[str, type[IntEnum]] = {
    "Phase": Phase,
    "ProposalField": ProposalField,
    "TaskParameter": TaskParameter,
    "FailReason": FailReason,
}


class DPMechanism(IntEnum):
    NONE = 0
    LAPLACE = 1
    GAUSSIAN = 2


@dataclass(frozen=True)
class TaskSpec:
    """The learning problem, schedule and reward (see contracts/FedLedgerTypes.sol)."""

    model_spec: str
    dataset_id: str
    test_set_id: str
    initial_weights_cid: str
    initial_digest: bytes
    rounds: int
    min_clients: int = 1
    registration_duration: int = 3600
    train_duration: int = 600
    commit_duration: int = 120
    reveal_duration: int = 120
    aggregate_duration: int = 600
    reward_per_round: int = 0

    def to_abi(self) -> tuple[Any, ...]:
        return astuple(self)

    @classmethod
    def from_abi(cls, t: Any) -> TaskSpec:
        values: list[Any] = [bytes(v) if isinstance(v, (bytes, bytearray)) else v for v in t]
        return cls(*values)


@dataclass(frozen=True)
class Mechanism:
    """Defence, DP, selection, committee and reward split; bps = basis points, milli = 1/1000."""

    defence: str = "fedavg"
    theta_bps: int = 6000
    dp_mechanism: int = DPMechanism.NONE
    dp_epsilon_milli: int = 0
    dp_clip_milli: int = 0
    dp_noise_milli: int = 0
    selection_rule: int = 0  # 0 all, 1 top-N by reputation
    selection_n: int = 0
    committee_size: int = 1
    quorum_bps: int = 6667  # votes * 10000 >= committee * quorum: 6667 means more than 2/3
    rep_eval_bps: int = 5000
    rep_prev_bps: int = 5000
    self_weights: tuple[int, int, int] = (1, 1, 1)
    client_share_bps: int = 6000
    winner_share_bps: int = 2000
    committee_share_bps: int = 2000
    peer_validation: bool = True  # submitters score each other (commit, reveal); off: train -> aggregate
    peer_validators: int = 0  # peers that score each model, drawn from the round seed (0: every peer)

    def to_abi(self) -> tuple[Any, ...]:
        return tuple(list(v) if isinstance(v, tuple) else v for v in astuple(self))

    @classmethod
    def from_abi(cls, t: Any) -> Mechanism:
        values = list(t)
        values[12] = tuple(values[12])
        return cls(*values)


PROPOSAL_ABI = "(string,bytes32,uint256,uint32[],uint16,uint256)"


@dataclass(frozen=True)
class Proposal:
    """A committee's result for one round; bitmaps index clients in registration order."""

    global_cid: str
    global_digest: bytes
    accepted: int
    reputations: tuple[int, ...]
    winner: int  # index + 1, 0 for none
    next_selection: int

    def to_abi(self) -> tuple[Any, ...]:
        return (
            self.global_cid,
            self.global_digest,
            self.accepted,
            list(self.reputations),
            self.winner,
            self.next_selection,
        )

    @classmethod
    def from_abi(cls, t: Any) -> Proposal:
        if isinstance(t, Mapping):  # events decode tuples as mappings
            t = (t["globalCID"], t["globalDigest"], t["accepted"], t["reputations"], t["winner"], t["nextSelection"])
        cid, digest, accepted, reps, winner, nxt = t
        return cls(cid, bytes(digest), int(accepted), tuple(int(r) for r in reps), int(winner), int(nxt))

    def hash(self) -> bytes:
        """keccak256(abi.encode(p)), as the contract's `proposalHash`."""
        return keccak(encode([PROPOSAL_ABI], [self.to_abi()]))


@dataclass(frozen=True)
class RoundInfo:
    phase: Phase
    deadline: int
    opened_at: int
    n_clients: int
    selected: int
    models_committed: int  # owners that committed to a model (train phase)
    submitted: int  # ... and revealed it (submit phase)
    committed: int  # score commitments
    revealed: int
    accepted: int
    winner: int
    seed_block: int  # the seed is this block's hash, fixed when the submit phase closes
    seed: bytes  # zero until then
    result: bytes
    committee: tuple[str, ...] = field(default_factory=tuple)  # drawn when the submit phase closes

    @classmethod
    def from_abi(cls, t: Any) -> RoundInfo:
        v = list(t)
        v[0] = Phase(v[0])
        v[12], v[13] = bytes(v[12]), bytes(v[13])
        v[14] = tuple(v[14])
        return cls(*v)


@dataclass(frozen=True)
class Submission:
    """A `ModelSubmitted` event."""

    client: str
    index: int
    weights_cid: str
    digest: bytes
    behaviour_cid: str
    n_samples: int
    block_number: int
    tx_hash: str


def bits(bitmap: int) -> list[int]:
    """Indexes of the set bits of a client bitmap."""
    return [i for i in range(bitmap.bit_length()) if bitmap >> i & 1]


def bitmap(indexes: list[int] | set[int] | tuple[int, ...]) -> int:
    out = 0
    for i in indexes:
        out |= 1 << i
    return out
