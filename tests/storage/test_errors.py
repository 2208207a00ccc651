"""Bad content and bad daemons are refused with a clear error, never handed back as bytes."""

from __future__ import annotations

import pytest

from fedledger.core.storage import (
    ContentMismatch,
    DaemonUnavailable,
    EmbeddedStore,
    InvalidCID,
    NotFound,
    RpcStore,
    StorageError,
    compute_cid,
    open_store,
    verify,
)
from fedledger.core.storage.cid import CHUNK_SIZE, RAW, parse_cid

from .conftest import LyingDaemon, pseudo_random

DATA = pseudo_random(3 * CHUNK_SIZE + 17, seed=9)
ABSENT = "bafkreie5hxgd4yswo3xuhmikyn6yo5rymcvyb57qmbu6bdm5tkqikplpz4"  # sha256 of nothing stored


def _leaf_path(store: EmbeddedStore, cid: str):
    leaf = next(b for b in store.blocks(cid) if b.cid.codec == RAW)
    return store._path(leaf.cid)


def test_embedded_rejects_tampered_block(embedded: EmbeddedStore) -> None:
    cid = embedded.put(DATA)
    path = _leaf_path(embedded, cid)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ContentMismatch, match="corrupt"):
        embedded.get(cid)
    assert not embedded.has(cid)


def test_embedded_rejects_truncated_block(embedded: EmbeddedStore) -> None:
    cid = embedded.put(DATA)
    path = _leaf_path(embedded, cid)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ContentMismatch):
        embedded.get(cid)


def test_embedded_missing_block_is_not_found(embedded: EmbeddedStore) -> None:
    cid = embedded.put(DATA)
    _leaf_path(embedded, cid).unlink()
    with pytest.raises(NotFound):
        embedded.get(cid)
    with pytest.raises(NotFound):
        embedded.get(ABSENT)


def test_verify_rejects_tampered_and_truncated() -> None:
    cid = compute_cid(DATA)
    assert verify(cid, DATA) == DATA
    tampered = bytearray(DATA)
    tampered[-1] ^= 1
    with pytest.raises(ContentMismatch, match="tampered or truncated"):
        verify(cid, bytes(tampered))
    with pytest.raises(ContentMismatch):
        verify(cid, DATA[:-1])


@pytest.mark.parametrize("version", [0, 1])
def test_client_rejects_tampered_bytes_from_daemon(lying_daemon: LyingDaemon, version: int) -> None:
    cid = compute_cid(DATA, version)
    store = RpcStore(lying_daemon.url, cid_version=version)
    lying_daemon.payload = DATA
    assert store.get(cid) == DATA  # the honest answer passes
    lying_daemon.payload = DATA[:1000] + b"X" + DATA[1001:]
    with pytest.raises(ContentMismatch):
        store.get(cid)
    lying_daemon.payload = DATA[:-10]
    with pytest.raises(ContentMismatch):
        store.get(cid)


@pytest.mark.timeout(30)
def test_unknown_cid_fails_fast_on_real_daemon(ipfs_api: str) -> None:
    store = RpcStore(ipfs_api, timeout=1.0)
    with pytest.raises(NotFound, match="timed out"):
        store.get(ABSENT)
    assert not store.has(ABSENT)
    with pytest.raises(NotFound):
        store.pin(ABSENT)


@pytest.mark.timeout(30)
def test_daemon_down(free_port: int) -> None:
    store = RpcStore(f"http://127.0.0.1:{free_port}")
    for call in (
        lambda: store.put(b"x"),
        lambda: store.get(ABSENT),
        lambda: store.has(ABSENT),
        lambda: store.version(),
    ):
        with pytest.raises(DaemonUnavailable, match="not reachable"):
            call()


@pytest.mark.parametrize("text", ["", "hello", "Qm123", "bafyfoo", "f01551220abcd"])
def test_invalid_cid(embedded: EmbeddedStore, text: str) -> None:
    with pytest.raises(InvalidCID):
        embedded.get(text)


def test_unknown_store_string() -> None:
    with pytest.raises(StorageError):
        open_store("ftp://example")


def test_parse_rejects_other_hashes() -> None:
    # identity-hash CIDv1 (codec raw): well-formed, but not something we can verify
    with pytest.raises(InvalidCID):
        parse_cid("bafkqaaa")
