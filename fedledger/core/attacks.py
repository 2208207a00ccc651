"""Simulated malicious data owners, selectable by name through a registry.

Data poisoning: label flipping (all-to-one, or pairwise y -> 9 - y; Tolpegin et al., "Data
Poisoning Attacks Against Federated Learning Systems", ESORICS 2020) and a pixel-pattern backdoor
(Gu et al., "BadNets", 2017). Model poisoning: Gaussian noise model, sign flipping, scaling /
model replacement (Bagdasaryan et al., "How To Backdoor Federated Learning", AISTATS 2020), free
riding (Lin et al., 2019), ALIE (Baruch et al., "A Little Is Enough", NeurIPS 2019) and IPM
(Xie et al., "Fall of Empires: Breaking Byzantine-tolerant SGD by Inner Product Manipulation",
UAI 2019); ALIE and IPM are omniscient: they receive the round's honest updates. ``adaptive``
knows root-guard's rule and scales a label-flipping step to sit just inside it. Copying: a
copycat re-submits an honest peer's model of the round, or a copy plus small noise, to be credited
for work it did not do. Validation poisoning: collusive peer scores (high to accomplices, low to
honest peers).

Every attack is one class with three hooks (identity by default), so the runner and the agents
apply any of them the same way::

    attack = create_attack("label-flip", mode="pairwise")
    x, y = attack.poison_data(x, y, gen)          # before training
    w = attack.poison_weights(global_w, w, honest_updates=..., gen=gen)   # before upload
    scores = attack.poison_scores(scores, self_id=k, accomplices=mal)    # before submitting scores
"""

from __future__ import annotations

import math
from collections import OrderedDict
from statistics import NormalDist
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import torch

from fedledger.core.models import StateDict

__all__ = [
    "ATTACKS",
    "Adaptive",
    "Attack",
    "Backdoor",
    "Collusive",
    "Copycat",
    "FreeRider",
    "GaussianNoise",
    "IPM",
    "LabelFlip",
    "LittleIsEnough",
    "NoAttack",
    "Scaling",
    "SignFlip",
    "apply_trigger",
    "backdoor_target",
    "create_attack",
]


def _delta(global_w: StateDict, w: StateDict) -> StateDict:
    return OrderedDict((k, w[k] - global_w[k]) for k in global_w)


def _plus(global_w: StateDict, d: dict[str, torch.Tensor]) -> StateDict:
    return OrderedDict(
        (k, (global_w[k] + d[k]).to(global_w[k].dtype) if global_w[k].is_floating_point() else global_w[k])
        for k in global_w
    )


