"""Our trust-root defence: every update is first confined to the input features the clean root
data uses, then BVFB judges and aggregates the confined updates.

Why: a pixel-pattern backdoor (BadNets; Bagdasaryan et al., AISTATS 2020) keeps clean accuracy,
so neither the test accuracy BVFB picks its reference by nor FLTrust's cosine to the root update
separates it: at 90 % malicious it wins against every defence (docs/design.md#paper-setups-and-reference-numbers). Its trigger lives
on input features that clean data leaves constant (the blank border of an MNIST digit). On such
a feature j (constant c_j on the root data) the first layer's weights W[:, j] act on clean
inputs only as the bias term W[:, j] c_j. Confining a step moves exactly that part into the bias
(b += dW[:, J] c_J) and drops dW[:, J]: the confined model computes the same function as the
unconfined one on every root sample, and has learnt nothing about features the root data never
varies, so a trigger there has nothing to act on. A backdoor client's confined model keeps the
other half of its lesson ("this ordinary digit is a 0"), which costs it accuracy, so BVFB's
reference is an honest client again. In the spirit of Fine-Pruning (Liu et al., RAID 2018:
backdoors live where clean data leaves the network dormant), applied to the inputs.

Limits (stated, measured in docs/results): it needs a first Linear layer fed by the raw inputs
(the MLP); for a model whose first layer is a convolution, weights are shared across positions
and the step cannot be confined per pixel, so this is BVFB alone (LeNet's last conv features all
see some of the digit area, so no feature downstream is constant on clean data either). A trigger placed
on features clean data varies is not confined. The root set is the miners' first `root_size`
test samples (100 by default): a feature rare but real in clean data that happens to be constant
there stays at its initial weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from fedledger.core.defences.base import ClientUpdate, Context, Decision, Defence, TaskTerms
from fedledger.core.defences.bvfb import BVFB
from fedledger.core.models import StateDict

__all__ = ["TrustRoot", "confine", "constant_features"]


def constant_features(root_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices J of the flattened input features constant over ``root_x``, their values c_J)."""
    flat = root_x.reshape(len(root_x), -1).double()
    idx = torch.nonzero(flat.amax(0) == flat.amin(0)).flatten()
    return idx, flat[0, idx]


def first_input_layer(model: nn.Module, n_features: int) -> tuple[str, str] | None:
    """(weight key, bias key) of the first layer of ``model`` with parameters, if it is a Linear
    layer reading the ``n_features`` raw inputs (found from the architecture: the key order of
    loaded weights is arbitrary)."""
    for prefix, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        if isinstance(module, nn.Linear) and module.in_features == n_features and module.bias is not None:
            return f"{prefix}.weight", f"{prefix}.bias"
        return None  # the first layer with weights is something else (a convolution)
    return None


def confine(
    global_w: StateDict, weights: StateDict, layer: tuple[str, str], features: tuple[torch.Tensor, torch.Tensor]
) -> StateDict:
    """`weights` with the step from `global_w` confined to the root data's varying input features."""
    w_key, b_key = layer
    idx, c = features
    out = dict(weights)
    dw = weights[w_key].double() - global_w[w_key].double()
    new_w = weights[w_key].clone()
    new_w[:, idx] = global_w[w_key][:, idx]
    out[w_key] = new_w
    out[b_key] = (weights[b_key].double() + dw[:, idx] @ c).to(weights[b_key].dtype)
    return type(weights)((k, out[k]) for k in weights)


class TrustRoot(Defence):
    """Confine every update (weights and published behaviour model) to the root data's varying
    input features, then run BVFB with ``theta`` on the confined updates."""

    name = "trust-root"

    def __init__(self, *, theta: float = 0.6) -> None:
        self.bvfb = BVFB(theta=theta)

    @classmethod
    def from_task(cls, task: TaskTerms, n_submitted: int) -> Defence:
        """theta: the task's BH threshold, unless stated with the defence's name."""
        return cls(**{"theta": task.theta, **task.params})

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        if context.root_x is None:
            raise ValueError("trust-root needs the root dataset (context.root_x)")
        layer = first_input_layer(context.model(), math.prod(context.in_shape))
        if layer is None:
            decision = self.bvfb.aggregate(updates, context)
            decision.metrics["confined_features"] = 0
            return decision
        features = constant_features(context.root_x)
        confined = []
        for u in updates:
            pace = None
            if u.pace is not None:  # the behaviour model is the step scaled: confine it alike
                zero = type(u.pace)((k, torch.zeros_like(v)) for k, v in u.pace.items())
                pace = confine(zero, u.pace, layer, features)
            confined.append(replace(u, weights=confine(context.global_weights, u.weights, layer, features), pace=pace))
        decision = self.bvfb.aggregate(confined, context)
        decision.metrics["confined_features"] = int(len(features[0]))
        return decision
