"""Model Chain's benchmark rule (the Model Chain paper's mechanism,
docs/design.md#model-chain-benchmark-rule-data-sharing): a round's candidate global model is adopted only if it beats the best model
adopted so far on the current test set; otherwise the previous global model stays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fedledger.core.defences.base import ClientUpdate, Context, Decision, Defence

__all__ = ["ModelChain"]


class ModelChain(Defence):
    """Benchmark rule around an ``inner`` aggregation (default FedAvg)."""

    name = "model-chain"

    def __init__(self, *, inner: str = "fedavg", **inner_kw: Any) -> None:
        from fedledger.core.defences import create_defence  # registry import kept local: no cycle

        self.inner = create_defence(inner, **inner_kw)
        self.needs = frozenset(self.needs | self.inner.needs)  # type: ignore[misc]

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Aggregate with ``inner``, then adopt only if test accuracy beats ``context.best_accuracy``."""
        cand = self.inner.aggregate(updates, context)
        if cand.global_update is None:
            return cand
        acc = context.evaluate(cand.global_update)[0]
        best = context.best_accuracy
        adopted = best is None or acc > best
        metrics = {**cand.metrics, "candidate_accuracy": acc, "adopted": adopted}
        if adopted:
            return Decision(cand.accepted, cand.weights, cand.scores, cand.global_update, metrics,
                            {**cand.state, "best_accuracy": acc})
        return Decision([], {}, cand.scores, None, metrics, {**cand.state, "best_accuracy": best})
