"""Round trips through the real daemon and the embedded store, and pushing between them."""

from __future__ import annotations

import pytest

from fedledger.core.storage import EmbeddedStore, RpcStore, open_store, push
from fedledger.core.storage.cid import CHUNK_SIZE, MAX_LINKS

from .conftest import pseudo_random

SIZES = [0, 1000, CHUNK_SIZE + 1, 3_000_000]


@pytest.mark.parametrize("size", SIZES)
def test_daemon_round_trip(rpc: RpcStore, rpc0: RpcStore, size: int) -> None:
    data = pseudo_random(size, seed=1)
    for store in (rpc, rpc0):
        cid = store.put(data)
        assert store.has(cid)
        assert store.get(cid) == data


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("size", SIZES)
def test_embedded_round_trip(tmp_path, size: int, version: int) -> None:
    store = EmbeddedStore(tmp_path, cid_version=version)
    data = pseudo_random(size, seed=2)
    cid = store.put(data)
    assert store.has(cid) and cid in store.pins()
    assert store.get(cid) == data
    # the same bytes again: same CID, nothing rewritten
    assert store.put(data) == cid


def test_embedded_survives_reopen(tmp_path) -> None:
    data = pseudo_random(600_000, seed=3)
    cid = EmbeddedStore(tmp_path).put(data)
    assert open_store(f"embedded:{tmp_path}").get(cid) == data


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("size", [10, 2_000_000, MAX_LINKS * CHUNK_SIZE + 1])
def test_push_embedded_to_daemon(tmp_path, ipfs_api: str, size: int, version: int) -> None:
    source = EmbeddedStore(tmp_path, cid_version=version)
    target = RpcStore(ipfs_api, cid_version=version)
    data = pseudo_random(size, seed=4 + version)
    cid = source.put(data)
    # "absent" costs a daemon-side timeout, so probe with a short one
    assert not RpcStore(ipfs_api, timeout=0.3).has(cid)
    push(cid, source, target)
    assert target.has(cid)
    assert target.get(cid) == data


def test_open_store_picks_backend(tmp_path, ipfs_api: str) -> None:
    assert isinstance(open_store(f"embedded:{tmp_path}"), EmbeddedStore)
    assert isinstance(open_store(tmp_path / "plain"), EmbeddedStore)
    http = open_store(ipfs_api)
    assert isinstance(http, RpcStore) and http.version()["Version"]
    port = ipfs_api.rsplit(":", 1)[1]
    assert isinstance(open_store(f"/ip4/127.0.0.1/tcp/{port}/http"), RpcStore)
    assert open_store(tmp_path, cid_version=0).put(b"x").startswith("Qm")


def test_pin_on_daemon(rpc: RpcStore) -> None:
    cid = rpc.put(b"pin me", pin=False)
    rpc.pin(cid)
    assert rpc.get(cid) == b"pin me"
