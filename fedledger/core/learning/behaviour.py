"""The BVFB behaviour model of a local update.

BVFB (training-behaviour verification for blockchain FL) has each client publish, next to its
weights, ``pace = (w_after - w_before) / (lr * local_steps)`` (the mean gradient step it took) and
``direction = sign(pace)``. The miner correlates them with a trusted reference's.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from fedledger.core.models import StateDict

__all__ = ["Behaviour", "behaviour_model"]


@dataclass(frozen=True)
class Behaviour:
    """Per-tensor pace (float32 state dict) and its sign (``direction``, derived)."""

    pace: StateDict

    @property
    def direction(self) -> StateDict:
        """``sign(pace)`` per tensor (-1, 0 or +1, float32)."""
        return OrderedDict((k, torch.sign(v)) for k, v in self.pace.items())


def behaviour_model(before: StateDict, after: StateDict, lr: float, local_steps: int) -> Behaviour:
    """BVFB behaviour model of the move ``before -> after`` (floating tensors only).

    Integer buffers (e.g. BatchNorm's ``num_batches_tracked``) carry no behaviour and are skipped.
    """
    if lr <= 0 or local_steps <= 0:
        raise ValueError("lr and local_steps must be positive")
    scale = 1.0 / (lr * local_steps)
    pace = OrderedDict(
        (k, ((after[k].double() - before[k].double()) * scale).float()) for k in before if before[k].is_floating_point()
    )
    return Behaviour(pace=pace)
