"""Coordinate-wise trimmed mean (Yin et al., "Byzantine-Robust Distributed Learning: Towards
Optimal Statistical Rates", ICML 2018)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fedledger.core.defences._aggregate import trimmed_mean
from fedledger.core.defences.base import ClientUpdate, Context, Decision, Defence, apply_delta, stack_deltas

__all__ = ["TrimmedMean"]


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
            ids, {}, {i: float(k) for i, k in zip(ids, kept)}, apply_delta(context.global_weights, agg),
            {"score": "fraction of coordinates kept", "trim": trim},
        )
