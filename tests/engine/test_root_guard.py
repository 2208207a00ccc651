"""The oracle, root-guard on small hand-made cases, and the adaptive attack against it (real MNIST)."""

from __future__ import annotations

import math
import random
from collections import OrderedDict

import numpy as np
import pytest
import torch

from fedledger.core.attacks import Adaptive, create_attack
from fedledger.core.defences import ClientUpdate, Context, create_defence
from fedledger.core.defences.base import apply_delta, flatten, float_keys, stack_deltas
from fedledger.core.defences.root_guard import (
    calibrate_bias,
    confine,
    dormant_inputs,
    dormant_share,
    near_duplicates,
    pair_aucs,
    ranking_damage,
)
from fedledger.core.learning.training import TrainConfig, train_local
from fedledger.core.metrics import evaluate
from fedledger.core.models import create_model, get_weights
from fedledger.core.protocol.task import TaskConfig, TaskConfigError
from fedledger.experiment import ExperimentConfig, run_experiment

SHAPE, CLASSES = (1, 4, 4), 3


# ---------------------------------------------------------------------------------------------
# The oracle
# ---------------------------------------------------------------------------------------------
def test_oracle_averages_exactly_the_honest_owners():
    g = get_weights(create_model("mlp", in_shape=SHAPE, num_classes=CLASSES))
    keys = float_keys(g)
    rng = np.random.default_rng(0)
    deltas = [rng.normal(size=flatten(g, keys).size) for _ in range(4)]
    ups = [ClientUpdate(i, apply_delta(g, d), n) for i, (d, n) in enumerate(zip(deltas, [10, 30, 20, 40], strict=True))]
    dec = create_defence("oracle", malicious=[1, 3]).aggregate(ups, Context(round=1, global_weights=g))
    assert dec.accepted == [0, 2] and dec.weights == pytest.approx({0: 1 / 3, 2: 2 / 3})
    expect = (10 * deltas[0] + 20 * deltas[2]) / 30
    got = flatten(dec.global_update, keys) - flatten(g, keys)
    assert np.allclose(got, expect, atol=1e-6)


def test_the_experiment_tells_the_oracle_who_is_malicious():
    res = run_experiment(
        ExperimentConfig(clients=4, rounds=1, local_steps=2, malicious=0.5, attack="label-flip", defence="oracle")
    )
    rr = res.rounds[0]
    assert rr.accepted == sorted(set(rr.participants) - set(res.malicious)) and rr.precision == rr.recall == 1.0


def test_task_publish_refuses_the_oracle():
    from fedledger.requester import publish

    with pytest.raises(TaskConfigError, match="benchmarks only"):
        publish(None, None, TaskConfig(defence="oracle"))  # type: ignore[arg-type]  # refused before any chain call


