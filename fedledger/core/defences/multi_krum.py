"""Multi-Krum (Blanchard et al., NeurIPS 2017): average the ``to_keep`` updates with the lowest
Krum scores (default n - f)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedledger.core.defences._aggregate import krum_scores, weighted_average
from fedledger.core.defences.base import ClientUpdate, Context, Decision, apply_delta, stack_deltas
from fedledger.core.defences.krum import StatedF

__all__ = ["MultiKrum"]


class MultiKrum(StatedF):
    """Multi-Krum; ``weighted`` averages the selected by sample count instead of equally."""

    name = "multi-krum"

    def __init__(self, *, num_malicious: int = 0, to_keep: int | None = None, weighted: bool = False) -> None:
        self.num_malicious, self.to_keep, self.weighted = num_malicious, to_keep, weighted

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Keep the ``to_keep`` best-scored updates (ties: lower id) and average them."""
        ids, X, n = stack_deltas(updates, context.global_weights)
        if not ids:
            return Decision([], {}, {}, None)
        m = len(ids) - self.num_malicious if self.to_keep is None else self.to_keep
        if not 1 <= m <= len(ids):
            raise ValueError(f"to_keep={m} outside 1..{len(ids)}")
        scores = krum_scores(X, self.num_malicious)
        rows = np.sort(np.argsort(scores, kind="stable")[:m])
        w = n[rows] if self.weighted else np.ones(len(rows))
        accepted = [ids[r] for r in rows]
        return Decision(
            accepted=accepted,
            weights={i: float(wi / w.sum()) for i, wi in zip(accepted, w, strict=True)},
            scores={i: float(s) for i, s in zip(ids, scores, strict=True)},
            global_update=apply_delta(context.global_weights, weighted_average(X[rows], w)),
            metrics={"score": "krum (sum of squared distances, lower is better)", "num_malicious": self.num_malicious},
        )
