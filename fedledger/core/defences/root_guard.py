"""Root guard: judge each update as it would enter the aggregate, on the miners' clean data, by
whether it helps once the output bias is refitted and whether it inverts a pair of classes; drop
backdoor-shaped and copied updates; average the rest at one step size.

Trust root (stated): the miners' clean data (``context.test_x/test_y``: clean, class-balanced,
identical for every committee member; FLTrust's root set and the trust root come from it too).

The rule, per round:

1. **Dormant inputs** (backdoors). For every Linear layer, inputs whose variance over the clean
   data is ~0 (a blank image border) are dormant: on clean data a weight on them acts only as a
   bias. An honest owner's data is blank there too, so its step there is along the clean values
   c_J; a pixel-pattern trigger lives exactly there, so a backdoor's step is not. The share of
   the update's norm on dormant inputs off the c_J direction is its *dormant share*; above
   ``max_dormant_share`` the owner is dropped. Kept steps are *confined*: their weights on dormant
   inputs are folded into the bias (the same function on clean data, nothing learnt there).
2. **Near-copies** (ALIE, IPM: colluders who submit one crafted vector). Owners whose confined
   steps have cosine >= ``duplicate_cosine`` with another's are dropped; honest data differ.
3. **One step size.** Every step is rescaled to the norm of the step the trust root's own data
   gives (trained as an owner trains, seeded by the round): owners choose directions, not sizes,
   so a boosted step buys nothing and a flip shrunk until it dents nothing is judged at full
   size (FLTrust's normalisation, here also applied before judging).
4. **Useful and not inverting** (label flipping, IPM, anything that unlearns). On the first
   ``eval_size`` clean samples, for the global model and for ``global + step``:
   - *gain*: the drop in mean cross-entropy, each model's output bias first refitted to the
     clean data (``calibrate_bias``). Refitting removes the lean of an owner who holds few
     classes (what breaks loss- and accuracy-based checks on non-IID data) and any bias an
     attacker pushed; what is left is whether the step separates the classes better. Below
     ``min_gain`` the owner is dropped: honest steps, IID or not, gain (measured:
     docs/results/robustness.md); a flip loses once the global model knows the classes.
   - *ranking damage*: for each pair a < b, the AUC of ``logit_a - logit_b`` separating a's
     samples from b's; damage = ``max_p (2 AUC_p(global) - 1) - AUC_p(step)``. Above
     ``max_damage`` (a pair the global model told apart, inverted) the owner is dropped,
     whatever its gain.
5. **The aggregate's damage.** The candidate aggregate must keep every pair's ranking: damage
   at most ``max_aggregate_damage``. While it does not, the kept owners with the least gain are
   dropped, a tenth of them at a time (at most ten evaluations); if no trimmed set passes, the
   one with the least aggregate damage is kept.
6. **Aggregate**: the sample-weighted average of the kept rescaled steps (sample counts capped at
   ``clip`` times their median, so an inflated count buys little), its output bias refitted to
   the clean data (step 4 cannot see a bias, so the aggregate never carries one it did not earn
   on clean data).

Builds on: FLTrust (Cao et al., NDSS 2021: a clean root dataset held by the server as trust
anchor, and updates rescaled to the root update's norm), FLAME (Nguyen et al., USENIX Security
2022: bounding norms against boosted updates), Fine-Pruning (Liu et al., RAID 2018: backdoors use
what clean data leaves dormant), Karimireddy et al. (ICLR 2022, bucketing: non-IID honest updates
look like outliers when judged alone, so a rule must not punish heterogeneity), classifier
re-calibration for non-IID federations (Luo et al., "No Fear of Heterogeneity", NeurIPS 2021:
the output layer carries most of the client drift) and ALIE / IPM (Baruch et al. 2019; Xie et
al. 2019), whose colluders share one vector.

Determinism: rows in ascending client id, ties broken by id; every number that reaches the
aggregate is float64 numpy with fixed-order sums, except the refitted bias (float64 Newton
steps on BLAS products), which is rounded to 1e-6; AUCs come from stable sorts of the logits.
The decisions compare scores to fixed thresholds, so committee members could only disagree on
a score within rounding error of a threshold, or on a bias within rounding error of a 1e-6 step.
Cost: measured in docs/results/robustness.md.
Limits: only Linear layers are confined (on the CNN, the first Linear layer reads conv feature
positions). An attacker who knows the rule can still hide a flip inside useful work (the
adaptive attack, fedledger/core/attacks/adaptive.py): it must keep a gain, so what it adds is
bounded by the honest progress it carries (measured: docs/results/robustness.md).
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from fedledger.core.defences.base import (
    ClientUpdate,
    Context,
    Decision,
    Defence,
    apply_delta,
    float_keys,
    stack_deltas,
    tensor_slices,
)
from fedledger.core.learning.training import train_local
from fedledger.core.models import StateDict

__all__ = [
    "RootGuard",
    "calibrate_bias",
    "confine",
    "dormant_inputs",
    "dormant_share",
    "near_duplicates",
    "pair_aucs",
    "ranking_damage",
    "root_step_norm",
    "to_norm",
]

Dormant = dict[str, tuple[np.ndarray, np.ndarray]]


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # numpy's pairwise sum has one fixed order on every machine (BLAS may split a dot over threads)
    return float(np.sum(a * b))


def _norm(a: np.ndarray) -> float:
    return float(np.sqrt(_dot(a, a)))


class _Scratch:
    """One copy of the task's model in ``dtype``, reloaded per candidate (a deep copy per
    candidate was most of the rule's cost at 100 owners)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        self.net, self.dtype = copy.deepcopy(model).to(dtype).eval(), dtype

    def load(self, weights: StateDict) -> nn.Module:
        self.net.load_state_dict(
            OrderedDict((k, v.to(self.dtype) if v.is_floating_point() else v) for k, v in weights.items())
        )
        return self.net


