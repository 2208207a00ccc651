"""Coordinate-wise median (Yin et al., "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedledger.core.defences._aggregate import coordinate_median
from fedledger.core.defences.base import ClientUpdate, Context, Decision, Defence, apply_delta, stack_deltas

__all__ = ["Median"]


class Median(Defence):
    """Global step = coordinate-wise median of the updates. No one is rejected outright;
    ``weights`` is empty (not a weighted average); a client's score is its L2 distance to the
    median (lower is more central)."""

    name = "median"

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Median of all updates."""
        ids, X, _n = stack_deltas(updates, context.global_weights)
        if not ids:
            return Decision([], {}, {}, None)
        med = coordinate_median(X)
        scores = {i: float(np.sqrt(np.sum((X[r] - med) ** 2))) for r, i in enumerate(ids)}
        return Decision(ids, {}, scores, apply_delta(context.global_weights, med), {"score": "distance to median"})
