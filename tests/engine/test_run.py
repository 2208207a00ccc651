"""Short real-MNIST federations through the in-process runner and the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fedledger.experiment import ExperimentConfig, run_experiment

FAST = dict(dataset="mnist", model="mlp", clients=10, rounds=2, local_epochs=1, seed=0)


def test_fedavg_learns():
    res = run_experiment(ExperimentConfig(**FAST, defence="fedavg"))
    assert res.initial_accuracy < 0.2
    assert res.final_accuracy > 0.6  # chance is 0.1
    assert res.rounds[0].accepted == list(range(10)) and res.rounds[0].precision is None


def test_bvfb_rejects_label_flippers_at_50_percent():
    res = run_experiment(ExperimentConfig(**FAST, malicious=0.5, attack="label-flip", defence="bvfb"))
    assert len(res.malicious) == 5
    for rr in res.rounds:
        assert not set(rr.accepted) & set(res.malicious)
        assert rr.precision == 1.0 and rr.recall == 1.0
        assert rr.metrics["reference"] not in res.malicious
        assert max(rr.scores[k] for k in res.malicious) < 0.6
    assert res.final_accuracy > 0.6
    # The same federation without a defence is dragged down by the flippers.
    plain = run_experiment(ExperimentConfig(**FAST, malicious=0.5, attack="label-flip", defence="fedavg"))
    assert plain.final_accuracy < res.final_accuracy - 0.2


def test_fltrust_holds_with_a_malicious_majority():
    res = run_experiment(ExperimentConfig(**FAST, malicious=0.7, attack="label-flip", defence="fltrust"))
    assert len(res.malicious) == 7
    honest = [k for k in range(10) if k not in res.malicious]
    for rr in res.rounds:  # FLTrust down-weights rather than rejects: flippers get ~0 trust
        assert max(rr.scores[k] for k in res.malicious) < 0.1 < 0.7 < min(rr.scores[k] for k in honest)
    assert res.final_accuracy > 0.6


def test_trust_root_stops_a_backdoor_majority_that_beats_bvfb():
    """90 % pixel-trigger backdoor (docs/design.md#paper-setups-and-reference-numbers: BVFB accepts the colluders and the backdoor wins)."""
    cfg = dict(
        dataset="mnist", model="mlp", clients=20, rounds=2, local_epochs=5, seed=0, malicious=0.9, attack="backdoor"
    )
    bvfb = run_experiment(ExperimentConfig(**cfg, defence="bvfb"))
    ours = run_experiment(ExperimentConfig(**cfg, defence="trust-root"))
    assert bvfb.rounds[-1].asr > 0.9
    assert all(rr.asr < 0.05 for rr in ours.rounds)
    assert ours.final_accuracy > 0.85


def test_same_config_same_bytes():
    cfg = ExperimentConfig(
        dataset="mnist",
        model="mlp",
        clients=4,
        rounds=2,
        local_steps=5,
        malicious=0.25,
        attack="sign-flip",
        defence="median",
        seed=3,
    )
    a, b = run_experiment(cfg), run_experiment(cfg)
    assert [r.digest for r in a.rounds] == [r.digest for r in b.rounds]
    assert a.rounds[-1].digest is not None


@pytest.mark.parametrize(
    "defence,attack,extra",
    [
        ("bpcv-fl", "collusive", {"select": 4}),
        ("ll-bcfl", "free-rider", {"select": 3}),
        ("model-chain", "gaussian", {}),
        ("bcs-fl", "alie", {}),
        ("krum", "ipm", {}),
        ("multi-krum", "scaling", {}),
        ("trimmed-mean", "backdoor", {}),
    ],
)
def test_every_defence_and_attack_runs(defence, attack, extra):
    cfg = ExperimentConfig(
        dataset="mnist",
        model="mlp",
        clients=6,
        rounds=2,
        local_steps=3,
        malicious=0.34,
        attack=attack,
        defence=defence,
        seed=1,
        **extra,
    )
    res = run_experiment(cfg)
    assert len(res.rounds) == 2 and 0.0 <= res.final_accuracy <= 1.0
    if attack == "backdoor":
        assert res.rounds[-1].asr is not None
    if defence in ("bpcv-fl", "ll-bcfl"):
        assert len(res.rounds[0].participants) == extra["select"]


def test_dp_run_reports_epsilon():
    cfg = ExperimentConfig(
        dataset="mnist", model="mlp", clients=4, rounds=2, local_steps=2, dp="laplace", epsilon=10.0, defence="fedavg"
    )
    res = run_experiment(cfg)
    assert [r.epsilon for r in res.rounds] == [pytest.approx(20.0), pytest.approx(40.0)]


def test_cli_writes_json(tmp_path):
    from fedledger.cli import app

    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        app,
        [
            "experiment",
            "--dataset",
            "mnist",
            "--model",
            "mlp",
            "--clients",
            "4",
            "--malicious",
            "0.5",
            "--attack",
            "label-flip",
            "--defence",
            "bvfb",
            "--rounds",
            "2",
            "--local-steps",
            "5",
            "--seed",
            "0",
            "--json",
            str(out),
            "--attack-arg",
            "mode=all-to-one",
            "--theta",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["config"]["attack_kwargs"] == {"mode": "all-to-one"}
    assert data["config"]["defence_kwargs"] == {"theta": 0.5}
    assert len(data["rounds"]) == 2 and "final_accuracy" in data
    assert "accuracy" in result.output


def test_cli_unknown_dataset_is_a_clean_error(cli):
    code, out = cli("experiment", "--dataset", "imagenet", "--rounds", "1")
    assert code == 2 and "unknown dataset" in out and "Traceback" not in out
