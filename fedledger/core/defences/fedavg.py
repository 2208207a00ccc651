"""FedAvg: sample-weighted average of all updates (McMahan et al., "Communication-Efficient
Learning of Deep Networks from Decentralized Data", AISTATS 2017). No defence: the baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fedledger.core.defences._aggregate import weighted_average
from fedledger.core.defences.base import ClientUpdate, Context, Decision, Defence, apply_delta, stack_deltas

__all__ = ["FedAvg", "fedavg_decision"]


def fedavg_decision(
    ids: list[int],
    X: np.ndarray,
    n_samples: np.ndarray,
    accepted: Sequence[int],
    scores: dict[int, float],
    context: Context,
    metrics: dict[str, object] | None = None,
    **mechanism: Any,
) -> Decision:
    """Decision that FedAvg-s (sample-weighted) the ``accepted`` rows of ``X`` (ids ascending);
    ``mechanism`` sets the Decision's next-round fields (reputation, next_selection, winner ...)."""
    acc = sorted(accepted)
    rows = [ids.index(i) for i in acc]
    if not rows:
        return Decision([], {}, scores, None, dict(metrics or {}), **mechanism)
    w = n_samples[rows]
    delta = weighted_average(X[rows], w)
    return Decision(
        accepted=acc,
        weights={i: float(wi / w.sum()) for i, wi in zip(acc, w, strict=True)},
        scores=scores,
        global_update=apply_delta(context.global_weights, delta),
        metrics=dict(metrics or {}),
        **mechanism,
    )


class FedAvg(Defence):
    """Accept everyone; average weighted by declared sample counts (or equally)."""

    name = "fedavg"

    def __init__(self, *, weighted: bool = True) -> None:
        self.weighted = weighted

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Average every update."""
        ids, X, n = stack_deltas(updates, context.global_weights)
        w = n if self.weighted else np.ones_like(n)
        return fedavg_decision(ids, X, w, ids, {i: 1.0 for i in ids}, context, {"score": "none"})
