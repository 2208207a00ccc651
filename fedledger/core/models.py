"""Models by spec name, with deterministic initialisation from a seed.

``mlp`` is the model of the BVFB paper (training-behaviour verification for blockchain FL; setup in
docs/design.md#paper-setups-and-reference-numbers: 784-256-128-10, sigmoid), ``cnn`` a small LeNet-5-like network
(LeCun et al., 1998), ``tanh-cnn`` the small tanh network for DP-SGD on MNIST (Papernot et al.,
"Tempered Sigmoid Activations for Deep Learning with Differential Privacy", AAAI 2021; also Opacus'
MNIST example): 26k parameters, so the same per-coordinate noise has a third of the MLP's norm, and
bounded activations that keep clipped gradients informative. ``resnet18`` comes from torchvision
behind the ``[vision]`` extra.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["MODELS", "StateDict", "create_model", "get_weights", "set_weights"]

StateDict = OrderedDict[str, torch.Tensor]


def _mlp(in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    n_in = 1
    for d in in_shape:
        n_in *= d
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(n_in, 256),
        nn.Sigmoid(),
        nn.Linear(256, 128),
        nn.Sigmoid(),
        nn.Linear(128, num_classes),
    )


def _cnn(in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    c, h, w = in_shape
    # Two 5x5 convs with 2x2 pooling, as LeNet-5; padding 2 on the first keeps 28x28 -> 14 -> 5.
    h2, w2 = ((h // 2) - 4) // 2, ((w // 2) - 4) // 2
    return nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * h2 * w2, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_classes),
    )


def _tanh_cnn(in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    c, h, w = in_shape

    def side(n: int) -> int:  # 8x8/2 conv (padding 3), 2x2/1 pool, 4x4/2 conv, 2x2/1 pool: 28 -> 14, 13, 5, 4
        n = (n + 2 * 3 - 8) // 2 + 1 - 1
        return (n - 4) // 2 + 1 - 1

    h2, w2 = side(h), side(w)
    return nn.Sequential(
        nn.Conv2d(c, 16, 8, stride=2, padding=3),
        nn.Tanh(),
        nn.MaxPool2d(2, 1),
        nn.Conv2d(16, 32, 4, stride=2),
        nn.Tanh(),
        nn.MaxPool2d(2, 1),
        nn.Flatten(),
        nn.Linear(32 * h2 * w2, 32),
        nn.Tanh(),
        nn.Linear(32, num_classes),
    )


def _resnet18(in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    try:
        from torchvision.models import resnet18
    except Exception as exc:  # noqa: BLE001 - a torchvision built for another torch raises RuntimeError
        raise ImportError(
            f"resnet18 needs the [vision] extra (pip install 'fedledger[vision]'); torchvision is unusable here: {exc}"
        ) from exc
    model = resnet18(num_classes=num_classes)
    if in_shape[0] != 3:
        model.conv1 = nn.Conv2d(in_shape[0], 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


MODELS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {
    "mlp": _mlp,
    "cnn": _cnn,
    "tanh-cnn": _tanh_cnn,
    "resnet18": _resnet18,
}


def create_model(
    spec: str, *, seed: int = 0, in_shape: tuple[int, ...] = (1, 28, 28), num_classes: int = 10
) -> nn.Module:
    """Build model ``spec`` with weights drawn from ``seed`` (same seed -> identical bytes).

    The global torch RNG is forked so that building a model never disturbs a caller's stream.
    """
    try:
        factory = MODELS[spec]
    except KeyError:
        raise ValueError(f"unknown model {spec!r} ({', '.join(MODELS)})") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = factory(tuple(in_shape), num_classes)
    return model


def get_weights(model: nn.Module) -> StateDict:
    """Detached CPU copy of a model's state dict (the engine's weight format)."""
    return OrderedDict((k, v.detach().cpu().clone()) for k, v in model.state_dict().items())


def set_weights(model: nn.Module, weights: StateDict) -> nn.Module:
    """Load ``weights`` into ``model`` (strict) and return it."""
    model.load_state_dict(weights, strict=True)
    return model
