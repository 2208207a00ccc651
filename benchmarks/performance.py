"""Performance against the physical limits of this box: miner verification time vs number of
clients and model size, and whole rounds through chain + IPFS vs number of clients.

1. Miner verification (in memory, no storage I/O): for n = 10, 50, 100 client models of the MLP
   and the CNN, the miner's per-round input checks (`compute_cid` of the bytes, sha256 against the
   on-chain digest, safetensors `loads` with the expected names/shapes/dtypes/finite check; what
   `fedledger.core.protocol.rounds.fetch_weights` does after the storage read) and each defence's `aggregate` alone.
   Client models are the initial model plus N(0, 0.01^2) noise (timing does not depend on values).
2. Rounds on the full stack: `simulate` with n clients, 1 round, a fresh anvil and a real js-ipfs
   daemon, 3 committee miners; wall time, phases, gas per client. Every owner validates every
   peer (n^2 evaluations), and the largest n runs again with each model scored by 5 sampled
   peers. The contract caps a task at 127 data owners (one bitmap word).

Run: `python -m benchmarks.performance [--full] [--chain-clients 10,100] [--tag NAME]`; writes
docs/results/performance-<tag>.md/.png/.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import RESULTS, box, command_line, progress_bar, write_json, write_markdown
from fedledger.core.data import load_dataset
from fedledger.core.defences import ClientUpdate, Context, create_defence
from fedledger.core.learning.behaviour import behaviour_model
from fedledger.core.learning.training import TrainConfig
from fedledger.core.models import create_model, get_weights
from fedledger.core.protocol.task import TaskConfig
from fedledger.core.storage import compute_cid
from fedledger.core.weights import WeightsMeta, dumps, loads, sha256_hex, spec_of
from fedledger.simulate import SimConfig, simulate

DEFENCES = ["fedavg", "krum", "median", "trimmed-mean", "bvfb", "fltrust", "bcs-fl"]
CLIENTS = [10, 50, 100]
MODELS = ["mlp", "cnn"]


def verification(
    models: Sequence[str], clients: Sequence[int], defences: Sequence[str], repeats: int, bar: Any
) -> list[dict[str, Any]]:
    """Seconds for the input checks and for each defence, per (model, n)."""
    torch.set_num_threads(1)
    ds = load_dataset("mnist")
    perm = torch.randperm(len(ds.y_test), generator=torch.Generator().manual_seed(0))[:2000]
    test_x, test_y = ds.x_test[perm], ds.y_test[perm]
    rows = []
    for model in models:
        net = create_model(model, seed=0, in_shape=ds.input_shape, num_classes=ds.num_classes)
        global_w = get_weights(net)
        n_params = sum(v.numel() for v in global_w.values())
        steps = 5 * 85  # 5 epochs of 2,700 samples at batch 32: the pace normaliser
        for n in clients:
            gen = torch.Generator().manual_seed(n)
            weights = [
                OrderedDict((k, v + 0.01 * torch.randn(v.shape, generator=gen)) for k, v in global_w.items())
                for _ in range(n)
            ]
            meta = WeightsMeta(model_spec=model, task="1", round=1, producer="0x" + "00" * 20)
            blobs = [dumps(w, meta) for w in weights]
            digests = [sha256_hex(b) for b in blobs]
            expected = spec_of(global_w)

            def verify() -> None:
                for b, d in zip(blobs, digests, strict=True):
                    compute_cid(b)
                    assert sha256_hex(b) == d
                    loads(b, expected=expected)

            row: dict[str, Any] = {"model": model, "params": n_params, "clients": n, "bytes": len(blobs[0])}
            row["verify"] = _timed(verify, repeats)
            updates = [
                ClientUpdate(k, w, 2700, pace=behaviour_model(global_w, w, 0.1, steps).pace)
                for k, w in enumerate(weights)
            ]
            ctx = Context(
                round=1,
                global_weights=global_w,
                model_spec=model,
                in_shape=ds.input_shape,
                num_classes=ds.num_classes,
                test_x=test_x,
                test_y=test_y,
                root_x=test_x[:100],
                root_y=test_y[:100],
                train_config=TrainConfig(),
                seed=0,
            )
            for d in defences:
                kw: dict[str, Any] = {}
                if d == "krum":
                    kw["num_malicious"] = (n - 3) // 2
                if d == "trimmed-mean":
                    kw["num_trim"] = n // 5
                if d == "fltrust":
                    kw["root_steps"] = steps
                defence = create_defence(d, **kw)
                row[d] = _timed(lambda: defence.aggregate(updates, ctx), repeats)
                bar.advance(1, f"{model} n={n} {d} {row[d]:.2f} s")
            rows.append(row)
            bar.advance(1, f"{model} n={n} verify {row['verify']:.2f} s")
    return rows


def _timed(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


SAMPLED_VALIDATORS = 5  # the largest federation is run again with each model scored by 5 sampled peers


def chain_rounds(clients: Sequence[int], bar: Any, storage: str = "ipfs") -> list[dict[str, Any]]:
    """One round of `simulate` per client count (fresh devnet and daemon each), every owner
    validating every peer; then the largest count again with sampled validation."""
    rows = []
    runs = [(n, 0) for n in clients] + ([(max(clients), SAMPLED_VALIDATORS)] if clients else [])
    for n, k in runs:
        bar.note(f"full stack: {n} clients, 1 round, {k or 'all'} validators per model")
        # Phase deadlines only bound crashed parties (a healthy phase closes as soon as everyone
        # acted): at 100 owners the commit phase (n^2 peer validations) outlasts the default 120 s.
        task = TaskConfig(
            clients=n,
            min_clients=n,
            rounds=1,
            defence="bvfb",
            committee_size=3,
            peer_validators=k,
            train_s=3600,
            commit_s=3600,
            reveal_s=3600,
            aggregate_s=3600,
        )
        t0 = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                rep = simulate(SimConfig(task=task, miners=3, storage=storage, out_dir=Path(tmp), timeout=3600))
        except Exception as exc:  # noqa: BLE001 - record the failure, keep the other rows
            rows.append(
                {
                    "clients": n,
                    "validators": k,
                    "wall": time.perf_counter() - t0,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
            bar.advance(1, f"full stack {n} clients failed")
            continue
        wall = time.perf_counter() - t0
        r = rep.rounds[0]
        rows.append(
            {
                "clients": n,
                "validators": k,
                "wall": wall,
                "round_seconds": r.seconds,
                "phase_seconds": r.phase_seconds,
                "status": r.status,
                "accuracy": r.accuracy,
                "gas_per_client_round": rep.gas_per_client_round,
                "gas_total": rep.gas_total,
                "gas_by_function": rep.gas_by_function,
            }
        )
        bar.advance(1, f"full stack {n} clients: {wall:.0f} s")
    return rows


def report(
    ver: list[dict[str, Any]],
    chain: list[dict[str, Any]],
    defences: Sequence[str],
    *,
    repeats: int,
    wall: float,
    cmd: str,
    tag: str,
    storage: str,
) -> list[str]:
    """Markdown tables."""
    lines = [
        f"# Performance: miner verification and full-stack rounds ({tag} set)",
        "",
        f"Command: `{cmd}`; wall time {wall / 60:.1f} min ({box()}; other jobs shared the box, so times are upper bounds).",
        "",
        "## Miner verification time vs clients and model size (in memory, one miner)",
        "",
        f"Seconds per round for n client models (median of {repeats}); `verify` = CID + sha256 + safetensors load "
        "with shape/dtype/finite checks of all n models; the others = the defence's `aggregate` alone "
        "(BVFB evaluates every model on the miner's 2,000 test images; FLTrust trains its root update on 100 images; "
        "Krum f = (n-3)//2; Trimmed Mean trims n/5 per side).",
        "",
        "| model | params | file bytes | clients | verify | " + " | ".join(defences) + " |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(defences),
    ]
    for r in ver:
        lines.append(
            f"| {r['model']} | {r['params']:,} | {r['bytes']:,} | {r['clients']} | {r['verify']:.3f} | "
            + " | ".join(f"{r[d]:.3f}" for d in defences)
            + " |"
        )
    lines += ["", "Growth from the smallest to the largest n (factor, same model):", ""]
    for model in sorted({r["model"] for r in ver}):
        rs = [r for r in ver if r["model"] == model]
        if len(rs) > 1:
            a, b = rs[0], rs[-1]
            lines.append(
                f"- {model}, n {a['clients']} -> {b['clients']} (x{b['clients'] / a['clients']:.0f}): "
                + "; ".join(f"{k} x{b[k] / a[k]:.1f}" for k in ["verify", *defences] if a[k] > 0)
            )
    lines += [
        "",
        "Paper numbers for verification time: BVFB, LL-BCFL, BPCV-FL and BCS-FL give none; Model Chain validates one model "
        "in 4.52 s on average (its own CNN and font test set, Java; see `modelchain-*.md`).",
        "",
    ]
    if chain:
        lines += [
            f"## Whole rounds through chain + storage ({'js-ipfs daemon' if storage == 'ipfs' else storage}), 1 round each",
            "",
            "`simulate`: fresh anvil, deploy, publish, n data owners (MLP, 5 local epochs on 60,000/n images each), "
            "BVFB, 3 committee miners, all agents in one process, phase deadlines 3,600 s (they only bound crashed "
            "parties; every phase here closed as soon as all parties acted). `round s` runs from the round's opening to its "
            "finalisation (the simulation report's round time); `wall s` is the whole run: anvil and daemon start, "
            "deployment, publishing, registration, the round, withdrawals and the gas scan.",
            "",
            "| clients | validators per model | status | wall s | round s | train s | commit s | reveal s | aggregate s | gas per client | gas total | accuracy |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in chain:
            if "error" in r:
                lines.append(
                    f"| {r['clients']} | {_validators(r)} | **failed** after {r['wall']:.0f} s: "
                    f"{r['error'][:160]} |" + " |" * 9
                )
                continue
            ph = r["phase_seconds"]
            lines.append(
                f"| {r['clients']} | {_validators(r)} | {r['status']} | {r['wall']:.0f} | {r['round_seconds']:.0f} | "
                + " | ".join(f"{ph.get(p, 0.0):.1f}" for p in ("train", "commit", "reveal", "aggregate"))
                + f" | {r['gas_per_client_round']:,.0f} | {r['gas_total']:,} | {r['accuracy']:.4f} |"
            )
        ok = [r for r in chain if "error" not in r and not r.get("validators")]
        sampled = [r for r in chain if "error" not in r and r.get("validators")]
        if len(ok) > 1:
            a, b = ok[0], ok[-1]
            lines += [
                "",
                f"From {a['clients']} to {b['clients']} clients (x{b['clients'] / a['clients']:.0f}): round time "
                f"x{b['round_seconds'] / a['round_seconds']:.1f}; commit phase (every owner validates every peer: "
                f"n^2 model fetches) x{b['phase_seconds'].get('commit', 0) / max(a['phase_seconds'].get('commit', 0), 1e-9):.1f}; "
                f"gas per client x{b['gas_per_client_round'] / a['gas_per_client_round']:.2f}.",
            ]
        for r in sampled:
            full = next((o for o in ok if o["clients"] == r["clients"]), None)
            if full is not None:
                lines += [
                    "",
                    f"{r['clients']} clients with each model scored by {r['validators']} sampled peers instead of "
                    f"all {r['clients'] - 1}: commit phase {full['phase_seconds'].get('commit', 0):.1f} -> "
                    f"{r['phase_seconds'].get('commit', 0):.1f} s, round {full['round_seconds']:.0f} -> "
                    f"{r['round_seconds']:.0f} s.",
                ]
    lines += ["", f"Plot: `performance-{tag}.png`."]
    return lines


def _validators(row: dict[str, Any]) -> str:
    return f"{row['validators']} sampled" if row.get("validators") else f"all ({row['clients'] - 1})"


def plot(ver: list[dict[str, Any]], chain: list[dict[str, Any]], defences: Sequence[str], path: Path) -> None:
    """Verification seconds vs clients (per model), and full-stack round seconds vs clients."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in ver})
    chain = [r for r in chain if "error" not in r]
    n_panels = len(models) + (1 if chain else 0)
    fig, axes = plt.subplots(1, n_panels, figsize=(5 * n_panels, 3.8), dpi=110, squeeze=False)
    for ax, model in zip(axes[0], models, strict=False):
        rs = [r for r in ver if r["model"] == model]
        for k in ["verify", *defences]:
            ax.plot([r["clients"] for r in rs], [r[k] for r in rs], marker="o", label=k)
        ax.set_yscale("log")
        ax.set_title(f"miner time per round, {model}")
        ax.set_xlabel("clients")
        ax.set_ylabel("seconds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if chain:
        ax = axes[0][-1]
        xs = [f"{r['clients']}" + (f"\n{r['validators']} val." if r.get("validators") else "") for r in chain]
        bottom = [0.0] * len(chain)
        for p in ("train", "commit", "reveal", "aggregate"):
            vals = [r["phase_seconds"].get(p, 0.0) for r in chain]
            ax.bar(xs, vals, bottom=bottom, label=p)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_title("one round on chain + IPFS, by phase")
        ax.set_xlabel("clients")
        ax.set_ylabel("seconds")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(
    *,
    full: bool = False,
    clients: Sequence[int] | None = None,
    models: Sequence[str] | None = None,
    chain_clients: Sequence[int] | None = None,
    storage: str = "ipfs",
    tag: str | None = None,
    argv: Sequence[str] | None = None,
) -> list[str]:
    """Quick: verification once per cell, chain rounds at 10 and 100 clients; full: median of 3,
    chain rounds at 10, 20, 50, 100 clients. Returns the markdown lines."""
    clients = list(clients or CLIENTS)
    models = list(models or MODELS)
    chain_clients = list(chain_clients if chain_clients is not None else ([10, 20, 50, 100] if full else [10, 100]))
    repeats = 3 if full else 1
    tag = tag or ("full" if full else "quick")
    t0 = time.perf_counter()
    total = len(models) * len(clients) * (len(DEFENCES) + 1) + len(chain_clients) + bool(chain_clients)
    with progress_bar(f"performance ({tag})", total) as bar:
        ver = verification(models, clients, DEFENCES, repeats, bar)
        chain = chain_rounds(chain_clients, bar, storage)
    wall = time.perf_counter() - t0
    cmd = (
        command_line("benchmarks.performance", argv)
        if argv is not None
        else f"fedledger bench performance{' --full' if full else ''}"
    )
    lines = report(ver, chain, DEFENCES, repeats=repeats, wall=wall, cmd=cmd, tag=tag, storage=storage)
    write_markdown(f"performance-{tag}", lines)
    write_json(f"performance-{tag}", {"verification": ver, "chain": chain})
    plot(ver, chain, DEFENCES, RESULTS / f"performance-{tag}.png")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true")
    p.add_argument("--clients", help="verification grid, e.g. 10,50,100")
    p.add_argument("--models", help="mlp,cnn")
    p.add_argument("--chain-clients", help="full-stack rounds, e.g. 10,100 ('' for none)")
    p.add_argument("--storage", default="ipfs", help="ipfs (js-ipfs daemon) or embedded")
    p.add_argument("--tag")
    a = p.parse_args(argv)
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    print(
        "\n".join(
            run(
                full=a.full,
                clients=ints(a.clients) if a.clients else None,
                models=a.models.split(",") if a.models else None,
                chain_clients=ints(a.chain_clients) if a.chain_clients is not None else None,
                storage=a.storage,
                tag=a.tag,
                argv=sys.argv[1:] if argv is None else argv,
            )
        )
    )


if __name__ == "__main__":
    main()
