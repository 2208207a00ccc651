"""Local training, behaviour model, pruning and GD-DP."""

from __future__ import annotations

import math

import pytest
import torch

from fedledger.core.data import client_data
from fedledger.core.learning.behaviour import behaviour_model
from fedledger.core.learning.privacy import (
    DPConfig,
    LaplaceAccountant,
    clip_per_sample,
    create_accountant,
    gaussian_std,
    laplace_scale,
    privatize,
)
from fedledger.core.learning.training import TrainConfig, magnitude_prune, train_local
from fedledger.core.models import create_model, get_weights


@pytest.fixture(scope="module")
def shard(mnist):
    cd = client_data(mnist, "iid", 0, 20, 0)
    return cd.x_train[:512], cd.y_train[:512]


def test_training_returns_update_and_behaviour(shard):
    x, y = shard
    m = create_model("mlp", seed=0)
    w0 = get_weights(m)
    res = train_local(m, w0, x, y, TrainConfig(lr=0.1, batch_size=32, local_epochs=2), seed=1)
    assert res.n_samples == 512 and res.local_steps == 2 * 16
    assert math.isfinite(res.loss)
    for k in w0:  # pace = (after - before) / (lr * steps); direction = sign(pace)
        expect = (res.weights[k].double() - w0[k].double()) / (0.1 * 32)
        torch.testing.assert_close(res.behaviour.pace[k].double(), expect, rtol=1e-5, atol=1e-7)
        assert torch.equal(res.behaviour.direction[k], torch.sign(res.behaviour.pace[k]))
    again = train_local(create_model("mlp", seed=0), w0, x, y, TrainConfig(local_epochs=2), seed=1)
    assert all(torch.equal(res.weights[k], again.weights[k]) for k in w0)
    other = train_local(create_model("mlp", seed=0), w0, x, y, TrainConfig(local_epochs=2), seed=2)
    assert not all(torch.equal(res.weights[k], other.weights[k]) for k in w0)


def test_local_steps_and_loss_goes_down(shard):
    x, y = shard
    m = create_model("cnn", seed=0)
    w0 = get_weights(m)
    res = train_local(m, w0, x, y, TrainConfig(lr=0.05, local_steps=40), seed=0)
    assert res.local_steps == 40
    first = train_local(m, w0, x, y, TrainConfig(lr=0.05, local_steps=1), seed=0)
    assert res.loss < first.loss


def test_behaviour_model_formula():
    before = {"w": torch.tensor([1.0, 2.0, 3.0])}
    after = {"w": torch.tensor([0.5, 2.0, 4.0])}
    b = behaviour_model(before, after, lr=0.1, local_steps=5)
    torch.testing.assert_close(b.pace["w"], torch.tensor([-1.0, 0.0, 2.0]))
    assert b.direction["w"].tolist() == [-1.0, 0.0, 1.0]


def test_magnitude_prune_keeps_largest_update_entries():
    before = {"w": torch.zeros(10)}
    after = {"w": torch.arange(1.0, 11.0) * torch.tensor([1, -1] * 5)}
    out = magnitude_prune(before, after, 0.7)
    assert out["w"].tolist() == [0, 0, 0, 0, 0, 0, 0, -8, 9, -10]


