"""BVFB benchmark grid: the trust root on the CNN is read from BVFB's federations, which is only
right while the two defences give the very same federation there; the CNN goal is judged on every rate."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace

from fedledger.core.paths import project_root
from fedledger.experiment import ExperimentConfig, ExperimentResult, RoundResult, run_experiment

sys.path.insert(0, str(project_root()))  # benchmarks/ is a directory of the checkout, not the package
from benchmarks._common import Run  # noqa: E402
from benchmarks.bvfb import _cell, goal_lines, grid, swing_lines, trust_root_is_bvfb  # noqa: E402


def test_trust_root_on_the_cnn_is_bvfb_exactly() -> None:
    cfg = ExperimentConfig(
        model="cnn", clients=4, rounds=2, malicious=0.25, attack="backdoor", defence="bvfb", local_steps=3
    )
    bvfb = run_experiment(cfg).to_dict()
    ours = run_experiment(replace(cfg, defence="trust-root")).to_dict()
    assert trust_root_is_bvfb("cnn")
    for a, b in zip(bvfb["rounds"], ours["rounds"], strict=True):
        assert a["digest"] is not None  # a global model was adopted: the digests compare weights
        assert (a["digest"], a["accuracy"], a["accepted"], a["asr"]) == (
            b["digest"],
            b["accuracy"],
            b["accepted"],
            b["asr"],
        )


def test_the_grid_runs_the_trust_root_only_where_it_differs() -> None:
    assert not trust_root_is_bvfb("mlp")  # the MLP's dense input layer is confined
    runs = grid(["mlp", "cnn"], 20, [0.0, 0.5], ["label-flip"], ["bvfb", "trust-root"], seed=0)
    assert sorted(r.key for r in runs if r.key[3] == "trust-root") == [
        ("mlp", "label-flip", "50%", "trust-root"),
        ("mlp", "none", "0%", "trust-root"),
    ]
    for rate in (0.0, 0.5):
        assert _cell(runs, "cnn", "label-flip", rate, "trust-root") is _cell(runs, "cnn", "label-flip", rate, "bvfb")
        assert _cell(runs, "mlp", "label-flip", rate, "trust-root") is not _cell(
            runs, "mlp", "label-flip", rate, "bvfb"
        )
    # asked for alone, the trust root is run on the CNN too (there is no BVFB cell to read)
    assert [r.key[3] for r in grid(["cnn"], 20, [0.5], ["label-flip"], ["trust-root"], seed=0)] == ["trust-root"]


def _run(
    rate: float,
    attack: str,
    accuracy: float,
    asr: float | None = None,
    *,
    defence: str = "bvfb",
    earlier: Sequence[float] = (),
) -> Run:
    """A finished CNN federation whose last round reads `accuracy` (after rounds reading `earlier`)."""
    cfg = ExperimentConfig(model="cnn", malicious=rate, attack=attack, defence=defence)
    rounds = [
        RoundResult(i + 1, a, 0.1, [], [], [], None, None, asr, True, {}, {}, None, None, 1.0)
        for i, a in enumerate([*earlier, accuracy])
    ]
    return Run(("cnn", attack, f"{rate:.0%}", defence), cfg, ExperimentResult(cfg, [], 0.1, rounds, 1.0))


def test_the_cnn_goal_is_judged_only_on_every_rate() -> None:
    rates = [0.0, 0.5, 0.9]
    runs = [
        _run(0.0, "none", 0.985),
        _run(0.5, "label-flip", 0.983),
        _run(0.9, "label-flip", 0.979),
        _run(0.5, "backdoor", 0.975, 0.002),
        _run(0.9, "backdoor", 0.968, 0.003),
    ]
    text = "\n".join(goal_lines(runs, rates, ["label-flip", "backdoor"], ["bvfb", "trust-root", "krum"]))
    assert "BVFB: label-flip: met (worst 0.9790 at 90%, drop 0.6 points); backdoor: **not met** (worst 0.9680" in text
    assert "trust root (ours): label-flip: met" in text  # read from BVFB's cells on the CNN
    assert "Krum: label-flip: not every rate run yet" in text
    assert "drop 1.7 points), backdoor success <= 0.003 at every rate" in text
    runs[-1] = _run(0.9, "backdoor", 0.972, 0.003)  # above 0.97, but 1.3 points below 0 %: still within 1.5
    assert "backdoor: met (worst 0.9720 at 90%, drop 1.3 points)" in "\n".join(
        goal_lines(runs, rates, ["backdoor"], ["bvfb"])
    )
    # clean accuracy can hold while the trigger wins: the verdict says so
    runs[-2] = _run(0.5, "backdoor", 0.984, 0.979)
    assert "drop 1.3 points), but the backdoor gets in from 50% (success 0.979)" in "\n".join(
        goal_lines(runs, rates, ["backdoor"], ["bvfb"])
    )


def test_federations_that_swing_between_rounds_are_named_and_fail_the_goal() -> None:
    steady = _run(0.3, "label-flip", 0.982, earlier=[0.5, 0.98, 0.981, 0.979, 0.98])  # the early swing is not counted
    swinging = _run(0.5, "label-flip", 0.988, defence="fedavg", earlier=[0.9, 0.96, 0.15, 0.988, 0.2])
    text = "\n".join(swing_lines([steady, swinging], 6))
    assert "rounds 2-6 span more than 5 points" in text
    assert "- CNN, label-flip, 50%, FedAvg: 0.1500 to 0.9880 (last round 0.9880)" in text
    assert "BVFB" not in text
    assert "- none of the federations run so far." in "\n".join(swing_lines([steady], 6))
    # every last round is >= 0.97, but at 50 % the accuracy is not held
    runs = [_run(0.0, "none", 0.99, defence="fedavg"), swinging]
    text = "\n".join(goal_lines(runs, [0.0, 0.5], ["label-flip"], ["fedavg"]))
    assert (
        "FedAvg: label-flip: **not met** (worst 0.9880 at 50%, drop 0.2 points), swings between rounds at 50%." in text
    )
