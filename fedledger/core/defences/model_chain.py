"""Model Chain's benchmark rule (the Model Chain paper's mechanism,
docs/design.md#model-chain-benchmark-rule-data-sharing): a round's candidate global model is adopted only if it beats the best model
adopted so far on the current test set; otherwise the previous global model stays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from fedledger.core.defences.base import ClientUpdate, Context, Decision, Defence, TaskTerms

__all__ = ["ModelChain"]


class ModelChain(Defence):
    """Benchmark rule around an ``inner`` aggregation (default FedAvg)."""

    name = "model-chain"

    def __init__(self, *, inner: str | Defence = "fedavg", **inner_kw: Any) -> None:
        from fedledger.core.defences import create_defence  # registry import kept local: no cycle

        self.inner = inner if isinstance(inner, Defence) else create_defence(inner, **inner_kw)
        self.needs = frozenset(self.needs | self.inner.needs)  # type: ignore[misc]

    @classmethod
    def from_task(cls, task: TaskTerms, n_submitted: int) -> Defence:
        """The inner defence as the task states it (its own ``from_task``), wrapped."""
        from fedledger.core.defences import defence_class

        params = dict(task.params)
        inner = defence_class(str(params.pop("inner", "fedavg")))
        return cls(inner=inner.from_task(replace(task, params=params), n_submitted))

    @classmethod
    def state_attackers(cls, params: dict[str, Any], n_malicious: int) -> dict[str, Any]:
        from fedledger.core.defences import defence_class

        return defence_class(str(params.get("inner", "fedavg"))).state_attackers(params, n_malicious)

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
            return replace(cand, metrics=metrics, best_accuracy=acc)
        return replace(cand, accepted=[], weights={}, global_update=None, metrics=metrics, best_accuracy=best)
