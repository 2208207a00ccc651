"""The one storage interface every backend implements, and the check every `get` runs."""

from __future__ import annotations

import abc
import threading

from cachetools import LRUCache

from fedledger.core.storage.cid import CID, build_dag, parse_cid
from fedledger.core.storage.errors import ContentMismatch


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


class CachingStore(Store):
    """A store that keeps recently verified content in memory (least recently used out first).

    Safe because content is addressed: the bytes of a CID never change, and they are verified
    once on the way in. Agents sharing one process (`fedledger simulate`) then share what each
    fetched, as processes on one machine share a local IPFS node.
    """

    def __init__(self, inner: Store, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.inner, self.max_bytes = inner, max_bytes
        self.cid_version = inner.cid_version
        self._cache: LRUCache[str, bytes] = LRUCache(max_bytes, getsizeof=len)
        self._lock = threading.Lock()  # cachetools caches are not thread-safe

    def __repr__(self) -> str:
        return f"CachingStore({self.inner!r})"

    def _remember(self, cid: str, data: bytes) -> None:
        if len(data) <= self.max_bytes:  # LRUCache refuses a value larger than the whole cache
            with self._lock:
                self._cache[cid] = data

    def put(self, data: bytes, *, pin: bool = True) -> str:
        cid = self.inner.put(data, pin=pin)
        self._remember(cid, bytes(data))
        return cid

    def get(self, cid: str) -> bytes:
        with self._lock:
            data = self._cache.get(cid)
        if data is None:
            data = self.inner.get(cid)  # verified against the CID by the backend
            self._remember(cid, data)
        return data

    def pin(self, cid: str) -> None:
        self.inner.pin(cid)

    def has(self, cid: str) -> bool:
        with self._lock:
            if cid in self._cache:
                return True
        return self.inner.has(cid)


def verify(cid: str | CID, data: bytes) -> bytes:
    """Return `data` if rebuilding its DAG gives `cid`, else raise `ContentMismatch`.

    The rebuild uses the importer defaults (256 KiB chunks, balanced, raw leaves for v1), which
    is how every fedledger CID is made; content imported with other settings is rejected too,
    since it cannot be checked.
    """
    want = cid if isinstance(cid, CID) else parse_cid(cid)
    got = build_dag(data, want.version)[0]
    if got != want:
        raise ContentMismatch(f"content of {len(data)} bytes hashes to {got}, not {want}: tampered or truncated")
    return data
