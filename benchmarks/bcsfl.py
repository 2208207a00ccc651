"""BCS-FL: the committee's cosine + loss filter against 10 % and 30 % poisoning on MNIST.

Setup: 20 clients, MLP, SGD lr 0.1, batch 32, 5 local epochs; poisoning = label flipping
(y -> 9 - y, data poisoning) and Gaussian-noise models (model poisoning); defence `bcs-fl`
(cosine similarity of each update to the others + loss difference on the committee's test set),
FedAvg as the floor. The committee vote itself runs on chain (see `fedledger simulate`); its
filter is what decides accuracy, so the sweep runs in-process.

Run: `python -m benchmarks.bcsfl [--full] [--rounds N] [--tag NAME]`; writes docs/results/bcsfl-<tag>.md/.png/.json.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks._common import (
    RESULTS,
    Run,
    box,
    command_line,
    curve_table,
    plot_curves,
    run_grid,
    summary,
    sweep_main,
    write_json,
    write_markdown,
)
from fedledger.experiment import ExperimentConfig

ATTACKS = ("label-flip", "gaussian")


def grid(rounds: int, seed: int) -> list[Run]:
    """2 attacks x 10/30 % x (FedAvg, BCS-FL)."""
    return [
        Run(
            (attack, rate, d),
            ExperimentConfig(
                clients=20,
                malicious=rate,
                attack=attack,
                defence=d,
                rounds=rounds,
                lr=0.1,
                batch_size=32,
                local_epochs=5,
                seed=seed,
            ),
        )
        for attack in ATTACKS
        for rate in (0.1, 0.3)
        for d in ("fedavg", "bcs-fl")
    ]


def run(
    *,
    full: bool = False,
    rounds: int | None = None,
    seed: int = 0,
    tag: str | None = None,
    argv: Sequence[str] | None = None,
) -> list[str]:
    """Quick: 2 rounds; full: 20 rounds. Returns the markdown lines."""
    rounds = rounds or (20 if full else 2)
    tag = tag or ("full" if full else "quick")
    runs = grid(rounds, seed)
    wall = run_grid(f"bcsfl ({tag})", runs)
    cmd = (
        command_line("benchmarks.bcsfl", argv)
        if argv is not None
        else f"fedledger bench bcsfl{' --full' if full else ''}"
    )
    label = {r.key: f"{r.key[1]:.0%} {r.key[0]}, {'FedAvg' if r.key[2] == 'fedavg' else 'BCS-FL filter'}" for r in runs}
    lines = [
        f"# BCS-FL: committee cosine + loss filter under 10 % and 30 % poisoning ({tag} set)",
        "",
        f"Command: `{cmd}`; seed {seed}; wall time {wall / 60:.1f} min ({box()}).",
        "",
        f"Ran: MNIST, 20 clients IID, MLP, SGD lr 0.1, batch 32, 5 local epochs, **{rounds} rounds**; label flipping "
        "(y -> 9 - y) and Gaussian-noise models (std 1) at 10 % and 30 % malicious; FedAvg vs the `bcs-fl` filter "
        "(cosine threshold 0, loss margin 0.5). In-process engine; recall = share of attackers the filter rejected, "
        "accepted = updates averaged in the last round.",
        "",
        *curve_table(runs, label, rounds),
        "",
        "Paper numbers: n/a (none available: docs/design.md#paper-setups-and-reference-numbers).",
        "",
        f"Plot: `bcsfl-{tag}.png`.",
    ]
    write_markdown(f"bcsfl-{tag}", lines)
    write_json(f"bcsfl-{tag}", [{"key": r.key, **summary(r.result)} for r in runs if r.result])
    plot_curves(RESULTS / f"bcsfl-{tag}.png", [(a, [r for r in runs if r.key[0] == a]) for a in ATTACKS], label)
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    sweep_main(run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    main()
