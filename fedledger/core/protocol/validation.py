"""Peer validation: score a peer's model on one's own held-out data.

BPCV-FL's mutual supervision: every data node validates every other node's model on its local
data; the scores go on chain as a vector of uint16 basis points (0..10000 = 0..100 % accuracy).
With many owners a task may ask each model to be scored by k sampled peers instead
(`validation_targets`): m * k evaluations per round instead of m * (m - 1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import nn

from fedledger.core.metrics import evaluate
from fedledger.core.models import StateDict

__all__ = ["accuracy_to_bps", "peer_score", "score_vector", "validation_targets"]

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


def validation_targets(submitters: Sequence[int], per_model: int, seed: bytes) -> dict[int, list[int]]:
    """Whom each submitter scores. ``per_model`` 0 (or at least m - 1): every other submitter.
    Otherwise the submitters are placed on a ring in the order of sha256(seed, index), and each
    scores the next ``per_model`` on it: every model gets exactly ``per_model`` validators, and
    nobody picks whom it validates. Every agent and auditor derives the same ring from the round
    seed on chain (sha256, not a numpy generator, so it cannot differ between library versions)."""
    ids = sorted(set(submitters))
    m = len(ids)
    if per_model <= 0 or per_model >= m - 1:
        return {v: [t for t in ids if t != v] for v in ids}
    ring = sorted(ids, key=lambda i: hashlib.sha256(seed + i.to_bytes(4, "big")).digest())
    return {ring[p]: sorted(ring[(p + j) % m] for j in range(1, per_model + 1)) for p in range(m)}
