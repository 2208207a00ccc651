"""The adaptive attack: a label flipper that knows root-guard's rule (fedledger/core/defences/root_guard.py)
and optimises against it."""

from __future__ import annotations

import torch

from fedledger.core.attacks.standard import Attack, _delta, _plus
from fedledger.core.models import StateDict

__all__ = ["Adaptive"]


class Adaptive(Attack):
    """Adaptive label flipper against ``root-guard`` (fedledger/core/defences/root_guard.py): it
    knows the rule and its thresholds and optimises against them; omniscient like ALIE and IPM
    (it sees the round's honest updates).

    It trains on flipped labels (pairwise y -> 9 - y), which alone would be dropped for ranking
    damage. The colluders pool up to ``pool_size`` of their own clean samples (true labels) as an
    estimate of the miners' clean data. Root-guard drops a step whose damage exceeds
    ``max_damage`` and, when the aggregate damages a ranking, trims the most damaging steps
    first; so each attacker aims at ``min(margin * max_damage, median damage of the honest
    steps)`` on its pool (the margin absorbs the error of estimating on other samples than the
    miners'; the median hides it in the honest pack) and uploads ``global + alpha * step`` with
    the largest ``alpha`` in ``[0, max_alpha]`` (bisection) within that aim: as much flipping as
    the rule lets through. Its step has no dormant-input component (clean images only) and every
    attacker's differs (own data), so the other two checks pass by construction.
    """

    name = "adaptive"
    needs_honest_updates = True

    def __init__(
        self,
        *,
        model: str = "mlp",
        max_damage: float = 0.2,
        margin: float = 0.6,
        max_alpha: float = 3.0,
        pool_size: int = 500,
        num_classes: int = 10,
        steps: int = 12,
    ) -> None:
        self.model, self.max_damage, self.margin, self.max_alpha = model, max_damage, margin, max_alpha
        self.pool_size, self.num_classes, self.steps = pool_size, num_classes, steps
        self._pool: tuple[torch.Tensor, torch.Tensor] | None = None
        self._aim: tuple[int, float] | None = None  # (id of the round's honest updates, aim)

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

    def estimated_damage(self, global_weights: StateDict, weights: StateDict) -> float:
        """root-guard's ranking damage of ``weights``, estimated on the attackers' clean pool."""
        # the rule's own maths: an attacker who knows the rule runs it (attacks and defences
        # share the core layer; imported here because the defences import nothing from attacks)
        from fedledger.core.defences.root_guard import pair_aucs, ranking_damage
        from fedledger.core.models import create_model

        if self._pool is None:
            raise ValueError("the adaptive attack needs its clean pool (poison_data first)")
        x, y = self._pool
        net = create_model(self.model, in_shape=tuple(x.shape[1:]), num_classes=self.num_classes)
        return ranking_damage(
            pair_aucs(net, global_weights, x, y, self.num_classes), pair_aucs(net, weights, x, y, self.num_classes)
        )

    def aim(self, global_weights: StateDict, honest_updates: list[StateDict] | None) -> float:
        """The damage each attacker aims at this round (computed once per round's honest updates)."""
        limit = self.margin * self.max_damage
        if not honest_updates:
            return limit
        if self._aim is None or self._aim[0] != id(honest_updates):
            honest = sorted(
                self.estimated_damage(global_weights, _plus(global_weights, dict(h))) for h in honest_updates
            )
            self._aim = (id(honest_updates), min(limit, honest[len(honest) // 2]))
        return self._aim[1]

    def poison_weights(
        self,
        global_weights: StateDict,
        weights: StateDict,
        *,
        honest_updates: list[StateDict] | None = None,
        gen: torch.Generator | None = None,
    ) -> StateDict:
        d = _delta(global_weights, weights)
        limit = self.aim(global_weights, honest_updates)

        def scaled(alpha: float) -> StateDict:
            return _plus(global_weights, {k: alpha * v for k, v in d.items()})

        lo, hi = 0.0, self.max_alpha
        if self.estimated_damage(global_weights, scaled(hi)) <= limit:
            return scaled(hi)
        for _ in range(self.steps):  # damage grows with alpha: bisect for the largest that passes
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.estimated_damage(global_weights, scaled(mid)) <= limit else (lo, mid)
        return scaled(lo)
