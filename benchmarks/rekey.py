"""Carry the stored benchmark cells over to a new layout of the code, losing none that still holds.

    python -m benchmarks.rekey OLD_CHECKOUT

OLD_CHECKOUT is a checkout of the commit whose code named the cells (for example
`git worktree add ../old <commit>`). For every cell under `docs/results/cells/` this:

1. recomputes, with the OLD code, the cell's name from its stored config: a name that does not match
   was already stale there and is reported, not moved;
2. reduces the old and the current engine code for the cell's defence and model to what it does
   (`benchmarks._fingerprint`: syntax trees without imports and docstrings);
3. where both reductions are equal (only moves, imports, formatting or docs changed), renames the
   cell to its name under the current code;
4. where they differ, the code may still compute the same numbers (a refactor): with
   `--verify-rounds N`, the cheapest stored cell of each group (grid, defence, model, DP) is run
   again for its first N rounds with the current code, and only if every one of those rounds
   matches the stored one exactly (global-model digest, accepted set, scores, accuracy) are the
   group's cells renamed. Where they do not, the old code runs the same rounds on this machine:
   if it gives exactly what the current code gives, the code change moved nothing and the
   stored numbers came from another machine (a CPU or BLAS build sums floats in another order),
   so the group is renamed and the report says so; otherwise the group is reported as retired
   and left where it is.

`--removed FILE:QUALNAME` (repeatable) names a definition the new code deleted because nothing used
it (dead code: check with `git grep`, tests included). The old side reduces FILE as if QUALNAME
were not there (`benchmarks._fingerprint._remove`), so deleting dead code keeps the cells without
re-running any, while any other change still counts as one (retired, or checked by `--verify-rounds`). A QUALNAME the old file does not define is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path

import torch

from benchmarks._common import (
    ATTACK_SOURCES,
    ATTACK_TARGETS,
    CELLS,
    _defence_modules,
    _model_source,
    cell_id,
    engine_fingerprint,
)
from benchmarks._fingerprint import sources_fingerprint
from fedledger.core.paths import project_root
from fedledger.experiment import ExperimentResult, run_experiment

# What must match, round by round, for a re-run to count as the same computation (not timings).
_SAME = (
    "round",
    "accuracy",
    "loss",
    "participants",
    "accepted",
    "malicious_participants",
    "precision",
    "recall",
    "asr",
    "adopted",
    "scores",
    "digest",
    "epsilon",
)


def _rounds(result: ExperimentResult, n: int) -> list[dict[str, object]]:
    return [{k: v for k, v in asdict(r).items() if k in _SAME} for r in result.rounds[:n]]


def _first_difference(a: list[dict[str, object]], b: list[dict[str, object]]) -> str | None:
    for x, y in zip(a, b, strict=True):
        for key in _SAME:
            if x[key] != y[key]:
                return f"round {x['round']}: {key} {x[key]!r} != {y[key]!r}"
    return None


def _reproduces(path: Path, rounds: int, old: Path | None = None) -> tuple[bool, str]:
    """Run the stored cell's first `rounds` rounds with the current code; (same?, what differed).

    When the stored rounds differ and `old` (the checkout that named the cell) is given, the old
    code runs them too, on this machine: if it computes exactly what the current code computes,
    the code change moved no number and the difference is the machine's (another CPU or BLAS
    build wrote the cell), so the cell is kept and the report says so."""
    torch.set_num_threads(1)  # as `run_grid` ran it: a convolution's sums depend on the thread count
    stored = ExperimentResult.from_dict(json.loads(path.read_text()))
    n = min(rounds, len(stored.rounds))
    again = _rounds(run_experiment(replace(stored.config, rounds=n)), n)
    differs = _first_difference(_rounds(stored, n), again)
    digests = ", ".join(str(r["digest"])[:12] for r in again)
    if differs is None:
        return True, f"{n} rounds identical (digests {digests})"
    if old is None:
        return False, differs
    env = {**os.environ, "PYTHONPATH": str(old), "FEDLEDGER_ROOT": str(old), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", _OLD_RUN, str(path.resolve()), str(n), json.dumps(_SAME)],
        cwd=old,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    old_again = json.loads(out.splitlines()[-1])
    again = json.loads(json.dumps(again, default=str))  # as the old side printed it (dict keys as text)
    if _first_difference(old_again, again) is None:
        return True, (
            f"stored {differs}; the old code gives exactly the current code's {n} rounds on this machine "
            f"(digests {digests}): the cell was computed on another machine, the code change moved nothing"
        )
    return False, f"{differs}; the old code on this machine: {_first_difference(old_again, again)}"


# Runs inside the old checkout: the stored cell's first N rounds, with the old code, on this machine.
_OLD_RUN = r"""
import json, sys
from dataclasses import asdict, replace
from pathlib import Path
import torch
from fedledger.experiment import ExperimentResult, run_experiment
torch.set_num_threads(1)
cfg = ExperimentResult.from_dict(json.loads(Path(sys.argv[1]).read_text())).config
n, same = int(sys.argv[2]), json.loads(sys.argv[3])
res = run_experiment(replace(cfg, rounds=n))
print(json.dumps([{k: v for k, v in asdict(r).items() if k in same} for r in res.rounds[:n]], default=str))
"""


# Runs inside the old checkout: its own cell naming, plus this tree's (stdlib-only) reduction.
_OLD_SIDE = r"""
import hashlib, importlib.util, inspect, json, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("_fp", sys.argv[1]); fp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fp)
from benchmarks import _common as C
from fedledger.experiment import ExperimentResult
try:
    from fedledger.core import models
