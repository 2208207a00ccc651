"""Oracle: the perfect-defence limit, for benchmarks only.

It is told who is malicious and FedAvg-s exactly the other clients, so its accuracy is what a
defence that never errs would reach. A real task cannot know who is malicious:
task validation refuses it (``publishable``), so ``task publish`` never sends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from fedledger.core.defences.base import ClientUpdate, Context, Decision, Defence, stack_deltas
from fedledger.core.defences.fedavg import fedavg_decision

__all__ = ["Oracle"]


class Oracle(Defence):
    """Accept every client not in ``malicious``; sample-weighted average of those."""

    name = "oracle"
    publishable: ClassVar[bool] = False

    def __init__(self, *, malicious: Iterable[int]) -> None:
        self.malicious = sorted({int(i) for i in malicious})

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """FedAvg over the honest clients (none: the global model stays)."""
        ids, X, n = stack_deltas(updates, context.global_weights)
        bad = set(self.malicious)
        honest = [i for i in ids if i not in bad]
        scores = {i: 0.0 if i in bad else 1.0 for i in ids}
        return fedavg_decision(ids, X, n, honest, scores, context, {"score": "1 honest, 0 malicious (told)"})
