"""Transactions per second to a real anvil: web3's default path vs fedledger's Transactor.

Run: `python -m benchmarks.throughput [--n 300]`; writes docs/results/throughput.md. The three
ways send the same small transaction (a miner's stake top-up of 1 wei, ~35k gas) from one account:
web3's default (node fills nonce, gas and fees, then wait), the Transactor (local nonce, cached
fees, one estimate), and `transact_many` (fixed gas, one JSON-RPC batch of signed transactions).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from web3.types import Wei

from fedledger.core.chain import FedLedger, connect, devnet_account
from fedledger.core.paths import project_root
from fedledger.deploy import devnet
from fedledger.deploy.deployer import deploy


def measure(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        net = devnet.start("anvil", log_dir=Path(tmp))
        try:
            w3 = connect(net.rpc_url)
            deploy(w3, devnet_account(0), directory=Path(tmp))
            fl = FedLedger.from_manifest(w3, Path(tmp) / "31337.json", devnet_account(0))
            rates = {}
            for i in (1, 2, 3):
                fl.as_account(devnet_account(i)).stake(10**18)

            naive = fl.as_account(devnet_account(1))
            acct = devnet_account(1)
            t0 = time.perf_counter()
            for _ in range(n):  # web3's documented path: the node fills in everything
                tx = naive.contract.functions.stake().build_transaction(
                    {"from": acct.address, "value": Wei(1), "nonce": w3.eth.get_transaction_count(acct.address)}
                )
                signed = acct.sign_transaction(dict(tx))  # type: ignore[arg-type]  # web3's TxParams vs eth-account's dict
                w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
            rates["web3 default (build, sign, send, wait)"] = n / (time.perf_counter() - t0)

            local = fl.as_account(devnet_account(2))
            t0 = time.perf_counter()
            for _ in range(n):
                local.transactor.transact(local.prepare("stake"), value=1)
            rates["Transactor.transact (local nonce, cached fees)"] = n / (time.perf_counter() - t0)

            batch = fl.as_account(devnet_account(3))
            calls = [(batch.prepare("stake"), 1, 100_000) for _ in range(n)]
            t0 = time.perf_counter()
            batch.transactor.transact_many(calls)
            rates["Transactor.transact_many (one JSON-RPC batch)"] = n / (time.perf_counter() - t0)
            assert all(fl.stake_of(devnet_account(i).address)["amount"] == 10**18 + n for i in (1, 2, 3))
            return rates
        finally:
            net.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="transactions per way")
    parser.add_argument("--out", type=Path, default=project_root() / "docs" / "results" / "throughput.md")
    args = parser.parse_args()
    t0 = time.time()
    rates = measure(args.n)
    base = next(iter(rates.values()))
    lines = [
        "# Transaction throughput to anvil",
        "",
        f"{args.n} `stake` top-ups per way from one account, real anvil 1.7.1, one run on a shared",
        f"2-core machine. Command: `python -m benchmarks.throughput --n {args.n}`; wall time {time.time() - t0:.1f} s.",
        "",
        "| way | tx/s | x web3 default |",
        "|---|---:|---:|",
        *[f"| {k} | {v:,.0f} | {v / base:.1f} |" for k, v in rates.items()],
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
