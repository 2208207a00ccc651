"""BVFB under both readings of "E = 5 local iterations", side by side with the paper's Tables 1-2,
and the paper's Figure 3 (training-behaviour honesty per round) and Figure 5 (accuracy per round at
70 % poisoned nodes) for each reading.

The paper defines a local iteration as one mini-batch SGD step (Definition 2, Eq. 2, Algorithm 1),
so E = 5 is 5 steps (`steps`); the earlier results ran 5 local epochs (`epochs`). Both grids are the
paper's: MLP, 20 nodes, 20 rounds, 0-90 % poisoned nodes, label flipping and backdoor, Krum, Trimmed
Mean, Median and BVFB. Every federation is a stored cell in `docs/results/cells/bvfb/` (the epoch
reading's are the `--full` grid's), so this resumes and `--report-only` runs nothing.

Run: `python -m benchmarks.bvfb_readings [--full] [--rounds N] [--rates ...] [--report-only]`; writes
docs/results/bvfb-readings-<tag>.md/.json and bvfb-fig3-<reading>-<tag>.png, bvfb-fig5-<reading>-<tag>.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks._common import (
    CELLS,
    RESULTS,
    Run,
    box,
    command_line,
    fmt,
    run_grid,
    summary,
    timing,
    write_json,
    write_markdown,
)
from benchmarks.bvfb import (
    ATTACK_TEXT,
    ATTACKS,
    FULL_RATES,
    LABEL,
    PAPER_DEFENCES,
    PAPER_TABLE_NAME,
    PAPER_TABLES,
    READINGS,
    grid,
    paper_accuracy,
)
from fedledger.experiment import ExperimentResult

FIG5_RATE = 0.7  # the paper's Figure 5: "the poisoning rate of 70 %"
FIG3_RATES = (0.3, 0.7)  # the paper does not say which rate its Figure 3 shows: two, below and above half
THETA = 0.6  # the paper's threshold
QUICK_RATES = [0.0, 0.7]  # a smoke test: Figure 5's rate


def stored_by_config(runs: Sequence[Run], cells: Path) -> dict[str, int]:
    """Fill the runs still empty from cells stored under a name of older code but with the very same config
    (the engine changed since: `python -m benchmarks.rekey OLD --verify-rounds N` re-checks them and renames
    them). Returns {commit that stored them: how many}, for the report to say so."""
    wanted = {json.dumps(asdict(r.cfg), sort_keys=True, default=str): r for r in runs if r.result is None}
    found: dict[str, int] = {}
    for path in sorted(cells.glob("*.json")) if wanted else []:
        try:
            data = json.loads(path.read_text())
            key = json.dumps(data["config"], sort_keys=True, default=str)
        except (OSError, ValueError, KeyError):
            continue
        run = wanted.pop(key, None)
        if run is not None:
            run.result = ExperimentResult.from_dict(data)
            run.extra["stored_by"] = data.get("commit", "unknown")
            found[run.extra["stored_by"]] = found.get(run.extra["stored_by"], 0) + 1
    return found


def _find(runs: Sequence[Run], attack: str, rate: float, d: str) -> Run | None:
    key = ("mlp", "none" if rate == 0 else attack, f"{rate:.0%}", d)
    return next((r for r in runs if r.key == key and r.result), None)


def honesty(run: Run | None) -> list[tuple[int, list[float], list[float]]]:
    """Per round: (round, BH of the honest nodes, BH of the malicious nodes), the round's reference left out
    (it verifies itself: BH 1 by definition). BVFB federations only; [] for anything else."""
    if run is None or run.result is None or run.cfg.defence != "bvfb":
        return []
    bad = set(run.result.malicious)
    out = []
    for rr in run.result.rounds:
        ref = rr.metrics.get("reference")
        scores = {int(k): v for k, v in rr.scores.items() if int(k) != ref}
        out.append(
            (rr.round, [v for k, v in scores.items() if k not in bad], [v for k, v in scores.items() if k in bad])
        )
    return out


def passed(run: Run | None) -> tuple[float | None, float | None]:
    """Over every round: the share of honest nodes (reference left out) with BH > theta, and of malicious ones."""
    rows = honesty(run)
    hon = [v for _, h, _ in rows for v in h]
    mal = [v for _, _, m in rows for v in m]
    share = lambda xs: sum(v > THETA for v in xs) / len(xs) if xs else None  # noqa: E731 - local one-liner
    return share(hon), share(mal)


def report(
    by_reading: dict[str, list[Run]],
    rates: Sequence[float],
    rounds: int,
    seed: int,
    wall: str,
    cmd: str,
    tag: str,
    older: dict[str, int] | None = None,
) -> list[str]:
    """Markdown: the paper's numbers beside both readings, then the figures' summaries."""
    lines = [
        "# BVFB: both readings of the paper's local iterations, beside its Tables 1-2",
        "",
        f"Command: `{cmd}`; seed {seed}; {wall}; this box: {box()}.",
        "",
        "Both grids: MNIST, 20 clients (IID, 3,000 each), MLP 784-256-128-10 sigmoid, SGD lr 0.1, batch 32, "
        f"**{rounds} rounds**, the paper's four methods, in-process engine. The readings differ only in local "
        "training:",
        "",
        *[f"- `{name}`: {text}." for name, text in READINGS.items()],
        "",
        "The paper defines a local iteration as one mini-batch SGD step (Definition 2, Eq. 2, Algorithm 1), and its "
        "behaviour pace divides the change of the weights by lr x E, which is the mean gradient only if each "
        "iteration is one step: `steps` is the paper read literally. It does not give its batch size (32 here). "
        "`epochs` is what the earlier results ran (`bvfb-full.md`).",
        "",
    ]
    if older:
        lines += [
            f"{sum(older.values())} federation(s) are read from cells stored by older code with the same config "
            f"(commits {', '.join(sorted(older))}); the engine's code has changed since, and "
            "`python -m benchmarks.rekey OLD_CHECKOUT --verify-rounds N` re-checks and renames them.",
            "",
        ]
    for attack in ATTACKS:
        lines += [
            f"## {ATTACK_TEXT[attack]}: accuracy after round {rounds} (paper: {PAPER_TABLE_NAME[attack]})",
            "",
            "| malicious | "
            + " | ".join(f"{LABEL[d]} epochs | {LABEL[d]} steps | {LABEL[d]} paper" for d in PAPER_DEFENCES)
            + " |",
            "|---:|" + "---:|" * (3 * len(PAPER_DEFENCES)),
        ]
        for rate in rates:
            row = []
            for d in PAPER_DEFENCES:
                for reading in READINGS:
                    run = _find(by_reading[reading], attack, rate, d)
                    row.append(fmt(run.result.final_accuracy) if run and run.result else "not run")
                row.append(paper_accuracy(attack, rate, d))
            lines.append(f"| {rate:.0%} | " + " | ".join(row) + " |")
        lines += [
            "",
            "The paper's Trimmed Mean is blank from 50 % (it says the rule cannot be used once more than half the "
            "nodes are attacked); ours trims the true number of attackers, capped at 9 of 20, so from 50 % it equals "
            "Median.",
            "",
        ]
        if attack == "backdoor":
            lines += [
                "Backdoor success (not in the paper, which reports accuracy only) after the last round:",
                "",
                "| malicious | " + " | ".join(f"{LABEL[d]} epochs | {LABEL[d]} steps" for d in PAPER_DEFENCES) + " |",
                "|---:|" + "---:|" * (2 * len(PAPER_DEFENCES)),
            ]
            for rate in rates:
                if rate == 0:
                    continue
                row = []
                for d in PAPER_DEFENCES:
                    for reading in READINGS:
                        run = _find(by_reading[reading], attack, rate, d)
                        row.append(fmt(run.result.rounds[-1].asr, 3) if run and run.result else "not run")
                lines.append(f"| {rate:.0%} | " + " | ".join(row) + " |")
            lines.append("")
    lines += [
        "## Figure 3: training-behaviour honesty (BH) of honest and malicious nodes per round",
        "",
        "The paper plots BH per node under label flipping and backdoor without saying the poisoning rate, sets "
        f"theta = {THETA} from it and states that this threshold identifies more than 90 % of the honest nodes (no "
        "per-round numbers). Ours, at "
        + " and ".join(f"{r:.0%}" for r in FIG3_RATES)
        + ": the share of BH values above theta over all rounds (the round's reference, BH 1 by definition, left out):",
        "",
        "| reading | attack | malicious | honest above theta | malicious above theta |",
        "|---|---|---:|---:|---:|",
    ]
    for reading in READINGS:
        for attack in ATTACKS:
            for rate in FIG3_RATES:
                hon, mal = passed(_find(by_reading[reading], attack, rate, "bvfb"))
                lines.append(f"| {reading} | {attack} | {rate:.0%} | {fmt(hon, 3)} | {fmt(mal, 3)} |")
    lines += [
        "",
        "Plots: " + ", ".join(f"`{fig3_png(r, tag)}`" for r in READINGS) + " (dots: one node in one round; lines: "
        "the round's mean).",
        "",
        f"## Figure 5: accuracy per round at {FIG5_RATE:.0%} poisoned nodes",
        "",
        "The paper plots accuracy per round for its four methods at 70 % under both attacks and gives no per-round "
        "numbers; it says Krum and Median are below BVFB in almost every round and BVFB converges faster. Its round-20 "
        "values are Tables 1-2's 70 % row, drawn as stars at the last round. Ours, rounds 1 / 5 / 10 / last:",
        "",
        "| reading | attack | " + " | ".join(LABEL[d] for d in PAPER_DEFENCES) + " |",
        "|---|---|" + "---|" * len(PAPER_DEFENCES),
    ]
    for reading in READINGS:
        for attack in ATTACKS:
            row = []
            for d in PAPER_DEFENCES:
                run = _find(by_reading[reading], attack, FIG5_RATE, d)
                if not run or not run.result:
                    row.append("not run")
                    continue
                acc = [r.accuracy for r in run.result.rounds]
                picks = sorted({1, 5, 10, len(acc)} & set(range(1, len(acc) + 1)))
                row.append(" / ".join(fmt(acc[i - 1], 3) for i in picks))
            lines.append(f"| {reading} | {attack} | " + " | ".join(row) + " |")
    lines += ["", "Plots: " + ", ".join(f"`{fig5_png(r, tag)}`" for r in READINGS) + ".", ""]
    return lines


def fig3_png(reading: str, tag: str) -> str:
    return f"bvfb-fig3-{reading}-{tag}.png"


def fig5_png(reading: str, tag: str) -> str:
    return f"bvfb-fig5-{reading}-{tag}.png"


def plot_fig3(runs: Sequence[Run], reading: str, tag: str) -> None:
    """BH of every non-reference node per round: honest and malicious apart, theta drawn; a row per rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(FIG3_RATES), len(ATTACKS), figsize=(5.2 * len(ATTACKS), 3.4 * len(FIG3_RATES)))
    for row, rate in zip(axes, FIG3_RATES, strict=True):
        for ax, attack in zip(row, ATTACKS, strict=True):
            rows = honesty(_find(runs, attack, rate, "bvfb"))
            for which, colour, marker in ((1, "tab:blue", "o"), (2, "tab:red", "x")):
                per_round = [(r[0], r[1] if which == 1 else r[2]) for r in rows]
                xs = [rnd + (0.12 if which == 2 else -0.12) for rnd, bh in per_round for _ in bh]
                ys = [v for _, bh in per_round for v in bh]
                name = "honest" if which == 1 else "malicious"
                ax.scatter(xs, ys, s=9, alpha=0.45, color=colour, marker=marker, label=name)
                means = [(rnd, sum(bh) / len(bh)) for rnd, bh in per_round if bh]
                if means:
                    ax.plot(*zip(*means, strict=True), color=colour, lw=1.2)
            ax.axhline(THETA, color="black", ls="--", lw=0.8, label=f"theta {THETA}")
            if not rows:
                ax.text(0.5, 0.5, "not run yet", ha="center", va="center", transform=ax.transAxes, color="grey")
            ax.set_title(f"{reading}: {attack}, {rate:.0%} malicious", fontsize=10)
            ax.set_xlabel("round")
            ax.set_ylabel("BH")
            ax.set_ylim(-0.3, 1.05)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(RESULTS / fig3_png(reading, tag), dpi=110)
    plt.close(fig)


