"""Copycats (issue 23): owners that re-submit a peer's model, or a copy plus small noise, are never
accepted, credited or made winner by the in-process engine, which rejects copies as the miners do
(`rules.copied_from`)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from fedledger.core.attacks import create_attack
from fedledger.core.protocol import rules
from fedledger.experiment import ExperimentConfig, run_experiment


def test_a_copycat_submits_a_peers_update_exactly_or_with_small_noise():
    gen = torch.Generator().manual_seed(0)
    g = OrderedDict(w=torch.zeros(30, 20), b=torch.ones(20))
    peers = [OrderedDict((k, torch.randn(v.shape, generator=gen)) for k, v in g.items()) for _ in range(3)]
    exact = create_attack("copycat").poison_weights(g, g, honest_updates=peers, gen=gen)
    delta = OrderedDict((k, exact[k] - g[k]) for k in g)
    assert any(all(torch.allclose(delta[k], p[k]) for k in g) for p in peers)
    noisy = create_attack("copycat", noise=0.01).poison_weights(g, g, honest_updates=peers, gen=gen)
    delta = OrderedDict((k, noisy[k] - g[k]) for k in g)
    assert not any(all(torch.equal(delta[k], p[k]) for k in g) for p in peers)
    assert [rules.near_duplicate(delta, p) for p in peers].count(True) == 1
    far = create_attack("copycat", noise=1.0).poison_weights(g, g, honest_updates=peers, gen=gen)
    assert not any(rules.near_duplicate(OrderedDict((k, far[k] - g[k]) for k in g), p) for p in peers)
    with pytest.raises(ValueError):
        create_attack("copycat").poison_weights(g, g, honest_updates=[], gen=gen)


@pytest.mark.parametrize(
    "defence,noise,extra",
    [("fedavg", 0.0, {}), ("fedavg", 0.01, {}), ("bpcv-fl", 0.01, {"select": 6}), ("bvfb", 0.0, {})],
)
def test_copycats_are_never_accepted_nor_winners(defence, noise, extra):
    cfg = ExperimentConfig(
        dataset="mnist",
        model="mlp",
        clients=6,
        rounds=2,
        local_steps=3,
        malicious=0.34,
        attack="copycat",
        attack_kwargs={"noise": noise},
        defence=defence,
        seed=1,
        **extra,
    )
    res = run_experiment(cfg)
    assert len(res.malicious) == 2 and set(res.rounds[0].malicious_participants) == set(res.malicious)
    for r in res.rounds:  # (BPCV-FL replaces the eliminated copycats with standby owners)
        bad = set(r.malicious_participants)
        assert set(r.copies) == bad  # every copycat that took part was caught, nobody else
        assert not bad & set(r.accepted)
        assert r.winner not in bad
        if defence == "fedavg":  # FedAvg takes every usable update: only the rule kept the copies out
            assert set(r.accepted) == set(r.participants) - bad
