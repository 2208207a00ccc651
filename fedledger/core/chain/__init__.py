"""fedledger's chain access: typed contract bindings, local signing, decoded reverts and events."""

from fedledger.core.chain.accounts import devnet_account, load_account
from fedledger.core.chain.contract import (
    FedLedger,
    connect,
    decode_scores,
    draw_committee,
    encode_scores,
    model_commitment,
    score_commitment,
)
from fedledger.core.chain.errors import ChainError, ContractRevert, TransactionFailed
from fedledger.core.chain.types import (
    Mechanism,
    Phase,
    Proposal,
    RoundInfo,
    Submission,
    TaskSpec,
    TaskStatus,
    bitmap,
    bits,
)

__all__ = [
    "ChainError",
    "ContractRevert",
    "FedLedger",
    "Mechanism",
    "Phase",
    "Proposal",
    "RoundInfo",
    "Submission",
    "TaskSpec",
    "TaskStatus",
    "TransactionFailed",
    "bitmap",
    "bits",
    "connect",
    "decode_scores",
    "devnet_account",
    "draw_committee",
    "encode_scores",
    "load_account",
    "model_commitment",
    "score_commitment",
]
