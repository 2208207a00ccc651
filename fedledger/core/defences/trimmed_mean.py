"""Coordinate-wise trimmed mean (Yin et al., "Byzantine-Robust Distributed Learning: Towards
Optimal Statistical Rates", ICML 2018)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from fedledger.core.defences._aggregate import trimmed_mean
from fedledger.core.defences.base import ClientUpdate, Context, Decision, Defence, TaskTerms, apply_delta, stack_deltas

__all__ = ["TrimmedMean"]

log = logging.getLogger(__name__)


class TrimmedMean(Defence):
    """Drop the ``trim`` largest and smallest values per coordinate and average the rest.

    ``trim`` = ``num_trim`` if given, else ``floor(trim_ratio * n)`` (Flower's
    ``proportiontocut``). ``weights`` is empty (per-coordinate selection); a client's score is
    the fraction of its coordinates that survived the trim.
    """

    name = "trimmed-mean"

    def __init__(self, *, trim_ratio: float = 0.1, num_trim: int | None = None) -> None:
        if not 0 <= trim_ratio < 0.5:
            raise ValueError("trim_ratio must be in [0, 0.5)")
        self.trim_ratio, self.num_trim = trim_ratio, num_trim

    @classmethod
    def from_task(cls, task: TaskTerms, n_submitted: int) -> Defence:
        """The trim as the task states it: ``num_trim`` per side (at most ``(n - 1) // 2``, so one
        value survives; a larger stated trim drops to that, with a warning), else ``trim_ratio``
        (not stated: 0.1)."""
        params = dict(task.params)
        if "num_trim" in params:
            stated = int(params["num_trim"])
            params["num_trim"] = max(0, min(stated, (n_submitted - 1) // 2))
            if params["num_trim"] != stated:
                log.warning(
                    "trimmed-mean: the task states num_trim=%d, but %d updates allow at most %d per side",
                    stated,
                    n_submitted,
                    params["num_trim"],
                )
        return cls(**params)

    @classmethod
    def state_attackers(cls, params: dict[str, Any], n_malicious: int) -> dict[str, Any]:
        """Trim as many values per side as there are attackers, unless a trim is stated."""
        if "trim_ratio" in params or "num_trim" in params:
            return dict(params)
        return {**params, "num_trim": n_malicious}

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Trimmed mean of all updates."""
        ids, X, _n = stack_deltas(updates, context.global_weights)
        if not ids:
            return Decision([], {}, {}, None)
        n = len(ids)
        trim = self.num_trim if self.num_trim is not None else math.floor(self.trim_ratio * n)
        agg = trimmed_mean(X, trim)
        # Rank of each value within its coordinate; kept if trim <= rank < n - trim.
        ranks = np.argsort(np.argsort(X, axis=0, kind="stable"), axis=0, kind="stable")
        kept = ((ranks >= trim) & (ranks < n - trim)).mean(axis=1)
        return Decision(
            ids,
            {},
            {i: float(k) for i, k in zip(ids, kept, strict=True)},
            apply_delta(context.global_weights, agg),
            {"score": "fraction of coordinates kept", "trim": trim},
        )