except ImportError:
    from fedledger import models
leave_out = set(json.loads(sys.argv[2]))
root = C.project_root().resolve()
removed = {root / rel: names for rel, names in json.loads(sys.argv[3]).items()}
named, reduced = {}, {}  # per defence: each reads and reduces every engine source (seconds)
for path in sys.argv[4:]:
    try:
        d = json.loads(Path(path).read_text()); cfg = ExperimentResult.from_dict(d).config
        if cfg.defence not in named:
            named[cfg.defence] = C.engine_fingerprint(cfg.defence)
            reduced[cfg.defence] = fp.sources_fingerprint((f for f in C.engine_sources(cfg.defence)
                                                           if f.relative_to(root).as_posix() not in leave_out), removed)
    except Exception:  # a cell the old code cannot even read (a newer config field, a newer defence)
        print(json.dumps({"path": path, "valid": False})); continue
    parts = [models.create_model, models.get_weights, models.set_weights]
    if models.MODELS.get(cfg.model): parts.append(models.MODELS[cfg.model])
    atk = (cfg.attack or "none").partition("?")[0]
    asrc = getattr(C, "ATTACK_SOURCES", {}).get(atk)  # attacks outside the engine's sources
    attack = fp.sources_fingerprint([root / f for f in asrc] + C._defence_modules(C.ATTACK_TARGETS[atk]), removed) if asrc else ""
    print(json.dumps({"path": path, "valid": C.cell_id(cfg, named[cfg.defence]) == Path(path).stem,
        "engine": reduced[cfg.defence], "attack": attack,
        "model": "\0".join(fp.normalised(inspect.getsource(f)) for f in parts)}))
