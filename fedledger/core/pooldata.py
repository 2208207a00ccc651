"""Labelled examples as shareable bytes: the format of data shared into a Model Chain pool.

A pool's test split (seeded on chain, see contracts/DataRegistry.sol) can be a task's common test
set; each shared item is a safetensors file with `x` (float32, N x C x H x W) and `y` (int64, N).
Loading is defensive like model weights: never unpickles, checks dtypes, shapes, values, size.
"""

from __future__ import annotations

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

FORMAT = "fedledger-examples/1"
MAX_BYTES = 256 * 1024 * 1024


class ExamplesError(ValueError):
    """Shared data that cannot be used as examples; the message says why."""


def pack(x: torch.Tensor, y: torch.Tensor) -> bytes:
    """Examples `(x, y)` -> safetensors bytes."""
    if len(x) != len(y):
        raise ExamplesError(f"{len(x)} inputs but {len(y)} labels")
    tensors = {
        "x": x.detach().to(torch.float32).contiguous().clone(),
        "y": y.detach().to(torch.int64).contiguous().clone(),
    }
    return save(tensors, metadata={"format": FORMAT})


def unpack(data: bytes, *, input_shape: tuple[int, ...], num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bytes -> `(x, y)`, checked against the task's input shape and number of classes."""
    if len(data) > MAX_BYTES:
        raise ExamplesError(f"{len(data)} bytes is over the {MAX_BYTES} byte cap")
    if data[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or data[:2] == b"PK":
        raise ExamplesError("payload is a pickle or zip archive; refusing to load it (never unpickle)")
    try:
        tensors = load(bytes(data))
    except (SafetensorError, ValueError, TypeError) as exc:
        raise ExamplesError(f"not a safetensors file: {exc}") from None
    if set(tensors) != {"x", "y"}:
        raise ExamplesError(f"expected tensors x and y, found {sorted(tensors)}")
    x, y = tensors["x"], tensors["y"]
    if x.dtype != torch.float32 or y.dtype != torch.int64:
        raise ExamplesError(f"dtypes {x.dtype}/{y.dtype}, expected float32/int64")
    if tuple(x.shape[1:]) != tuple(input_shape) or y.shape != (len(x),):
        raise ExamplesError(
            f"shapes {tuple(x.shape)}/{tuple(y.shape)}, expected (N, {', '.join(map(str, input_shape))})/(N,)"
        )
    if not torch.isfinite(x).all():
        raise ExamplesError("inputs hold NaN or infinite values")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ExamplesError(f"labels outside 0..{num_classes - 1}")
    return x, y
