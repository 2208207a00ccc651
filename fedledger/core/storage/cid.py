"""CIDs exactly as `ipfs add` makes them: a small UnixFS/dag-pb builder in the stdlib.

Why our own builder: no Python library reproduces kubo's importer. `multiformats` and `py-cid`
only encode a CID from a digest you already have; PyPI `ipfs-cid` hashes files above one chunk
wrongly; `aleph-cid` (Rust) computes the right CIDs but does not hand out the blocks, which the
embedded store must keep to serve and export them. The layout is kubo's and js-ipfs's default:

* fixed-size chunks of 256 KiB;
* a *balanced* DAG: each internal node has at most 174 links, leaves filled left to right, the
  tree only as deep as needed (a file of one chunk is that chunk alone);
* internal nodes are dag-pb `PBNode`s whose `Data` is a UnixFS `File` message (filesize and
  the size of each child); links carry an empty name and the child's cumulative size;
* CIDv1 (the default here) uses raw leaves (`bafkrei...` for one chunk, `bafybei...` above);
  CIDv0 (`Qm...`) wraps each chunk in a dag-pb UnixFS `File` leaf.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from fedledger.core.storage.errors import InvalidCID

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


# --- tiny encoders (protobuf varints, base58btc, base32) ---------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _field_bytes(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _field_varint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        idx = _B58.find(ch)
        if idx < 0:
            raise ValueError(f"invalid base58 character {ch!r}")
        n = n * 58 + idx
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


# --- CIDs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CID:
    """A parsed CID: version, codec (raw or dag-pb) and sha2-256 digest."""

    version: int
    codec: int
    digest: bytes

    @property
    def multihash(self) -> bytes:
        """The sha2-256 multihash (what CIDv0 is, and what blockstores key on)."""
        return bytes([SHA2_256, 32]) + self.digest

    def to_bytes(self) -> bytes:
        """Binary CID, as it appears in a dag-pb link."""
        if self.version == 0:
            return self.multihash
        return b"\x01" + _varint(self.codec) + self.multihash

    def __str__(self) -> str:
        """Canonical text: base58btc for v0, lowercase base32 (`b...`) for v1, as kubo prints."""
        if self.version == 0:
            return _b58encode(self.multihash)
        return "b" + base64.b32encode(self.to_bytes()).decode().lower().rstrip("=")


def parse_cid(text: str) -> CID:
    """Parse a CIDv0 (`Qm...`) or CIDv1 in base32 (`b...`) or base58btc (`z...`)."""
    if not isinstance(text, str) or not text:
        raise InvalidCID(f"not a CID: {text!r}")
    try:
        if len(text) == 46 and text.startswith("Qm"):
            raw = _b58decode(text)
            version, codec, rest = 0, DAG_PB, raw
        else:
            if text[0] == "b":
                body = text[1:].upper()
                raw = base64.b32decode(body + "=" * (-len(body) % 8))
            elif text[0] == "z":
                raw = _b58decode(text[1:])
            else:
                raise ValueError("unsupported multibase prefix")
            version, pos = _read_varint(raw, 0)
            codec, pos = _read_varint(raw, pos)
            rest = raw[pos:]
            if version != 1:
                raise ValueError(f"CID version {version}")
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise InvalidCID(f"not a CID: {text!r} ({exc})") from None
    if codec not in (RAW, DAG_PB):
        raise InvalidCID(f"{text}: codec 0x{codec:x} is neither raw nor dag-pb")
    if len(rest) != 34 or rest[0] != SHA2_256 or rest[1] != 32:
        raise InvalidCID(f"{text}: only sha2-256 multihashes are supported")
    return CID(version, codec, rest[2:])


def _cid_of_block(block: bytes, version: int, codec: int) -> CID:
    return CID(version, codec, hashlib.sha256(block).digest())


# --- UnixFS / dag-pb nodes -----------------------------------------------------------------


def _unixfs_file(filesize: int, data: bytes | None = None, blocksizes: tuple[int, ...] | list[int] = ()) -> bytes:
    # UnixFS `Data` message: Type=File(2), Data, filesize, blocksizes (repeated, not packed).
    msg = _field_varint(1, 2)
    if data:
        msg += _field_bytes(2, data)
    msg += _field_varint(3, filesize)
    for size in blocksizes:
        msg += _field_varint(4, size)
    return msg


def _pb_node(links: list[tuple[CID, int]], data: bytes) -> bytes:
    # dag-pb's canonical form writes Links (field 2) before Data (field 1); go-unixfs always
    # sets the link Name, so an empty name is written (`12 00`) and changes the hash.
    out = b""
    for cid, tsize in links:
        link = _field_bytes(1, cid.to_bytes()) + _field_bytes(2, b"") + _field_varint(3, tsize)
        out += _field_bytes(2, link)
    return out + _field_bytes(1, data)


@dataclass(frozen=True)
class Block:
    """One block of a DAG: its CID and its exact bytes."""

    cid: CID
    data: bytes


@dataclass(frozen=True)
class _Node:
    cid: CID
    tsize: int  # cumulative serialized size (the link's Tsize)
    filesize: int  # file bytes below this node


def _leaf(chunk: bytes, version: int, blocks: list[Block]) -> _Node:
    if version == 1:  # raw leaves
        block = chunk
        cid = _cid_of_block(block, 1, RAW)
    else:
        block = _pb_node([], _unixfs_file(len(chunk), chunk))
        cid = _cid_of_block(block, 0, DAG_PB)
    blocks.append(Block(cid, block))
    return _Node(cid, len(block), len(chunk))


def _internal(children: list[_Node], version: int, blocks: list[Block]) -> _Node:
    data = _unixfs_file(sum(c.filesize for c in children), None, [c.filesize for c in children])
    block = _pb_node([(c.cid, c.tsize) for c in children], data)
    cid = _cid_of_block(block, version, DAG_PB)
    blocks.append(Block(cid, block))
    return _Node(cid, len(block) + sum(c.tsize for c in children), sum(c.filesize for c in children))


def build_dag(data: bytes, cid_version: int = 1) -> tuple[CID, list[Block]]:
    """Chunk `data` into kubo's default balanced UnixFS DAG; return the root CID and all blocks.

    Blocks come children first, root last (each block's links point to blocks before it).
    """
    if cid_version not in (0, 1):
        raise ValueError(f"cid_version must be 0 or 1, not {cid_version!r}")
    blocks: list[Block] = []
    if not data:
        # The importer emits one empty leaf: raw empty block for v1, empty UnixFS File for v0.
        return _leaf(b"", cid_version, blocks).cid, blocks
    view = memoryview(data)
    level = [_leaf(bytes(view[i : i + CHUNK_SIZE]), cid_version, blocks) for i in range(0, len(data), CHUNK_SIZE)]
    if len(level) == 1:
        return level[0].cid, blocks
    # The balanced builder fills every subtree to 174 children before starting the next, so
    # the tree equals grouping each level into runs of 174 until one root remains.
    while len(level) > 1:
        level = [_internal(level[i : i + MAX_LINKS], cid_version, blocks) for i in range(0, len(level), MAX_LINKS)]
    return level[0].cid, blocks


def compute_cid(data: bytes, cid_version: int = 1) -> str:
    """The CID `ipfs add --only-hash` prints (`--cid-version 1 --raw-leaves` for version 1)."""
    return str(build_dag(data, cid_version)[0])


# --- reading dag-pb nodes back -------------------------------------------------------------


def decode_links(block: bytes) -> list[CID]:
    """The child CIDs of a dag-pb node (ignores names, sizes and data)."""
    links: list[CID] = []
    pos = 0
    while pos < len(block):
        key, pos = _read_varint(block, pos)
        if key & 7 != 2:
            raise ValueError("unexpected wire type in dag-pb node")
        length, pos = _read_varint(block, pos)
        body, pos = block[pos : pos + length], pos + length
        if len(body) != length:
            raise ValueError("truncated dag-pb node")
        if key >> 3 != 2:
            continue
        inner = 0
        while inner < len(body):
            lkey, inner = _read_varint(body, inner)
            if lkey & 7 == 0:
                _, inner = _read_varint(body, inner)
                continue
            llen, inner = _read_varint(body, inner)
            value, inner = body[inner : inner + llen], inner + llen
            if lkey >> 3 == 1:
                links.append(_cid_from_bytes(value))
    return links


def unixfs_leaf_data(block: bytes) -> bytes:
    """The file bytes of a CIDv0 leaf (a dag-pb node whose UnixFS message carries `Data`)."""
    pos = 0
    unixfs = b""
    while pos < len(block):
        key, pos = _read_varint(block, pos)
        length, pos = _read_varint(block, pos)
        if key == (1 << 3 | 2):
            unixfs = block[pos : pos + length]
        pos += length
    pos = 0
    while pos < len(unixfs):
        key, pos = _read_varint(unixfs, pos)
        if key & 7 == 0:
            _, pos = _read_varint(unixfs, pos)
            continue
        length, pos = _read_varint(unixfs, pos)
        if key >> 3 == 2:
            return unixfs[pos : pos + length]
        pos += length
    return b""


def _cid_from_bytes(raw: bytes) -> CID:
    if raw[:2] == bytes([SHA2_256, 32]) and len(raw) == 34:
        return CID(0, DAG_PB, raw[2:])
    version, pos = _read_varint(raw, 0)
    codec, pos = _read_varint(raw, pos)
    rest = raw[pos:]
    if version != 1 or len(rest) != 34 or rest[:2] != bytes([SHA2_256, 32]):
        raise ValueError("unsupported CID in dag-pb link")
    return CID(1, codec, rest[2:])
