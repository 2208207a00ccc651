"""Local training of one data owner: plain SGD or GD-DP, then the BVFB behaviour model.

FedAvg's client update (McMahan et al., AISTATS 2017): start from the global weights, run SGD for
some local epochs (or a fixed number of steps) on local data, return the new weights with the
sample count. BVFB's behaviour model is computed from the weights actually returned.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from opacus.accountants import IAccountant
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from fedledger.core.learning.behaviour import Behaviour, behaviour_model
from fedledger.core.learning.privacy import (
    DPConfig,
    accounted_noise,
    make_private,
    perturb_upload,
    spent,
    tune_allocator,
)
from fedledger.core.models import StateDict, get_weights

__all__ = ["TrainConfig", "TrainResult", "account_past_rounds", "magnitude_prune", "step_sample_rates", "train_local"]


@dataclass(frozen=True)
class TrainConfig:
    """Local SGD settings (BVFB defaults: lr 0.1, batch 32, 5 local epochs).

    ``local_steps``, when set, replaces ``local_epochs``: exactly that many SGD steps, cycling
    through reshuffled epochs. ``prune_ratio`` > 0 zeroes that fraction of the smallest-magnitude
    entries of each tensor's update before upload (BCS-FL's pruning).
    """

    lr: float = 0.1
    batch_size: int = 32
    local_epochs: int = 5
    local_steps: int | None = None
    prune_ratio: float = 0.0


@dataclass(frozen=True)
class TrainResult:
    """What a client submits (weights, sample count, behaviour) and reports (loss, epsilon)."""

    weights: StateDict
    n_samples: int
    loss: float
    local_steps: int
    behaviour: Behaviour
    epsilon: float | None = None
    delta: float | None = None


def _batches(n: int, cfg: TrainConfig, gen: torch.Generator) -> list[torch.Tensor]:
    """Index batches for the whole local run; reshuffled every epoch from ``gen``."""
    total = cfg.local_steps
    out: list[torch.Tensor] = []
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            out.append(perm[i : i + cfg.batch_size])
            if total is not None and len(out) == total:
                return out
        if total is None and len(out) >= cfg.local_epochs * -(-n // cfg.batch_size):
            return out


def magnitude_prune(before: StateDict, after: StateDict, ratio: float) -> StateDict:
    """Keep only the largest ``1 - ratio`` fraction (by magnitude) of each tensor's update."""
    if ratio <= 0:
        return after
    out: StateDict = OrderedDict()
    for k, w0 in before.items():
        w1 = after[k]
        if not w1.is_floating_point() or w1.numel() < 2:
            out[k] = w1
            continue
        d = w1 - w0
        n_drop = int(ratio * d.numel())
        if n_drop == 0:
            out[k] = w1
            continue
        # kthvalue gives the cut; ties at the cut are dropped too (deterministic, may drop a few more)
        cut = d.abs().flatten().kthvalue(n_drop).values
        out[k] = w0 + torch.where(d.abs() > cut, d, torch.zeros_like(d))
    return out


def step_sample_rates(n: int, config: TrainConfig) -> list[float]:
    """The sample rate of each step of one local run on `n` samples, as `train_local` takes them
    (batch sizes do not depend on the shuffling seed): what the accountant and
    `privacy.calibrate_noise` need."""
    return [len(b) / n for b in _batches(n, config, torch.Generator().manual_seed(0))]


def account_past_rounds(accountant: IAccountant, dp: DPConfig, n: int, config: TrainConfig, rounds: int) -> None:
    """Feed `accountant` the steps of `rounds` earlier local runs on `n` samples, as `train_local`
    took them: an agent restarted mid-task recovers its privacy spend from the rounds the chain
    says it trained in."""
    rates = [1.0] if dp.where == "upload" else step_sample_rates(n, config)  # upload noise: one release a round
    for _ in range(rounds):
        for q in rates:
            accountant.step(noise_multiplier=accounted_noise(dp), sample_rate=q)


def train_local(
    model: nn.Module,
    global_weights: StateDict,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig = TrainConfig(),
    *,
    seed: int = 0,
    dp: DPConfig | None = None,
    accountant: IAccountant | None = None,
    noise_secret: bytes | None = None,
) -> TrainResult:
    """Train ``model`` from ``global_weights`` on ``(x, y)``; deterministic given ``seed``.

    Args:
        model: a module of the right architecture; its weights are overwritten.
        global_weights: the round's starting weights (not modified).
        x, y: local training data.
        config: SGD settings.
        seed: batch-order seed; same seed and inputs -> identical weights.
        dp: GD-DP settings, or None for plain SGD.
        accountant: a privacy accountant to keep across rounds (one is created when None);
            the returned epsilon is the accountant's total so far.
        noise_secret: the owner's secret the DP noise is drawn from (agents); without it the noise
            comes from ``seed`` (in-process experiments; warns: anyone knowing the seed can
            subtract it).
    """
    if len(x) == 0:
        raise ValueError("no local training data")
    model.load_state_dict(global_weights, strict=True)
    model.train()
    gen = torch.Generator().manual_seed(seed)
    batches = _batches(len(x), config, gen)
    params = dict(model.named_parameters())
    losses = torch.zeros(len(batches), dtype=torch.float64)

    upload = dp is not None and dp.where == "upload"  # LL-BCFL: plain training, noise on the upload
    if dp is None or upload:
        # Plain SGD without torch.optim: fewer allocations, same update p -= lr * grad.
        for i, idx in enumerate(batches):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            grads = torch.autograd.grad(loss, list(params.values()))
            with torch.no_grad():
                for p, g in zip(params.values(), grads, strict=True):
                    p.sub_(g, alpha=config.lr)
            losses[i] = loss.detach()
        epsilon = delta = None
    else:
        tune_allocator()
        step, accountant = make_private(
            dp, accountant=accountant, secret=noise_secret, seed=None if noise_secret is not None else seed + 1_000_003
        )
        buffers = dict(model.named_buffers())
        names = list(params)

        def sample_loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
            out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
            return F.cross_entropy(out, yi.unsqueeze(0))

        per_sample = vmap(grad_and_value(sample_loss), in_dims=(None, 0, 0))
        detached = {k: v.detach() for k, v in params.items()}
        for i, idx in enumerate(batches):
            grads, sample_losses = per_sample(detached, x[idx], y[idx])
            noisy = step(grads, sample_rate=len(idx) / len(x))
            with torch.no_grad():
                for k in names:
                    detached[k] = detached[k] - config.lr * noisy[k]
            losses[i] = sample_losses.mean()
        with torch.no_grad():
            for k in names:
                params[k].copy_(detached[k])
        delta = 0.0 if dp.mechanism == "laplace" else dp.delta
        epsilon = spent(accountant, dp)

    weights = get_weights(model)
    weights = magnitude_prune(global_weights, weights, config.prune_ratio)
    if upload:
        assert dp is not None
        step, accountant = make_private(
            dp, accountant=accountant, secret=noise_secret, seed=None if noise_secret is not None else seed + 1_000_003
        )
        weights = OrderedDict(perturb_upload(global_weights, weights, dp, step.generator))
        for hook in step.hooks:  # one release per round: one step of sample rate 1
            hook(accounted_noise(dp), 1.0)
        delta = 0.0 if dp.mechanism == "laplace" else dp.delta
        epsilon = spent(accountant, dp)
    return TrainResult(
        weights=weights,
        n_samples=len(x),
        loss=float(losses.mean()),
        local_steps=len(batches),
        behaviour=behaviour_model(global_weights, weights, config.lr, len(batches)),
        epsilon=epsilon,
        delta=delta,
    )
