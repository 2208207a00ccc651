"""Robustness grid (issue 22): every defence against every attack at 0-90 % attackers, IID and
non-IID, measured against the oracle (the perfect-defence limit: told who is malicious).

Quick grid: MNIST, MLP, 20 owners, 10 rounds; partitions IID, Dirichlet 0.5, Dirichlet 0.1;
attacks label flip, backdoor, ALIE, IPM and the adaptive attack against root-guard; 0/30/60/90 %
malicious (0 % runs once per partition and defence, with no attack). Per cell: final accuracy,
gap to the oracle in points, backdoor success, honest kept and attackers kept (share of the
honest / malicious submissions the defence accepted, averaged over rounds).

Resumable like the BVFB grid: every finished federation is kept in
`docs/results/cells/robustness/` (named by its config and the engine's code), so a stopped run
resumes, and the report lists what is done and says "not run" elsewhere. Cells run in priority
order: root-guard, oracle and FedAvg first, the most telling settings first.

`--full` adds the CNN and Fashion-MNIST (four dataset x model settings).

Run: `fedledger bench robustness [--full]` or `python -m benchmarks.robustness [--full] [--defences ...]
[--partitions iid,dir0.1] [--attacks ...] [--rates 0,0.6] [--report-only] [--timing]`; writes
docs/results/robustness.md/.png/.json.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks._common import CELLS, RESULTS, Run, box, command_line, fmt, run_grid, timing, write_json, write_markdown
from fedledger.experiment import ExperimentConfig, ExperimentResult

DEFENCES = ["root-guard", "oracle", "fedavg", "median", "multi-krum", "fltrust", "bvfb", "trust-root"]
PRIMARY = ["root-guard", "oracle"]  # run first (FedAvg at 0 % is the oracle: see grid)
ATTACKS = ["label-flip", "backdoor", "alie", "ipm", "adaptive"]
RATES = [0.0, 0.3, 0.6, 0.9]
# One local epoch a round (~94 SGD steps of batch 32 per owner): the grid is a few hundred
# federations on a shared 2-core box, and every defence sees the same updates either way.
LOCAL_EPOCHS = 1
QUICK_SETTINGS = [("mnist", "mlp")]
FULL_SETTINGS = [("mnist", "mlp"), ("mnist", "cnn"), ("fashion-mnist", "mlp"), ("fashion-mnist", "cnn")]
PARTITIONS: dict[str, dict[str, Any]] = {
    "iid": {"partition": "iid"},
    "dir0.5": {"partition": "dirichlet", "alpha": 0.5},
    "dir0.1": {"partition": "dirichlet", "alpha": 0.1},
}
LABEL = {
    "root-guard": "root guard (new)",
    "oracle": "oracle",
    "fedavg": "FedAvg",
    "median": "Median",
    "multi-krum": "Multi-Krum",
    "fltrust": "FLTrust",
    "bvfb": "BVFB",
    "trust-root": "trust root",
}
# Goal per cell (issue 22).
GAP = {"iid": 1.5, "dir0.5": 1.5, "dir0.1": 3.0}  # points below the oracle
MAX_ASR, MIN_HONEST, MAX_ATTACKERS, ZERO_GAP = 0.02, 0.90, 0.05, 0.5
# Most telling settings first (cheap ones early: ALIE/IPM attackers do not train), so a grid
# stopped early has answered the main questions.
PRIORITY = [
    ("iid", "none", 0.0),
    ("iid", "ipm", 0.9),
    ("iid", "alie", 0.9),
    ("iid", "label-flip", 0.6),
    ("iid", "backdoor", 0.6),
    ("dir0.1", "none", 0.0),
    ("dir0.1", "label-flip", 0.6),
    ("dir0.1", "backdoor", 0.6),
    ("iid", "adaptive", 0.6),
    ("iid", "label-flip", 0.9),
    ("iid", "backdoor", 0.9),
    ("dir0.1", "ipm", 0.9),
    ("dir0.1", "alie", 0.9),
    ("dir0.5", "none", 0.0),
    ("dir0.5", "label-flip", 0.6),
    ("dir0.5", "backdoor", 0.6),
    ("dir0.1", "adaptive", 0.6),
]


def config(
    setting: tuple[str, str], partition: str, attack: str, rate: float, defence: str, rounds: int, seed: int
) -> ExperimentConfig:
    """One federation of the grid."""
    dataset, model = setting
    return ExperimentConfig(
        dataset=dataset,
        model=model,
        clients=20,
        malicious=rate,
        attack=attack,
        defence=defence,
        rounds=rounds,
        lr=0.1,
        batch_size=32,
        local_epochs=LOCAL_EPOCHS,
        seed=seed,
        attack_kwargs={"model": model} if attack == "adaptive" else {},
        **PARTITIONS[partition],
    )


def _order(key: tuple[Any, ...]) -> tuple[int, int, int, int]:
    dataset, model, part, attack, rate, d = key
    where = (part, attack, rate)
    p = PRIORITY.index(where) if where in PRIORITY else len(PRIORITY) + int(10 * rate)
    first = 0 if d in PRIMARY else 1 if d == "fedavg" else 2
    return (FULL_SETTINGS.index((dataset, model)), first, p, DEFENCES.index(d) if d in DEFENCES else len(DEFENCES))


def grid(
    settings: Sequence[tuple[str, str]],
    partitions: Sequence[str],
    attacks: Sequence[str],
    rates: Sequence[float],
    defences: Sequence[str],
    rounds: int,
    seed: int,
) -> list[Run]:
    """Every (partition, attack, rate, defence) cell (rate 0: once, attack 'none'), in run order.
    With no attacker the oracle accepts everyone and averages exactly as FedAvg does (the same
    `fedavg_decision`), so FedAvg at 0 % is read from the oracle's federation, not run twice."""
    runs = []
    for st in settings:
        for part in partitions:
            for rate in rates:
                for attack in ["none"] if rate == 0 else attacks:
                    for d in defences:
                        if d == "fedavg" and rate == 0 and "oracle" in defences:
                            continue
                        cfg = config(st, part, attack, rate, d, rounds, seed)
                        runs.append(Run((*st, part, attack, rate, d), cfg))
    return sorted(runs, key=lambda r: _order(r.key))


