"""BCS-FL: committee filtering by cosine similarity and loss difference (the BCS-FL paper's
mechanism; the rule: docs/design.md#bcs-fl-committee-filter).

Each committee member compares every local model against the others: the mean cosine similarity
of its update with the other updates, and the difference between its loss on the member's test
set and the median loss of all local models. Models that point away from the rest or whose loss
is far above the others' are filtered out; the rest are FedAvg-ed. The filter assumes an honest
majority (the median and the mean similarity are the majority's).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedledger.core.defences._aggregate import cosine
from fedledger.core.defences.base import ClientUpdate, Context, Decision, Defence, sorted_updates, stack_deltas
from fedledger.core.defences.fedavg import fedavg_decision

__all__ = ["BCSFL"]


class BCSFL(Defence):
    """Accept ``mean cosine > cos_threshold`` and ``loss - median(loss) <= loss_margin``."""

    name = "bcs-fl"

    def __init__(self, *, cos_threshold: float = 0.0, loss_margin: float = 0.5) -> None:
        self.cos_threshold, self.loss_margin = cos_threshold, loss_margin

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Score every model against the others and FedAvg the ones that pass both filters."""
        ups = sorted_updates(updates, context.global_weights)
        ids, X, n = stack_deltas(ups, context.global_weights)
        if not ids:
            return Decision([], {}, {}, None)
        m = len(ids)
        C = np.eye(m)
        for a in range(m):
            for b in range(a + 1, m):
                C[a, b] = C[b, a] = cosine(X[a], X[b])
        mean_cos = {i: float((C[r].sum() - 1.0) / (m - 1)) if m > 1 else 1.0 for r, i in enumerate(ids)}
        losses = {u.client_id: context.evaluate(u.weights, client_id=u.client_id)[1] for u in ups}
        med = float(np.median([losses[i] for i in ids]))
        loss_diff = {i: losses[i] - med for i in ids}
        accepted = [i for i in ids if mean_cos[i] > self.cos_threshold and loss_diff[i] <= self.loss_margin]
        return fedavg_decision(
            ids,
            X,
            n,
            accepted,
            mean_cos,
            context,
            metrics={"score": "mean cosine similarity", "loss_diff": loss_diff},
        )
