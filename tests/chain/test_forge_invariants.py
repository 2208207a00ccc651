"""Foundry invariant tests of the contracts (tests/forge/FedLedgerInvariants.t.sol): 10,000
random call sequences of publish / register / stake / start / commit / submit / score / propose /
advance / cancel / reclaim / withdraw / unstake and clock jumps keep the escrow invariant
(balance == unpaid credits + unspent escrow + stakes; nobody withdraws more than credited) and the
task/round state machine (status and phases only move forward, closed rounds stay closed).

Forge (npm @foundry-rs/forge) compiles offline with the project's solc wrapper; the compiled
contracts are cached in build/forge/ (the first run compiles for a few minutes, later ones reuse
it). `make bench` runs the bench profile (100,000 sequences of 40 calls).
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from fedledger.core.paths import node_modules, project_root

RUNS = 10_000  # foundry.toml [profile.default.invariant]


def forge_command(*args: str) -> list[str]:
    forge = node_modules() / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"
    if not forge.exists():
        pytest.fail(f"{forge} is missing: run `make setup`")
    return [str(forge), "test", "--offline", "--use", str(project_root() / "deploy" / "solc-wrapper.cjs"), *args]


def test_random_call_sequences_keep_the_escrow_and_state_machine_invariants() -> None:
    env = {**os.environ, "FOUNDRY_PROFILE": "default", "NO_COLOR": "1"}
    res = subprocess.run(forge_command(), cwd=project_root(), env=env, capture_output=True, text=True, timeout=1200)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "[PASS] test_handlerReachesPayoutsAndWithdrawals()" in out, out[-4000:]
    m = re.search(r"\[PASS\] invariant_escrowAndStateMachine\(\) \(runs: (\d+), calls: (\d+), reverts: (\d+)\)", out)
    assert m, out[-4000:]
    runs, calls = int(m.group(1)), int(m.group(2))
    assert runs >= RUNS and calls >= 10 * RUNS, m.group(0)
    # every action of the handler was called, and the fuzzer reached the round's later phases
    for action in (
        "publish",
        "register",
        "stake",
        "start",
        "commitModel",
        "submitModel",
        "revealScores",
        "propose",
        "advance",
        "withdraw",
        "withdrawStake",
        "reclaim",
        "cancel",
    ):
        assert re.search(rf"\|\s*Handler\s*\|\s*{action}\s*\|\s*[1-9]", out), f"{action} never called"