def kept(res: ExperimentResult) -> tuple[float | None, float | None]:
    """(honest kept, attackers kept): share of honest / malicious submissions accepted, averaged over rounds."""
    hon, bad = [], []
    for rr in res.rounds:
        mal = set(rr.malicious_participants)
        h = [p for p in rr.participants if p not in mal]
        if h:
            hon.append(sum(p in rr.accepted for p in h) / len(h))
        if mal:
            bad.append(sum(p in rr.accepted for p in mal) / len(mal))
    return (statistics.fmean(hon) if hon else None, statistics.fmean(bad) if bad else None)


Setting = tuple[str, str]  # (dataset, model)


def _cell(runs: Sequence[Run], st: Setting, part: str, attack: str, rate: float, d: str) -> ExperimentResult | None:
    if d == "fedavg" and rate == 0:  # the oracle's federation (see grid)
        d = "oracle" if any(r.key[5] == "oracle" for r in runs) else d
    key = (*st, part, "none" if rate == 0 else attack, rate, d)
    return next((r.result for r in runs if r.key == key), None)


def verdict(runs: Sequence[Run], st: Setting, part: str, attack: str, rate: float, d: str) -> tuple[str, list[str]]:
    """('met' / 'missed' / 'pending', reasons) for the issue's goal in one cell."""
    res, orc = _cell(runs, st, part, attack, rate, d), _cell(runs, st, part, attack, rate, "oracle")
    if res is None or orc is None:
        return "pending", ["cell or its oracle not run yet"]
    why = []
    gap = 100 * (orc.final_accuracy - res.final_accuracy)
    if gap > GAP[part]:
        why.append(f"gap {gap:.1f} > {GAP[part]:g} pts")
    asr = res.rounds[-1].asr
    if asr is not None and asr > MAX_ASR:
        why.append(f"backdoor success {asr:.3f}")
    hk, ak = kept(res)
    if hk is not None and hk < MIN_HONEST:
        why.append(f"honest kept {hk:.2f}")
    if ak is not None and ak > MAX_ATTACKERS:
        why.append(f"attackers kept {ak:.2f}")
    if rate == 0:
        fed = _cell(runs, st, part, attack, rate, "fedavg")
        if fed is None:
            why.append("FedAvg at 0 % not run yet")
        elif 100 * (fed.final_accuracy - res.final_accuracy) > ZERO_GAP:
            why.append(f"{100 * (fed.final_accuracy - res.final_accuracy):.1f} pts below FedAvg")
    return ("met" if not why else "missed"), why


