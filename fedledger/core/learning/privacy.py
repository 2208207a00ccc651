"""GD-DP: per-sample gradient clipping, then Gaussian or Laplace noise, then the SGD step.

Gradient-descent differential privacy as in DP-SGD (Abadi et al., "Deep Learning with Differential
Privacy", CCS 2016) and BPCV-FL's GD-DP (clip each sample's gradient to C, add Laplace noise with
scale sensitivity / epsilon). Structured like Opacus: the noise lives with the step
(:func:`privatize`), the accountant only observes (Opacus's ``RDPAccountant`` for Gaussian noise, as
:class:`CachedRDPAccountant`, and :class:`LaplaceAccountant` with the same ``IAccountant`` interface
for Laplace noise).

Sensitivity (stated once, used everywhere). Adjacency is *replace-one* (one sample of the batch
replaced by another). Every per-sample gradient is clipped to norm ``C``; replacing one sample
changes the *sum* of clipped gradients by at most ``2C`` and the *average* over a batch of ``B``
by at most ``2C / B``.

- Gaussian: noise ``N(0, (sigma * C)^2)`` per coordinate on the clipped sum (L2 clipping), i.e.
  std ``sigma * C / B`` on the average; this is Opacus's convention, and its RDP accountant
  (which assumes Poisson sampling at rate ``B / N``; we use shuffled batches, the usual
  approximation) turns ``(sigma, B / N, steps)`` into ``epsilon(delta)``.
- Laplace: the Laplace mechanism needs the *L1* sensitivity, so per-sample gradients are clipped
  in L1 norm to ``C``; the average then has L1 sensitivity ``2C / B`` and gets Laplace noise of
  scale ``b = (2C / B) / epsilon_step`` per coordinate: each step is ``epsilon_step``-DP (pure,
  delta = 0) and T steps compose to ``T * epsilon_step`` (basic composition, which ignores
  sampling amplification, so it is an upper bound).

``epsilon`` given for Laplace is per step, as in BPCV-FL's ``scale = sensitivity / epsilon``.

One entry point, shaped like Opacus's ``make_private``: :func:`make_private` returns a
:class:`DPStep` (clip + noise, the GD-DP gradient of one batch) whose step hooks feed the
accountant; :func:`calibrate_noise` finds the sigma that spends a target (epsilon, delta).

Where the noise comes from matters more than its size: noise drawn from a public seed can be
regenerated and subtracted by anyone. A data owner's noise is drawn from a secret only it holds
(:func:`noise_generator` with ``secret``: the agent derives it from a deterministic signature with
its key, so it survives a restart); ``secure_mode`` draws from ``os.urandom``; a plain seed is for
in-process experiments only and warns, as Opacus does when its secure RNG is off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from opacus.accountants import IAccountant, RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis

__all__ = [
    "CachedRDPAccountant",
    "DPConfig",
    "DPStep",
    "InsecureNoiseWarning",
    "accounted_noise",
    "calibrate_noise",
    "make_private",
    "LaplaceAccountant",
    "clip_per_sample",
    "create_accountant",
    "laplace_scale",
    "gaussian_std",
    "noise_generator",
    "perturb_upload",
    "privatize",
    "tune_allocator",
]


@dataclass(frozen=True)
class DPConfig:
    """GD-DP settings.

    Args:
        mechanism: ``"gaussian"`` (needs ``noise_multiplier``) or ``"laplace"`` (needs ``epsilon``).
        max_grad_norm: the clipping bound C (L2 for Gaussian, L1 for Laplace).
        noise_multiplier: sigma, Gaussian noise std in units of C on the clipped sum.
        epsilon: per-step epsilon of the Laplace mechanism.
        delta: the delta at which the Gaussian epsilon is reported.
        secure_mode: draw the noise seed from ``os.urandom`` (real deployments) instead of the
            training seed (reproducible experiments).
        where: ``"gradients"`` (GD-DP / DP-SGD: every sample's gradient clipped, noise on every step)
            or ``"upload"`` (LL-BCFL: plain training, then the whole update clipped to C and noised
            once, on the parameters the client uploads; see ``perturb_upload``).
    """

    mechanism: Literal["gaussian", "laplace"] = "gaussian"
    max_grad_norm: float = 1.0
    noise_multiplier: float = 1.0
    epsilon: float = 10.0
    delta: float = 1e-5
    secure_mode: bool = False
    where: Literal["gradients", "upload"] = "gradients"

    def __post_init__(self) -> None:
        if self.mechanism not in ("gaussian", "laplace"):
            raise ValueError(f"unknown DP mechanism {self.mechanism!r}")
        if self.where not in ("gradients", "upload"):
            raise ValueError(f"DP noise goes on 'gradients' or 'upload', not {self.where!r}")
        if self.max_grad_norm <= 0:
            raise ValueError("max_grad_norm must be positive")
        if self.mechanism == "laplace" and self.epsilon <= 0:
            raise ValueError("epsilon must be positive")
        if self.mechanism == "gaussian" and self.noise_multiplier < 0:
            raise ValueError("noise_multiplier must be >= 0")

    @property
    def norm_type(self) -> int:
        """The clipping norm: L1 for Laplace (its sensitivity is L1), L2 for Gaussian."""
        return 1 if self.mechanism == "laplace" else 2


class LaplaceAccountant(IAccountant):
    """Pure-DP basic composition for the Laplace mechanism, with Opacus's accountant interface.

    ``noise_multiplier`` is ``b / sensitivity`` = ``1 / epsilon_step``, so a step costs
    ``1 / noise_multiplier``; ``sample_rate`` is recorded but not used (no amplification claimed).
    """

    # Not a no-op: Opacus's IAccountant declares __init__ abstract, so without this override the
    # class cannot be instantiated.
    def __init__(self) -> None:
        super().__init__()

    def step(self, *, noise_multiplier: float, sample_rate: float) -> None:
        """Record one step."""
        if self.history and self.history[-1][:2] == (noise_multiplier, sample_rate):
            nm, sr, n = self.history.pop()
            self.history.append((nm, sr, n + 1))
        else:
            self.history.append((noise_multiplier, sample_rate, 1))

    def get_epsilon(self, delta: float = 0.0, *args: object, **kwargs: object) -> float:
        """Total epsilon (delta is 0 for the Laplace mechanism; the argument is ignored)."""
        return float(sum(n / nm for nm, _sr, n in self.history))

    def __len__(self) -> int:
        return sum(n for _nm, _sr, n in self.history)

    @classmethod
    def mechanism(cls) -> str:
        """Name, as Opacus accountants report it."""
        return "laplace"


@lru_cache(maxsize=1024)
def _rdp_one_step(sample_rate: float, noise_multiplier: float, orders: tuple[float, ...]) -> np.ndarray:
    """RDP of one sampled-Gaussian step at every order (Opacus' ``compute_rdp`` with steps = 1)."""
    out = np.asarray(
        rdp_analysis.compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=list(orders))
    )
    out.setflags(write=False)  # shared by every caller
    return out


class CachedRDPAccountant(RDPAccountant):
    """Opacus' ``RDPAccountant`` with the per-step RDP curve of each ``(sample_rate, sigma)``
    computed once.

    Opacus recomputes ``compute_rdp`` (a pure-Python series per order) for every history entry on
    every ``get_epsilon``; a client whose epochs end in a smaller last batch alternates two sample
    rates, so its history grows by two entries a round and the accountant came to cost seconds per
    client per round after 25 rounds. ``compute_rdp(steps=n)`` is ``n * compute_rdp(steps=1)``, so
    caching the one-step curve gives the same numbers (same operations, same order).
    """

    def get_privacy_spent(self, *, delta: float, alphas: list[float | int] | None = None) -> tuple[float, float]:
        """(epsilon, best order) at ``delta``, exactly as ``RDPAccountant.get_privacy_spent``."""
        if not self.history:
            return 0, 0
        orders = tuple(self.DEFAULT_ALPHAS if alphas is None else alphas)
        rdp = sum([_rdp_one_step(q, sigma, orders) * steps for sigma, q, steps in self.history])
        eps, best_alpha = rdp_analysis.get_privacy_spent(orders=list(orders), rdp=rdp, delta=delta)
        return float(eps), float(best_alpha)


def create_accountant(mechanism: str) -> IAccountant:
    """Accountant registry: ``gaussian`` -> Opacus RDP (cached), ``laplace`` -> basic composition."""
    accountants: dict[str, type[IAccountant]] = {"gaussian": CachedRDPAccountant, "laplace": LaplaceAccountant}
    return accountants[mechanism]()


_ALLOCATOR_TUNED = False


def tune_allocator() -> None:
    """Stop glibc from mmap-ing (and unmapping) every large per-sample-gradient buffer.

    Per-sample gradients above the 32 MB mmap threshold otherwise hit mmap/munmap on every step
    (3x slower DP training). M_MMAP_MAX=0 (-4) and M_TRIM_THRESHOLD=1 GiB (-1). No-op off glibc.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-4, 0)
        libc.mallopt(-1, 2**30)
    except OSError:
        pass
    _ALLOCATOR_TUNED = True


def gaussian_std(cfg: DPConfig, batch_size: int) -> float:
    """Std of the Gaussian noise on the *averaged* clipped gradient: sigma * C / B."""
    return cfg.noise_multiplier * cfg.max_grad_norm / batch_size


def laplace_scale(cfg: DPConfig, batch_size: int) -> float:
    """Laplace scale on the averaged gradient: L1 sensitivity (2C / B) / epsilon_step."""
    return (2.0 * cfg.max_grad_norm / batch_size) / cfg.epsilon


def clip_per_sample(grads: dict[str, torch.Tensor], max_norm: float, norm_type: int = 2) -> dict[str, torch.Tensor]:
    """Scale each sample's gradient (leading dim) so its norm over all tensors is <= max_norm."""
    flat = [g.reshape(g.shape[0], -1) for g in grads.values()]
    if norm_type == 2:
        norms = torch.sqrt(sum(f.pow(2).sum(1) for f in flat))  # type: ignore[arg-type]
    elif norm_type == 1:
        norms = sum(f.abs().sum(1) for f in flat)  # type: ignore[assignment]
    else:
        raise ValueError("norm_type must be 1 or 2")
    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return {k: g * factor.view(-1, *([1] * (g.ndim - 1))) for k, g in grads.items()}


def _laplace(shape: torch.Size, scale: float, generator: torch.Generator) -> torch.Tensor:
    """Laplace(0, scale) = scale * (E1 - E2) with E1, E2 ~ Exp(1); drawn from our generator because
    torch.distributions.Laplace cannot take one."""
    e1 = torch.empty(shape).exponential_(generator=generator)
    e2 = torch.empty(shape).exponential_(generator=generator)
    return scale * (e1 - e2)


def perturb_upload(
    before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], cfg: DPConfig, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """LL-BCFL's local DP on the uploaded parameters: the client's whole update ``after - before``
    (every floating-point tensor) clipped to norm C (L2 for Gaussian, L1 for Laplace), then noise on
    every coordinate: Gaussian of std sigma * C, or Laplace of scale C / epsilon. C bounds what one
    client's data can move the upload (client-level DP, as DP-FedAvg), so a round is one release:
    the accountant counts it as one step of sample rate 1. Non-float entries pass unchanged."""
    keys = [k for k, v in before.items() if v.is_floating_point()]
    update = {k: after[k] - before[k] for k in keys}
    flat = torch.cat([u.flatten() for u in update.values()]) if keys else torch.zeros(0)
    norm = float(torch.linalg.vector_norm(flat, ord=cfg.norm_type))
    factor = min(1.0, cfg.max_grad_norm / (norm + 1e-12))
    out = dict(after)
    for k in keys:
        if cfg.mechanism == "gaussian":
            std = cfg.noise_multiplier * cfg.max_grad_norm
            noise = torch.normal(0.0, std, size=update[k].shape, generator=generator) if std > 0 else 0.0
        else:
            noise = _laplace(update[k].shape, cfg.max_grad_norm / cfg.epsilon, generator)
        out[k] = before[k] + update[k] * factor + noise
    return out


def privatize(
    per_sample_grads: dict[str, torch.Tensor], cfg: DPConfig, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Clip per sample, average over the batch, add the mechanism's noise (the GD-DP gradient)."""
    batch = next(iter(per_sample_grads.values())).shape[0]
    clipped = clip_per_sample(per_sample_grads, cfg.max_grad_norm, cfg.norm_type)
    out: dict[str, torch.Tensor] = {}
    for k, g in clipped.items():
        mean = g.sum(0) / batch
        if cfg.mechanism == "gaussian":
            std = gaussian_std(cfg, batch)
            noise = torch.normal(0.0, std, size=mean.shape, generator=generator) if std > 0 else 0.0
        else:
            noise = _laplace(mean.shape, laplace_scale(cfg, batch), generator)
        out[k] = mean + noise
    return out


class InsecureNoiseWarning(UserWarning):
    """DP noise drawn from a seed others may know: it protects nothing against them."""


_NOISE_DOMAIN = b"fedledger/dp-noise/v1"


def noise_generator(cfg: DPConfig, seed: int | None = None, *, secret: bytes | None = None) -> torch.Generator:
    """The generator DP noise is drawn from.

    ``secret`` (the owner's own, e.g. derived from a deterministic signature with its key): the
    noise is reproducible by the owner after a restart and by no one else. ``cfg.secure_mode``:
    fresh randomness from the OS. Otherwise ``seed``: reproducible experiments only; warns with
    :class:`InsecureNoiseWarning`, since anyone who knows the seed can subtract the noise.
    """
    gen = torch.Generator()
    if secret is not None:
        if len(secret) < 16:
            raise ValueError("the DP noise secret must have at least 16 bytes")
        gen.manual_seed(int.from_bytes(hashlib.sha256(_NOISE_DOMAIN + secret).digest()[:8], "little"))
    elif cfg.secure_mode:
        gen.manual_seed(int.from_bytes(os.urandom(8), "little"))
    elif seed is not None:
        warnings.warn(
            "DP noise drawn from a plain seed: anyone who knows it can regenerate and subtract the "
            "noise (fine for in-process experiments; agents draw it from their key)",
            InsecureNoiseWarning,
            stacklevel=2,
        )
        gen.manual_seed(seed)
    else:
        raise ValueError("DP noise needs a secret, secure_mode or (experiments only) a seed")
    return gen


def accounted_noise(cfg: DPConfig) -> float:
    """What the accountant is told per step: sigma (Gaussian), 1 / epsilon_step (Laplace)."""
    return cfg.noise_multiplier if cfg.mechanism == "gaussian" else 1.0 / cfg.epsilon


@dataclass
class DPStep:
    """Clipping and noise of one batch in one object (Opacus's ``DPOptimizer`` role): call it on
    per-sample gradients to get the GD-DP average gradient; every call runs the step hooks with
    ``(noise_multiplier, sample_rate)`` (the accountant is one)."""

    config: DPConfig
    generator: torch.Generator
    hooks: list[Callable[[float, float], None]] = field(default_factory=list)

    def __call__(self, per_sample_grads: dict[str, torch.Tensor], sample_rate: float) -> dict[str, torch.Tensor]:
        noisy = privatize(per_sample_grads, self.config, self.generator)
        for hook in self.hooks:
            hook(accounted_noise(self.config), sample_rate)
        return noisy


def make_private(
    cfg: DPConfig,
    *,
    accountant: IAccountant | None = None,
    secret: bytes | None = None,
    seed: int | None = None,
) -> tuple[DPStep, IAccountant]:
    """The one entry point to GD-DP: a step object and the accountant its hook feeds (a new one
    for ``cfg.mechanism`` unless given, so spend can be kept across rounds)."""
    accountant = accountant if accountant is not None else create_accountant(cfg.mechanism)
    step = DPStep(cfg, noise_generator(cfg, seed, secret=secret))
    step.hooks.append(lambda sigma, q: accountant.step(noise_multiplier=sigma, sample_rate=q))
    return step, accountant


def spent(accountant: IAccountant, cfg: DPConfig) -> float:
    """Epsilon spent so far (at ``cfg.delta`` for Gaussian noise; Laplace is pure DP)."""
    return float(accountant.get_epsilon(cfg.delta if cfg.mechanism == "gaussian" else 0.0))


def calibrate_noise(
    target_epsilon: float, delta: float, sample_rates: Sequence[float], *, tolerance: float = 1.005
) -> tuple[float, float]:
    """(sigma, epsilon spent): the smallest Gaussian noise multiplier (within ``tolerance``) with
    which the steps ``sample_rates`` (one per step, in order) spend at most ``target_epsilon`` at
    ``delta`` under the RDP accountant the agents use. Starts from Opacus's
    ``get_noise_multiplier`` (which assumes one sample rate) and moves sigma until the exact
    schedule (e.g. the smaller last batch of each epoch) agrees."""
    from opacus.accountants.utils import get_noise_multiplier

    if target_epsilon <= 0 or not 0 < delta < 1 or not sample_rates:
        raise ValueError("calibrate_noise needs epsilon > 0, 0 < delta < 1 and at least one step")

    def epsilon(sigma: float) -> float:
        acc = CachedRDPAccountant()
        for q in sample_rates:
            acc.step(noise_multiplier=sigma, sample_rate=q)
        return float(acc.get_epsilon(delta))

    sigma = get_noise_multiplier(
        target_epsilon=target_epsilon,
        target_delta=delta,
        sample_rate=max(sample_rates),
        steps=len(sample_rates),
        accountant="rdp",
        epsilon_tolerance=0.005,
    )
    eps = epsilon(sigma)
    while eps > target_epsilon:
        sigma *= tolerance
        eps = epsilon(sigma)
    while (lower := epsilon(sigma / tolerance)) <= target_epsilon:
        sigma, eps = sigma / tolerance, lower
    return float(sigma), eps
