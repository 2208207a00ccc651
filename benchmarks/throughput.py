"""Transactions per second to a real anvil: web3's default path vs fedledger's Transactor.

Run: `python -m benchmarks.throughput [--n 300]`; writes docs/results/throughput.md and throughput.png. The three
ways send the same small transaction (a miner's stake top-up of 1 wei, ~35k gas) from one account:
web3's default (node fills nonce, gas and fees, then wait), the Transactor (local nonce, cached
fees, one estimate), and `transact_many` (fixed gas, one JSON-RPC batch of signed transactions).
Latency is each transaction's time from building it to its receipt (the batch: the whole batch's).

Beside the BCS-FL paper's Figure 5 (`PAPER_TPS`): BCS-FL about 470 tx/s against PBFT's 330. Its
Figure 6 (latency against the number of nodes) has no number in the text.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from statistics import median, quantiles

from web3.types import Wei

from fedledger.core.chain import FedLedger, connect, devnet_account
from fedledger.core.paths import project_root
from fedledger.deploy import devnet
from fedledger.deploy.deployer import deploy

PAPER_TPS = {"BCS-FL (paper, Fig 5)": 470.0, "PBFT (paper, Fig 5)": 330.0}


def measure(n: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(tx/s per way, per-transaction latencies in seconds per way)."""
    with tempfile.TemporaryDirectory() as tmp:
        net = devnet.start("anvil", log_dir=Path(tmp))
        try:
            w3 = connect(net.rpc_url)
            deploy(w3, devnet_account(0), directory=Path(tmp))
            fl = FedLedger.from_manifest(w3, Path(tmp) / "31337.json", devnet_account(0))
            rates: dict[str, float] = {}
            latency: dict[str, list[float]] = {}
            for i in (1, 2, 3):
                fl.as_account(devnet_account(i)).stake(10**18)

            naive = fl.as_account(devnet_account(1))
            acct = devnet_account(1)
            t0, lat = time.perf_counter(), []
            for _ in range(n):  # web3's documented path: the node fills in everything
                t1 = time.perf_counter()
                tx = naive.contract.functions.stake().build_transaction(
                    {"from": acct.address, "value": Wei(1), "nonce": w3.eth.get_transaction_count(acct.address)}
                )
                signed = acct.sign_transaction(dict(tx))  # type: ignore[arg-type]  # web3's TxParams vs eth-account's dict
                w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
                lat.append(time.perf_counter() - t1)
            rates["web3 default (build, sign, send, wait)"] = n / (time.perf_counter() - t0)
            latency["web3 default (build, sign, send, wait)"] = lat

            local = fl.as_account(devnet_account(2))
            t0, lat = time.perf_counter(), []
            for _ in range(n):
                t1 = time.perf_counter()
                local.transactor.transact(local.prepare("stake"), value=1)
                lat.append(time.perf_counter() - t1)
            rates["Transactor.transact (local nonce, cached fees)"] = n / (time.perf_counter() - t0)
            latency["Transactor.transact (local nonce, cached fees)"] = lat

            batch = fl.as_account(devnet_account(3))
            calls = [(batch.prepare("stake"), 1, 100_000) for _ in range(n)]
            t0 = time.perf_counter()
            batch.transactor.transact_many(calls)
            took = time.perf_counter() - t0
            rates["Transactor.transact_many (one JSON-RPC batch)"] = n / took
            latency["Transactor.transact_many (one JSON-RPC batch)"] = [took]  # every tx waits for the batch
            assert all(fl.stake_of(devnet_account(i).address)["amount"] == 10**18 + n for i in (1, 2, 3))
            return rates, latency
        finally:
            net.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="transactions per way")
    parser.add_argument("--out", type=Path, default=project_root() / "docs" / "results" / "throughput.md")
    args = parser.parse_args(argv)
    t0 = time.time()
    rates, latency = measure(args.n)
    base = next(iter(rates.values()))

    def p95(xs: list[float]) -> float:
        return quantiles(xs, n=20)[-1] if len(xs) > 1 else xs[0]

    lines = [
        "# Transaction throughput to anvil",
        "",
        f"{args.n} `stake` top-ups per way from one account, real anvil 1.7.1, one run on a shared",
        f"2-core machine (load average {os.getloadavg()[0]:.1f} when it ended). Command: "
        f"`python -m benchmarks.throughput --n {args.n}`; wall time {time.time() - t0:.1f} s.",
        "",
        "| way | tx/s | x web3 default | latency median ms | latency p95 ms |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {k} | {v:,.0f} | {v / base:.1f} | {1000 * median(latency[k]):.1f} | {1000 * p95(latency[k]):.1f} |"
            for k, v in rates.items()
        ],
        *[f"| {k} | {v:,.0f} | not ours | not given | not given |" for k, v in PAPER_TPS.items()],
        "",
        "Beside the BCS-FL paper: its Figure 5 gives about 470 tx/s for BCS-FL and 330 for PBFT; its Figure 6 plots "
        "latency against the number of nodes with no number in the text. Ours is one anvil node and one sender (the "
        "committee's PBFT-style vote is a contract call here, not a consensus protocol among nodes), so the rows "
        "compare the transaction path, not the consensus. Plot: `throughput.png`.",
    ]
    plot(rates, latency, args.out.with_suffix(".png"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(rates: dict[str, float], latency: dict[str, list[float]], path: Path) -> None:
    """tx/s of each way beside the paper's two numbers; median latency of each way."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = [k.split(" (")[0] for k in rates] + list(PAPER_TPS)
    values = list(rates.values()) + list(PAPER_TPS.values())
    bars = a.barh(names, values, color=["tab:blue"] * len(rates) + ["tab:grey"] * len(PAPER_TPS))
    for bar in bars[len(rates) :]:
        bar.set_hatch("//")
    a.set_xlabel("transactions per second")
    a.set_title("throughput: ours (anvil) and the BCS-FL paper's", fontsize=10)
    b.barh([k.split(" (")[0] for k in latency], [1000 * median(v) for v in latency.values()])
    b.set_xlabel("latency per transaction, median (ms)")
    b.set_title("latency (the paper gives no number)", fontsize=10)
    for ax in (a, b):
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