def _loaded(model: nn.Module | _Scratch, weights: StateDict, dtype: torch.dtype) -> nn.Module:
    return (model if isinstance(model, _Scratch) and model.dtype == dtype else _Scratch(_module(model), dtype)).load(
        weights
    )


def _module(model: nn.Module | _Scratch) -> nn.Module:
    return model.net if isinstance(model, _Scratch) else model


def dormant_inputs(
    model: nn.Module | _Scratch, weights: StateDict, x: torch.Tensor, *, rel_var: float = 1e-6
) -> Dormant:
    """For every Linear layer with a bias (by module name): the indices J of its inputs whose
    variance over ``x`` is at most ``rel_var`` times the layer's largest input variance, and
    their mean values c_J."""
    m = _loaded(model, weights, torch.float64)
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        mod.register_forward_hook(lambda _m, inp, _o, p=prefix: seen.__setitem__(p, inp[0].detach()))
        for prefix, mod in m.named_modules()
        if isinstance(mod, nn.Linear) and mod.bias is not None
    ]
    with torch.no_grad():
        m(x.double())
    for h in hooks:
        h.remove()
    out: Dormant = {}
    for prefix, a in seen.items():
        arr = a.reshape(len(a), -1).numpy()
        var = arr.var(axis=0)
        idx = np.flatnonzero(var <= rel_var * var.max())
        out[prefix] = (idx, arr[:, idx].mean(axis=0))
    return out


