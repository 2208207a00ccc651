"""Issue 23's contract holes, each shown closed on a real anvil: round transitions in bounded gas
with 1,000 miners and a way out of a stuck task, a seed the closer cannot choose, committees that
hold (checked when drawn, no unstaking on duty, slashing)."""

import time

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from fedledger.core.chain import ContractRevert, Phase, Proposal, TaskStatus, draw_committee
from fedledger.core.chain.transport import request_batch
from fedledger.core.chain.types import REP_SCALE, FailReason
from tests.chain.helpers import CID, ETH, digest, increase_time, running_task


def _stake_many(fl, n: int) -> list:
    """`n` fresh miners, funded and staked (1 to 3 ETH) through raw batched transactions."""
    accounts = [Account.from_key(keccak(f"trust miner {i}".encode())) for i in range(n)]
    for k in range(0, n, 250):
        request_batch(fl.w3, [("anvil_setBalance", [a.address, hex(10 * ETH)]) for a in accounts[k : k + 250]])
    call = fl.prepare("stake")
    chain_id = fl.w3.eth.chain_id
    base = fl.w3.eth.get_block("latest")["baseFeePerGas"]
    raws = []
    for i, a in enumerate(accounts):
        tx = {
            "to": call.to,
            "data": call.data,
            "value": ETH * (1 + i % 3),
            "gas": 300_000,
            "nonce": 0,
            "chainId": chain_id,
            "maxFeePerGas": 4 * base + 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
        raws.append("0x" + bytes(a.sign_transaction(tx).raw_transaction).hex())
    hashes = []
    for k in range(0, n, 250):
        answers = request_batch(fl.w3, [("eth_sendRawTransaction", [r]) for r in raws[k : k + 250]])
        hashes += [answer["result"] for answer in answers]
    gas = []
    deadline = time.monotonic() + 300
    for h in hashes:
        while (receipt := fl.w3.provider.make_request("eth_getTransactionReceipt", [h]).get("result")) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert int(receipt["status"], 16) == 1
        gas.append(int(receipt["gasUsed"], 16))
    return [fl.as_account(a) for a in accounts[:3]], gas


def _play_to_aggregate(task, r: int) -> dict:
    """Clients commit, reveal, commit and reveal scores; returns the gas of the phase-closing calls."""
    t = task.task_id
    task.commit_models(r)
    closing = {}
    for i, c in enumerate(task.clients):
        receipt = c.submit_model(t, r, *task.model(i, r))
    closing["submit (closes, draws the committee)"] = receipt.gas_used
    task.commit_all(r)
    task.reveal_all(r)
    assert task.fl.round_info(t, r).phase == Phase.AGGREGATE
    return closing


def test_round_transitions_stay_bounded_with_1000_miners(fl):
    """Hole 3: every round transition used to walk all active miners. With 1,000 staked miners a
    round still opens, draws its committee and closes, each transition in bounded gas."""
    few = running_task(fl, n_clients=3, n_miners=5, committee=5, rounds=2)
    small = _play_to_aggregate(few, 1)
    _, stake_gas = _stake_many(fl, 1000)
    assert len(fl.active_miners()[0]) == 1005
    task = running_task(fl, n_clients=3, n_miners=0, committee=5, rounds=2, start=True)
    closing = _play_to_aggregate(task, 1)
    t = task.task_id
    info = fl.round_info(t, 1)
    miners, stakes = fl.active_miners()
    assert list(info.committee) == draw_committee(info.seed, miners, stakes, 5)  # the off-chain walk agrees
    # gas of the draw grows with log(n): 5 miners -> 1,005 adds little
    assert closing["submit (closes, draws the committee)"] < 500_000
    assert closing["submit (closes, draws the committee)"] - small["submit (closes, draws the committee)"] < 150_000
    assert max(stake_gas) < 250_000
    # the round closes and the next opens
    p = Proposal(CID, digest(100), 0b111, tuple(REP_SCALE // 2 for _ in range(3)), 1, 0b111)
    keys = {Account.from_key(keccak(f"trust miner {i}".encode())).address: i for i in range(1000)}
    worst = 0
    for a in info.committee:
        member = (
            fl.as_account(Account.from_key(keccak(f"trust miner {keys[a]}".encode())))
            if a in keys
            else next(m for m in few.miners if m.sender == a)
        )
        if fl.round_info(t, 1).phase == Phase.AGGREGATE:
            worst = max(worst, member.propose(t, 1, p).gas_used)
    assert fl.round_info(t, 1).phase == Phase.FINALISED and fl.round_info(t, 2).phase == Phase.TRAIN
    assert worst < 1_000_000
    # leaving the active set stays O(log n) too
    leaver = fl.as_account(Account.from_key(keccak(b"trust miner 500")))
    if leaver.sender not in info.committee:
        assert leaver.request_unstake().gas_used < 150_000
    print(f"gas with 1,005 miners: stake max {max(stake_gas):,}, closing submit {closing}, finalising vote {worst:,}")


def test_a_stuck_running_task_lets_its_requester_reclaim_the_escrow(fl):
    """Hole 3's escrow: a Running task nobody can move any more is ended by its requester after
    ABANDON_AFTER past the current deadline, and the unspent escrow comes back."""
    task = running_task(fl, rounds=3)
    t = task.task_id
    with pytest.raises(ContractRevert, match="WrongTaskStatus"):
        fl.reclaim_escrow(t)  # running and not stuck
    increase_time(fl.w3, 601 + 7 * 86400 - 60)
    with pytest.raises(ContractRevert, match="WrongTaskStatus"):
        fl.reclaim_escrow(t)  # not yet ABANDON_AFTER past the deadline
    increase_time(fl.w3, 120)
    with pytest.raises(ContractRevert, match="NotRequester"):
        task.clients[0].reclaim_escrow(t)
    fl.reclaim_escrow(t)
    assert fl.task_info(t)["status"] == TaskStatus.FINISHED and fl.task_info(t)["escrow"] == 0
    assert fl.credit_of(fl.sender) == 3 * ETH
    acc = fl.accounting()
    assert fl.balance() == acc["credits"] + acc["escrow"] + acc["stakes"]


def test_the_seed_is_a_block_hash_fixed_before_the_closer_acts(fl):
    """Hole 4: the seed was hashed inside the closing transaction, so the closer chose it. Now it is
    the hash of the block mined after the round opened, read when the model reveal closes."""
    task = running_task(fl, n_clients=2, n_miners=4, committee=2)
    t = task.task_id
    info = fl.round_info(t, 1)
    (opened,) = fl.events("RoundOpened", taskId=t, round=1)
    assert info.seed_block == opened["block_number"] + 1 == opened["seedBlock"]
    task.submit_all(1)
    info = fl.round_info(t, 1)
    seed_hash = bytes(fl.w3.eth.get_block(info.seed_block)["hash"])
    assert info.seed == keccak(encode(["bytes32", "uint256", "uint32"], [seed_hash, t, 1]))
    (drawn,) = fl.events("CommitteeDrawn", taskId=t, round=1)
    assert drawn["block_number"] > info.seed_block  # fixed by a block mined before the closing call


def test_a_round_without_a_full_committee_fails_and_says_why(fl):
    """Hole 5: the miner count was checked only at startTask. A miner leaving before the draw
    makes the round fail cleanly (reason NoCommittee); the next round opens."""
    task = running_task(fl, n_clients=2, n_miners=2, committee=2, rounds=2)
    t = task.task_id
    task.miners[1].request_unstake()  # not on duty yet: the committee is drawn later
    task.submit_all(1)
    info = fl.round_info(t, 1)
    assert info.phase == Phase.FAILED
    (failed,) = fl.events("RoundFailed", taskId=t, round=1)
    assert failed["reason"] == FailReason.NO_COMMITTEE and failed["atPhase"] == Phase.SUBMIT
    assert fl.round_info(t, 2).phase == Phase.TRAIN
    assert fl.task_info(t)["escrow"] == 2 * ETH  # nothing paid


def test_a_committee_member_cannot_unstake_on_duty(fl):
    task = running_task(fl, n_clients=2, n_miners=2, committee=2)
    t = task.task_id
    task.submit_all(1)
    member = task.miners[0]
    duty = member.stake_of(member.sender)["duty_until"]
    assert duty >= fl.round_info(t, 1).deadline
    with pytest.raises(ContractRevert, match="MinerOnDuty"):
        member.request_unstake()
    increase_time(fl.w3, 120 + 120 + 600 + 1)
    member.request_unstake()  # duty over
    assert not member.stake_of(member.sender)["active"]


def test_dissenting_and_silent_committee_members_are_slashed(fl):
    """Hole 5's stakes: a member voting for a proposal that loses to the quorum loses SLASH_BPS
    (10 %) of its stake; in a round that fails for lack of quorum, so does every member that did
    not vote. The slashed wei goes to the task's escrow (back to the requester)."""
    task = running_task(fl, n_clients=2, n_miners=4, committee=4, rounds=2)
    t = task.task_id
    task.submit_all(1)
    task.commit_all(1)
    task.reveal_all(1)
    by_addr = {m.sender: m for m in task.miners}
    a, b, c, d = (by_addr[x] for x in fl.round_info(t, 1).committee)
    good = Proposal(CID, digest(100), 0b11, (1, 2), 1, 0b11)
    bad = Proposal(CID, digest(101), 0b11, (1, 2), 1, 0b11)
    escrow = fl.task_info(t)["escrow"]
    d.propose(t, 1, bad)
    for m in (a, b, c):
        m.propose(t, 1, good)  # 3 of 4 > 2/3: finalised
    assert fl.round_info(t, 1).phase == Phase.FINALISED
    assert d.stake_of(d.sender)["amount"] == ETH * 9 // 10
    assert all(m.stake_of(m.sender)["amount"] == ETH for m in (a, b, c))
    (slashed,) = fl.events("MinerSlashed", taskId=t)
    assert slashed["miner"] == d.sender and slashed["amount"] == ETH // 10
    # the round's reward left the escrow, the slashed stake joined it
    paid = sum(e["amount"] for e in fl.events("PaymentCredited", taskId=t))
    assert fl.task_info(t)["escrow"] == escrow - paid + ETH // 10
    # round 2: only one member votes; at the deadline the silent three are slashed
    task.submit_all(2)
    task.commit_all(2)
    task.reveal_all(2)
    committee = [by_addr[x] for x in fl.round_info(t, 2).committee]
    before = {m.sender: m.stake_of(m.sender)["amount"] for m in committee}
    committee[0].propose(t, 2, good)
    increase_time(fl.w3, 601)
    fl.advance(t)
    (failed,) = fl.events("RoundFailed", taskId=t, round=2)
    assert failed["reason"] == FailReason.NO_QUORUM
    after = {m.sender: m.stake_of(m.sender)["amount"] for m in committee}
    assert after[committee[0].sender] == before[committee[0].sender]
    assert all(after[m.sender] == before[m.sender] - before[m.sender] // 10 for m in committee[1:])
    acc = fl.accounting()
    assert fl.balance() == acc["credits"] + acc["escrow"] + acc["stakes"]