def plot_fig5(runs: Sequence[Run], reading: str, tag: str) -> None:
    """Accuracy per round at FIG5_RATE for the paper's four methods; the paper's round-20 values as stars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ATTACKS), figsize=(5.2 * len(ATTACKS), 3.8), squeeze=False)
    for ax, attack in zip(axes[0], ATTACKS, strict=True):
        last = 0
        for d in PAPER_DEFENCES:
            run = _find(runs, attack, FIG5_RATE, d)
            colour = None
            if run and run.result:
                xs = [0] + [r.round for r in run.result.rounds]
                ys = [run.result.initial_accuracy] + [r.accuracy for r in run.result.rounds]
                (line,) = ax.plot(xs, ys, marker="o", ms=3, label=LABEL[d])
                colour, last = line.get_color(), max(last, xs[-1])
            value = PAPER_TABLES[attack][d][round(FIG5_RATE * 10)]
            if value is not None:
                ax.plot([20], [value], marker="*", ms=11, ls="", color=colour, label=f"{LABEL[d]} paper (round 20)")
        ax.set_title(f"{reading}: {attack}, {FIG5_RATE:.0%} malicious", fontsize=10)
        ax.set_xlabel("round")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / fig5_png(reading, tag), dpi=110)
    plt.close(fig)


def run(
    *,
    full: bool = False,
    rounds: int | None = None,
    rates: Sequence[float] | None = None,
    seed: int = 0,
    tag: str | None = None,
    report_only: bool = False,
    argv: Sequence[str] | None = None,
) -> list[str]:
    """Both readings' grids (quick: rates 0/70 %, 2 rounds; full: 0-90 %, 20 rounds), stored as cells
    and resumed; write the side-by-side table, Figures 3 and 5 for each reading and the JSON."""
    rounds = rounds or (20 if full else 2)
    rates = list(rates if rates is not None else (FULL_RATES if full else QUICK_RATES))
    tag = tag or ("full" if full else "quick")
    by_reading = {r: grid(["mlp"], rounds, rates, ATTACKS, PAPER_DEFENCES, seed, r) for r in READINGS}
    everything = [run for runs in by_reading.values() for run in runs]
    # what the current code has stored, then what older code stored for the same configs, then run the rest
    wall = run_grid(f"bvfb readings ({tag})", everything, cells=CELLS / "bvfb", run_missing=False)
    older = stored_by_config(everything, CELLS / "bvfb")
    if not report_only:
        missing = [r for r in everything if r.result is None]
        wall += run_grid(f"bvfb readings ({tag})", missing, cells=CELLS / "bvfb")
    cmd = command_line("benchmarks.bvfb_readings", argv) if argv is not None else "fedledger bench bvfb-readings"
    lines = report(by_reading, rates, rounds, seed, timing(everything, wall, True), cmd, tag, older)
    write_markdown(f"bvfb-readings-{tag}", lines)
    data: list[dict[str, Any]] = []
    for reading, runs in by_reading.items():
        data += [{"reading": reading, "key": r.key, **summary(r.result)} for r in runs if r.result]
        plot_fig3(runs, reading, tag)
        plot_fig5(runs, reading, tag)
    write_json(f"bvfb-readings-{tag}", data)
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="rates 0-90 %%, 20 rounds (152 federations, resumable)")
    p.add_argument("--rounds", type=int)
    p.add_argument("--rates", help="comma-separated fractions, e.g. 0,0.3,0.7")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag")
    p.add_argument("--report-only", action="store_true", help="write the report from stored cells; run none")
    a = p.parse_args(argv)
    rates = [float(x) for x in a.rates.split(",")] if a.rates else None
    lines = run(
        full=a.full,
        rounds=a.rounds,
        rates=rates,
        seed=a.seed,
        tag=a.tag,
        report_only=a.report_only,
        argv=sys.argv[1:] if argv is None else argv,
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
