"""Gas of every external call of the FedLedger contract for one 20-client round, on a real anvil.

Run: `python -m benchmarks.gas [--clients 20] [--committee 3]`; writes docs/results/gas.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from web3.types import RPCEndpoint

from fedledger.core.chain import (
    FedLedger,
    Mechanism,
    Proposal,
    TaskSpec,
    connect,
    devnet_account,
    encode_scores,
    model_commitment,
    score_commitment,
)
from fedledger.core.chain.transport import request
from fedledger.core.paths import project_root
from fedledger.deploy import devnet
from fedledger.deploy.deployer import deploy

ETH = 10**18
# a real CIDv1 (raw leaves, base32) of the length every model CID has
CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def measure(n_clients: int, committee: int) -> tuple[dict[str, list[int]], dict[str, int]]:
    gas: dict[str, list[int]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        net = devnet.start("anvil", log_dir=Path(tmp))
        try:
            w3 = connect(net.rpc_url)
            manifest, _ = deploy(w3, devnet_account(0), directory=Path(tmp), unstake_delay=60)
            gas["deploy (constructor)"].append(manifest["contracts"]["FedLedger"]["gasUsed"])
            fl = FedLedger.from_manifest(w3, Path(tmp) / "31337.json", devnet_account(0))
            spec = TaskSpec(
                "mlp",
                "mnist",
                "mnist:test",
                CID,
                hashlib.sha256(b"init").digest(),
                rounds=2,
                min_clients=n_clients,
                reward_per_round=ETH,
            )
            mech = Mechanism(defence="bvfb", committee_size=committee)
            task_id, r = fl.publish_task(spec, mech)
            gas["publishTask"].append(r.gas_used)
            clients = [fl.as_account(devnet_account(1 + i)) for i in range(n_clients)]
            for c in clients:
                gas["register"].append(c.register(task_id, [5000, 6000, 7000], 3000).gas_used)
            miners = [fl.as_account(devnet_account(150 + i)) for i in range(committee)]
            for m in miners:
                gas["stake"].append(m.stake(ETH).gas_used)
            gas["startTask"].append(fl.start_task(task_id).gas_used)
            _models(gas, task_id, clients, "")
            scores, salt = encode_scores([9000] * n_clients), os.urandom(32)
            for c in clients:
                commitment = score_commitment(task_id, 1, c.sender, scores, salt)
                gas["commitScores"].append(c.commit_scores(task_id, 1, commitment).gas_used)
            for c in clients:
                gas["revealScores"].append(c.reveal_scores(task_id, 1, scores, salt).gas_used)
            p = Proposal(
                CID,
                hashlib.sha256(b"global").digest(),
                (1 << n_clients) - 1,
                tuple(700_000 for _ in range(n_clients)),
                1,
                (1 << n_clients) - 1,
            )
            by_addr = {m.sender: m for m in miners}
            for k, member in enumerate(fl.round_info(task_id, 1).committee):
                label = "propose (finalising vote)" if k == committee - 1 else "propose (vote)"
                gas[label].append(by_addr[member].propose(task_id, 1, p).gas_used)
            for c in clients:
                gas["withdraw"].append(c.withdraw().gas_used)
            request(w3, "evm_increaseTime", [700])
            request(w3, "evm_mine", [])
            gas["advance (train -> failed, next round)"].append(fl.advance(task_id).gas_used)
            gas["reclaimEscrow"].append(fl.reclaim_escrow(task_id).gas_used)
            # a task without peer validation: train (commit model) -> submit (reveal) -> aggregate
            no_pv = Mechanism(defence="fedavg", committee_size=committee, peer_validation=False)
            t_np, _ = fl.publish_task(spec, no_pv)
            for c in clients:
                c.register(t_np, [5000, 6000, 7000], 3000)
            fl.start_task(t_np)
            _models(gas, t_np, clients, " (no peer validation)")
            w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [700])
            w3.provider.make_request(RPCEndpoint("evm_mine"), [])
            fl.advance(t_np)  # aggregate -> failed: the silent committee is slashed
            gas["requestUnstake"].append(miners[0].request_unstake().gas_used)
            request(w3, "evm_increaseTime", [61])
            request(w3, "evm_mine", [])
            gas["withdrawStake"].append(miners[0].withdraw_stake().gas_used)
            t2, _ = fl.publish_task(spec, mech)
            gas["cancelTask"].append(fl.cancel_task(t2).gas_used)
        finally:
            net.stop()
    per_client = {
        k: statistics.median(gas[k])
        for k in (
            "commitModel",
            "submitModel",
            "commitScores",
            "revealScores",
            "commitModel (no peer validation)",
            "submitModel (no peer validation)",
        )
    }
    return gas, {k: int(v) for k, v in per_client.items()}


def _models(gas: dict[str, list[int]], task_id: int, clients: list[FedLedger], label: str) -> None:
    """Round 1 of `task_id`: every client commits to its model, then reveals it."""
    models = {}
    for i, c in enumerate(clients):
        d = hashlib.sha256(f"model {i}".encode()).digest()
        models[i] = (CID, d, CID, 3000, os.urandom(32))
        commitment = model_commitment(task_id, 1, c.sender, *models[i])
        gas["commitModel" + label].append(c.commit_model(task_id, 1, commitment).gas_used)
    for i, c in enumerate(clients):
        gas["submitModel" + label].append(c.submit_model(task_id, 1, *models[i]).gas_used)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--committee", type=int, default=3)
    parser.add_argument("--out", type=Path, default=project_root() / "docs" / "results" / "gas.md")
    args = parser.parse_args()
    t0 = time.time()
    gas, per_client = measure(args.clients, args.committee)
    total = sum(per_client[k] for k in ("commitModel", "submitModel", "commitScores", "revealScores"))
    total_np = per_client["commitModel (no peer validation)"] + per_client["submitModel (no peer validation)"]
    lines = [
        "# Gas per external call",
        "",
        f"One task, {args.clients} clients, committee of {args.committee}, real anvil 1.7.1 (Prague), solc 0.8.37 "
        f"(via-IR, 200 optimizer runs). Command: `python -m benchmarks.gas --clients {args.clients} "
        f"--committee {args.committee}`; wall time {time.time() - t0:.1f} s.",
        "",
        "| call | calls | median gas | min | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in gas.items():
        lines.append(
            f"| {name} | {len(values)} | {int(statistics.median(values)):,} | {min(values):,} | {max(values):,} |"
        )
    lines += [
        "",
        f"**One client's transactions in one round** (medians): commit model + reveal model + commit scores + "
        f"reveal scores = {per_client['commitModel']:,} + {per_client['submitModel']:,} + "
        f"{per_client['commitScores']:,} + {per_client['revealScores']:,} = **{total:,} gas** with peer validation "
        f"(goal <= 150,000); "
        f"{per_client['commitModel (no peer validation)']:,} + {per_client['submitModel (no peer validation)']:,} = "
        f"**{total_np:,} gas** without (goal <= 80,000).",
        "",
        "Before, for comparison: binding models to their producers first cost 37,996 + 41,947 + 38,329 + 40,962 =",
        "159,234 with peer validation and 37,996 + 41,947 = 79,943 without (three slots touched cold per call; the",
        "score range check read one score at a time); before the binding (one `submitModel` with the CIDs, no",
        "model commitment) it was 38,622 + 38,277 + 40,942 = 117,841 in three transactions.",
        "The last client of each phase pays more: it closes the phase (records the phase's set, new phase and",
        "deadline, event); the last model reveal also fixes the round seed and draws the committee.",
        "",
        "Where a client's gas goes (opcode traces of one call of each kind): 21,000 per transaction plus its",
        "calldata (856 gas for a commitment, ~4,000 for a model reveal with its two CIDs, ~1,900 for 20 scores).",
        "Each call reads two slots cold (2 x 2,100): the round's first slot, which packs phase, deadline, seed",
        "block and the bitmap of parties still expected in this phase, and the client's one word in the task,",
        "which holds its registration index (low 16 bits) and its latest commitment (high 240 bits; a second",
        "opening needs ~2^120 work). Each call clears its bit in the round slot (2,900); a commitment rewrites",
        "the client's word (2,900; non-zero since registration, so no round writes a fresh slot); a reveal only",
        "reads it. The events carry the rest (1,875 for four topics plus 256 per data word: ~2,100 for a",
        "commitment, ~4,400 for a model reveal, whose CIDs and digest live only in the log, ~2,900 for scores).",
        "The 20 scores are range-checked 16 per calldata word at once. Binding a model to its producer costs",
        "one transaction (commit, then reveal once every commitment is in): the cheapest sound design, since a",
        "model seen before its owner's commitment closes could otherwise be copied.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
