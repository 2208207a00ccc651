"""Trust-root defence in the spirit of FLTrust (Cao et al., "FLTrust: Byzantine-robust Federated
Learning via Trust Bootstrapping", NDSS 2021).

The miner holds a small clean *root dataset* and trains its own server update from the round's
global model. Each client's trust score is ``ReLU(cos(update_i, server_update))``; each update is
rescaled to the server update's norm; the global step is the trust-weighted average of the
rescaled updates. Because trust comes from the root data rather than from agreement among
clients, it holds with more than 50 % malicious clients.

Trust assumption (stated, not hidden): the root dataset is clean and drawn from (roughly) the
task's distribution, and the party holding it is honest. On a ledger every committee member must
hold the *same* root dataset (its hash published in the task) and train the server update
deterministically (fixed seed, CPU, same settings), or the committee will not agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from fedledger.core.defences._aggregate import cosine
from fedledger.core.defences.base import (
    ClientUpdate,
    Context,
    Decision,
    Defence,
    apply_delta,
    flatten,
    float_keys,
    stack_deltas,
)
from fedledger.core.learning.training import train_local

__all__ = ["FLTrust"]


class FLTrust(Defence):
    """FLTrust; the server update trains ``root_steps`` SGD steps on the root data, by default as
    many as a typical client trains (the task's ``local_steps``, else ``local_epochs`` passes
    over the median sample count the round's updates declare), so its magnitude matches theirs."""

    name = "fltrust"

    def __init__(self, *, root_steps: int | None = None) -> None:
        self.root_steps = root_steps

    def server_update(self, context: Context, n_samples: Sequence[int] = ()) -> np.ndarray:
        """The root dataset's update (float64 flat vector), deterministic in (seed, round);
        ``n_samples``: the sample counts the round's updates declare (for the default steps)."""
        if context.root_x is None or context.root_y is None:
            raise ValueError("FLTrust needs the root dataset (context.root_x/root_y)")
        cfg = context.train_config
        steps = self.root_steps
        if steps is None and not cfg.local_steps and len(n_samples):
            steps = cfg.local_epochs * math.ceil(int(np.median(n_samples)) / cfg.batch_size)
        if steps is not None:
            cfg = replace(cfg, local_steps=steps)
        res = train_local(
            context.model(),
            context.global_weights,
            context.root_x,
            context.root_y,
            cfg,
            seed=context.seed * 1_000_003 + context.round,
        )
        keys = float_keys(context.global_weights)
        return flatten(res.weights, keys) - flatten(context.global_weights, keys)

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Trust-weighted average of the norm-normalised updates."""
        ids, X, _n = stack_deltas(updates, context.global_weights)
        if not ids:
            return Decision([], {}, {}, None)
        g0 = self.server_update(context, [int(v) for v in _n])
        g0_norm = float(np.sqrt(np.sum(g0 * g0)))
        trust = {i: max(0.0, cosine(X[r], g0)) for r, i in enumerate(ids)}
        total = sum(trust[i] for i in ids)
        accepted = [i for i in ids if trust[i] > 0]
        metrics = {"score": "trust (ReLU cosine to the root update)", "server_update_norm": g0_norm}
        if total == 0.0:
            return Decision([], {}, trust, None, metrics)
        acc = np.zeros(X.shape[1])
        for r, i in enumerate(ids):  # fixed order
            if trust[i] > 0:
                norm = float(np.sqrt(np.sum(X[r] * X[r])))
                acc += trust[i] * (g0_norm / norm) * X[r]
        return Decision(
            accepted,
            {i: trust[i] / total for i in accepted},
            trust,
            apply_delta(context.global_weights, acc / total),
            metrics,
        )
