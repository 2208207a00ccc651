"""Model weights as bytes: safetensors with fedledger metadata, checked on every load.

Weights come from other parties (clients, miners), so loading is defensive: never unpickle
(a pickle runs code), refuse oversize payloads before parsing, and check the tensor names,
shapes, dtypes and values against what the task expects. The bytes are canonical (same state
dict and metadata, same bytes), so the CID and the sha256 digest recorded on chain are stable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

FORMAT = "fedledger-weights/1"
MAX_BYTES = 512 * 1024 * 1024  # far above any model the papers use (CNN ~ 1.7 MB, ResNet ~ 45 MB)
_MAX_HEADER = 16 * 1024 * 1024

StateDict = dict[str, torch.Tensor]
Shape = tuple[int, ...]
ExpectedSpec = Mapping[str, tuple[Shape, torch.dtype | str] | torch.Tensor]


class WeightsError(ValueError):
    """Weights bytes are unusable; the message names the tensor or the check that failed."""


class NotSafetensors(WeightsError):
    """The bytes are not a safetensors file (for instance a pickle or a torch.save archive)."""


class WeightsTooLarge(WeightsError):
    """The payload is larger than the size cap."""


class SpecMismatch(WeightsError):
    """Tensor names, shapes or dtypes differ from the expected model."""


class NonFiniteWeights(WeightsError):
    """A tensor holds NaN or infinite values."""


@dataclass(frozen=True)
class WeightsMeta:
    """What a weights file says about itself (string metadata in the safetensors header)."""

    model_spec: str  # the task's model spec, e.g. canonical JSON `{"arch":"mlp",...}`
    task: str
    round: int
    producer: str  # the producer's address, `0x...`

    def to_header(self) -> dict[str, str]:
        """The `__metadata__` map (safetensors allows string values only)."""
        return {
            "format": FORMAT,
            "model_spec": self.model_spec,
            "task": self.task,
            "round": str(self.round),
            "producer": self.producer,
        }

    @classmethod
    def from_header(cls, header: Mapping[str, str]) -> WeightsMeta:
        """Parse `__metadata__`; raise `WeightsError` if a field is missing or malformed."""
        if header.get("format") != FORMAT:
            raise WeightsError(f"metadata format is {header.get('format')!r}, expected {FORMAT!r}")
        try:
            return cls(
                model_spec=header["model_spec"],
                task=header["task"],
                round=int(header["round"]),
                producer=header["producer"],
            )
        except KeyError as exc:
            raise WeightsError(f"metadata field {exc.args[0]!r} is missing") from None
        except ValueError:
            raise WeightsError(f"metadata round {header['round']!r} is not an integer") from None


def sha256_hex(data: bytes) -> str:
    """Lowercase hex sha256 of `data` (64 characters, no `0x`): the digest kept on chain."""
    return hashlib.sha256(data).hexdigest()


def spec_of(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[Shape, torch.dtype]]:
    """name -> (shape, dtype) of a state dict: the expected spec for `loads`."""
    return {name: (tuple(t.shape), t.dtype) for name, t in state_dict.items()}


def dumps(state_dict: Mapping[str, torch.Tensor], meta: WeightsMeta) -> bytes:
    """Serialize a state dict with its metadata to canonical safetensors bytes."""
    tensors = {}
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise WeightsError(f"{name!r} is a {type(tensor).__name__}, not a tensor")
        # clone: safetensors refuses tensors that share storage (tied weights, views).
        tensors[name] = tensor.detach().to("cpu").contiguous().clone()
    raw = _st_save(tensors, metadata=meta.to_header())
    return _canonical(raw)


def _canonical(raw: bytes) -> bytes:
    # safetensors writes `__metadata__` in hash-map order, which changes from one process to
    # the next; the same weights must give the same CID and digest, so sort the header.
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data section 8-byte aligned, as safetensors does
    return len(text).to_bytes(8, "little") + text + raw[8 + size :]


def _header(data: bytes, max_bytes: int) -> dict[str, object]:
    if len(data) > max_bytes:
        raise WeightsTooLarge(f"weights payload is {len(data)} bytes, above the cap of {max_bytes}")
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise NotSafetensors("payload is a Python pickle; refusing to load it (never unpickle)")
    if data[:4] == b"PK\x03\x04":
        raise NotSafetensors(
            "payload is a zip archive (torch.save output, pickle inside); refusing to load it (never unpickle)"
        )
    if len(data) < 8:
        raise NotSafetensors(f"payload of {len(data)} bytes is too short for safetensors")
    size = int.from_bytes(data[:8], "little")
    if size > min(len(data) - 8, _MAX_HEADER):
        raise NotSafetensors(f"not safetensors: header length {size} does not fit the payload")
    try:
        header = json.loads(data[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise NotSafetensors("not safetensors: the header is not JSON") from None
    if not isinstance(header, dict):
        raise NotSafetensors("not safetensors: the header is not a JSON object")
    return header


def read_meta(data: bytes, *, max_bytes: int = MAX_BYTES) -> WeightsMeta:
    """Only the metadata, without decoding any tensor."""
    meta = _header(data, max_bytes).get("__metadata__")
    if not isinstance(meta, dict):
        raise WeightsError("weights have no __metadata__ (not written by fedledger)")
    return WeightsMeta.from_header(meta)


def _as_dtype(value: torch.dtype | str) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    dtype = getattr(torch, str(value).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {value!r}")
    return dtype


def _normalize(expected: ExpectedSpec) -> dict[str, tuple[Shape, torch.dtype]]:
    spec = {}
    for name, value in expected.items():
        if isinstance(value, torch.Tensor):
            spec[name] = (tuple(value.shape), value.dtype)
        else:
            shape, dtype = value
            spec[name] = (tuple(int(d) for d in shape), _as_dtype(dtype))
    return spec


def check(state_dict: Mapping[str, torch.Tensor], expected: ExpectedSpec | None = None) -> None:
    """Raise a `WeightsError` naming the tensor unless names, shapes and dtypes match
    `expected` (if given) and every floating-point value is finite."""
    if expected is not None:
        spec = _normalize(expected)
        missing = sorted(set(spec) - set(state_dict))
        extra = sorted(set(state_dict) - set(spec))
        if missing:
            raise SpecMismatch(f"missing tensors: {', '.join(missing)}")
        if extra:
            raise SpecMismatch(f"unexpected tensors: {', '.join(extra)}")
        for name, (shape, dtype) in spec.items():
            tensor = state_dict[name]
            if tuple(tensor.shape) != shape:
                raise SpecMismatch(f"tensor {name!r} has shape {tuple(tensor.shape)}, expected {shape}")
            if tensor.dtype != dtype:
                raise SpecMismatch(f"tensor {name!r} has dtype {tensor.dtype}, expected {dtype}")
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise NonFiniteWeights(f"tensor {name!r} has {bad} NaN/infinite values")


def loads(
    data: bytes, *, expected: ExpectedSpec | None = None, max_bytes: int = MAX_BYTES
) -> tuple[StateDict, WeightsMeta]:
    """Parse and check weights bytes; return (state dict, metadata).

    `expected` is name -> (shape, dtype) or a reference state dict; without it only the
    format, the metadata and finiteness are checked.
    """
    data = bytes(data)
    meta = read_meta(data, max_bytes=max_bytes)
    try:
        state_dict = _st_load(data)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise NotSafetensors(f"invalid safetensors payload: {exc}") from None
    check(state_dict, expected)
    return state_dict, meta
