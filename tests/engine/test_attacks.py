"""Attacks change exactly what they claim."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from fedledger.core.attacks import ATTACKS, apply_trigger, create_attack


def _sd(**kw):
    return OrderedDict((k, torch.tensor(v, dtype=torch.float32)) for k, v in kw.items())


G = _sd(a=[1.0, 2.0, 3.0], b=[[0.5, -0.5]])
W = _sd(a=[1.5, 1.0, 3.0], b=[[0.25, 0.0]])  # update: a +0.5 -1 0, b -0.25 +0.5
GEN = torch.Generator().manual_seed(0)


def test_registry_names():
    assert set(ATTACKS) == {
        "none",
        "label-flip",
        "backdoor",
        "gaussian",
        "sign-flip",
        "scaling",
        "free-rider",
        "alie",
        "ipm",
        "copycat",
        "collusive",
        "adaptive",
    }
    assert create_attack("all-to-one").mode == "all-to-one"
    with pytest.raises(ValueError):
        create_attack("nope")


def test_label_flip_pairwise_and_all_to_one():
    x = torch.randn(10, 1, 4, 4)
    y = torch.arange(10)
    x2, y2 = create_attack("label-flip").poison_data(x, y, GEN)
    assert torch.equal(x2, x) and y2.tolist() == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    _, y3 = create_attack("label-flip", mode="all-to-one", target=7).poison_data(x, y, GEN)
    assert y3.tolist() == [7] * 10


def test_backdoor_stamps_trigger_on_the_poison_fraction_only():
    x = torch.zeros(40, 1, 28, 28)
    x[:, :, 5, 5] = 2.0  # brightest value
    y = torch.full((40,), 3)
    x2, y2 = create_attack("backdoor", target=0, poison_fraction=0.25).poison_data(
        x, y, torch.Generator().manual_seed(1)
    )
    changed = (x2 != x).flatten(1).any(1)
    assert int(changed.sum()) == 10 and torch.equal(changed, y2 == 0)
    diff = (x2 != x)[changed]
    assert int(diff[0].sum()) == 9  # a 3x3 patch
    assert bool((x2[changed][:, :, 24:27, 24:27] == 2.0).all())
    assert torch.equal(apply_trigger(x[:1]), x2[changed][:1])


def test_model_poisoning_attacks():
    d = {k: W[k] - G[k] for k in G}
    sf = create_attack("sign-flip").poison_weights(G, W)
    assert all(torch.allclose(sf[k], G[k] - d[k]) for k in G)
    sc = create_attack("scaling", boost=4.0).poison_weights(G, W)
    assert all(torch.allclose(sc[k], G[k] + 4 * d[k]) for k in G)
    auto = create_attack("scaling")
    auto.setup(n_clients=20, n_malicious=2)
    assert auto.boost == 20.0
    fr = create_attack("free-rider").poison_weights(G, W)
    assert all(torch.equal(fr[k], G[k]) for k in G)
    gn = create_attack("gaussian", std=0.1).poison_weights(
        OrderedDict(w=torch.zeros(100_000)), OrderedDict(w=torch.zeros(100_000)), gen=torch.Generator().manual_seed(0)
    )
    assert float(gn["w"].std()) == pytest.approx(0.1, rel=0.02)
    assert not create_attack("gaussian").trains and not create_attack("free-rider").trains


def test_alie_and_ipm_use_the_honest_updates():
    honest = [_sd(a=[1.0, 0.0, 2.0], b=[[0.0, 1.0]]), _sd(a=[3.0, 0.0, 4.0], b=[[2.0, 1.0]])]
    alie = create_attack("alie", z=1.5)
    out = alie.poison_weights(G, W, honest_updates=honest)
    # mean a = [2, 0, 3], std (population) a = [1, 0, 1]; mean b = [1, 1], std b = [1, 0]
    assert torch.allclose(out["a"], G["a"] + torch.tensor([2 - 1.5, 0.0, 3 - 1.5]))
    assert torch.allclose(out["b"], G["b"] + torch.tensor([[1 - 1.5, 1.0]]))
    auto = create_attack("alie")
    auto.setup(n_clients=50, n_malicious=12)  # Baruch et al.: s = 26 - 12 = 14, z = Phi^-1(36/50) ~ 0.58
    assert auto.z == pytest.approx(0.5828, abs=1e-3)
    ipm = create_attack("ipm", epsilon=0.5).poison_weights(G, W, honest_updates=honest)
    assert torch.allclose(ipm["a"], G["a"] - 0.5 * torch.tensor([2.0, 0.0, 3.0]))
    with pytest.raises(ValueError):
        create_attack("ipm").poison_weights(G, W)


def test_collusive_validation_scores():
    att = create_attack("collusive")
    scores = {0: 9000, 1: 9100, 2: 300, 5: 8800}
    assert att.poison_scores(scores, self_id=3, accomplices={2, 3, 5}) == {0: 0, 1: 0, 2: 10_000, 5: 10_000}
    _, y = att.poison_data(torch.zeros(2, 1), torch.tensor([0, 9]), GEN)
    assert y.tolist() == [9, 0]  # the inner attack (label flipping) still applies
    honest = create_attack("none")
    assert honest.poison_scores(scores, self_id=3, accomplices=set()) == scores
