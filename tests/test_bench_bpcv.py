"""BPCV-FL benchmark: each node gets the least noise its total budget allows; the attack paragraph
counts what the engine recorded."""

from __future__ import annotations

import sys

import pytest

from fedledger.core.paths import project_root

sys.path.insert(0, str(project_root()))  # benchmarks/ is a directory of the checkout, not the package
from benchmarks.bpcv import Settings, attack_lines, noise_multiplier_for, spent_epsilon  # noqa: E402
from fedledger.core.metrics import detection  # noqa: E402
from fedledger.experiment import ExperimentConfig, ExperimentResult, RoundResult  # noqa: E402


@pytest.mark.parametrize("n", [1800, 1080])  # 30 and 50 nodes' shares; 1080 is not a multiple of the batch
def test_sigma_is_the_smallest_within_the_budget(n: int) -> None:
    s = Settings(rounds=25, batch_size=450)
    sigma, eps = noise_multiplier_for(n, s)
    assert eps == pytest.approx(spent_epsilon(sigma, n, s, s.rounds))
    assert eps <= s.epsilon
    assert spent_epsilon(sigma / 1.005, n, s, s.rounds) > s.epsilon  # any less noise would overspend


def _result(rounds: list[tuple[list[int], list[int]]], malicious: list[int]) -> ExperimentResult:
    """A run whose rounds had these (participants, accepted), scored as the engine scores them."""
    out = []
    for i, (parts, accepted) in enumerate(rounds, 1):
        det = detection(parts, accepted, malicious)
        out.append(
            RoundResult(
                i,
                0.9,
                0.1,
                parts,
                accepted,
                sorted(set(parts) & set(malicious)),
                det.precision,
                det.recall,
                None,
                True,
                {},
                {},
                None,
                None,
                1.0,
            )
        )
    return ExperimentResult(ExperimentConfig(clients=6), malicious, 0.1, out, 1.0)


def test_attack_paragraph_counts_only_rounds_with_attackers() -> None:
    # attackers 4, 5; round 1 drops both, round 2 has none taking part (nothing to count), round 3 keeps 5
    rounds = [([0, 1, 2, 3, 4, 5], [0, 1, 2, 3]), ([0, 1, 2, 3], [0, 1, 2]), ([0, 1, 4, 5], [0, 1, 5])]
    text = " ".join(
        attack_lines("gaussian", {"fedavg": _result(rounds, [4, 5]), "bpcv-fl-e5": _result(rounds, [4, 5])}, 0.97)
    )
    assert "5 of 50 Gaussian-noise models" in text
    assert "eliminated in 2 of 3 rounds" in text
    assert "attackers took part in 2 rounds, and in 1 of them every one was kept out" in text
    assert "the clean 50-node federation (mutual supervision, no attacker) reaches 0.9700" in text