"""


def _attack_reduction(spec: str | None) -> str:
    """The reduced code of an attack kept out of the engine's sources (`ATTACK_SOURCES`) and of the
    rule it targets, as `cell_id` counts them; "" for the attacks the engine fingerprint covers."""
    name = (spec or "none").partition("?")[0]
    if name not in ATTACK_SOURCES:
        return ""
    root = project_root()
    return sources_fingerprint([root / f for f in ATTACK_SOURCES[name]] + _defence_modules(ATTACK_TARGETS[name]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rekey", description=__doc__.split("\n\n")[0])
    parser.add_argument("old_checkout", type=Path, help="a checkout of the commit that named the cells")
    parser.add_argument("--dry-run", action="store_true", help="report only, rename nothing")
    parser.add_argument(
        "--leave-out",
        action="append",
        default=[],
        metavar="PATH",
        help="an old source (path in the old checkout) the engine never used, though the old key counted "
        "it (e.g. client/agent.py, counted only because the whole client/ folder was listed)",
    )
    parser.add_argument(
        "--verify-rounds",
        type=int,
        default=0,
        metavar="N",
        help="for cells whose code changed: re-run the cheapest cell of each group for N rounds and "
        "keep the group only if they match exactly (0: retire them)",
    )
    parser.add_argument(
        "--removed",
        action="append",
        default=[],
        metavar="FILE:QUALNAME",
        help="a definition the new code deleted as dead (e.g. "
        "fedledger/core/attacks.py:Attack.poisons_data); the old side reduces FILE without it",
    )
    args = parser.parse_args(argv)
    removed: dict[str, list[str]] = {}
    for spec in args.removed:
        rel, sep, qualname = spec.partition(":")
        if not sep or not qualname:
            parser.error(f"--removed {spec!r}: expected FILE:QUALNAME")
        removed.setdefault(rel, []).append(qualname)
    old = args.old_checkout.resolve()
    cells = sorted(CELLS.rglob("*.json"))
    env = {**os.environ, "PYTHONPATH": str(old), "FEDLEDGER_ROOT": str(old)}
    fingerprint = Path(__file__).with_name("_fingerprint.py")
    old_side = [sys.executable, "-c", _OLD_SIDE, str(fingerprint), json.dumps(args.leave_out), json.dumps(removed)]
    out = subprocess.run(
        [*old_side, *map(str, cells)], cwd=old, env=env, check=True, capture_output=True, text=True
    ).stdout
    moved = same = stale = retired = 0
    changed: dict[tuple[str, ...], list[tuple[Path, Path]]] = defaultdict(list)
    engines: dict[str, str] = {}  # per defence, not per cell (seconds each)
    for line in out.splitlines():
        row = json.loads(line)
        path = Path(row["path"])
        if not row["valid"]:
            stale += 1
            print(f"stale already in the old code, left as is: {path.relative_to(CELLS)}")
            continue
        cfg = ExperimentResult.from_dict(json.loads(path.read_text())).config
        if cfg.defence not in engines:
            engines[cfg.defence] = engine_fingerprint(cfg.defence)
        engine = engines[cfg.defence]
        target = path.with_name(cell_id(cfg, engine) + ".json")
        attack = _attack_reduction(cfg.attack)
        if engine != row["engine"] or _model_source(cfg.model) != row["model"] or attack != row.get("attack", ""):
            # an attack with its own sources is a group of its own: its cheapest cell is the one re-run
            changed[(path.parent.name, cfg.defence, cfg.model, str(cfg.dp), "attack" if attack else "")].append(
                (path, target)
            )
            continue
        if target == path:
            same += 1
            continue
        moved += 1
        if not args.dry_run:
            path.rename(target)
    for group, members in sorted(changed.items()):
        ok, why = False, "code changed (no --verify-rounds)"
        if args.verify_rounds > 0:
            cheapest = min(members, key=lambda m: float(json.loads(m[0].read_text()).get("seconds", 0.0)))[0]
            ok, why = _reproduces(cheapest, args.verify_rounds, old)
            why = f"{cheapest.relative_to(CELLS)}: {why}"
        print(f"{' / '.join(group)} ({len(members)} cells): {'kept' if ok else 'retired'}: {why}", flush=True)
        if not ok:
            retired += len(members)
            continue
        for path, target in members:
            if target != path:
                moved += 1
                if not args.dry_run:
                    path.rename(target)
    print(f"{len(cells)} cells: {moved} renamed, {same} already named right, {retired} retired, {stale} stale before")
    return 0 if retired == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