class Attack:
    """Base class: an honest client (every hook is the identity).

    Class attributes: ``trains`` (False: the attacker does no local training and submits only
    what ``poison_weights`` builds), ``needs_honest_updates`` (True: ``poison_weights`` needs
    the honest clients' updates of the round, as ALIE and IPM do).
    """

    name: ClassVar[str] = "none"
    trains: ClassVar[bool] = True
    needs_honest_updates: ClassVar[bool] = False

    def setup(self, *, n_clients: int, n_malicious: int) -> None:
        """Told the federation size before round 1 (ALIE derives its z from it)."""

    def poison_data(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the (possibly poisoned) local training data."""
        return x, y

    def poison_weights(
        self,
        global_weights: StateDict,
        weights: StateDict,
        *,
        honest_updates: list[StateDict] | None = None,
        gen: torch.Generator | None = None,
    ) -> StateDict:
        """Return the weights to upload, given the locally trained ones."""
        return weights

    def poison_scores(self, scores: dict[int, int], *, self_id: int, accomplices: set[int]) -> dict[int, int]:
        """Return the peer-validation scores (basis points) to submit."""
        return scores

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class NoAttack(Attack):
    """Honest behaviour."""


class LabelFlip(Attack):
    """Label flipping: ``pairwise`` maps y -> (num_classes - 1) - y; ``all-to-one`` maps every label to ``target``."""

    name = "label-flip"

    def __init__(self, *, mode: str = "pairwise", target: int = 0, num_classes: int = 10) -> None:
        if mode not in ("pairwise", "all-to-one"):
            raise ValueError("mode must be 'pairwise' or 'all-to-one'")
        self.mode, self.target, self.num_classes = mode, target, num_classes

    def poison_data(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mode == "pairwise":
            return x, (self.num_classes - 1) - y
        return x, torch.full_like(y, self.target)


def apply_trigger(x: torch.Tensor, *, size: int = 3, value: float | None = None) -> torch.Tensor:
    """BadNets pixel pattern: a ``size`` x ``size`` white square in the bottom-right corner.

    ``value`` defaults to the brightest value in ``x`` (white after normalisation). Returns a copy.
    """
    out = x.clone()
    v = float(x.max()) if value is None else value
    out[..., -size - 1 : -1, -size - 1 : -1] = v
    return out


class Backdoor(Attack):
    """Pixel-pattern backdoor: a ``poison_fraction`` of the local samples get the trigger and label ``target``."""

    name = "backdoor"

    def __init__(self, *, target: int = 0, poison_fraction: float = 0.5, trigger_size: int = 3) -> None:
        if not 0 < poison_fraction <= 1:
            raise ValueError("poison_fraction must be in (0, 1]")
        self.target, self.poison_fraction, self.trigger_size = target, poison_fraction, trigger_size

    def poison_data(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n = int(round(self.poison_fraction * len(x)))
        idx = torch.randperm(len(x), generator=gen)[:n]
        x, y = x.clone(), y.clone()
        x[idx] = apply_trigger(x[idx], size=self.trigger_size, value=float(x.max()))
        y[idx] = self.target
        return x, y


class GaussianNoise(Attack):
    """Uploads ``global + N(0, std^2)`` noise instead of a trained model (no training)."""

    name = "gaussian"
    trains = False

    def __init__(self, *, std: float = 1.0) -> None:
        self.std = std

    def poison_weights(
        self,
        global_weights: StateDict,
        weights: StateDict,
        *,
        honest_updates: list[StateDict] | None = None,
        gen: torch.Generator | None = None,
    ) -> StateDict:
        noise = {
            k: torch.randn(v.shape, generator=gen) * self.std if v.is_floating_point() else v
            for k, v in global_weights.items()
        }
        return _plus(global_weights, noise)


class SignFlip(Attack):
    """Trains honestly, uploads ``global - scale * update`` (the update's sign flipped)."""

    name = "sign-flip"

    def __init__(self, *, scale: float = 1.0) -> None:
        self.scale = scale

    def poison_weights(
        self,
        global_weights: StateDict,
        weights: StateDict,
        *,
        honest_updates: list[StateDict] | None = None,
        gen: torch.Generator | None = None,
    ) -> StateDict:
        d = _delta(global_weights, weights)
        return _plus(global_weights, {k: -self.scale * v for k, v in d.items()})


class Scaling(Attack):
    """Scaling / model replacement: uploads ``global + boost * update``.

    With ``poison="backdoor"`` (or ``"label-flip"``) the update is trained on poisoned data first,
    as in model replacement; ``boost`` ~ n_clients cancels FedAvg's averaging (Bagdasaryan et al.).
    """

    name = "scaling"

    def __init__(self, *, boost: float | None = None, poison: str | None = None, **poison_kw: Any) -> None:
        self.boost = boost
        self.inner = create_attack(poison, **poison_kw) if poison else None

    def setup(self, *, n_clients: int, n_malicious: int) -> None:
        if self.boost is None:
            self.boost = float(n_clients)

    def poison_data(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.poison_data(x, y, gen) if self.inner else (x, y)

    def poison_weights(
        self,
        global_weights: StateDict,
        weights: StateDict,
        *,
        honest_updates: list[StateDict] | None = None,
        gen: torch.Generator | None = None,
    ) -> StateDict:
        boost = 10.0 if self.boost is None else self.boost
        d = _delta(global_weights, weights)
        return _plus(global_weights, {k: boost * v for k, v in d.items()})


class FreeRider(Attack):
    """Free rider: no training; re-uploads the global model, optionally disguised with noise."""

    name = "free-rider"
    trains = False

    def __init__(self, *, noise_std: float = 0.0) -> None:
        self.noise_std = noise_std

    def poison_weights(
        self,
        global_weights: StateDict,
        weights: StateDict,
        *,
        honest_updates: list[StateDict] | None = None,
        gen: torch.Generator | None = None,
    ) -> StateDict:
        if self.noise_std == 0:
            return OrderedDict((k, v.clone()) for k, v in global_weights.items())
        noise = {
            k: torch.randn(v.shape, generator=gen) * self.noise_std if v.is_floating_point() else v
            for k, v in global_weights.items()
        }
        return _plus(global_weights, noise)


def _stack(updates: list[StateDict], key: str) -> torch.Tensor:
    return torch.stack([u[key].double() for u in updates])


class LittleIsEnough(Attack):
    """ALIE: uploads ``mean - z * std`` of the honest updates, coordinate-wise.

    ``z`` defaults to Baruch et al.'s z_max: s = floor(n/2 + 1) - f, z = Phi^-1((n - s) / n).
    """

    name = "alie"
    trains = False
    needs_honest_updates = True

    def __init__(self, *, z: float | None = None) -> None:
        self.z = z

    def setup(self, *, n_clients: int, n_malicious: int) -> None:
        if self.z is None:
            s = math.floor(n_clients / 2 + 1) - n_malicious
            p = (n_clients - s) / n_clients
            self.z = NormalDist().inv_cdf(min(max(p, 1e-6), 1 - 1e-6))

    def poison_weights(
        self,
        global_weights: StateDict,
        weights: StateDict,
        *,
        honest_updates: list[StateDict] | None = None,
        gen: torch.Generator | None = None,
    ) -> StateDict:
        if not honest_updates:
            raise ValueError("ALIE needs the honest updates")
        z = 1.0 if self.z is None else self.z
        d = {}
        for k, v in global_weights.items():
            if v.is_floating_point():
                s = _stack(honest_updates, k)
                std = s.std(0, unbiased=False) if len(honest_updates) > 1 else torch.zeros_like(s[0])
                d[k] = (s.mean(0) - z * std).float()
            else:
                d[k] = v
        return _plus(global_weights, d)


class IPM(Attack):
    """Inner product manipulation: uploads ``-epsilon * mean`` of the honest updates."""

    name = "ipm"
    trains = False
    needs_honest_updates = True

    def __init__(self, *, epsilon: float = 0.5) -> None:
        self.epsilon = epsilon

    def poison_weights(
        self,
        global_weights: StateDict,
        weights: StateDict,
        *,
        honest_updates: list[StateDict] | None = None,
        gen: torch.Generator | None = None,
    ) -> StateDict:
        if not honest_updates:
            raise ValueError("IPM needs the honest updates")
        d = {
            k: (-self.epsilon * _stack(honest_updates, k).mean(0)).float() if v.is_floating_point() else v
            for k, v in global_weights.items()
        }
        return _plus(global_weights, d)


class Copycat(Attack):
    """Copycat: no training; re-submits an honest peer's update of the round (the victim drawn
    from ``gen``), disguised with Gaussian noise of ``noise`` times the update's RMS per tensor
    (0: an exact copy). Omniscient in the engine; an agent only sees the models revealed on chain."""

    name = "copycat"
    trains = False
    needs_honest_updates = True

    def __init__(self, *, noise: float = 0.0) -> None:
        if noise < 0:
            raise ValueError("noise must be >= 0")
        self.noise = noise

    def poison_weights(
        self,
        global_weights: StateDict,
        weights: StateDict,
        *,
        honest_updates: list[StateDict] | None = None,
        gen: torch.Generator | None = None,
    ) -> StateDict:
        if not honest_updates:
            raise ValueError("a copycat needs a peer's update to copy")
        victim = honest_updates[int(torch.randint(len(honest_updates), (1,), generator=gen))]
        d = {}
        for k, v in global_weights.items():
            u = victim[k]
            if v.is_floating_point() and self.noise > 0:
                rms = float(u.double().pow(2).mean().sqrt())
                u = u + self.noise * rms * torch.randn(u.shape, generator=gen)
            d[k] = u
        return _plus(global_weights, d)


class Collusive(Attack):
    """Collusive peer validation: ``high`` to accomplices, ``low`` to honest peers.

    The model itself comes from ``inner`` (default label flipping), so the colluders both submit
    bad models and vouch for each other.
    """

    name = "collusive"

    def __init__(self, *, inner: str = "label-flip", high: int = 10_000, low: int = 0, **inner_kw: Any) -> None:
        self.inner = create_attack(inner, **inner_kw)
        self.high, self.low = high, low
        self.trains = self.inner.trains  # type: ignore[misc]
        self.needs_honest_updates = self.inner.needs_honest_updates  # type: ignore[misc]

    def setup(self, *, n_clients: int, n_malicious: int) -> None:
        self.inner.setup(n_clients=n_clients, n_malicious=n_malicious)

    def poison_data(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.poison_data(x, y, gen)

    def poison_weights(
        self,
        global_weights: StateDict,
        weights: StateDict,
        *,
        honest_updates: list[StateDict] | None = None,
        gen: torch.Generator | None = None,
    ) -> StateDict:
        return self.inner.poison_weights(global_weights, weights, honest_updates=honest_updates, gen=gen)

    def poison_scores(self, scores: dict[int, int], *, self_id: int, accomplices: set[int]) -> dict[int, int]:
        return {k: (self.high if k in accomplices else self.low) for k in scores}


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


ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls
    for cls in (
        NoAttack,
        LabelFlip,
        Backdoor,
        GaussianNoise,
        SignFlip,
        Scaling,
        FreeRider,
        LittleIsEnough,
        IPM,
        Copycat,
        Collusive,
        Adaptive,
    )
}


def create_attack(name: str | None, **kwargs: Any) -> Attack:
    """Attack registry: ``create_attack("backdoor", target=0, poison_fraction=0.5)``.

    Names: none, label-flip, backdoor, gaussian, sign-flip, scaling, free-rider, alie, ipm,
    copycat, collusive, adaptive. ``"all-to-one"`` is a shortcut for ``label-flip`` with ``mode="all-to-one"``.
    """
    name, _, query = (name or "none").partition("?")
    for k, v in parse_qsl(query):  # "copycat?noise=0.01": what a command line or an agent passes
        kwargs.setdefault(k, _number(v))
    key = name.lower().replace("_", "-")
    if key == "all-to-one":
        return LabelFlip(mode="all-to-one", **kwargs)
    try:
        cls = ATTACKS[key]
    except KeyError:
        raise ValueError(f"unknown attack {name!r} ({', '.join(ATTACKS)})") from None
    return cls(**kwargs)


def _number(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def backdoor_target(attack: Attack) -> int | None:
    """The label a backdoor attack (itself, or inside a collusive or scaling attack) plants, else
    None: what the attack success rate is measured against."""
    for a in (attack, getattr(attack, "inner", None)):
        if a is not None and a.name == "backdoor":
            return int(getattr(a, "target"))  # noqa: B009 - only the backdoor attack has a target
    return None