@pytest.mark.parametrize("norm_type", [1, 2])
def test_clipping_bound_holds_per_sample(norm_type):
    g = torch.Generator().manual_seed(0)
    grads = {"a": torch.randn(16, 5, 7, generator=g) * 10, "b": torch.randn(16, 3, generator=g) * 0.01}
    grads["b"][3] = 0.0
    grads["a"][3] = 0.001  # a sample already inside the bound is left alone
    clipped = clip_per_sample(grads, 1.5, norm_type)
    flat = torch.cat([v.reshape(16, -1) for v in clipped.values()], 1)
    norms = flat.norm(p=norm_type, dim=1)
    assert (norms <= 1.5 * (1 + 1e-5)).all()
    orig = torch.cat([v.reshape(16, -1) for v in grads.values()], 1)
    torch.testing.assert_close(flat[3], orig[3])
    big = orig.norm(p=norm_type, dim=1) > 1.5
    torch.testing.assert_close(norms[big], torch.full_like(norms[big], 1.5), rtol=1e-5, atol=1e-5)
    # Direction is kept: clipping only rescales.
    cos = torch.nn.functional.cosine_similarity(flat, orig, dim=1)
    torch.testing.assert_close(cos, torch.ones(16), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mechanism", ["gaussian", "laplace"])
def test_noise_scale_matches_formula(mechanism):
    cfg = DPConfig(mechanism=mechanism, max_grad_norm=2.0, noise_multiplier=1.3, epsilon=4.0)
    B = 8
    zero = {"w": torch.zeros(B, 200_000)}
    noise = privatize(zero, cfg, torch.Generator().manual_seed(0))["w"]
    if mechanism == "gaussian":
        expected_std = 1.3 * 2.0 / B
        assert gaussian_std(cfg, B) == pytest.approx(expected_std)
    else:
        b = (2 * 2.0 / B) / 4.0  # L1 sensitivity 2C/B (replace-one) over epsilon
        assert laplace_scale(cfg, B) == pytest.approx(b)
        expected_std = math.sqrt(2) * b
        # Laplace, not Gaussian: mean |X| = b (Gaussian with this std would give 0.8 * std * sqrt2 / ...)
        assert float(noise.abs().mean()) == pytest.approx(b, rel=0.01)
    assert float(noise.std()) == pytest.approx(expected_std, rel=0.01)
    assert abs(float(noise.mean())) < 0.01 * expected_std * 10


def test_epsilon_grows_as_expected():
    rdp = create_accountant("gaussian")
    eps = []
    for _ in range(3):
        for _ in range(100):
            rdp.step(noise_multiplier=1.0, sample_rate=0.01)
        eps.append(rdp.get_epsilon(1e-5))
    assert eps[0] < eps[1] < eps[2]
    assert eps[2] < 3 * eps[0]  # RDP composes sub-linearly
    noisier = create_accountant("gaussian")
    for _ in range(300):
        noisier.step(noise_multiplier=2.0, sample_rate=0.01)
    assert noisier.get_epsilon(1e-5) < eps[2]
    lap = LaplaceAccountant()
    for _ in range(7):
        lap.step(noise_multiplier=1 / 0.5, sample_rate=0.1)
    assert lap.get_epsilon() == pytest.approx(3.5) and len(lap) == 7  # basic composition: T * eps


@pytest.mark.parametrize("mechanism", ["gaussian", "laplace"])
def test_dp_training_runs_and_reports_epsilon(shard, mechanism):
    x, y = shard
    x, y = x[:128], y[:128]
    m = create_model("mlp", seed=0)
    w0 = get_weights(m)
    cfg = DPConfig(mechanism=mechanism, max_grad_norm=1.0, noise_multiplier=1.0, epsilon=10.0)
    acc = create_accountant(mechanism)
    r1 = train_local(m, w0, x, y, TrainConfig(local_epochs=1), seed=0, dp=cfg, accountant=acc)
    r2 = train_local(m, w0, x, y, TrainConfig(local_epochs=1), seed=0, dp=cfg, accountant=acc)
    assert r1.local_steps == 4 and r2.epsilon > r1.epsilon > 0
    if mechanism == "laplace":
        assert r1.epsilon == pytest.approx(4 * 10.0) and r2.epsilon == pytest.approx(8 * 10.0)
    # Same seed and inputs -> same noise -> same weights.
    r3 = train_local(m, w0, x, y, TrainConfig(local_epochs=1), seed=0, dp=cfg)
    assert all(torch.equal(r1.weights[k], r3.weights[k]) for k in w0)


def test_dp_step_equals_clipped_noisy_sgd(shard):
    """One GD-DP step with zero noise equals lr * mean of the per-sample clipped gradients."""
    x, y = shard
    x, y = x[:8], y[:8]
    m = create_model("mlp", seed=0)
    w0 = get_weights(m)
    cfg = DPConfig(mechanism="gaussian", max_grad_norm=0.5, noise_multiplier=0.0)
    res = train_local(m, w0, x, y, TrainConfig(lr=0.1, batch_size=8, local_steps=1), seed=0, dp=cfg)
    ref = create_model("mlp", seed=0)
    per = []
    for i in range(8):
        ref.zero_grad()
        torch.nn.functional.cross_entropy(ref(x[i : i + 1]), y[i : i + 1]).backward()
        g = torch.cat([p.grad.reshape(-1) for p in ref.parameters()])
        per.append(g * min(1.0, 0.5 / (float(g.norm()) + 1e-6)))
    step = torch.stack(per).mean(0) * 0.1
    got = torch.cat([(w0[k] - res.weights[k]).reshape(-1) for k in w0])
    torch.testing.assert_close(got, step, rtol=1e-4, atol=1e-7)


def test_cached_rdp_accountant_equals_opacus():
    """The cached accountant (one-step RDP curve per (q, sigma)) gives opacus' own epsilons."""
    from opacus.accountants import RDPAccountant

    from fedledger.core.learning.privacy import CachedRDPAccountant

    ours, theirs = CachedRDPAccountant(), RDPAccountant()
    for rnd in range(25):  # two sample rates a round (a smaller last batch), as a client's history has
        for acc in (ours, theirs):
            for _ in range(28):
                acc.step(noise_multiplier=0.84, sample_rate=64 / 1800)
            acc.step(noise_multiplier=0.84, sample_rate=8 / 1800)
        if rnd in (0, 9, 24):
            for delta in (1e-5, 1e-3):
                assert ours.get_epsilon(delta) == theirs.get_epsilon(delta)
    assert 5 < ours.get_epsilon(1e-5) < 20
