"""Krum (Blanchard et al., "Machine Learning with Adversaries: Byzantine Tolerant Gradient
Descent", NeurIPS 2017): keep the single update closest to its n - f - 2 nearest neighbours."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from fedledger.core.defences._aggregate import krum_scores
from fedledger.core.defences.base import ClientUpdate, Context, Decision, Defence, TaskTerms, apply_delta, stack_deltas

__all__ = ["Krum", "tolerated_f"]

log = logging.getLogger(__name__)


def tolerated_f(name: str, stated: int, n_submitted: int) -> int:
    """The stated f, or the largest f that ``n_submitted`` updates tolerate (n >= 2f + 3) when
    fewer arrived; a drop is logged, never silent."""
    f = max(0, min(stated, (n_submitted - 3) // 2))
    if f != stated:
        log.warning(
            "%s: the task states f=%d, but %d updates tolerate at most f=%d (n >= 2f + 3): running with f=%d",
            name,
            stated,
            n_submitted,
            f,
            f,
        )
    return f


class StatedF(Defence):
    """Krum's f as a task or a simulation states it; shared by Krum and Multi-Krum."""

    def __init__(self, *, num_malicious: int = 0) -> None:
        self.num_malicious = num_malicious

    @classmethod
    def from_task(cls, task: TaskTerms, n_submitted: int) -> Defence:
        """f as the task states it (``num_malicious``; not stated: 0). When fewer updates arrived
        than the stated f tolerates (n < 2f + 3), f drops to the largest it tolerates,
        ``(n - 3) // 2``, with a warning, and the round's metrics say which f ran; with n < 3 not
        even f = 0 fits, and ``aggregate`` raises the paper's ValueError: `run_experiment` stops
        with it, and so does every miner agent (`compute_round`), so no proposal reaches a quorum
        and the round fails once its aggregate deadline passes (`advance`)."""
        params = dict(task.params)
        stated = int(params.pop("num_malicious", 0))
        return cls(num_malicious=tolerated_f(cls.name, stated, n_submitted), **params)

    @classmethod
    def state_attackers(cls, params: dict[str, Any], n_malicious: int) -> dict[str, Any]:
        return {"num_malicious": n_malicious, **params}


class Krum(StatedF):
    """Krum with ``num_malicious`` = f; needs n >= 2f + 3 (ValueError otherwise)."""

    name = "krum"

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
            scores={i: float(s) for i, s in zip(ids, scores, strict=True)},
            global_update=apply_delta(context.global_weights, X[best].copy()),
            metrics={"score": "krum (sum of squared distances, lower is better)", "num_malicious": self.num_malicious},
        )