def _weight_views(
    vec: np.ndarray, template: StateDict, dormant: Dormant
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(weight matrix view, bias view, J, c_J) of every layer in ``dormant`` inside ``vec``."""
    keys = float_keys(template)
    pos = dict(zip(keys, tensor_slices(template, keys), strict=True))
    out = []
    for prefix, (idx, c) in dormant.items():
        wk, bk = f"{prefix}.weight" if prefix else "weight", f"{prefix}.bias" if prefix else "bias"
        if len(idx) and wk in pos and bk in pos:
            out.append((vec[pos[wk]].reshape(template[wk].shape), vec[pos[bk]], idx, c))
    return out


def dormant_share(delta: np.ndarray, template: StateDict, dormant: Dormant) -> float:
    """Share of ``||delta||`` in the layers' steps on dormant inputs that is not along c_J (clean
    training only sees c_J there, so its step on them is ``u c_J^T``): ~0 for clean-data
    training, large for a trigger on some of those inputs. (A trigger that moves every dormant
    input in proportion to c_J is invisible here, but confining folds it into the bias.)"""
    total = _norm(delta)
    if total == 0.0:
        return 0.0
    dev = 0.0
    for W, _b, idx, c in _weight_views(delta, template, dormant):
        WJ = W[:, idx]
        cc = _dot(c, c)
        # clean training moves each row along c_J (its inputs there are c_J); keep what is not
        d = WJ - np.outer(np.sum(WJ * c, axis=1) / cc, c) if cc > 0 else WJ
        dev += _dot(d, d)
    return float(np.sqrt(dev)) / total


def confine(delta: np.ndarray, template: StateDict, dormant: Dormant) -> np.ndarray:
    """``delta`` with every layer's step on dormant inputs folded into its bias (``b += dW_J c_J``,
    ``dW_J = 0``): the same function on clean data, nothing learnt on the dormant inputs."""
    out = delta.copy()
    for W, b, idx, c in _weight_views(out, template, dormant):  # views into out
        b += np.sum(W[:, idx] * c, axis=1)
        W[:, idx] = 0.0
    return out


def pair_aucs(
    model: nn.Module | _Scratch, weights: StateDict, x: torch.Tensor, y: torch.Tensor, num_classes: int
) -> np.ndarray:
    """For every pair of classes a < b, the AUC with which ``logit_a - logit_b`` ranks the
    samples of a above those of b (NaN when ``y`` lacks either): how well the model tells a from
    b. A bias shift does not change it, so an owner who holds few classes does not lose it by
    leaning towards them; a flipper who teaches that a is b inverts it. (One-vs-rest AUCs hide
    a swapped pair among the other classes' samples: an attacker could swap two classes while
    moving each class's AUC by at most its share of the negatives.)

    The forward pass is float32, as training is (float64 doubled the rule's cost); a rounding
    difference on another machine can only move an AUC by a pair of samples' share."""
    m = _loaded(model, weights, torch.float32)
    with torch.no_grad():
        logits = m(x.float()).double().numpy()
    labels = y.numpy()
    out = np.full(num_classes * (num_classes - 1) // 2, np.nan)
    k = 0
    for a in range(num_classes):
        for b in range(a + 1, num_classes):
            sel = (labels == a) | (labels == b)
            pos = labels[sel] == a
            npos, nneg = int(pos.sum()), int((~pos).sum())
            if npos and nneg:
                ranks = np.empty(len(pos))
                ranks[np.argsort(logits[sel, a] - logits[sel, b], kind="stable")] = np.arange(1, len(pos) + 1)
                out[k] = (float(np.sum(ranks[pos])) - npos * (npos + 1) / 2) / (npos * nneg)
            k += 1
    return out


def ranking_damage(global_auc: np.ndarray, auc: np.ndarray) -> float:
    """``max_p (2 AUC_p(global) - 1) - AUC_p(model)`` over the class pairs p: how far the model
    tells some pair apart less well than the global model already did (``2 AUC - 1``: a global
    model at chance on a pair knows nothing there to lose). A label flipper inverts the pairs it
    swaps (score up to ~1); honest owners, IID or not, stay low once the global model is past
    its first rounds (measured: docs/results/robustness.md)."""
    d = 2 * global_auc - 1 - auc
    d = d[~np.isnan(d)]
    return float(d.max()) if d.size else 0.0


def to_norm(x: np.ndarray, norm: float) -> np.ndarray:
    """``x`` rescaled to ``norm`` (zero stays zero)."""
    own = _norm(x)
    return x * (norm / own) if own > 0 else x.copy()


def _weighted_mean(S: np.ndarray, n: np.ndarray, rows: list[int], cap: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample-weighted mean of ``S[rows]`` with sample counts capped at ``cap`` times their
    median (an inflated count buys little extra weight); returns (mean, normalised weights)."""
    w = np.minimum(n[rows], cap * float(np.median(n[rows])))
    acc = np.zeros(S.shape[1])
    for r, wr in zip(rows, w, strict=True):  # fixed order
        acc += wr * S[r]
    return acc / float(w.sum()), w / float(w.sum())


def root_step_norm(model: nn.Module, context: Context, x: torch.Tensor, y: torch.Tensor, n: np.ndarray) -> float:
    """The norm of the step the trust root's own clean data gives from the global model, trained
    as a typical owner trains (the task's ``local_steps``, else ``local_epochs`` passes over the
    median declared sample count), deterministic in (seed, round): a step size the owners do
    not control (FLTrust's normalisation, Cao et al. 2021)."""
    cfg = context.train_config
    if not cfg.local_steps:
        steps = cfg.local_epochs * math.ceil(int(np.median(n)) / cfg.batch_size) if len(n) else 1
        cfg = replace(cfg, local_steps=max(1, steps))
    res = train_local(model, context.global_weights, x, y, cfg, seed=context.seed * 1_000_003 + context.round)
    keys = float_keys(context.global_weights)
    return math.sqrt(
        sum(_dot(d, d) for d in ((res.weights[k] - context.global_weights[k]).double().numpy().ravel() for k in keys))
    )


def _last_linear(model: nn.Module) -> str | None:
    names = [p for p, m in model.named_modules() if isinstance(m, nn.Linear) and m.bias is not None]
    return names[-1] if names else None


def calibrate_bias(
    model: nn.Module | _Scratch,
    weights: StateDict,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    *,
    iters: int = 20,
) -> tuple[StateDict, float]:
    """(``weights`` with the output layer's bias refitted to the clean data ``x``, ``y``; the
    mean cross-entropy there after the refit). Newton steps on the mean cross-entropy over the
    bias alone (the rest fixed), its mean kept, rounded to 1e-6. A bias moves every pair's
    decision threshold but no ranking, so step 3 cannot see it; refitting it on the trust root's
    balanced data undoes any bias an update pushed (an attacker's, or the lean of owners who
    hold few classes). Features and Newton steps are float64; the rounding absorbs BLAS's
    last-bit differences between machines."""
    net = _loaded(model, weights, torch.float64)
    layer = _last_linear(net)
    if layer is None:
        raise ValueError("root-guard needs a model whose output layer is nn.Linear with a bias")
    mod = net.get_submodule(layer)
    assert isinstance(mod, nn.Linear) and mod.bias is not None
    seen: list[torch.Tensor] = []
    hook = mod.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].detach()))
    with torch.no_grad():
        net(x.double())
    hook.remove()
    base = seen[0].reshape(len(x), -1).numpy() @ mod.weight.detach().numpy().T
    b0 = mod.bias.detach().numpy().copy()
    onehot = np.eye(num_classes)[y.numpy()]

    def probs(b: np.ndarray) -> tuple[np.ndarray, float]:
        z = base + b
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return np.exp(logp), float(-np.sum(logp * onehot) / len(z))

    b = b0.copy()
    for _ in range(iters):
        p, _loss = probs(b)
        g = (p - onehot).mean(axis=0)
        H = np.diag(p.mean(axis=0)) - np.einsum("ni,nj->ij", p, p) / len(p) + 1e-4 * np.eye(num_classes)
        step = np.linalg.solve(H, g)
        step_norm = float(np.sqrt(np.sum(step * step)))
        if step_norm > 0:
            b -= step * min(1.0, 1.0 / step_norm)  # trust region: at most 1 per step
    b = np.round(b + float(np.mean(b0) - np.mean(b)), 6)
    out = OrderedDict(weights)
    key = f"{layer}.bias" if layer else "bias"
    out[key] = torch.from_numpy(b).to(weights[key].dtype)
    return out, probs(b)[1]


def near_duplicates(X: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean per row: its cosine with some other row is at least ``threshold``.

    A float32 Gram matrix (BLAS) finds the candidate pairs, those within ``1e-3`` of the
    threshold or above; each candidate is then decided with float64 fixed-order sums, so the
    answer is the same on every machine (BLAS may split its sums differently) and costs one
    exact dot product per near pair, not per pair."""
    n = len(X)
    dup = np.zeros(n, dtype=bool)
    if n < 2:
        return dup
    norms = np.array([_norm(x) for x in X])
    X32 = X.astype(np.float32)
    gram = (X32 @ X32.T).astype(np.float64)
    scale = np.outer(norms, norms)
    near = np.triu(gram >= (threshold - 1e-3) * scale, k=1) & (scale > 0)
    for a, b in zip(*np.nonzero(near), strict=True):
        if _dot(X[a], X[b]) >= threshold * norms[a] * norms[b]:
            dup[a] = dup[b] = True
    return dup


class RootGuard(Defence):
    """Drop backdoor-like steps (dormant share), near-copies, and steps that do not help on clean
    data or invert a pair of classes there; average the rest at the trust root's step size, with
    the output bias refitted (module docstring)."""

    name = "root-guard"
    needs = frozenset({"test_set"})

    def __init__(
        self,
        *,
        max_dormant_share: float = 0.1,
        duplicate_cosine: float = 0.999,
        max_damage: float = 0.5,
        max_aggregate_damage: float = 0.05,
        min_gain: float = 0.0,
        eval_size: int = 500,
        clip: float = 3.0,
        rel_var: float = 1e-6,
    ) -> None:
        self.max_dormant_share = max_dormant_share
        self.duplicate_cosine = duplicate_cosine
        self.max_damage = max_damage
        self.max_aggregate_damage = max_aggregate_damage
        self.min_gain = min_gain
        self.eval_size = eval_size
        self.clip = clip
        self.rel_var = rel_var

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """One round of the rule in the module docstring."""
        if context.test_x is None or context.test_y is None or len(context.test_x) == 0:
            raise ValueError("root-guard needs the miners' clean data (context.test_x/test_y)")
        ids, X, n = stack_deltas(updates, context.global_weights)
        if not ids:
            return Decision([], {}, {}, None)
        gw = context.global_weights
        model = _Scratch(context.model(), torch.float32)
        ex, ey = context.test_x[: self.eval_size], context.test_y[: self.eval_size]
        dormant = dormant_inputs(model, gw, context.test_x, rel_var=self.rel_var)
        share = np.array([dormant_share(X[r], gw, dormant) for r in range(len(ids))])
        C = np.stack([confine(X[r], gw, dormant) for r in range(len(ids))])
        duplicate = near_duplicates(C, self.duplicate_cosine)
        scale = root_step_norm(context.model(), context, ex, ey, n)
        S = np.stack([to_norm(C[r], scale) for r in range(len(ids))])  # judged as aggregated
        auc0 = pair_aucs(model, gw, ex, ey, context.num_classes)
        _w0, loss0 = calibrate_bias(model, gw, ex, ey, context.num_classes)
        damage, gain = np.full(len(ids), np.inf), np.full(len(ids), -np.inf)
        for r in range(len(ids)):
            if share[r] <= self.max_dormant_share and not duplicate[r] and _norm(C[r]) > 0:  # candidates only
                stepped = apply_delta(gw, S[r])
                damage[r] = ranking_damage(auc0, pair_aucs(model, stepped, ex, ey, context.num_classes))
                gain[r] = loss0 - calibrate_bias(model, stepped, ex, ey, context.num_classes)[1]
        kept = [r for r in range(len(ids)) if damage[r] <= self.max_damage and gain[r] >= self.min_gain]
        kept, trimmed, new = self._trim(kept, gain, ids, S, n, auc0, model, context)
        scores = {i: float(damage[r]) if np.isfinite(damage[r]) else 1.0 for r, i in enumerate(ids)}
        metrics = {
            "score": "ranking damage on clean data (dropped above max_damage; 1.0: not evaluated)",
            "gain_note": "refitted clean-loss drop of the rescaled step (dropped below min_gain)",
            "dormant_share": {i: float(share[r]) for r, i in enumerate(ids)},
            "duplicates": [i for r, i in enumerate(ids) if duplicate[r]],
            "trimmed": trimmed,
            "step_norm": scale,
            "gain": {i: float(gain[r]) for r, i in enumerate(ids) if np.isfinite(gain[r])},
        }
        if not kept or new is None:
            return Decision([], {}, scores, None, metrics)
        _step, w = _weighted_mean(S, n, kept, self.clip)
        accepted = [ids[r] for r in kept]
        return Decision(accepted, {i: float(wi) for i, wi in zip(accepted, w, strict=True)}, scores, new, metrics)

    def _trim(
        self,
        kept: list[int],
        gain: np.ndarray,
        ids: list[int],
        S: np.ndarray,
        n: np.ndarray,
        auc0: np.ndarray,
        model: _Scratch,
        context: Context,
    ) -> tuple[list[int], list[int], StateDict | None]:
        """Step 4: (rows kept, ids trimmed, the calibrated aggregate) so that the aggregate keeps
        every pair's ranking; the least useful steps (smallest gain) go first."""
        if not kept:
            return kept, [], None
        ex, ey = context.test_x[: self.eval_size], context.test_y[: self.eval_size]  # type: ignore[index]
        order = sorted(kept, key=lambda r: (-gain[r], ids[r]))  # most useful first
        chunk = max(1, math.ceil(len(order) / 10))
        best: tuple[float, int, StateDict] | None = None
        for size in range(len(order), 0, -chunk):
            step, _ = _weighted_mean(S, n, order[:size], self.clip)
            weights, _loss = calibrate_bias(
                model, apply_delta(context.global_weights, step), ex, ey, context.num_classes
            )
            d = ranking_damage(auc0, pair_aucs(model, weights, ex, ey, context.num_classes))
            if best is None or d < best[0]:
                best = (d, size, weights)
            if d <= self.max_aggregate_damage:
                best = (d, size, weights)
                break
        assert best is not None
        size = best[1]
        return sorted(order[:size]), sorted(ids[r] for r in order[size:]), best[2]
