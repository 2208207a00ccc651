"""BPCV-FL benchmark's privacy calibration: each node gets the least noise its total budget allows."""

from __future__ import annotations

import sys

import pytest

from fedledger.paths import project_root

sys.path.insert(0, str(project_root()))  # benchmarks/ is a directory of the checkout, not the package
from benchmarks.bpcv import Settings, noise_multiplier_for, spent_epsilon  # noqa: E402


@pytest.mark.parametrize("n", [1800, 1080])  # 30 and 50 nodes' shares; 1080 is not a multiple of the batch
def test_sigma_is_the_smallest_within_the_budget(n: int) -> None:
    s = Settings(rounds=25, batch_size=450)
    sigma, eps = noise_multiplier_for(n, s)
    assert eps == pytest.approx(spent_epsilon(sigma, n, s, s.rounds))
    assert eps <= s.epsilon
    assert spent_epsilon(sigma / 1.005, n, s, s.rounds) > s.epsilon  # any less noise would overspend