def test_near_duplicates_match_the_pairwise_rule():
    """The Gram-matrix shortcut decides every pair as the fixed-order pairwise cosine does,
    including pairs built to sit right at the threshold."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(12, 400))
    X = np.vstack([base, base[0] + 1e-4 * rng.normal(size=400), -base[1], base[2] * 7.0, np.zeros(400)])
    # a pair whose cosine is the threshold itself, up to rounding
    u, v = rng.normal(size=400), rng.normal(size=400)
    v -= (u @ v) / (u @ u) * u
    t = 0.999
    w = t * u / np.linalg.norm(u) + np.sqrt(1 - t * t) * v / np.linalg.norm(v)
    X = np.vstack([X, u, w])

    def pairwise(X: np.ndarray, threshold: float) -> np.ndarray:
        norms = [float(np.sqrt(np.sum(x * x))) for x in X]
        out = np.zeros(len(X), dtype=bool)
        for a in range(len(X)):
            for b in range(a + 1, len(X)):
                if norms[a] > 0 and norms[b] > 0 and float(np.sum(X[a] * X[b])) >= threshold * norms[a] * norms[b]:
                    out[a] = out[b] = True
        return out

    got = near_duplicates(X, t)
    assert list(got) == list(pairwise(X, t))
    assert got[0] and got[12] and got[2] and got[14] and not got[15] and not got[1] and not got[13]


# ---------------------------------------------------------------------------------------------
# root-guard on hand-made data: 3 classes in 16 features, 4 of them constant (a blank border)
# ---------------------------------------------------------------------------------------------
def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % CLASSES
    centres = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0]])
    x = torch.zeros(n, 16, dtype=torch.float32)
    x[:, :12] = torch.randn(n, 12, generator=g) * 0.5
    x[:, :3] += centres[y]
    x[:, 12:] = -0.4  # never varies in clean data: the "border"
    return x.reshape(n, *SHAPE), y


@pytest.fixture(scope="module")
def world():
    model = create_model("mlp", in_shape=SHAPE, num_classes=CLASSES)
    cfg = TrainConfig(lr=0.5, batch_size=16, local_steps=60)
    tx, ty = _data(300, 1)
    g = train_local(model, get_weights(model), *_data(300, 2), cfg, seed=0).weights  # a trained global model
    ctx = Context(
        round=3, global_weights=g, in_shape=SHAPE, num_classes=CLASSES, test_x=tx, test_y=ty, train_config=cfg
    )

    def owner(k: int, y_map=None, trigger: bool = False) -> ClientUpdate:
        x, y = _data(120, 10 + k)
        if y_map is not None:
            y = y_map(y)
        if trigger:  # half the samples get a trigger on part of the border and target 0
            x = x.clone().reshape(len(x), -1)
            x[::2, 14:] = 3.0
            y = y.clone()
            y[::2] = 0
            x = x.reshape(len(x), *SHAPE)
        return ClientUpdate(k, train_local(model, g, x, y, cfg, seed=k).weights, len(x))

    honest = [owner(k) for k in range(4)]
    return ctx, honest, owner


def test_honest_owners_are_kept_and_aggregated(world):
    ctx, honest, _ = world
    dec = create_defence("root-guard").aggregate(honest, ctx)
    assert dec.accepted == [0, 1, 2, 3]
    assert (
        evaluate(ctx.model(), ctx.test_x, ctx.test_y, weights=dec.global_update)[1]
        < evaluate(ctx.model(), ctx.test_x, ctx.test_y, weights=ctx.global_weights)[1]
    )


def test_flipper_ipm_copies_and_backdoor_are_dropped(world):
    ctx, honest, owner = world
    g, keys = ctx.global_weights, float_keys(ctx.global_weights)
    _, H, _ = stack_deltas(honest, g)
    ipm = apply_delta(g, -0.5 * H.mean(axis=0))
    bad = [
        owner(4, y_map=lambda y: (y + 1) % CLASSES),  # label flipper
        ClientUpdate(5, ipm, 120),
        ClientUpdate(6, OrderedDict((k, v.clone()) for k, v in ipm.items()), 120),  # IPM pair
        owner(7, trigger=True),  # backdoor on the border
    ]
    dec = create_defence("root-guard").aggregate(honest + bad, ctx)
    assert dec.accepted == [0, 1, 2, 3]
    assert dec.scores[4] > 0.2  # ranking damage of the flipper
    assert set(dec.metrics["duplicates"]) == {5, 6}
    assert dec.metrics["dormant_share"][7] > 0.1 > max(dec.metrics["dormant_share"][k] for k in range(4))
    del keys


def test_the_aggregate_is_trimmed_least_useful_first(world):
    """Step 4 alone (step 3's bounds lifted): while the average would damage a pair's ranking,
    the least useful steps (lowest gain) are trimmed, so every honest owner stays; with a bound
    no trimmed set meets, the set of least aggregate damage is kept."""
    ctx, honest, owner = world
    flippers = [owner(k, y_map=lambda y: (y + 1) % CLASSES) for k in range(4, 10)]  # a majority
    lifted = {"max_damage": 2.0, "min_gain": -math.inf}
    dec = create_defence("root-guard", **lifted).aggregate(honest + flippers, ctx)
    gain = dec.metrics["gain"]
    assert all(dec.scores[k] > 0.5 and gain[k] < 0 for k in range(4, 10))  # step 3 would have dropped them
    trimmed = dec.metrics["trimmed"]
    assert {0, 1, 2, 3} <= set(dec.accepted) and trimmed and set(trimmed) <= set(range(4, 10))
    assert min(gain[i] for i in dec.accepted) >= max(gain[i] for i in trimmed)  # least useful first
    assert sorted(dec.accepted + trimmed) == list(range(10))
    # a bound below any damage: the trimmed set with the least aggregate damage wins, never empty
    strict = create_defence("root-guard", **lifted, max_aggregate_damage=-2.0).aggregate(honest + flippers, ctx)
    assert {0, 1, 2, 3} <= set(strict.accepted) and strict.metrics["trimmed"]
    loose = create_defence("root-guard", **lifted, max_aggregate_damage=10.0).aggregate(honest + flippers, ctx)
    assert loose.accepted == list(range(10)) and loose.metrics["trimmed"] == []


def test_steps_are_judged_at_the_root_norm_so_a_shrunk_flip_is_still_a_flip(world):
    """The attack on the earlier rule: a flipping step scaled down until it dents no ranking.
    Rescaled to the trust root's step norm it is the flip again, and dropped."""
    ctx, honest, owner = world
    g, keys = ctx.global_weights, float_keys(ctx.global_weights)
    d = flatten(owner(4, y_map=lambda y: (y + 1) % CLASSES).weights, keys) - flatten(g, keys)
    auc0 = pair_aucs(ctx.model(), g, ctx.test_x, ctx.test_y, CLASSES)
    assert (
        ranking_damage(auc0, pair_aucs(ctx.model(), apply_delta(g, 0.01 * d), ctx.test_x, ctx.test_y, CLASSES)) < 0.05
    )
    dec = create_defence("root-guard").aggregate(honest + [ClientUpdate(4, apply_delta(g, 0.01 * d), 120)], ctx)
    assert dec.accepted == [0, 1, 2, 3] and dec.scores[4] > 0.5 and dec.metrics["gain"][4] < 0
    _, H, _ = stack_deltas(honest, g)
    assert dec.metrics["step_norm"] == pytest.approx(float(np.median(np.linalg.norm(H, axis=1))), rel=0.5)


def test_a_bias_shift_is_refitted_away(world):
    """A bias moves no ranking (step 3 cannot see it): refitting the output bias on the clean
    data undoes it, so an owner who shifts only biases changes nothing in the outcome."""
    ctx, honest, _ = world
    g = ctx.global_weights
    out_bias = [k for k, v in g.items() if k.endswith(".bias") and v.numel() == CLASSES][-1]
    shifted = OrderedDict((k, v + torch.tensor([4.0, -2.0, -2.0]) if k == out_bias else v) for k, v in g.items())
    assert (
        evaluate(ctx.model(), ctx.test_x, ctx.test_y, weights=shifted)[0]
        < evaluate(ctx.model(), ctx.test_x, ctx.test_y, weights=g)[0] - 0.2
    )
    refit_g, loss_g = calibrate_bias(ctx.model(), g, ctx.test_x, ctx.test_y, CLASSES)
    refit_s, loss_s = calibrate_bias(ctx.model(), shifted, ctx.test_x, ctx.test_y, CLASSES)
    assert loss_s == pytest.approx(loss_g, abs=1e-6)
    assert torch.allclose(refit_g[out_bias], refit_s[out_bias], atol=1e-5)
    dec = create_defence("root-guard").aggregate(honest + [ClientUpdate(4, shifted, 120)], ctx)
    assert dec.metrics["gain"][4] == pytest.approx(0.0, abs=1e-6)  # useless: no gain once refitted
    assert dec.accepted == [0, 1, 2, 3] or dec.global_update is not None
    acc = evaluate(ctx.model(), ctx.test_x, ctx.test_y, weights=dec.global_update)[0]
    honest_only = create_defence("root-guard").aggregate(honest, ctx)
    assert acc >= evaluate(ctx.model(), ctx.test_x, ctx.test_y, weights=honest_only.global_update)[0] - 0.02


def test_confining_keeps_the_function_on_clean_data(world):
    ctx, _, owner = world
    g, keys = ctx.global_weights, float_keys(ctx.global_weights)
    bd = owner(7, trigger=True)
    delta = flatten(bd.weights, keys) - flatten(g, keys)
    dormant = dormant_inputs(ctx.model(), g, ctx.test_x)
    assert list(dormant["1"][0]) == [12, 13, 14, 15]  # the first Linear layer's border inputs
    confined = confine(delta, g, dormant)
    net = ctx.model()
    with torch.no_grad():
        net.load_state_dict(bd.weights)
        a = net(ctx.test_x)
        net.load_state_dict(apply_delta(g, confined))
        b = net(ctx.test_x)
    assert torch.allclose(a, b, atol=1e-4)
    assert (
        dormant_share(confined, g, dormant) == pytest.approx(0.0, abs=1e-12) and dormant_share(delta, g, dormant) > 0.1
    )


def test_same_decision_and_digest_in_any_arrival_order(world):
    ctx, honest, owner = world
    ups = honest + [owner(4, y_map=lambda y: (y + 1) % CLASSES)]
    shuffled = ups[:]
    random.Random(5).shuffle(shuffled)
    a = create_defence("root-guard").aggregate(ups, ctx)
    b = create_defence("root-guard").aggregate(shuffled, ctx)
    assert a.accepted == b.accepted and a.digest() == b.digest() is not None


def test_ranking_damage_ignores_a_bias_shift_but_not_a_flip():
    x, y = _data(300, 3)
    model = create_model("mlp", in_shape=SHAPE, num_classes=CLASSES)
    g = train_local(model, get_weights(model), x, y, TrainConfig(lr=0.5, batch_size=16, local_steps=80), seed=0).weights
    shifted = OrderedDict((k, v + 3.0 if k.endswith(".bias") and v.numel() == CLASSES else v) for k, v in g.items())
    auc = pair_aucs(model, g, x, y, CLASSES)
    assert ranking_damage(auc, pair_aucs(model, shifted, x, y, CLASSES)) == pytest.approx(
        ranking_damage(auc, auc), abs=1e-12
    )
    flipped = train_local(
        model, g, x, (CLASSES - 1) - y, TrainConfig(lr=0.5, batch_size=16, local_steps=80), seed=1
    ).weights
    assert ranking_damage(auc, pair_aucs(model, flipped, x, y, CLASSES)) > 0.2  # above the default threshold


# ---------------------------------------------------------------------------------------------
# The adaptive attack (real MNIST)
# ---------------------------------------------------------------------------------------------
def test_adaptive_attack_hides_a_flip_inside_useful_work(mnist):
    model = create_model("mlp", seed=0)
    cfg = TrainConfig(lr=0.1, batch_size=32, local_steps=100)
    g = train_local(
        model,
        get_weights(model),
        mnist.x_train[:3000],
        mnist.y_train[:3000],
        TrainConfig(lr=0.1, batch_size=32, local_steps=400),
        seed=0,
    ).weights
    tx, ty = mnist.x_test[:2000], mnist.y_test[:2000]
    ctx = Context(round=2, global_weights=g, test_x=tx, test_y=ty, train_config=cfg)
    shard = lambda k: (mnist.x_train[3000 + 600 * k : 3600 + 600 * k], mnist.y_train[3000 + 600 * k : 3600 + 600 * k])  # noqa: E731
    honest = [ClientUpdate(k, train_local(model, g, *shard(k), cfg, seed=k).weights, 600) for k in range(3)]
    deltas = [OrderedDict((k, u.weights[k] - g[k]) for k in g) for u in honest]

    naive, adaptive = create_attack("label-flip"), create_attack("adaptive")
    assert isinstance(adaptive, Adaptive)
    x, y = shard(3)
    flipped_w = train_local(model, g, *naive.poison_data(x, y, torch.Generator()), cfg, seed=3).weights
    ax, ay = adaptive.poison_data(x, y, torch.Generator())
    assert torch.equal(ay, 9 - y)
    own_flip = train_local(model, g, ax, ay, cfg, seed=3).weights
    assert adaptive.poison_weights(g, own_flip) is own_flip  # nothing to hide in: its flip as trained
    adaptive_w = adaptive.poison_weights(g, own_flip, honest_updates=deltas, gen=torch.Generator().manual_seed(1))

    # on its own clean data it estimates the rule as root-guard runs it, and sits inside it
    mu = OrderedDict((k, sum(d[k] for d in deltas) / 3) for k in g)
    size = float(torch.sqrt(sum((v.double() ** 2).sum() for v in mu.values())))
    step = OrderedDict((k, adaptive_w[k] - g[k]) for k in g)
    damage, gain = adaptive.judge(g, step, size)
    honest_gains = sorted(adaptive.judge(g, d, size)[1] for d in deltas)
    assert gain >= adaptive.margin * honest_gains[1] > 0 and damage <= adaptive.margin * adaptive.max_damage
    assert adaptive.judge(g, OrderedDict((k, own_flip[k] - g[k]) for k in g), size)[1] < 0  # the naive flip fails
    # it carries a flip: its step leans along its own flip direction, beyond its noise
    keys = float_keys(g)
    f = flatten(own_flip, keys) - flatten(g, keys)
    off = flatten(adaptive_w, keys) - flatten(g, keys) - flatten(mu, keys)  # what it adds to the honest mean
    beta = float(off @ f) / float(np.linalg.norm(f)) / size
    assert beta > 2 * adaptive.spread

    guard = create_defence("root-guard")
    with_naive = guard.aggregate(honest + [ClientUpdate(3, flipped_w, 600)], ctx)
    with_adaptive = guard.aggregate(honest + [ClientUpdate(3, adaptive_w, 600)], ctx)
    assert with_naive.accepted == [0, 1, 2] and with_adaptive.accepted == [0, 1, 2, 3]


def test_same_digest_whatever_the_thread_count(world):
    ctx, honest, owner = world
    ups = honest + [owner(4, y_map=lambda y: (y + 1) % CLASSES)]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = create_defence("root-guard").aggregate(ups, ctx)
        torch.set_num_threads(2)
        b = create_defence("root-guard").aggregate(ups, ctx)
    finally:
        torch.set_num_threads(before)
    assert a.accepted == b.accepted and a.digest() == b.digest() is not None
