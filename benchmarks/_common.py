"""Shared plumbing of the paper benchmarks: run a grid of in-process federations with one
progress bar, and write the markdown table + PNG under docs/results/.

Every benchmark reuses `fedledger.experiment.run_experiment` (no training or defence code here).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks._fingerprint import normalised, sources_fingerprint
from fedledger.core.paths import project_root
from fedledger.experiment import ExperimentConfig, ExperimentResult, RoundResult, run_experiment

__all__ = [
    "CELLS",
    "RESULTS",
    "Run",
    "cell_id",
    "command_line",
    "engine_fingerprint",
    "engine_sources",
    "fmt",
    "progress_bar",
    "run_grid",
    "still_running",
    "timing",
    "write_json",
    "write_markdown",
]

RESULTS = project_root() / "docs" / "results"
CELLS = RESULTS / "cells"  # finished federations of the long grids, one JSON each (see run_grid)
# What run_experiment's numbers depend on besides the defence: a change to any of these files
# retires every cell. A defence counts through its own module and the `fedledger.core.defences` modules it
# imports (see `engine_sources`), so fixing one defence does not retire the other defences' cells;
# fedledger/core/models.py counts only through the model a cell uses, and an attack outside
# `standard.py` only through the cells that use it (`ATTACK_SOURCES`, see `cell_id`). The registry
# (fedledger/core/defences/__init__.py) only maps names to classes, so adding a defence retires nothing.
ENGINE_SOURCES = (
    "fedledger/core/learning",
    "fedledger/core/attacks/__init__.py",
    "fedledger/core/attacks/standard.py",
    "fedledger/core/protocol/validation.py",
    "fedledger/core/protocol/rules.py",
    "fedledger/experiment.py",
    "fedledger/core/data.py",
    "fedledger/core/metrics.py",
    "fedledger/core/weights.py",
    "fedledger/core/defences/base.py",
    "fedledger/core/defences/_aggregate.py",
)

# Attacks kept out of ENGINE_SOURCES: their own code and the defence rule they target count only
# for the cells that run them (a change to root-guard re-runs the adaptive attack's cells under
# every defence, since the attack optimises against that rule).
ATTACK_SOURCES: dict[str, tuple[str, ...]] = {"adaptive": ("fedledger/core/attacks/adaptive.py",)}
ATTACK_TARGETS: dict[str, str] = {"adaptive": "root-guard"}


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
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    t0 = time.perf_counter()
    with Progress(
        TextColumn(f"[bold]{title}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[now]}"),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(title, total=total, now="")

        class _Handle:
            def advance(self, n: int = 1, now: str = "") -> None:
                bar.update(task, advance=n, now=now)
                if not console.is_terminal:
                    done = int(bar.tasks[0].completed)
                    print(
                        f"{title}: {done}/{total} {now} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True
                    )

            def note(self, now: str) -> None:
                bar.update(task, now=now)

        yield _Handle()


def _defence_modules(defence: str) -> list[Path]:
    """The module of `defence` and every `fedledger.core.defences` module it imports, transitively."""
    import ast
    import inspect

    from fedledger.core.defences import defence_class

    todo, seen = [Path(inspect.getfile(defence_class(defence))).resolve()], set[Path]()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fedledger.core.defences."):
                todo.append(path.parent / f"{node.module.rsplit('.', 1)[1]}.py")
    return sorted(seen)


def engine_sources(defence: str) -> list[Path]:
    """Every source file a federation with `defence` depends on (except the model, see `cell_id`)."""
    root = project_root()
    files: set[Path] = set()
    for entry in ENGINE_SOURCES:
        path = root / entry
        files.update(p.resolve() for p in (path.rglob("*.py") if path.is_dir() else [path]))
    files.update(_defence_modules(defence))
    return sorted(files)


def engine_fingerprint(defence: str) -> str:
    """A digest of what the engine's code for `defence` does (`engine_sources`, reduced by
    `benchmarks._fingerprint`), so a stored cell is reused only by code that behaves the same;
    moving, reformatting or re-importing a module keeps the cells."""
    return sources_fingerprint(engine_sources(defence))


def _model_source(spec: str) -> str:
    """The code that builds model `spec`: its factory and the shared weight helpers."""
    import inspect

    from fedledger.core import models

    factory = models.MODELS.get(spec)
    parts: list[Any] = [models.create_model, models.get_weights, models.set_weights] + ([factory] if factory else [])
    return "\0".join(normalised(inspect.getsource(f)) for f in parts)


def cell_id(cfg: ExperimentConfig, fingerprint: str) -> str:
    """The name of a federation's stored result: its whole config, the engine's code
    (`fingerprint`) and the code of its model."""
    text = json.dumps(asdict(cfg), sort_keys=True, default=str) + fingerprint + _model_source(cfg.model)
    attack = (cfg.attack or "none").partition("?")[0]
    if attack in ATTACK_SOURCES:
        files = [project_root() / f for f in ATTACK_SOURCES[attack]] + _defence_modules(ATTACK_TARGETS[attack])
        text += sources_fingerprint(files)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _claim(lock: Path) -> bool:
    """Take a cell for this process; a lock left by a process that no longer runs is taken over."""
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(lock.read_text().strip() or 0), 0)
            return False  # another live worker has it
        except (ProcessLookupError, ValueError):
            lock.unlink(missing_ok=True)
            return _claim(lock)
        except PermissionError:
            return False
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    return True


def _load_cell(path: Path) -> ExperimentResult | None:
    try:
        return ExperimentResult.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: recompute rather than report it


def run_grid(title: str, runs: Sequence[Run], cells: Path | None = None, run_missing: bool = True) -> float:
    """Run every federation of the grid in turn (one process, one torch thread: the box is
    shared), filling `run.result`; returns the wall time in seconds.

    With `cells`, every finished federation is stored there as `<cell_id>.json` and a stored one is
    loaded instead of run again, so a grid of many hours survives a stop and resumes where it was;
    several processes may work on the same grid (a `.lock` file marks a cell being run). Cells that
    another process is still running are left empty (`result` None) and reported as not run.
    `run_missing=False` only loads the stored cells.
    """
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    # one fingerprint per defence (each reads and reduces every engine source: ~1 s)
    fingerprints = {d: engine_fingerprint(d) for d in {r.cfg.defence for r in runs}} if cells is not None else {}

    def stored(run: Run) -> Path:
        assert cells is not None
        return cells / f"{cell_id(run.cfg, fingerprints[run.cfg.defence])}.json"

    todo = list(runs)
    if cells is not None:
        cells.mkdir(parents=True, exist_ok=True)
        for run in runs:
            run.result = _load_cell(stored(run))
        todo = [r for r in runs if r.result is None] if run_missing else []
    with progress_bar(title, sum(r.cfg.rounds for r in todo)) as bar:
        for run in todo:
            label = " ".join(str(k) for k in run.key)
            path = stored(run) if cells is not None else None
            if path is not None:
                lock = path.with_suffix(".lock")
                if not _claim(lock):
                    bar.advance(run.cfg.rounds, f"{label}: another process runs it")
                    continue
                if (done := _load_cell(path)) is not None:  # another process finished it since we looked
                    lock.unlink(missing_ok=True)
                    run.result = done
                    bar.advance(run.cfg.rounds, f"{label}: done by another process")
                    continue
            bar.note(label)

            def on_round(rr: RoundResult, label: str = label) -> None:
                bar.advance(1, f"{label} r{rr.round} acc {rr.accuracy:.3f}")

            try:
                run.result = run_experiment(run.cfg, progress=on_round)
                if path is not None:
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text(json.dumps({**run.result.to_dict(), "commit": _revision()}))
                    tmp.replace(path)  # atomic: a reader sees the whole cell or none
            finally:
                if path is not None:
                    lock.unlink(missing_ok=True)
    if cells is not None:  # pick up what other processes finished meanwhile
        for run in runs:
            if run.result is None:
                run.result = _load_cell(stored(run))
    return time.perf_counter() - t0


def timing(runs: Sequence[Run], wall: float, resumed: bool) -> str:
    """Wall time of this invocation, or for a resumable grid also the compute time its federations
    took (they may come from several processes and sessions)."""
    if not resumed:
        return f"wall time {wall / 60:.1f} min"
    done = [r.result for r in runs if r.result]
    return (
        f"{len(done)} of {len(runs)} federations done; their compute time {sum(r.seconds for r in done) / 60:.1f} min "
        f"(summed over the stored federations; this invocation {wall / 60:.1f} min)"
    )


def still_running(runs: Sequence[Run]) -> list[str]:
    """The report of a resumable grid whose other worker has not finished yet ([] when all are in)."""
    waiting = sum(r.result is None for r in runs)
    if not waiting:
        return []
    return [
        f"{waiting} federation(s) are still being run by another process: it writes the report when it "
        "finishes (or re-run this command then)."
    ]


def fmt(x: float | None, digits: int = 4) -> str:
    """A number for a table, '-' for none."""
    return "-" if x is None else f"{x:.{digits}f}"


def box() -> str:
    """One line about the machine the numbers come from."""
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, torch {torch.__version__}, 1 torch thread, commit {_revision()}"
    )


def _revision() -> str:
    """Which code produced the numbers."""
    import subprocess

    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=project_root(), capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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


def curve_table(
    runs: Sequence[Run], label: dict[tuple[Any, ...], str], rounds: int, show: Sequence[int] | None = None
) -> list[str]:
    """Markdown: one row per run, test accuracy after selected rounds, final accuracy, DP epsilon
    (per client, after the last round; Laplace: basic composition), detection and wall time."""
    cols = list(
        show
        or (
            range(1, rounds + 1)
            if rounds <= 10
            else sorted({1, 2, 5, 10, 20, 50, 100, 200, 500, rounds} & set(range(1, rounds + 1)))
        )
    )
    out = [
        "| run | "
        + " | ".join(f"r{c}" for c in cols)
        + " | final | eps (last) | recall r-last | accepted r-last | wall s |",
        "|---|" + "---:|" * (len(cols) + 5),
    ]
    for run in runs:
        res = run.result
        if res is None:
            continue
        acc = [fmt(res.rounds[c - 1].accuracy) for c in cols]
        last = res.rounds[-1]
        out.append(
            f"| {label[run.key]} | " + " | ".join(acc) + f" | **{fmt(res.final_accuracy)}** | {fmt(last.epsilon, 1)} "
            f"| {fmt(last.recall, 2)} | {len(last.accepted)}/{len(last.participants)} | {res.seconds:.0f} |"
        )
    return out


def plot_curves(path: Path, panels: Sequence[tuple[str, Sequence[Run]]], label: dict[tuple[Any, ...], str]) -> None:
    """Accuracy per round, one panel per group of runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), dpi=110, squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels, strict=False):
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
    print(
        "\n".join(
            run(full=a.full, rounds=a.rounds, seed=a.seed, tag=a.tag, argv=sys.argv[1:] if argv is None else argv)
        )
    )
