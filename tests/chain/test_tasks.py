"""Task publication, escrow, cancellation and reclaim on a real anvil."""

import pytest

from fedledger.core.chain import ContractRevert, Mechanism, TaskStatus, devnet_account
from fedledger.core.chain.types import TaskParameter
from tests.chain.helpers import ETH, increase_time, running_task, spec


def test_publish_escrows_reward_of_every_round(fl):
    before = fl.balance()
    task_id, receipt = fl.publish_task(spec(rounds=3, reward_per_round=2 * ETH), Mechanism(defence="krum"))
    info = fl.task_info(task_id)
    assert task_id == 1 and fl.task_count() == 1
    assert info["status"] == TaskStatus.OPEN and info["escrow"] == 6 * ETH
    assert fl.balance() - before == 6 * ETH
    assert fl.task_spec(task_id) == spec(rounds=3, reward_per_round=2 * ETH)
    assert fl.task_mechanism(task_id).defence == "krum"
    assert fl.global_model(task_id) == (spec().initial_weights_cid, spec().initial_digest)
    (event,) = fl.events("TaskPublished", taskId=task_id)
    assert event["escrow"] == 6 * ETH and event["defence"] == "krum"


def test_publish_rejects_wrong_escrow(fl):
    fn = fl.prepare("publishTask", spec().to_abi(), Mechanism().to_abi())
    with pytest.raises(ContractRevert) as exc:
        fl.transactor.transact(fn, value=ETH)  # two rounds need 2 ETH
    assert exc.value.name == "FedLedgerEscrowMismatch" and exc.value.args_ == {"sent": ETH, "required": 2 * ETH}


@pytest.mark.parametrize(
    ("spec_kw", "mech_kw", "what"),
    [
        ({"rounds": 0}, {}, TaskParameter.ROUNDS),
        ({"initial_weights_cid": ""}, {}, TaskParameter.INITIAL_WEIGHTS_CID),
        ({"initial_digest": b"\0" * 32}, {}, TaskParameter.INITIAL_DIGEST),
        ({"train_duration": 0}, {}, TaskParameter.DURATIONS),
        ({}, {"committee_size": 0}, TaskParameter.COMMITTEE_SIZE),
        ({}, {"committee_size": 65}, TaskParameter.COMMITTEE_SIZE),  # committee loops stay bounded
        ({}, {"quorum_bps": 5000}, TaskParameter.QUORUM_BPS),
        ({}, {"selection_rule": 1, "selection_n": 0}, TaskParameter.SELECTION_N),
        ({}, {"client_share_bps": 9000, "winner_share_bps": 2000}, TaskParameter.REWARD_SHARES),
    ],
)
def test_publish_rejects_invalid_parameters(fl, spec_kw, mech_kw, what):
    s = spec(**spec_kw)
    with pytest.raises(ContractRevert) as exc:
        fl.publish_task(s, Mechanism(**mech_kw))
    assert exc.value.name == "FedLedgerInvalidTaskParameter" and exc.value.args_["what"] is what


def test_cancel_before_start_refunds_requester(fl):
    task_id, _ = fl.publish_task(spec(), Mechanism())
    fl.cancel_task(task_id)
    assert fl.task_info(task_id)["status"] == TaskStatus.CANCELLED
    assert fl.credit_of(fl.sender) == 2 * ETH
    before = fl.w3.eth.get_balance(fl.sender)
    receipt = fl.withdraw()
    gas_cost = receipt.gas_used * int(receipt.raw["effectiveGasPrice"], 16)
    assert fl.w3.eth.get_balance(fl.sender) == before + 2 * ETH - gas_cost
    assert fl.credit_of(fl.sender) == 0 and fl.balance() == 0


def test_cancel_only_by_requester_and_only_before_start(fl):
    task_id, _ = fl.publish_task(spec(), Mechanism())
    stranger = fl.as_account(devnet_account(7))
    with pytest.raises(ContractRevert, match="NotRequester"):
        stranger.cancel_task(task_id)
    with pytest.raises(ContractRevert, match="UnknownTask"):
        fl.cancel_task(99)
    task = running_task(fl)
    with pytest.raises(ContractRevert, match="WrongTaskStatus"):
        fl.cancel_task(task.task_id)
    fl.cancel_task(task_id)
    with pytest.raises(ContractRevert, match="WrongTaskStatus"):  # duplicate
        fl.cancel_task(task_id)


def test_reclaim_unspent_escrow_after_the_end(fl):
    task = running_task(fl, rounds=1)
    with pytest.raises(ContractRevert, match="WrongTaskStatus"):
        fl.reclaim_escrow(task.task_id)  # still running
    increase_time(fl.w3, 601)
    fl.advance(task.task_id)  # nobody submitted: round 1 fails, task finishes, escrow unspent
    assert fl.task_info(task.task_id)["status"] == TaskStatus.FINISHED
    with pytest.raises(ContractRevert, match="NotRequester"):
        task.clients[0].reclaim_escrow(task.task_id)
    fl.reclaim_escrow(task.task_id)
    assert fl.credit_of(fl.sender) == ETH and fl.task_info(task.task_id)["escrow"] == 0
    fl.reclaim_escrow(task.task_id)  # nothing left: credits nothing more
    assert fl.credit_of(fl.sender) == ETH


def test_withdraw_without_credit_is_rejected(fl):
    with pytest.raises(ContractRevert, match="NothingToWithdraw"):
        fl.as_account(devnet_account(9)).withdraw()
