"""The one storage interface every backend implements, and the check every `get` runs."""

from __future__ import annotations

import abc

from fedledger.storage.cid import CID, build_dag, parse_cid
from fedledger.storage.errors import ContentMismatch


class Store(abc.ABC):
    """Content-addressed bytes: `put` hands out the CID `ipfs add` would, `get` returns only
    bytes that hash back to the CID asked for."""

    cid_version: int = 1

    @abc.abstractmethod
    def put(self, data: bytes, *, pin: bool = True) -> str:
        """Store `data`; return its CID (v1 raw-leaves base32 or v0, per `cid_version`)."""

    @abc.abstractmethod
    def get(self, cid: str) -> bytes:
        """Return the bytes of `cid`; raise `NotFound` or `ContentMismatch`, never bad bytes."""

    @abc.abstractmethod
    def pin(self, cid: str) -> None:
        """Keep `cid` (and all its blocks) from garbage collection."""

    @abc.abstractmethod
    def has(self, cid: str) -> bool:
        """Whether `cid` can be fetched from this store right now."""


def verify(cid: str | CID, data: bytes) -> bytes:
    """Return `data` if rebuilding its DAG gives `cid`, else raise `ContentMismatch`.

    The rebuild uses the importer defaults (256 KiB chunks, balanced, raw leaves for v1), which
    is how every fedledger CID is made; content imported with other settings is rejected too,
    since it cannot be checked.
    """
    want = cid if isinstance(cid, CID) else parse_cid(cid)
    got = build_dag(data, want.version)[0]
    if got != want:
        raise ContentMismatch(
            f"content of {len(data)} bytes hashes to {got}, not {want}: tampered or truncated"
        )
    return data
