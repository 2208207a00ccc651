"""`fedledger bench NAME [--full]`: run one benchmark (or the quick set of all of them); results
land in docs/results/ as a markdown table and a PNG plot."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer

from fedledger.commands.errors import fail

__all__ = ["BENCHMARKS", "QUICK_ORDER", "bench"]

# name -> (module, has run(full=...)); the older scripts only have an argparse `main()`.
BENCHMARKS: dict[str, tuple[str, bool]] = {
    "bvfb": ("benchmarks.bvfb", True),
    "robustness": ("benchmarks.robustness", True),
    "bpcv": ("benchmarks.bpcv", True),
    "llbcfl": ("benchmarks.llbcfl", True),
    "bcsfl": ("benchmarks.bcsfl", True),
    "modelchain": ("benchmarks.modelchain", True),
    "bvfb-readings": ("benchmarks.bvfb_readings", True),
    "performance": ("benchmarks.performance", True),
    "overhead": ("benchmarks.overhead", True),
    "gas": ("benchmarks.gas", False),
    "storage": ("benchmarks.storage", False),
    "ringsig-gas": ("benchmarks.ringsig_gas", False),
}
# Cheap chain/storage measurements first (they fail fast if the set-up is broken), then the
# full-stack runs, then the ML sweeps, longest last.
QUICK_ORDER = [
    "gas",
    "ringsig-gas",
    "storage",
    "overhead",
    "performance",
    "modelchain",
    "bcsfl",
    "llbcfl",
    "bpcv",
    "bvfb",
    "bvfb-readings",
    "robustness",
]


def _runner(name: str, full: bool) -> Callable[[], object]:
    module_name, has_run = BENCHMARKS[name]
    # benchmarks/ is a top-level directory of the checkout, not part of the installed package:
    # the console script does not put the checkout on sys.path, so do it here.
    from fedledger.core.paths import project_root

    root = str(project_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module(module_name)
    if has_run:
        return lambda: module.run(full=full)

    def legacy() -> None:
        # These scripts read sys.argv: give them their defaults, whatever `fedledger` was called with.
        saved = sys.argv
        sys.argv = [module_name]
        try:
            module.main()
        finally:
            sys.argv = saved

    return legacy


def bench(
    name: Annotated[str, typer.Argument(help="quick, " + ", ".join(BENCHMARKS))],
    full: Annotated[
        bool, typer.Option("--full", help="the paper's whole grid (hours on 2 cores) instead of the quick set")
    ] = False,
) -> None:
    """Run a benchmark; writes docs/results/<name>-<quick|full>.md and .png (see docs/results/README.md)."""
    from rich.console import Console

    console = Console(stderr=True)
    if name != "quick" and name not in BENCHMARKS:
        fail(f"unknown benchmark {name!r}; choose one of: quick, {', '.join(BENCHMARKS)}")
    import torch

    torch.set_num_threads(1)  # the box is shared (CI, other runs): no OpenMP oversubscription
    names = QUICK_ORDER if name == "quick" else [name]
    t0 = time.perf_counter()
    failed: list[str] = []
    for i, n in enumerate(names, 1):
        if len(names) > 1:
            console.rule(
                f"[bold]bench {i}/{len(names)}: {n}{' (full)' if full else ''}  [{(time.perf_counter() - t0) / 60:.1f} min so far]"
            )
        started = time.perf_counter()
        try:
            _runner(n, full)()
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not lose the others' results
            if len(names) == 1:
                raise
            failed.append(n)
            console.print(f"[red]{n} failed:[/red] {type(exc).__name__}: {exc}")
        console.print(f"{n}: {time.perf_counter() - started:.0f} s")
    console.print(
        f"done in {(time.perf_counter() - t0) / 60:.1f} min; results in docs/results/"
        + (f"; [red]failed: {', '.join(failed)}[/red]" if failed else "")
    )
    if failed:
        raise typer.Exit(code=1)
