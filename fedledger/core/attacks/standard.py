"""The published attacks, and the ``Attack`` hooks every attack implements.

Data poisoning: label flipping (all-to-one, or pairwise y -> 9 - y; Tolpegin et al., "Data
Poisoning Attacks Against Federated Learning Systems", ESORICS 2020) and a pixel-pattern backdoor
(Gu et al., "BadNets", 2017). Model poisoning: Gaussian noise model, sign flipping, scaling /
model replacement (Bagdasaryan et al., "How To Backdoor Federated Learning", AISTATS 2020), free
riding (Lin et al., 2019), ALIE (Baruch et al., "A Little Is Enough", NeurIPS 2019) and IPM
(Xie et al., "Fall of Empires: Breaking Byzantine-tolerant SGD by Inner Product Manipulation",
UAI 2019); ALIE and IPM are omniscient: they receive the round's honest updates. Copying: a
copycat re-submits an honest peer's model of the round, or a copy plus small noise, to be credited
for work it did not do. Validation poisoning: collusive peer scores (high to accomplices, low to
honest peers).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from statistics import NormalDist
from typing import Any, ClassVar

import torch

from fedledger.core.models import StateDict

__all__ = [
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
        from fedledger.core.attacks import create_attack  # the registry imports this module

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
        from fedledger.core.attacks import create_attack  # the registry imports this module

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
