"""The embedded store: IPFS blocks in a directory, no daemon, the CIDs `ipfs add` gives.

It keeps every block of the DAG (not just the file) so that `fedledger ipfs push` can hand
exactly those blocks to a daemon, which then serves the same CID.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fedledger.core.storage.base import Store, verify
from fedledger.core.storage.cid import CID, DAG_PB, RAW, Block, build_dag, decode_links, parse_cid, unixfs_leaf_data
from fedledger.core.storage.errors import ContentMismatch, NotFound


class EmbeddedStore(Store):
    """Blocks under `root/blocks/<last two chars>/<cid>`, pins as empty files in `root/pins/`.

    Nothing is ever garbage-collected, so `pin` only records intent (and checks the DAG is
    complete); it keeps `pin` meaningful when the blocks are pushed to a daemon.
    """

    def __init__(self, root: str | os.PathLike[str], *, cid_version: int = 1) -> None:
        if cid_version not in (0, 1):
            raise ValueError(f"cid_version must be 0 or 1, not {cid_version!r}")
        self.root = Path(root)
        self.cid_version = cid_version
        (self.root / "blocks").mkdir(parents=True, exist_ok=True)
        (self.root / "pins").mkdir(exist_ok=True)

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.root)!r}, cid_version={self.cid_version})"

    def _path(self, cid: CID) -> Path:
        name = str(cid)
        return self.root / "blocks" / name[-2:] / name

    def _write(self, block: Block) -> None:
        path = self._path(block.cid)
        if path.exists():
            return
        path.parent.mkdir(exist_ok=True)
        # Write then rename, so a crash never leaves a half-written block under a valid name.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(block.data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_block(self, cid: CID) -> bytes:
        """One block's bytes, checked against its own CID."""
        try:
            data = self._path(cid).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"block {cid} is not in the embedded store {self.root}") from None
        if CID(cid.version, cid.codec, hashlib.sha256(data).digest()) != cid:
            raise ContentMismatch(f"block {cid} in {self.root} is corrupt (hash differs)")
        return data

    def blocks(self, cid: str) -> Iterator[Block]:
        """Every block of the DAG under `cid`, children before parents (the order to import)."""
        root = parse_cid(cid)
        yield from self._walk(root)

    def _walk(self, cid: CID) -> Iterator[Block]:
        data = self.read_block(cid)
        if cid.codec == DAG_PB:
            try:
                links = decode_links(data)
            except ValueError as exc:
                raise ContentMismatch(f"block {cid} is not a valid dag-pb node: {exc}") from None
            for child in links:
                yield from self._walk(child)
        yield Block(cid, data)

    def put(self, data: bytes, *, pin: bool = True) -> str:
        root, blocks = build_dag(bytes(data), self.cid_version)
        for block in blocks:
            self._write(block)
        if pin:  # every block of the DAG was just written (or was there): no walk to check it
            (self.root / "pins" / str(root)).touch()
        return str(root)

    def get(self, cid: str) -> bytes:
        want = parse_cid(cid)
        parts = []
        for block in self._walk(want):
            if block.cid.codec == RAW:
                parts.append(block.data)
            elif not decode_links(block.data):  # a CIDv0 leaf: chunk inside UnixFS
                parts.append(unixfs_leaf_data(block.data))
        # Block hashes are checked already; rebuilding the whole CID also catches a DAG whose
        # shape (not just bytes) is not what `ipfs add` would have made.
        return verify(want, b"".join(parts))

    def pin(self, cid: str) -> None:
        parsed = parse_cid(cid)
        for _ in self._walk(parsed):  # refuse to pin an incomplete DAG
            pass
        (self.root / "pins" / str(parsed)).touch()

    def pins(self) -> list[str]:
        """CIDs pinned in this store."""
        return sorted(p.name for p in (self.root / "pins").iterdir())

    def has(self, cid: str) -> bool:
        try:
            for _ in self._walk(parse_cid(cid)):
                pass
        except (NotFound, ContentMismatch):
            return False
        return True
