"""Shared plumbing of the paper benchmarks: run a grid of in-process federations with one
progress bar, and write the markdown table + PNG under docs/results/.

Every benchmark reuses `fedledger.experiment.run_experiment` (no training or defence code here).
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fedledger.experiment import ExperimentConfig, ExperimentResult, RoundResult, run_experiment
from fedledger.paths import project_root

__all__ = ["RESULTS", "Run", "command_line", "fmt", "progress_bar", "run_grid", "write_json", "write_markdown"]

RESULTS = project_root() / "docs" / "results"


@dataclass
class Run:
    """One cell of a grid: a label (row key) and the federation to run."""

    key: tuple[Any, ...]
    cfg: ExperimentConfig
    result: ExperimentResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """The exact command that reproduces this run (for the results file)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python", "-m", module, *map(shlex.quote, args)])


@contextmanager
def progress_bar(title: str, total: int) -> Iterator[Any]:
    """A rich progress bar (rounds done / rounds total) that prints to stderr; when stderr is not a
    terminal (nohup, CI logs), where rich would draw only at the end, a plain line per step."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
    t0 = time.perf_counter()
    with Progress(
        TextColumn(f"[bold]{title}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
        TimeRemainingColumn(), TextColumn("{task.fields[now]}"), console=console, transient=False,
    ) as bar:
        task = bar.add_task(title, total=total, now="")

        class _Handle:
            def advance(self, n: int = 1, now: str = "") -> None:
                bar.update(task, advance=n, now=now)
                if not console.is_terminal:
                    done = int(bar.tasks[0].completed)
                    print(f"{title}: {done}/{total} {now} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

            def note(self, now: str) -> None:
                bar.update(task, now=now)

        yield _Handle()


def run_grid(title: str, runs: Sequence[Run]) -> float:
    """Run every federation of the grid in turn (one process, one torch thread: the box is
    shared), filling `run.result`; returns the wall time in seconds."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with progress_bar(title, sum(r.cfg.rounds for r in runs)) as bar:
        for run in runs:
            label = " ".join(str(k) for k in run.key)
            bar.note(label)

            def on_round(rr: RoundResult, label: str = label) -> None:
                bar.advance(1, f"{label} r{rr.round} acc {rr.accuracy:.3f}")

            run.result = run_experiment(run.cfg, progress=on_round)
    return time.perf_counter() - t0


def fmt(x: float | None, digits: int = 4) -> str:
    """A number for a table, '-' for none."""
    return "-" if x is None else f"{x:.{digits}f}"


def box() -> str:
    """One line about the machine the numbers come from."""
    import os
    import subprocess

    try:  # which code produced the numbers
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=project_root(), capture_output=True,
                             text=True, timeout=10).stdout.strip() or "unknown"  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        rev = "unknown"
    return f"{os.cpu_count()} cores, {platform.machine()}, torch {torch.__version__}, 1 torch thread, commit {rev}"


def write_markdown(stem: str, lines: Sequence[str]) -> Path:
    """docs/results/<stem>.md"""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stem}.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


def write_json(stem: str, data: Any) -> Path:
    """docs/results/<stem>.json: the raw numbers behind a table (round by round)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stem}.json"
    path.write_text(json.dumps(data, indent=1, default=str))
    return path


def summary(result: ExperimentResult) -> dict[str, Any]:
    """The compact, JSON-friendly part of a run kept beside the tables."""
    return {
        "accuracy": [r.accuracy for r in result.rounds],
        "asr": [r.asr for r in result.rounds],
        "accepted": [len(r.accepted) for r in result.rounds],
        "precision": [r.precision for r in result.rounds],
        "recall": [r.recall for r in result.rounds],
        "epsilon": [r.epsilon for r in result.rounds],
        "seconds": result.seconds,
        "malicious": result.malicious,
    }


def curve_table(runs: Sequence[Run], label: dict[tuple[Any, ...], str], rounds: int,
                show: Sequence[int] | None = None) -> list[str]:  # fmt: skip
    """Markdown: one row per run, test accuracy after selected rounds, final accuracy, DP epsilon
    (per client, after the last round; Laplace: basic composition), detection and wall time."""
    cols = list(show or (range(1, rounds + 1) if rounds <= 10 else sorted({1, 2, 5, 10, 20, 50, 100, 200, 500, rounds} & set(range(1, rounds + 1)))))
    out = ["| run | " + " | ".join(f"r{c}" for c in cols) + " | final | eps (last) | recall r-last | accepted r-last | wall s |",
           "|---|" + "---:|" * (len(cols) + 5)]
    for run in runs:
        res = run.result
        if res is None:
            continue
        acc = [fmt(res.rounds[c - 1].accuracy) for c in cols]
        last = res.rounds[-1]
        out.append(f"| {label[run.key]} | " + " | ".join(acc) + f" | **{fmt(res.final_accuracy)}** | {fmt(last.epsilon, 1)} "
                   f"| {fmt(last.recall, 2)} | {len(last.accepted)}/{len(last.participants)} | {res.seconds:.0f} |")
    return out


def plot_curves(path: Path, panels: Sequence[tuple[str, Sequence[Run]]], label: dict[tuple[Any, ...], str]) -> None:
    """Accuracy per round, one panel per group of runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), dpi=110, squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels):
        for run in runs:
            if run.result is None:
                continue
            xs = [0] + [r.round for r in run.result.rounds]
            ys = [run.result.initial_accuracy] + [r.accuracy for r in run.result.rounds]
            ax.plot(xs, ys, marker="o" if len(xs) <= 25 else None, label=label[run.key])
        ax.set_title(title)
        ax.xaxis.get_major_locator().set_params(integer=True)  # rounds are whole numbers
        ax.set_xlabel("round")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def sweep_main(run: Any, description: str, argv: Sequence[str] | None = None) -> None:
    """The command line every sweep shares: --full, --rounds, --seed, --tag."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--full", action="store_true")
    p.add_argument("--rounds", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag")
    a = p.parse_args(argv)
    print("\n".join(run(full=a.full, rounds=a.rounds, seed=a.seed, tag=a.tag, argv=sys.argv[1:] if argv is None else argv)))
