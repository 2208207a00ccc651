"""Gas of verifying a linkable ring signature (LSAG, BN254) on chain, per ring size, on a real anvil.

Run: `python -m benchmarks.ringsig_gas [--sizes 2 4 8 16] [--repeats 3]`; writes
docs/results/ringsig_gas.md. Measures, per ring size: the `verifyShare` view call (verification
only: ring loading, hashToPoint, 4k ecMul + 2k ecAdd) as eth_estimateGas and minus the 21,000
base and the calldata; the full `share` data transaction (verification + key-image and digest
storage + event); and the off-chain py_ecc sign and verify times.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

from fedledger.core import ringsig
from fedledger.core.chain import connect, devnet_account
from fedledger.core.chain.binding import load_abi
from fedledger.core.chain.data_registry import DataRegistry, signature_abi
from fedledger.core.chain.transport import request
from fedledger.core.paths import project_root
from fedledger.core.ringsig import KeyPair
from fedledger.deploy import devnet
from fedledger.deploy.deployer import deploy_data_registry

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def calldata_gas(data: bytes) -> int:
    """Intrinsic calldata cost (EIP-2028: 4 per zero byte, 16 per non-zero byte)."""
    return sum(4 if byte == 0 else 16 for byte in data)


def measure(sizes: list[int], repeats: int) -> tuple[list[dict[str, float]], dict[str, object]]:
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        net = devnet.start("anvil", log_dir=Path(tmp))
        try:
            w3 = connect(net.rpc_url)
            node = request(w3, "anvil_nodeInfo", []) or {}
            entry = deploy_data_registry(w3, devnet_account(0))
            reg = DataRegistry(w3, entry["address"], load_abi("DataRegistry"), devnet_account(0))
            keys = [KeyPair.generate() for _ in range(max(sizes))]
            register_gas = [reg.register_key(k)[1].gas_used for k in keys]
            relayer = reg.as_account(devnet_account(7))  # shares are relayed, as a sharer would
            h2p = []  # scopeBase alone: the try-and-increment hashToPoint with modexp square roots
            for i in range(16):
                args = (0, hashlib.sha256(f"scope {i}".encode()).digest())
                data = bytes.fromhex(reg.prepare("scopeBase", *args).data[2:])
                h2p.append(reg.estimate("scopeBase", *args) - 21_000 - calldata_gas(data))
            for size in sizes:
                now = int(w3.eth.get_block("latest")["timestamp"])
                pool, _ = reg.create_pool(now + 3600, 20, 300)
                ring_ids = list(range(size))
                est, verify_only, share_gas, sign_s, verify_s = [], [], [], [], []
                for r in range(repeats):
                    digest = hashlib.sha256(f"ring {size} item {r}".encode()).digest()
                    signer = keys[(r * 7 + 3) % size]  # a different position each repeat
                    t0 = time.perf_counter()
                    sig = reg.sign_share(signer, pool, CID, digest, now, ring_ids)
                    sign_s.append(time.perf_counter() - t0)
                    message = reg.share_message(pool, CID, digest, now)
                    ring = [k.public for k in keys[:size]]
                    t0 = time.perf_counter()
                    assert ringsig.verify(message, ring, sig, reg.scope_base(pool, digest))
                    verify_s.append(time.perf_counter() - t0)
                    verify = (pool, CID, digest, now, ring_ids, signature_abi(sig))
                    gas = reg.estimate("verifyShare", *verify)
                    data = bytes.fromhex(reg.prepare("verifyShare", *verify).data[2:])
                    est.append(gas)
                    verify_only.append(gas - 21_000 - calldata_gas(data))
                    share_gas.append(relayer.share(pool, CID, digest, now, ring_ids, sig)[1].gas_used)
                rows.append(
                    {
                        "size": size,
                        "verify_call": statistics.median(est),
                        "verify_exec": statistics.median(verify_only),
                        "share_tx": statistics.median(share_gas),
                        "sign_ms": 1000 * statistics.median(sign_s),
                        "verify_ms": 1000 * statistics.median(verify_s),
                    }
                )
        finally:
            net.stop()
    meta = {
        "hardfork": node.get("hardFork", "anvil default"),
        "deploy_gas": entry["gasUsed"],
        "register_gas": statistics.median(register_gas),
        "hash_to_point": statistics.median(h2p),
    }
    return rows, meta


def render(rows: list[dict[str, float]], meta: dict[str, object], command: str, wall: float, repeats: int) -> str:
    lines = [
        "# Gas per ring-signature verification (LSAG over BN254)",
        "",
        f"Real anvil 1.7.1 (hardfork {meta['hardfork']}), solc 0.8.37 (via-IR, 200 optimizer runs), "
        f"median of {repeats} signatures per ring size, each by a different ring position.",
        f"Command: `{command}`; wall time {wall:.1f} s (includes anvil start, compile cache, py_ecc signing).",
        "",
        "| ring size | verifyShare call (eth_estimateGas) | verification execution (minus 21,000 and calldata) "
        "| share tx (gasUsed) | per member (verification) | py_ecc sign | py_ecc verify |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {int(r['size'])} | {int(r['verify_call']):,} | {int(r['verify_exec']):,} | {int(r['share_tx']):,} "
            f"| {int(r['verify_exec'] / r['size']):,} | {r['sign_ms']:.0f} ms | {r['verify_ms']:.0f} ms |"
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        slope = (last["verify_exec"] - first["verify_exec"]) / (last["size"] - first["size"])
        fixed = first["verify_exec"] - slope * first["size"]
        lines += [
            "",
            f"Fit: verification execution ~ {fixed:,.0f} + {slope:,.0f} x ring size gas. "
            "Per member: 4 ecMul (6,000 each) + 2 ecAdd (150 each) = 24,300 of precompiles, two cold "
            "SLOADs of the member's key (4,200) and one keccak; the fixed part is the scope's "
            "hashToPoint (modexp square roots), the message hash and ring checks.",
        ]
    lines += [
        "",
        f"hashToPoint of the scope (scopeBase view, minus 21,000 and calldata; median of 16 seeds, "
        f"~2 tries each on average): {int(meta['hash_to_point']):,} gas.",  # type: ignore[call-overload]
        f"DataRegistry deployment: {int(meta['deploy_gas']):,} gas; registerKey (with the Schnorr "  # type: ignore[call-overload]
        f"proof of possession): {int(meta['register_gas']):,} gas (median).",  # type: ignore[call-overload]
        "The share transaction adds to verification: 21,000, calldata, two fresh slots (key image, "
        "digest), the pool's share counter and the DataShared event.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=project_root() / "docs" / "results" / "ringsig_gas.md")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rows, meta = measure(args.sizes, args.repeats)
    wall = time.perf_counter() - t0
    command = (
        "python -m benchmarks.ringsig_gas --sizes " + " ".join(map(str, args.sizes)) + f" --repeats {args.repeats}"
    )
    text = render(rows, meta, command, wall, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
