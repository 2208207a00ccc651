"""Peer validation: score a peer's model on one's own held-out data.

BPCV-FL's mutual supervision: every data node validates every other node's model on its local
data; the scores go on chain as a vector of uint16 basis points (0..10000 = 0..100 % accuracy).
"""

from __future__ import annotations

import torch
from torch import nn

from fedledger.metrics import evaluate
from fedledger.models import StateDict

__all__ = ["accuracy_to_bps", "peer_score", "score_vector"]

MAX_BPS = 10_000


def accuracy_to_bps(accuracy: float) -> int:
    """Accuracy in [0, 1] -> basis points, rounded half-up, clamped to the uint16 range 0..10000."""
    return max(0, min(MAX_BPS, int(accuracy * MAX_BPS + 0.5)))


def peer_score(model: nn.Module, weights: StateDict, x_val: torch.Tensor, y_val: torch.Tensor) -> int:
    """Accuracy of ``weights`` on the validator's held-out ``(x_val, y_val)``, in basis points."""
    acc, _ = evaluate(model, x_val, y_val, weights=weights)
    return accuracy_to_bps(acc)


def score_vector(
    model: nn.Module,
    peers: dict[int, StateDict],
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    self_id: int | None = None,
) -> dict[int, int]:
    """Scores for every peer (ordered by client id, skipping ``self_id``)."""
    return {k: peer_score(model, peers[k], x_val, y_val) for k in sorted(peers) if k != self_id}
