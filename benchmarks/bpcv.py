"""BPCV-FL: accuracy per round with and without GD-DP, and mutual supervision against poisoning.

Paper setup (ARCHITECTURE.md): MNIST, 30 and 50 data nodes, GD-DP with Laplace noise at epsilon 10;
5 of 50 nodes malicious. Here: MLP, SGD lr 0.1, batch 32, 1 local epoch (DP training costs
~0.9 ms per sample on this box, so 5 epochs would not fit), per-sample L1 clipping to C = 1 and
Laplace noise of scale (2C/B)/epsilon per step (`client.dp`). Mutual supervision = the `bpcv-fl`
defence (peer validation scores, worst node eliminated, best node wins). In-process engine.

Run: `python -m benchmarks.bpcv [--full] [--rounds N] [--tag NAME]`; writes docs/results/bpcv-<tag>.md/.png/.json.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from benchmarks._common import RESULTS, Run, box, command_line, curve_table, fmt, plot_curves, run_grid, summary, write_json, write_markdown
from fedledger.experiment import ExperimentConfig

PAPER_DP_COST = "up to 4 points"  # ARCHITECTURE.md / issue 7; per-round numbers n/a


def grid(rounds: int, seed: int, local_epochs: int, batch_size: int) -> tuple[list[Run], list[Run]]:
    """(DP runs: 30/50 nodes x no DP/Laplace, all with mutual supervision; attack runs: 5 of 50
    label flippers, FedAvg vs mutual supervision)."""
    base = dict(rounds=rounds, lr=0.1, batch_size=batch_size, local_epochs=local_epochs, seed=seed, epsilon=10.0,
                max_grad_norm=1.0)  # fmt: skip
    dp_runs = [
        Run((n, dp), ExperimentConfig(clients=n, defence="bpcv-fl", dp=None if dp == "none" else dp, **base))  # type: ignore[arg-type]
        for n in (30, 50) for dp in ("none", "laplace")
    ]
    attack_runs = [
        Run((50, d), ExperimentConfig(clients=50, malicious=0.1, attack="label-flip", defence=d, **base))  # type: ignore[arg-type]
        for d in ("fedavg", "bpcv-fl")
    ]
    return dp_runs, attack_runs


def run(*, full: bool = False, rounds: int | None = None, seed: int = 0, local_epochs: int = 1, batch_size: int = 32,
        tag: str | None = None, argv: Sequence[str] | None = None) -> list[str]:  # fmt: skip
    """Quick: 2 rounds; full: 20 rounds. Returns the markdown lines."""
    rounds = rounds or (20 if full else 2)
    tag = tag or ("full" if full else "quick")
    dp_runs, attack_runs = grid(rounds, seed, local_epochs, batch_size)
    wall = run_grid(f"bpcv ({tag})", dp_runs + attack_runs)
    cmd = command_line("benchmarks.bpcv", argv) if argv is not None else f"fedledger bench bpcv{' --full' if full else ''}"
    label = {r.key: f"{r.key[0]} nodes, {'no DP' if r.key[1] == 'none' else 'GD-DP Laplace eps 10'}, mutual supervision" for r in dp_runs}
    label |= {r.key: f"50 nodes, 5 label flippers, {'FedAvg' if r.key[1] == 'fedavg' else 'mutual supervision (bpcv-fl)'}" for r in attack_runs}
    lines = [
        f"# BPCV-FL: GD-DP and mutual supervision ({tag} set)",
        "",
        f"Command: `{cmd}`; seed {seed}; wall time {wall / 60:.1f} min ({box()}).",
        "",
        f"Ran: MNIST, IID, MLP 784-256-128-10, SGD lr 0.1, batch {batch_size}, {local_epochs} local epoch(s), "
        f"**{rounds} rounds**; 30 and 50 nodes with and without GD-DP (per-sample L1 clipping C = 1, Laplace noise "
        "scale (2C/B)/epsilon, epsilon 10 per step), all with mutual supervision (peer validation, worst node "
        "eliminated each round, no standby pool so the federation shrinks by one per round); then 50 nodes of which "
        "5 flip labels (y -> 9 - y), FedAvg vs mutual supervision. In-process engine (no chain). "
        "eps (last) is the per-client privacy loss after the last round (basic composition over all steps).",
        "",
        "## Accuracy per round",
        "",
        *curve_table(dp_runs + attack_runs, label, rounds),
        "",
        "## DP cost (accuracy without DP minus with DP, after the last round)",
        "",
        "| nodes | no DP | GD-DP Laplace | cost (points) | paper | goal |",
        "|---:|---:|---:|---:|---|---|",
    ]
    for n in (30, 50):
        a = next(r for r in dp_runs if r.key == (n, "none")).result
        b = next(r for r in dp_runs if r.key == (n, "laplace")).result
        assert a and b
        lines.append(f"| {n} | {fmt(a.final_accuracy)} | {fmt(b.final_accuracy)} | "
                     f"{100 * (a.final_accuracy - b.final_accuracy):.1f} | {PAPER_DP_COST} | <= 2 |")  # fmt: skip
    lines += ["", "Paper per-round accuracies: n/a (not in ARCHITECTURE.md).", "", f"Plot: `bpcv-{tag}.png`."]
    write_markdown(f"bpcv-{tag}", lines)
    write_json(f"bpcv-{tag}", [{"key": r.key, **summary(r.result)} for r in dp_runs + attack_runs if r.result])
    plot_curves(RESULTS / f"bpcv-{tag}.png",
                [("GD-DP (Laplace, eps 10) vs none", dp_runs), ("5 of 50 label flippers", attack_runs)], label)  # fmt: skip
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true")
    p.add_argument("--rounds", type=int)
    p.add_argument("--local-epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag")
    a = p.parse_args(argv)
    print("\n".join(run(full=a.full, rounds=a.rounds, seed=a.seed, local_epochs=a.local_epochs, batch_size=a.batch_size,
                        tag=a.tag, argv=sys.argv[1:] if argv is None else argv)))  # fmt: skip


if __name__ == "__main__":
    main()
