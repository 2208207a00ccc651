"""LL-BCFL: reputation-based top-N selection with local DP, IID and non-IID.

Paper setup (ARCHITECTURE.md): MNIST, N = 100 clients, C = 10 % (the top 10 by reputation train
each round), IID and non-IID, 100/200/500 rounds; Laplace or Gaussian noise on the shared
parameters. Here: the `ll-bcfl` defence (miner validates every update on its test set,
rep = 0.5 * eval + 0.5 * rep_prev, top 10 next round), MLP, SGD lr 0.1, batch 32, 1 local epoch,
non-IID = Dirichlet(alpha 0.5); DP is GD-DP on the clients (Laplace: per-sample L1 clipping C = 1,
epsilon 10 per step; Gaussian: L2 clipping C = 1, sigma 1). In-process engine.

Run: `python -m benchmarks.llbcfl [--full] [--rounds N] [--tag NAME]`; writes docs/results/llbcfl-<tag>.md/.png/.json.
The full set runs 500 rounds per configuration and reports rounds 100, 200 and 500 of the same run.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks._common import RESULTS, Run, box, command_line, curve_table, plot_curves, run_grid, summary, sweep_main, write_json, write_markdown
from fedledger.experiment import ExperimentConfig

PARTITIONS = ("iid", "dirichlet")
DPS = ("none", "laplace", "gaussian")


def grid(rounds: int, seed: int) -> list[Run]:
    """2 partitions x 3 DP settings, N = 100, top 10."""
    return [
        Run((part, dp), ExperimentConfig(
            clients=100, select=10, defence="ll-bcfl", partition=part, alpha=0.5, dp=None if dp == "none" else dp,
            epsilon=10.0, noise_multiplier=1.0, max_grad_norm=1.0, rounds=rounds, lr=0.1, batch_size=32,
            local_epochs=1, seed=seed))  # fmt: skip
        for part in PARTITIONS for dp in DPS
    ]


def run(*, full: bool = False, rounds: int | None = None, seed: int = 0, tag: str | None = None,
        argv: Sequence[str] | None = None) -> list[str]:  # fmt: skip
    """Quick: 5 rounds; full: 500 rounds (reported at 100, 200, 500). Returns the markdown lines."""
    rounds = rounds or (500 if full else 5)
    tag = tag or ("full" if full else "quick")
    runs = grid(rounds, seed)
    wall = run_grid(f"llbcfl ({tag})", runs)
    cmd = command_line("benchmarks.llbcfl", argv) if argv is not None else f"fedledger bench llbcfl{' --full' if full else ''}"
    dp_name = {"none": "no DP", "laplace": "Laplace eps 10", "gaussian": "Gaussian sigma 1"}
    label = {r.key: f"{'IID' if r.key[0] == 'iid' else 'non-IID (Dir 0.5)'}, {dp_name[r.key[1]]}" for r in runs}
    show = [c for c in (1, 2, 3, 4, 5, 10, 20, 50, 100, 200, 500) if c <= rounds] if rounds > 10 else None
    lines = [
        f"# LL-BCFL: top-10 of 100 by reputation, IID and non-IID, with local DP ({tag} set)",
        "",
        f"Command: `{cmd}`; seed {seed}; wall time {wall / 60:.1f} min ({box()}).",
        "",
        f"Ran: MNIST, N = 100 clients (600 samples each, 10 % held out), C = 10 % (the top 10 by on-chain-style "
        f"reputation train each round, rep = 0.5 * eval + 0.5 * rep_prev, eval = the miner's validation of the "
        f"update on its test set), MLP, SGD lr 0.1, batch 32, 1 local epoch, **{rounds} rounds** "
        f"(paper: 100/200/500; the quick set is what fits a few minutes of this box), IID and Dirichlet(0.5) "
        "non-IID, no DP / Laplace (L1 clip 1, eps 10 per step) / Gaussian (L2 clip 1, sigma 1). In-process engine.",
        "",
        *curve_table(runs, label, rounds, show),
        "",
        "Paper accuracies at 100/200/500 rounds: n/a (not in ARCHITECTURE.md).",
        "",
        f"Plot: `llbcfl-{tag}.png`.",
    ]
    write_markdown(f"llbcfl-{tag}", lines)
    write_json(f"llbcfl-{tag}", [{"key": r.key, **summary(r.result)} for r in runs if r.result])
    plot_curves(RESULTS / f"llbcfl-{tag}.png",
                [(p.upper() if p == "iid" else "non-IID (Dirichlet 0.5)", [r for r in runs if r.key[0] == p]) for p in PARTITIONS],
                label)  # fmt: skip
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    sweep_main(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    main()
