"""BVFB: training-behaviour verification (the BVFB paper's mechanism, as specified in
docs/design.md#bvfb-training-behaviour-verification; what a faithful BVFB measures:
docs/design.md#paper-setups-and-reference-numbers).

Every client publishes its behaviour model ``pace = (w_after - w_before) / (lr * local_steps)``
and ``direction = sign(pace)``. The miner takes the client whose model is most accurate on the
miner's test set as the honest reference; for every other client it computes, per parameter
tensor, the Pearson correlation of pace (BPH) and of direction (BDH) with the reference's,
averages each over the tensors, and accepts ``BH = (BPH + BDH) / 2 > theta`` (paper: 0.6).
The accepted models are FedAvg-ed (sample-weighted).

Known limit (measured): once most clients are colluding backdoor attackers, one of them can be
the most accurate and become the reference, and BVFB then accepts the colluders.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fedledger.core.defences._aggregate import pearson
from fedledger.core.defences.base import (
    ClientUpdate,
    Context,
    Decision,
    Defence,
    TaskTerms,
    flatten,
    float_keys,
    sorted_updates,
    stack_deltas,
    tensor_slices,
)
from fedledger.core.defences.fedavg import fedavg_decision

__all__ = ["BVFB", "behaviour_health"]


def behaviour_health(pace: np.ndarray, ref: np.ndarray, slices: Sequence[slice]) -> tuple[float, float]:
    """(BPH, BDH): per-tensor Pearson of pace and of sign(pace) with the reference, averaged."""
    bph = [pearson(pace[s], ref[s]) for s in slices]
    bdh = [pearson(np.sign(pace[s]), np.sign(ref[s])) for s in slices]
    return float(np.mean(bph)), float(np.mean(bdh))


class BVFB(Defence):
    """BVFB with threshold ``theta``. Uses each update's published ``pace``; when absent, the
    weight delta stands in (Pearson is invariant to the positive factor 1 / (lr * steps))."""

    name = "bvfb"

    def __init__(self, *, theta: float = 0.6) -> None:
        self.theta = theta

    @classmethod
    def from_task(cls, task: TaskTerms, n_submitted: int) -> Defence:
        """theta: the task's BH threshold, unless stated with the defence's name."""
        return cls(**{"theta": task.theta, **task.params})

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Choose the reference, score BH for everyone, FedAvg those with BH > theta."""
        ups = sorted_updates(updates, context.global_weights)
        ids, X, n = stack_deltas(ups, context.global_weights)
        if not ids:
            return Decision([], {}, {}, None)
        accs = {u.client_id: context.evaluate(u.weights, client_id=u.client_id)[0] for u in ups}
        # Most accurate; ties go to the lowest id (max over ascending ids keeps the first).
        ref = max(ids, key=lambda i: accs[i])
        keys = float_keys(context.global_weights)
        slices = tensor_slices(context.global_weights, keys)
        paces = {u.client_id: (flatten(u.pace, keys) if u.pace is not None else X[r]) for r, u in enumerate(ups)}
        bh, bph, bdh = {}, {}, {}
        for i in ids:
            bph[i], bdh[i] = behaviour_health(paces[i], paces[ref], slices)
            bh[i] = (bph[i] + bdh[i]) / 2
        bh[ref] = 1.0  # the reference verifies itself (avoid a 0.9999999 rounding artefact)
        accepted = [i for i in ids if bh[i] > self.theta or i == ref]
        return fedavg_decision(
            ids,
            X,
            n,
            accepted,
            bh,
            context,
            metrics={"score": "BH", "reference": ref, "bph": bph, "bdh": bdh, "accuracy": accs},
        )
