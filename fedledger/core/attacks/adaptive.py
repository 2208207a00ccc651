"""The adaptive attack: a label flipper that knows root-guard's rule (fedledger/core/defences/root_guard.py)
and optimises against it."""

from __future__ import annotations

import math
import statistics
from collections import OrderedDict
from typing import Any

import torch

from fedledger.core.attacks.standard import Attack, _delta, _plus
from fedledger.core.models import StateDict

__all__ = ["Adaptive"]


def _norm(d: StateDict) -> float:
    return math.sqrt(sum(float((v.double() ** 2).sum()) for v in d.values() if v.is_floating_point()))


def _scaled(d: StateDict, factor: float) -> StateDict:
    return OrderedDict((k, v * factor if v.is_floating_point() else v) for k, v in d.items())


def _sum(a: StateDict, b: StateDict) -> StateDict:
    return OrderedDict((k, a[k] + b[k] if a[k].is_floating_point() else a[k]) for k in a)


class Adaptive(Attack):
    """Adaptive label flipper against ``root-guard``: it knows the rule and its thresholds and
    optimises against them; omniscient like ALIE and IPM (it sees the round's honest updates).

    Root-guard rescales every step to one norm, refits the output bias, and keeps a step only if
    it lowers the refitted clean loss (``gain >= min_gain``), does not invert a class pair's
    ranking (``damage <= max_damage``), is no near-copy and has no dormant-input component. So
    scaling a flip down (the attack on the earlier rule) buys nothing, and a bias shift is
    refitted away. What is left is to hide a flip inside useful work: each attacker submits

        ``mu + spread * |mu| * noise + beta * |mu| * f / |f|``

    with ``mu`` the honest owners' mean step, ``noise`` a random unit direction of its own (so
    the colluders are no near-copies), ``f`` its own step trained on flipped labels (pairwise
    y -> 9 - y: no dormant component), and ``beta`` the largest in ``[0, max_beta]`` (bisection)
    whose step, judged as root-guard judges it on the attacker's own clean pool (the colluders'
    first ``pool_size`` samples with true labels, standing in for the miners' data), still
    gains at least ``margin`` times the honest steps' median gain and damages at most ``margin``
    times ``max_damage``: as much flipping as the rule lets through, with a margin for
    estimating on other samples than the miners'. With no honest updates to hide in (an agent
    on chain) it submits its flip step unchanged.
    """

    name = "adaptive"
    needs_honest_updates = True

    def __init__(
        self,
        *,
        model: str = "mlp",
        max_damage: float = 0.5,
        min_gain: float = 0.0,
        margin: float = 0.05,
        spread: float = 0.04,
        max_beta: float = 4.0,
        pool_size: int = 500,
        num_classes: int = 10,
        steps: int = 6,
    ) -> None:
        self.model, self.max_damage, self.min_gain, self.margin = model, max_damage, min_gain, margin
        self.spread, self.max_beta, self.pool_size, self.num_classes, self.steps = (
            spread,
            max_beta,
            pool_size,
            num_classes,
            steps,
        )
        self._pool: tuple[torch.Tensor, torch.Tensor] | None = None
        self._round: tuple[int, StateDict, float] | None = None  # (id of honest updates, mu, gain aim)
        self._start: tuple[StateDict, Any, Any, float] | None = None  # the round's model, net, AUCs, loss

    def poison_data(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep some clean samples for the shared estimate, train on flipped labels."""
        have = 0 if self._pool is None else len(self._pool[0])
        take = max(0, min(len(x), self.pool_size - have))
        if take:
            px, py = x[:take].clone(), y[:take].clone()
            self._pool = (
                (px, py) if self._pool is None else (torch.cat([self._pool[0], px]), torch.cat([self._pool[1], py]))
            )
        return x, (self.num_classes - 1) - y

    def judge(self, global_weights: StateDict, step: StateDict, norm: float) -> tuple[float, float]:
        """(ranking damage, refitted-loss gain) of ``step`` rescaled to ``norm``, as root-guard
        computes them, on the attackers' clean pool."""
        # the rule's own maths: an attacker who knows the rule runs it (attacks and defences
        # share the core layer; imported here because the defences import nothing from attacks)
        from fedledger.core.defences.root_guard import calibrate_bias, pair_aucs, ranking_damage
        from fedledger.core.models import create_model

        if self._pool is None:
            raise ValueError("the adaptive attack needs its clean pool (poison_data first)")
        x, y = self._pool
        if self._start is None or self._start[0] is not global_weights:  # once per round
            net = create_model(self.model, in_shape=tuple(x.shape[1:]), num_classes=self.num_classes)
            self._start = (
                global_weights,
                net,
                pair_aucs(net, global_weights, x, y, self.num_classes),
                calibrate_bias(net, global_weights, x, y, self.num_classes)[1],
            )
        _gw, net, auc0, loss0 = self._start
        own = _norm(step)
        moved = _plus(global_weights, _scaled(step, norm / own) if own > 0 else step)
        damage = ranking_damage(auc0, pair_aucs(net, moved, x, y, self.num_classes))
        return damage, loss0 - calibrate_bias(net, moved, x, y, self.num_classes)[1]

    def _aim(self, global_weights: StateDict, honest_updates: list[StateDict]) -> tuple[StateDict, float]:
        """(the honest mean step, the gain to stay above), computed once per round."""
        if self._round is None or self._round[0] != id(honest_updates):
            mu = _scaled(
                OrderedDict((k, torch.stack([h[k] for h in honest_updates]).sum(0)) for k in global_weights),
                1.0 / len(honest_updates),
            )
            norm = _norm(mu)
            gains = [self.judge(global_weights, OrderedDict(h), norm)[1] for h in honest_updates]
            self._round = (id(honest_updates), mu, max(self.min_gain, self.margin * statistics.median(gains)))
        return self._round[1], self._round[2]

    def poison_weights(
        self,
        global_weights: StateDict,
        weights: StateDict,
        *,
        honest_updates: list[StateDict] | None = None,
        gen: torch.Generator | None = None,
    ) -> StateDict:
        flip = _delta(global_weights, weights)
        if not honest_updates or _norm(flip) == 0:
            return weights
        mu, aim = self._aim(global_weights, honest_updates)
        size = _norm(mu)
        noise = OrderedDict(
            (k, torch.randn(v.shape, generator=gen, dtype=torch.float64).to(v.dtype) if v.is_floating_point() else v)
            for k, v in mu.items()
        )
        base = _sum(mu, _scaled(noise, self.spread * size / _norm(noise)))
        direction = _scaled(flip, size / _norm(flip))

        def passes(beta: float) -> bool:
            damage, gain = self.judge(global_weights, _sum(base, _scaled(direction, beta)), size)
            return gain >= aim and damage <= self.margin * self.max_damage

        lo, hi = 0.0, self.max_beta
        if passes(hi):
            lo = hi
        else:
            for _ in range(self.steps):  # harm grows with beta: bisect for the largest that passes
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if passes(mid) else (lo, mid)
        return _plus(global_weights, _sum(base, _scaled(direction, lo)))
