"""The protocol rules the miner, the engine, audit and the explorer share (no chain)."""

from __future__ import annotations

import logging

import pytest

from fedledger.core.defences import LLBCFL, Decision, FLTrust, Krum, MultiKrum, TrimmedMean
from fedledger.core.defences.base import TaskTerms
from fedledger.core.protocol import rules
from fedledger.core.protocol.task import TaskConfig


def test_query_values_parse_booleans_numbers_and_text():
    name, params = rules.parse_defence("Multi_Krum?num_malicious=4&weighted=false&to_keep=3.5&inner=fedavg")
    assert name == "multi-krum"
    assert params == {"num_malicious": 4, "weighted": False, "to_keep": 3.5, "inner": "fedavg"}
    assert rules.parse_defence("fedavg?weighted=True")[1] == {"weighted": True}
    assert rules.parse_defence(rules.defence_string("fedavg", {"weighted": False})) == ("fedavg", {"weighted": False})


def test_each_defence_takes_the_task_fields_it_reads():
    cfg = TaskConfig(defence="ll-bcfl?margin=0.1", rep_eval=0.7, rep_prev=0.3, selection="top-n", selection_n=5)
    d = rules.defence_for(cfg, 10)
    assert isinstance(d, LLBCFL) and (d.w4, d.w5, d.top_n, d.margin) == (0.7, 0.3, 5, 0.1)
    assert rules.defence_for(TaskConfig(defence="bvfb", theta=0.4), 10).theta == 0.4
    assert rules.defence_for(TaskConfig(defence="bvfb?theta=0.7", theta=0.4), 10).theta == 0.7  # stated wins
    assert rules.defence_for(TaskConfig(defence="trimmed-mean"), 10).trim_ratio == 0.1  # documented default
    assert rules.defence_for(TaskConfig(defence="krum"), 10).num_malicious == 0
    assert isinstance(rules.defence_for(TaskConfig(defence="fltrust"), 10), FLTrust)


def test_krum_f_is_stated_and_a_drop_is_logged_not_silent(caplog: pytest.LogCaptureFixture):
    terms = TaskTerms(params={"num_malicious": 8})
    assert Krum.from_task(terms, 20).num_malicious == 8
    with caplog.at_level(logging.WARNING):
        assert Krum.from_task(terms, 12).num_malicious == 4  # 12 >= 2 * 4 + 3
        assert MultiKrum.from_task(terms, 12).num_malicious == 4
    assert "states f=8" in caplog.text
    assert Krum.from_task(terms, 2).num_malicious == 0  # and aggregate raises the paper's ValueError


def test_an_experiment_states_its_attacker_count_unless_the_task_does():
    assert rules.state_attackers("krum", {}, 4) == {"num_malicious": 4}
    assert rules.state_attackers("krum", {"num_malicious": 2}, 4) == {"num_malicious": 2}
    assert rules.state_attackers("trimmed-mean", {}, 4) == {"num_trim": 4}
    assert rules.state_attackers("trimmed-mean", {"trim_ratio": 0.2}, 4) == {"trim_ratio": 0.2}
    assert rules.state_attackers("model-chain", {"inner": "krum"}, 3) == {"inner": "krum", "num_malicious": 3}
    assert rules.state_attackers("bvfb", {}, 4) == {}
    assert TrimmedMean.from_task(TaskTerms(params={"num_trim": 9}), 10).num_trim == 4  # (n - 1) // 2


def test_reputation_selection_and_winner_after_a_round():
    reg = rules.registration_reputation(rules.self_assessment(2700, 60_000, 20))
    assert reg == 966_600  # (9000 + 10000 + 10000) // 3 bps, as the contract computes it
    before = [reg, reg, reg, 500_000]
    assert rules.first_selection(before, 2) == [0, 1]  # ties to the earlier registrant
    dec = Decision(accepted=[1], weights={1: 1.0}, scores={0: 0.2, 1: 0.9}, global_update=None)
    close = rules.close_round(TaskTerms(top_n=2), dec, before, selected=[0, 1])
    assert close.reputations == (483_300, 983_300, 966_600, 500_000)  # 0.5 * eval + 0.5 * rep for the selected
    assert close.next_selection == [1, 2] and close.winner == 1
    own = Decision([0], {0: 1.0}, {}, None, reputation={0: 0.1}, next_selection=[3], winner=0)
    close = rules.close_round(TaskTerms(top_n=2), own, before, selected=[0, 1])
    assert close.reputations[:2] == (100_000, reg) and close.next_selection == [3] and close.winner == 0
    assert rules.standby([0, 2], 5) == [1, 3, 4]


def test_quality_counts_only_the_scores_each_validator_was_assigned():
    seed = b"\x01" * 32
    revealed = {v: [0 if t == v else 9000 - 1000 * t for t in range(5)] for v in range(5)}
    counted = rules.round_peer_scores(revealed, range(5), 2, seed)
    assert all(len(s) == 2 for s in counted.values())
    q = rules.peer_quality(counted, list(range(5)))
    assert q == {t: 9000 - 1000 * t for t in range(5)}  # unassigned zeros would drag every mean down
