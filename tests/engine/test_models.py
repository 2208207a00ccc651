"""Models by spec name."""

from __future__ import annotations

import pytest
import torch

from fedledger.core.models import create_model, get_weights


def test_mlp_is_the_bvfb_model():
    m = create_model("mlp")
    shapes = [tuple(v.shape) for v in m.state_dict().values()]
    assert shapes == [(256, 784), (256,), (128, 256), (128,), (10, 128), (10,)]
    assert sum(isinstance(x, torch.nn.Sigmoid) for x in m.modules()) == 2


@pytest.mark.parametrize(
    "spec,shape",
    [
        ("mlp", (1, 28, 28)),
        ("cnn", (1, 28, 28)),
        ("cnn", (3, 32, 32)),
        ("tanh-cnn", (1, 28, 28)),
        ("tanh-cnn", (3, 32, 32)),
    ],
)
def test_deterministic_init_and_forward(spec, shape):
    a, b = create_model(spec, seed=5, in_shape=shape), create_model(spec, seed=5, in_shape=shape)
    c = create_model(spec, seed=6, in_shape=shape)
    wa, wb, wc = get_weights(a), get_weights(b), get_weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert a(torch.zeros(2, *shape)).shape == (2, 10)


def test_tanh_cnn_is_the_papernot_dp_model():
    m = create_model("tanh-cnn")
    shapes = [tuple(v.shape) for v in m.state_dict().values()]
    assert shapes == [(16, 1, 8, 8), (16,), (32, 16, 4, 4), (32,), (32, 512), (32,), (10, 32), (10,)]
    assert sum(isinstance(x, torch.nn.Tanh) for x in m.modules()) == 3


def test_building_a_model_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    create_model("cnn", seed=123)
    assert torch.equal(torch.rand(3), expected)


def test_resnet_is_guarded():
    try:
        m = create_model("resnet18", in_shape=(3, 32, 32))
    except ImportError as exc:
        assert "[vision]" in str(exc)
    else:
        assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model"):
        create_model("vgg")
