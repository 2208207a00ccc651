"""Put/get throughput of both storage backends (embedded block store, real js-ipfs daemon).

Run: `python -m benchmarks.storage [--repeats 3]`; writes docs/results/storage.md.
Each put stores fresh pseudo-random bytes (no dedup); each get includes the CID check.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fedledger.core.paths import project_root
from fedledger.core.storage import EmbeddedStore, RpcStore, Store, compute_cid, push
from fedledger.core.storage import daemon as ipfs_daemon

SIZES = {"1 MB": 1_000_000, "50 MB": 50_000_000}


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(store: Store, size: int, repeats: int) -> tuple[float, float]:
    """Median put and get seconds for `size` bytes."""
    puts, gets = [], []
    for i in range(repeats):
        data = random.Random(f"{size}-{i}-{store!r}").randbytes(size)
        cid: list[str] = []
        puts.append(_timed(lambda: cid.append(store.put(data))))
        gets.append(_timed(lambda: store.get(cid[0])))
    return statistics.median(puts), statistics.median(gets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    wall = time.perf_counter()
    rows: list[str] = []

    def mbps(size: int, seconds: float) -> str:
        return f"{size / 1e6 / seconds:,.0f}"

    with tempfile.TemporaryDirectory() as tmp:
        daemon = ipfs_daemon.start(Path(tmp) / "state")
        try:
            rpc = RpcStore(daemon.api, http_timeout=300)
            version = rpc.version()["Version"]
            embedded = EmbeddedStore(Path(tmp) / "store")
            for label, size in SIZES.items():
                for name, store in (("embedded", embedded), (f"js-ipfs {version} RPC", rpc)):
                    put_s, get_s = measure(store, size, args.repeats)
                    rows.append(
                        f"| {name} | {label} | {mbps(size, put_s)} | {put_s * 1000:,.0f} "
                        f"| {mbps(size, get_s)} | {get_s * 1000:,.0f} |"
                    )
                data = random.Random(f"cid-{size}").randbytes(size)
                cid_s = statistics.median(_timed(lambda: compute_cid(data)) for _ in range(args.repeats))
                rows.append(f"| CID only (compute_cid) | {label} | {mbps(size, cid_s)} | {cid_s * 1000:,.0f} | | |")
                cid = embedded.put(data)
                push_s = _timed(lambda: push(cid, embedded, rpc))
                rows.append(
                    f"| push embedded -> daemon (+ verified get) | {label} "
                    f"| {mbps(size, push_s)} | {push_s * 1000:,.0f} | | |"
                )
        finally:
            ipfs_daemon.stop(Path(tmp) / "state")
    wall = time.perf_counter() - wall

    out = project_root() / "docs" / "results" / "storage.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "# Storage throughput\n\n"
        f"Fresh pseudo-random bytes per put (CIDv1, raw leaves); every get rebuilds the CID from "
        f"the bytes and compares. Median of {args.repeats} runs; {os.cpu_count()} cores; daemon "
        f"js-ipfs {version} offline on loopback, driven over its HTTP RPC API. "
        f"Command: `python -m benchmarks.storage --repeats {args.repeats}`; "
        f"wall time {wall:.1f} s (includes daemon start).\n\n"
        "| backend | size | put MB/s | put ms | get MB/s | get ms |\n"
        "|---|---|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n"
    )
    print(out.read_text())


if __name__ == "__main__":
    main()
