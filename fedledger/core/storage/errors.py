"""Exceptions of the storage layer: one base class, one subclass per way a fetch can fail."""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every storage failure."""


class InvalidCID(StorageError, ValueError):
    """The string is not a CID this store understands (CIDv0, or CIDv1 raw/dag-pb sha2-256)."""


class NotFound(StorageError):
    """The content (or one of its blocks) is not available from this store."""


class ContentMismatch(StorageError):
    """Bytes do not hash to the CID they were fetched under: tampered, truncated or foreign."""


class DaemonUnavailable(StorageError):
    """The IPFS daemon cannot be reached, did not start, or answered garbage."""
