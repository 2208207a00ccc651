"""Weights bytes: safetensors + metadata in, checked tensors out; everything else refused."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch

from fedledger.core.storage import EmbeddedStore, RpcStore
from fedledger.core.weights import (
    NonFiniteWeights,
    NotSafetensors,
    SpecMismatch,
    WeightsError,
    WeightsMeta,
    WeightsTooLarge,
    dumps,
    loads,
    read_meta,
    sha256_hex,
    spec_of,
)

META = WeightsMeta(model_spec='{"arch":"mlp","layers":[784,256,128,10]}', task="7", round=3, producer="0x" + "ab" * 20)


def mlp_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 256),
        torch.nn.Sigmoid(),
        torch.nn.Linear(256, 128),
        torch.nn.Sigmoid(),
        torch.nn.Linear(128, 10),
    )
    return model.state_dict()


def test_round_trip_with_metadata() -> None:
    state = mlp_state()
    data = dumps(state, META)
    loaded, meta = loads(data, expected=state)
    assert meta == META and read_meta(data) == META
    assert list(loaded) == sorted(state) or set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert loads(data, expected=spec_of(state))[1] == META
    # a spec written by hand with dtype names works too
    named = {k: (tuple(v.shape), "float32") for k, v in state.items()}
    loads(data, expected=named)


def test_bytes_are_canonical() -> None:
    a = dumps(mlp_state(), META)
    b = dumps(dict(reversed(list(mlp_state().items()))), META)
    assert a == b and sha256_hex(a) == sha256_hex(b)


def test_sha256_hex() -> None:
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("backend", ["embedded", "daemon"])
def test_through_storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    store = EmbeddedStore(tmp_path) if backend == "embedded" else RpcStore(request.getfixturevalue("ipfs_api"))
    state = mlp_state()
    data = dumps(state, META)
    cid = store.put(data)
    loaded, meta = loads(store.get(cid), expected=state)
    assert meta.round == 3 and torch.equal(loaded["0.weight"], state["0.weight"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_rejected(bad: float) -> None:
    state = mlp_state()
    state["2.bias"][5] = bad
    with pytest.raises(NonFiniteWeights, match="'2.bias'"):
        loads(dumps(state, META), expected=mlp_state())


def test_wrong_shape_rejected() -> None:
    state = mlp_state()
    state["4.weight"] = torch.zeros(10, 64)
    with pytest.raises(SpecMismatch, match=r"'4.weight' has shape \(10, 64\), expected \(10, 128\)"):
        loads(dumps(state, META), expected=mlp_state())


def test_wrong_dtype_rejected() -> None:
    state = mlp_state()
    state["0.bias"] = state["0.bias"].double()
    with pytest.raises(SpecMismatch, match="'0.bias' has dtype torch.float64"):
        loads(dumps(state, META), expected=mlp_state())


def test_extra_tensor_rejected() -> None:
    state = mlp_state()
    state["backdoor"] = torch.zeros(1)
    with pytest.raises(SpecMismatch, match="unexpected tensors: backdoor"):
        loads(dumps(state, META), expected=mlp_state())


def test_missing_tensor_rejected() -> None:
    state = mlp_state()
    del state["4.bias"]
    with pytest.raises(SpecMismatch, match="missing tensors: 4.bias"):
        loads(dumps(state, META), expected=mlp_state())


def test_oversize_rejected() -> None:
    data = dumps(mlp_state(), META)
    with pytest.raises(WeightsTooLarge, match="above the cap"):
        loads(data, max_bytes=len(data) - 1)


def test_torch_save_payload_rejected() -> None:
    buf = io.BytesIO()
    torch.save(mlp_state(), buf)
    with pytest.raises(NotSafetensors, match="never unpickle"):
        loads(buf.getvalue())


class _Trap:
    """Unpickling this creates a file: proof that a loader ran pickle."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_pickle_payload_rejected_and_never_run(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Trap(marker), protocol=protocol)
    with pytest.raises(NotSafetensors):
        loads(payload)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"hello",
        b"not a safetensors file at all, just text",
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ...",
    ],
)
def test_non_safetensors_rejected(payload: bytes) -> None:
    with pytest.raises(NotSafetensors):
        loads(payload)


def test_truncated_safetensors_rejected() -> None:
    data = dumps(mlp_state(), META)
    with pytest.raises(NotSafetensors):
        loads(data[:-4])


def test_plain_safetensors_without_metadata_rejected() -> None:
    from safetensors.torch import save

    with pytest.raises(WeightsError, match="no __metadata__"):
        loads(save({"w": torch.zeros(2)}))
