"""Krum (Blanchard et al., "Machine Learning with Adversaries: Byzantine Tolerant Gradient
Descent", NeurIPS 2017): keep the single update closest to its n - f - 2 nearest neighbours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedledger.core.defences._aggregate import krum_scores
from fedledger.core.defences.base import ClientUpdate, Context, Decision, Defence, apply_delta, stack_deltas

__all__ = ["Krum"]


class Krum(Defence):
    """Krum with ``num_malicious`` = f; needs n >= 2f + 3 (ValueError otherwise)."""

    name = "krum"

    def __init__(self, *, num_malicious: int = 0) -> None:
        self.num_malicious = num_malicious

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Select the lowest Krum score (ties: lowest client id); its update becomes the global step."""
        ids, X, _n = stack_deltas(updates, context.global_weights)
        if not ids:
            return Decision([], {}, {}, None)
        scores = krum_scores(X, self.num_malicious)
        best = int(np.argmin(scores))  # argmin returns the first minimum: lowest id on ties
        return Decision(
            accepted=[ids[best]],
            weights={ids[best]: 1.0},
            scores={i: float(s) for i, s in zip(ids, scores)},
            global_update=apply_delta(context.global_weights, X[best].copy()),
            metrics={"score": "krum (sum of squared distances, lower is better)"},
        )
