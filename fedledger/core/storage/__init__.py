"""Model storage: content-addressed bytes with the CIDs `ipfs add` gives.

Two backends behind one interface (`Store`: put, get, pin, has), picked by a string:

    open_store("embedded:.fedledger/store")   # on-disk blocks, no daemon (the default)
    open_store("http://127.0.0.1:5001")       # any kubo-compatible daemon (js-ipfs here)

Every `get` rebuilds the CID from the bytes and refuses content that does not match.
"""

from __future__ import annotations

import os

from fedledger.core.storage.base import CachingStore, Store, verify
from fedledger.core.storage.cid import compute_cid, parse_cid
from fedledger.core.storage.embedded import EmbeddedStore
from fedledger.core.storage.errors import (
    ContentMismatch,
    DaemonUnavailable,
    InvalidCID,
    NotFound,
    StorageError,
)
from fedledger.core.storage.rpc import RpcStore

DEFAULT_STORE = "embedded:.fedledger/store"


def open_store(spec: str | os.PathLike[str] = DEFAULT_STORE, *, cid_version: int = 1, timeout: float = 2.0) -> Store:
    """A store from a string: `embedded:PATH`, a bare path, `http(s)://...` or an API multiaddr.

    `timeout` is how long a daemon may search for missing content (ignored for embedded).
    """
    text = os.fspath(spec)
    if text.startswith("embedded:"):
        return EmbeddedStore(text[len("embedded:") :] or ".fedledger/store", cid_version=cid_version)
    if text.startswith(("http://", "https://", "/ip4/", "/ip6/", "/dns")):
        return RpcStore(text, cid_version=cid_version, timeout=timeout)
    if "://" in text:
        raise StorageError(f"unknown store {text!r}: use embedded:PATH or http://HOST:PORT")
    return EmbeddedStore(text, cid_version=cid_version)


def push(cid: str, source: EmbeddedStore, target: RpcStore) -> None:
    """Copy every block of `cid` from the embedded store to a daemon, pin it there, and check
    that the daemon now serves exactly those bytes under the same CID."""
    for block in source.blocks(cid):
        target.put_block(block)
    target.pin(cid)
    if target.get(cid) != source.get(cid):  # get() verifies too; equality is belt and braces
        raise ContentMismatch(f"daemon at {target.url} serves other bytes for {cid}")


__all__ = [
    "DEFAULT_STORE",
    "CachingStore",
    "ContentMismatch",
    "DaemonUnavailable",
    "EmbeddedStore",
    "InvalidCID",
    "NotFound",
    "RpcStore",
    "StorageError",
    "Store",
    "compute_cid",
    "open_store",
    "parse_cid",
    "push",
    "verify",
]