def report(
    runs: Sequence[Run],
    *,
    settings: Sequence[Setting],
    partitions: Sequence[str],
    attacks: Sequence[str],
    rates: Sequence[float],
    defences: Sequence[str],
    rounds: int,
    seed: int,
    wall: str,
    cmd: str,
    timing_line: str | None,
) -> list[str]:
    """Markdown: one table per partition (rows: attack x rate; per defence accuracy / gap / ASR / kept)."""
    done = sum(r.result is not None for r in runs)
    lines = [
        "# Robustness: defences vs attacks at 0-90 % attackers, IID and non-IID (issue 22)",
        "",
        f"Command: `{cmd}`; seed {seed}; {wall}; this box: {box()}.",
        "",
        f"{', '.join(f'{d} {m}' for d, m in settings)}  (models as in `fedledger.core.models`), 20 owners, {rounds} rounds, SGD lr 0.1, batch 32, {LOCAL_EPOCHS} local epoch a round; the miners' "
        "test set is 2,000 test images (root-guard evaluates on its first 500; FLTrust's root set is its first 100), "
        "accuracy is measured on the other 8,000. Attacks: label flip (y -> 9 - y), backdoor (3x3 trigger, target 0, "
        "half of each attacker's samples), ALIE (z_max), IPM (epsilon 0.5), adaptive (the honest mean plus 4 % own noise plus "
        "as much of its own flipped-label step as root-guard's rule lets through, judged on the attackers' own clean "
        "samples: `fedledger/core/attacks/adaptive.py`). An adaptive attacker that is kept carries the honest mean: "
        "what it costs is the gap to the oracle, not the share kept.",
        "",
        f"**{done} of {len(runs)} federations run.** Cell: accuracy / gap to the oracle (points) / honest kept / "
        "attackers kept (shares of submissions accepted, averaged over rounds); `bd` = backdoor success after the "
        "last round. `-` = not run yet. FedAvg at 0 % is the oracle's federation (with no attacker they average "
        "the same updates the same way).",
        "",
    ]
    if timing_line:
        lines += [timing_line, ""]
    for st, part in [(st, part) for st in settings for part in partitions]:
        lines += [
            f"## {st[0]}, {st[1]}, {part}",
            "",
            "| attack | malicious | " + " | ".join(LABEL.get(d, d) for d in defences) + " |",
            "|---|---:|" + "---|" * len(defences),
        ]
        for rate in rates:
            for attack in ["none"] if rate == 0 else attacks:
                row = []
                orc = _cell(runs, st, part, attack, rate, "oracle")
                for d in defences:
                    res = _cell(runs, st, part, attack, rate, d)
                    if res is None:
                        row.append("-")
                        continue
                    hk, ak = kept(res)
                    gap = (
                        ""
                        if orc is None or d == "oracle"
                        else f" / {100 * (orc.final_accuracy - res.final_accuracy):+.1f}"
                    )
                    bd = f" bd {res.rounds[-1].asr:.3f}" if res.rounds[-1].asr is not None else ""
                    row.append(f"{res.final_accuracy:.3f}{gap} / {fmt(hk, 2)} / {fmt(ak, 2)}{bd}")
                lines.append(f"| {attack} | {rate:.0%} | " + " | ".join(row) + " |")
        lines.append("")
    lines += [
        "## Goal, cell by cell (root guard)",
        "",
        f"Goal: gap to the oracle <= {GAP['iid']:g} pts (IID, Dirichlet 0.5) / <= {GAP['dir0.1']:g} pts (Dirichlet 0.1); "
        f"backdoor success <= {MAX_ASR:.0%}; honest kept >= {MIN_HONEST:.0%}; attackers kept <= {MAX_ATTACKERS:.0%}; "
        f"at 0 % within {ZERO_GAP:g} pts of FedAvg.",
        "",
    ]
    counts = {"met": 0, "missed": 0, "pending": 0}
    for st, part in [(st, part) for st in settings for part in partitions]:
        for rate in rates:
            for attack in ["none"] if rate == 0 else attacks:
                v, why = verdict(runs, st, part, attack, rate, "root-guard")
                counts[v] += 1
                if v != "pending":
                    where = f"{st[0]} {st[1]}, {part}, {attack}, {rate:.0%}"
                    lines.append(f"- {where}: **{v}**" + (f" ({'; '.join(why)})" if why else ""))
    lines += ["", f"Cells: {counts['met']} met, {counts['missed']} missed, {counts['pending']} not run yet."]
    lines += ["", "Plot: `robustness.png`. Round-by-round numbers: `robustness.json`."]
    return lines


