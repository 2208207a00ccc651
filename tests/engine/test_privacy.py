"""Privacy's one entry point, where the noise comes from, and noise calibration."""

from __future__ import annotations

import warnings

import pytest
import torch

from fedledger.core.chain.accounts import devnet_account, owner_secret
from fedledger.core.data import client_data
from fedledger.core.learning.privacy import (
    DPConfig,
    InsecureNoiseWarning,
    calibrate_noise,
    create_accountant,
    make_private,
    noise_generator,
)
from fedledger.core.learning.training import TrainConfig, account_past_rounds, step_sample_rates, train_local
from fedledger.core.models import create_model, get_weights

DP = DPConfig(mechanism="gaussian", max_grad_norm=1.0, noise_multiplier=1.0)
TRAIN = TrainConfig(batch_size=16, local_steps=2)


@pytest.fixture(scope="module")
def shard(mnist):
    cd = client_data(mnist, "iid", 0, 20, 0)
    return cd.x_train[:32], cd.y_train[:32]


def _train(shard, *, seed: int, secret: bytes | None) -> dict[str, torch.Tensor]:
    m = create_model("mlp", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureNoiseWarning)
        return dict(train_local(m, get_weights(m), *shard, TRAIN, seed=seed, dp=DP, noise_secret=secret).weights)


def test_an_owners_noise_is_its_own_and_survives_a_restart(shard):
    """With everything public (task seed, round, owner index, the training seed formula) the noise
    cannot be regenerated; with the owner's key it can, in a fresh process state."""
    task_seed, task_id, r, k = 0, 1, 3, 5
    batch_seed = task_seed * 1_000_003 + r * 1009 + k  # what an agent trains with: public
    account = devnet_account(20 + k)
    published = _train(shard, seed=batch_seed, secret=owner_secret(account, "dp noise", task_id, r))
    # the owner after a restart: the same key gives the same secret, the same noise, the same model
    again = _train(shard, seed=batch_seed, secret=owner_secret(devnet_account(20 + k), "dp noise", task_id, r))
    assert all(torch.equal(published[n], again[n]) for n in published)
    # anyone else: every noise seed that public values give (the old scheme: seed + 1_000_003 for
    # every owner index below 128), and another key's secret, miss the published model
    for guess in range(128):
        seed = task_seed * 1_000_003 + r * 1009 + guess
        guessed = _train(shard, seed=batch_seed, secret=None) if guess == k else _train(shard, seed=seed, secret=None)
        assert not all(torch.equal(published[n], guessed[n]) for n in published), guess
    other = _train(shard, seed=batch_seed, secret=owner_secret(devnet_account(99), "dp noise", task_id, r))
    assert not all(torch.equal(published[n], other[n]) for n in published)
    # and the secret differs by purpose and round: the score salt reveals nothing about the noise
    assert owner_secret(account, "dp noise", task_id, r) != owner_secret(account, "score salt", task_id, r)
    assert owner_secret(account, "dp noise", task_id, r) != owner_secret(account, "dp noise", task_id, r + 1)


def test_noise_from_a_plain_seed_warns_and_the_others_do_not():
    with pytest.warns(InsecureNoiseWarning, match="regenerate and subtract"):
        noise_generator(DP, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InsecureNoiseWarning)
        noise_generator(DP, secret=b"s" * 32)
        noise_generator(DPConfig(secure_mode=True))
    with pytest.raises(ValueError, match="at least 16 bytes"):
        noise_generator(DP, secret=b"short")
    with pytest.raises(ValueError, match="needs a secret"):
        noise_generator(DP)


def test_the_step_hook_feeds_the_accountant(shard):
    """make_private's accountant sees exactly the steps train_local takes (what a restarted agent
    replays with account_past_rounds)."""
    step, acc = make_private(DP, secret=b"k" * 32)
    grads = {"w": torch.randn(16, 3)}
    for _ in range(5):
        out = step(grads, sample_rate=0.5)
        assert out["w"].shape == (3,)
    replay = create_accountant("gaussian")
    for _ in range(5):
        replay.step(noise_multiplier=1.0, sample_rate=0.5)
    assert acc.get_epsilon(1e-5) == replay.get_epsilon(1e-5) > 0

    trained = create_accountant("gaussian")
    m = create_model("mlp", seed=0)
    train_local(m, get_weights(m), *shard, TRAIN, seed=0, dp=DP, accountant=trained, noise_secret=b"k" * 32)
    replayed = create_accountant("gaussian")
    account_past_rounds(replayed, DP, len(shard[0]), TRAIN, 1)
    assert trained.get_epsilon(1e-5) == replayed.get_epsilon(1e-5)


def test_calibrated_noise_spends_the_target_and_no_less_noise_would():
    rates = step_sample_rates(1000, TrainConfig(batch_size=64, local_epochs=2)) * 10  # 10 rounds
    sigma, eps = calibrate_noise(4.0, 1e-5, rates)
    assert eps <= 4.0

    def spent(s: float) -> float:
        acc = create_accountant("gaussian")
        for q in rates:
            acc.step(noise_multiplier=s, sample_rate=q)
        return float(acc.get_epsilon(1e-5))

    assert spent(sigma) == pytest.approx(eps)
    assert spent(sigma / 1.005) > 4.0  # the smallest sigma within 0.5 %
    with pytest.raises(ValueError):
        calibrate_noise(0.0, 1e-5, rates)
