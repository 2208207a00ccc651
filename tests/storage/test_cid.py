"""The embedded store hands out exactly the CIDs the real daemon (and aleph-cid) gives."""

from __future__ import annotations

import pytest
import requests

from fedledger.core.storage import EmbeddedStore, compute_cid, parse_cid
from fedledger.core.storage.cid import CHUNK_SIZE, MAX_LINKS, build_dag

from .conftest import pseudo_random

SIZES = {
    "0B": 0,
    "1KB": 1000,
    "256KiB": CHUNK_SIZE,
    "256KiB+1": CHUNK_SIZE + 1,
    "1MB": 1_000_000,
    "174chunks": MAX_LINKS * CHUNK_SIZE,
    "174chunks+1": MAX_LINKS * CHUNK_SIZE + 1,
    "10MB": 10_000_000,
}


def daemon_only_hash(api: str, data: bytes, version: int) -> str:
    """What `ipfs add --only-hash -Q` prints, asked of the real daemon over raw HTTP."""
    params = {"only-hash": "true", "cid-version": version, "pin": "false"}
    if version == 1:
        params.update({"raw-leaves": "true", "cid-base": "base32"})
    resp = requests.post(
        f"{api}/api/v0/add", params=params, timeout=120, files={"file": ("f", data, "application/octet-stream")}
    )
    resp.raise_for_status()
    return resp.json()["Hash"]


@pytest.fixture(scope="module")
def payloads() -> dict[str, bytes]:
    return {name: pseudo_random(size) for name, size in SIZES.items()}


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("name", list(SIZES))
def test_embedded_cid_equals_daemon(
    name: str, version: int, payloads: dict[str, bytes], ipfs_api: str, tmp_path
) -> None:
    data = payloads[name]
    expected = daemon_only_hash(ipfs_api, data, version)
    store = EmbeddedStore(tmp_path / "s", cid_version=version)
    assert store.put(data) == expected
    assert compute_cid(data, version) == expected


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("name", list(SIZES))
def test_cid_equals_aleph_cid(name: str, version: int, payloads: dict[str, bytes]) -> None:
    aleph_cid = pytest.importorskip("aleph_cid")
    data = payloads[name]
    hasher = aleph_cid.CidHasher.for_ipfs_v1_raw_leaves() if version else aleph_cid.CidHasher.for_ipfs()
    hasher.update(data)
    assert compute_cid(data, version) == hasher.finalize()


def test_known_empty_file_cids() -> None:
    assert compute_cid(b"", 0) == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert compute_cid(b"", 1) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_dag_shape() -> None:
    """One chunk is a raw leaf; 174 chunks fit under one root; one more byte adds a level."""
    one = build_dag(pseudo_random(CHUNK_SIZE), 1)
    assert str(one[0]).startswith("bafkrei") and len(one[1]) == 1
    assert len(build_dag(b"\0" * (MAX_LINKS * CHUNK_SIZE), 1)[1]) == MAX_LINKS + 1
    # 175 leaves + 2 level-1 nodes + 1 root
    assert len(build_dag(b"\0" * (MAX_LINKS * CHUNK_SIZE + 1), 1)[1]) == MAX_LINKS + 1 + 3


@pytest.mark.parametrize(
    "text",
    [
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        "bafybeidbbs6ocod3v27jtr4uhvc6n55y3gbrtur3bvjsnraudtbxkozi2y",
    ],
)
def test_parse_cid_round_trips(text: str) -> None:
    assert str(parse_cid(text)) == text


def test_parse_base58_v1_as_js_ipfs_prints_it() -> None:
    # js-ipfs prints v1 CIDs in base58btc unless asked for base32; both name the same CID.
    assert (
        str(parse_cid("zb2rhZfjRh2FHHB2RkHVEvL2vJnCTcu7kwRqgVsf9gpkLgteo"))
        == "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
    )
