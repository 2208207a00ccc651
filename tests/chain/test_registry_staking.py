"""Data-owner registration and miner staking, with stake-weighted committee sampling."""

import os

import pytest

from fedledger.core.chain import ContractRevert, Mechanism, devnet_account, draw_committee
from fedledger.core.chain.types import REP_SCALE
from tests.chain.helpers import ETH, increase_time, running_task, spec


def test_register_sets_reputation_from_weighted_self_assessment(fl):
    task_id, _ = fl.publish_task(spec(), Mechanism(self_weights=(2, 1, 1)))
    client = fl.as_account(devnet_account(1))
    client.register(task_id, [8000, 4000, 0], 3000)
    info = client.client_info(task_id, client.sender)
    assert info["registered"] and info["index"] == 0 and info["n_samples"] == 3000
    assert info["self_score_bps"] == (2 * 8000 + 4000) // 4
    assert info["reputation"] == 5000 * REP_SCALE // 10000
    assert fl.clients(task_id) == [client.sender]
    assert fl.reputations(task_id) == [info["reputation"]]


def test_register_rejects_duplicates_bad_scores_and_closed_tasks(fl):
    task_id, _ = fl.publish_task(spec(), Mechanism())
    client = fl.as_account(devnet_account(1))
    client.register(task_id, [1, 2, 3], 10)
    with pytest.raises(ContractRevert, match="AlreadyRegistered"):
        client.register(task_id, [1, 2, 3], 10)
    other = fl.as_account(devnet_account(2))
    with pytest.raises(ContractRevert, match="InvalidSelfAssessment"):
        other.register(task_id, [10001, 0, 0], 10)
    with pytest.raises(ContractRevert, match="InvalidSelfAssessment"):
        other.register(task_id, [1, 1, 1], 0)
    with pytest.raises(ContractRevert, match="UnknownTask"):
        other.register(42, [1, 1, 1], 10)
    fl.cancel_task(task_id)
    with pytest.raises(ContractRevert, match="WrongTaskStatus"):
        other.register(task_id, [1, 1, 1], 10)


def test_stake_unstake_withdraw(fl):
    miner = fl.as_account(devnet_account(150))
    with pytest.raises(ContractRevert, match="StakeTooLow"):
        miner.stake(ETH // 2)
    miner.stake(ETH)
    miner.stake(ETH)  # top up
    assert miner.stake_of(miner.sender) == {"amount": 2 * ETH, "unlock_at": 0, "active": True, "duty_until": 0}
    assert fl.active_miners() == ([miner.sender], [2 * ETH])
    with pytest.raises(ContractRevert, match="NotStaked"):
        miner.withdraw_stake()  # must request first
    miner.request_unstake()
    assert fl.active_miners() == ([], [])
    with pytest.raises(ContractRevert, match="NotStaked"):
        miner.request_unstake()  # duplicate
    with pytest.raises(ContractRevert, match="UnstakePending"):
        miner.stake(ETH)
    with pytest.raises(ContractRevert, match="StakeLocked"):
        miner.withdraw_stake()
    increase_time(fl.w3, 3601)
    miner.withdraw_stake()
    assert fl.balance() == 0 and miner.stake_of(miner.sender)["amount"] == 0
    with pytest.raises(ContractRevert, match="NotStaked"):
        fl.as_account(devnet_account(151)).request_unstake()  # never staked


def test_committee_draw_is_reproducible_off_chain(fl):
    stakes = [ETH * (i + 1) for i in range(7)]
    for i, s in enumerate(stakes):
        fl.as_account(devnet_account(150 + i)).stake(s)
    fl.as_account(devnet_account(152)).request_unstake()  # reorders the active list (swap and pop)
    miners, live_stakes = fl.active_miners()
    for _ in range(20):
        seed = os.urandom(32)
        for size in (1, 3, 5, 9):
            on_chain = fl.contract.functions.drawCommittee(seed, size).call()
            assert on_chain == draw_committee(seed, miners, live_stakes, size)
            assert len(set(on_chain)) == len(on_chain) == min(size, len(miners))


def test_round_committee_follows_the_seed_when_the_models_are_revealed(fl):
    task = running_task(fl, n_miners=6, committee=3)
    task.submit_all(1)
    info = fl.round_info(task.task_id, 1)
    (drawn,) = fl.events("CommitteeDrawn", taskId=task.task_id)
    miners, stakes = fl.active_miners(block=drawn["block_number"])
    assert list(info.committee) == draw_committee(info.seed, miners, stakes, 3)
    assert list(drawn["committee"]) == list(info.committee) and bytes(drawn["seed"]) == info.seed