def plot(
    runs: Sequence[Run],
    settings: Sequence[Setting],
    partitions: Sequence[str],
    attacks: Sequence[str],
    rates: Sequence[float],
    defences: Sequence[str],
) -> None:
    """Final accuracy vs malicious rate: one row per partition, one panel per attack."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(st, part) for st in settings for part in partitions]
    fig, axes = plt.subplots(
        len(rows), len(attacks), figsize=(3.6 * len(attacks), 3.0 * len(rows)), dpi=100, squeeze=False
    )
    for row, (st, part) in zip(axes, rows, strict=True):
        for ax, attack in zip(row, attacks, strict=True):
            for d in defences:
                xs, ys = [], []
                for rate in rates:
                    res = _cell(runs, st, part, attack, rate, d)
                    if res is not None:
                        xs.append(100 * rate)
                        ys.append(res.final_accuracy)
                if xs:
                    ax.plot(
                        xs,
                        ys,
                        marker="o",
                        label=LABEL.get(d, d),
                        lw=2.2 if d == "root-guard" else 1.0,
                        ls="--" if d == "oracle" else "-",
                    )
            ax.set_title(f"{st[0]} {st[1]}, {part}, {attack}", fontsize=9)
            ax.set_xlim(-3, 93)
            ax.set_ylim(0, 1.0)
            ax.grid(alpha=0.3)
            if not ax.lines:
                ax.text(0.5, 0.5, "not run yet", ha="center", va="center", transform=ax.transAxes, color="grey")
            ax.set_xlabel("malicious (%)", fontsize=8)
        row[0].set_ylabel("final accuracy")
    handles, labels = next(((a.get_legend_handles_labels()) for a in axes.flat if a.lines), ([], []))
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(RESULTS / "robustness.png")
    plt.close(fig)


def aggregation_time(owners: int = 100, repeats: int = 3) -> str:
    """Wall time of one root-guard aggregation of `owners` real MNIST MLP updates (2 local SGD steps
    each from a seeded model), best of `repeats`, one torch thread."""
    import torch

    from fedledger.core.data import client_data, load_dataset
    from fedledger.core.defences import ClientUpdate, Context, create_defence
    from fedledger.core.learning.training import TrainConfig, train_local
    from fedledger.core.models import create_model, get_weights

    torch.set_num_threads(1)
    ds = load_dataset("mnist")
    model = create_model("mlp", seed=0)
    g = get_weights(model)
    cfg = TrainConfig(lr=0.1, batch_size=32, local_steps=2)
    updates = []
    for k in range(owners):
        cd = client_data(ds, "iid", 0, owners, k)
        updates.append(
            ClientUpdate(k, train_local(model, g, cd.x_train, cd.y_train, cfg, seed=k).weights, len(cd.x_train))
        )
    # the task's training settings as the grid's (one local epoch): root-guard and FLTrust train
    # their root step for as many SGD steps as an owner with the median sample count (19 here)
    ctx = Context(
        round=1,
        global_weights=g,
        test_x=ds.x_test[:2000],
        test_y=ds.y_test[:2000],
        root_x=ds.x_test[:100],
        root_y=ds.y_test[:100],
        train_config=TrainConfig(lr=0.1, batch_size=32, local_epochs=LOCAL_EPOCHS),
    )
    took: dict[str, float] = {}
    for name in ("root-guard", "fedavg", "median", "multi-krum", "fltrust"):
        defence = create_defence(name)
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            defence.aggregate(updates, ctx)
            best = min(best, time.perf_counter() - t0)
        took[name] = best
    others = ", ".join(
        f"{LABEL.get(k, k)} {v:.2f} s (x{took['root-guard'] / v:.1f})" for k, v in took.items() if k != "root-guard"
    )
    return (
        f"Aggregation time, {owners} real MNIST MLP updates, best of {repeats}, one torch thread, one run on this box: "
        f"root-guard {took['root-guard']:.2f} s; {others} (root-guard's time as a multiple of each)."
    )


def run(
    *,
    full: bool = False,
    partitions: Sequence[str] | None = None,
    attacks: Sequence[str] | None = None,
    rates: Sequence[float] | None = None,
    defences: Sequence[str] | None = None,
    rounds: int = 10,
    seed: int = 0,
    report_only: bool = False,
    with_timing: bool = False,
    argv: Sequence[str] | None = None,
) -> list[str]:
    """Run (or resume) the grid, then write the report, plot and JSON; returns the report."""
    settings = FULL_SETTINGS if full else QUICK_SETTINGS
    partitions = list(partitions or PARTITIONS)
    attacks, rates, defences = (
        list(attacks or ATTACKS),
        list(rates if rates is not None else RATES),
        list(defences or DEFENCES),
    )
    runs = grid(settings, partitions, attacks, rates, defences, rounds, seed)
    wall = run_grid("robustness", runs, cells=CELLS / "robustness", run_missing=not report_only)
    timing_line = aggregation_time() if with_timing else None
    cmd = command_line("benchmarks.robustness", argv) if argv is not None else "fedledger bench robustness"
    lines = report(
        runs,
        settings=settings,
        partitions=partitions,
        attacks=attacks,
        rates=rates,
        defences=defences,
        rounds=rounds,
        seed=seed,
        wall=timing(runs, wall, True),
        cmd=cmd,
        timing_line=timing_line,
    )
    write_markdown("robustness", lines)
    write_json(
        "robustness",
        [
            {
                "key": r.key,
                "final_accuracy": r.result.final_accuracy,
                "kept": kept(r.result),
                "accuracy": [x.accuracy for x in r.result.rounds],
                "asr": [x.asr for x in r.result.rounds],
                "accepted": [x.accepted for x in r.result.rounds],
                "malicious": r.result.malicious,
            }
            for r in runs
            if r.result
        ],
    )
    plot(runs, settings, partitions, attacks, rates, defences)
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="add the CNN and Fashion-MNIST to the grid")
    p.add_argument("--defences", help="comma-separated defence names")
    p.add_argument("--partitions", help="comma-separated: iid,dir0.5,dir0.1")
    p.add_argument("--attacks", help="comma-separated attack names")
    p.add_argument("--rates", help="comma-separated fractions, e.g. 0,0.6")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report-only", action="store_true", help="write the report from the stored cells; run none")
    p.add_argument("--timing", action="store_true", help="also time one aggregation of 100 owners")
    a = p.parse_args(argv)

    def split(v: str | None) -> list[str] | None:
        return v.split(",") if v else None

    print(
        "\n".join(
            run(
                full=a.full,
                partitions=split(a.partitions),
                attacks=split(a.attacks),
                defences=split(a.defences),
                rates=[float(x) for x in a.rates.split(",")] if a.rates else None,
                rounds=a.rounds,
                seed=a.seed,
                report_only=a.report_only,
                with_timing=a.timing,
                argv=sys.argv[1:] if argv is None else argv,
            )
        )
    )


if __name__ == "__main__":
    main()
