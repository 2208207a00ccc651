"""The round protocol on a real anvil: phases, early closing, deadlines, votes, rewards."""

import pytest

from fedledger.core.chain import (
    ContractRevert,
    Mechanism,
    Phase,
    Proposal,
    TaskStatus,
    devnet_account,
    encode_scores,
    model_commitment,
    score_commitment,
)
from fedledger.core.chain.types import REP_SCALE, ProposalField
from tests.chain.helpers import CID, ETH, digest, increase_time, running_task, spec


def proposal(task, **kw) -> Proposal:
    n = len(task.clients)
    base = dict(
        global_cid=CID,
        global_digest=digest(100),
        accepted=(1 << n) - 1,
        reputations=tuple(REP_SCALE // 2 for _ in range(n)),
        winner=1,
        next_selection=(1 << n) - 1,
    )
    base.update(kw)
    return Proposal(**base)


def test_a_full_round_closes_each_phase_early_and_pays_rewards(fl):
    task = running_task(fl, n_clients=3, n_miners=3, committee=3)
    t = task.task_id
    info = fl.round_info(t, 1)
    assert info.phase == Phase.TRAIN and info.selected == 0b111
    assert info.committee == () and info.seed == b"\0" * 32  # drawn once the models are revealed
    task.commit_models(1)
    info = fl.round_info(t, 1)
    assert info.phase == Phase.SUBMIT and info.models_committed == 0b111 and info.submitted == 0
    assert fl.submissions(t, 1) == []  # nobody has seen a model yet
    task.reveal_models(1)
    info = fl.round_info(t, 1)
    assert info.phase == Phase.COMMIT and len(info.committee) == 3  # every selected client acted: no waiting
    assert [s.index for s in fl.submissions(t, 1)] == [0, 1, 2]
    assert fl.submissions(t, 1)[1].digest == digest(2)
    task.commit_all(1)
    assert fl.round_info(t, 1).phase == Phase.REVEAL
    task.reveal_all(1)
    assert fl.round_info(t, 1).phase == Phase.AGGREGATE
    assert fl.revealed_scores(t, 1)[2] == [8000, 8001, 8002]

    p = proposal(task, accepted=0b011, reputations=(900_000, 800_000, 100_000), winner=2)
    committee = {m.sender: m for m in task.miners}
    voters = [committee[a] for a in fl.round_info(t, 1).committee]
    voters[0].propose(t, 1, p)
    voters[1].propose(t, 1, p)
    assert fl.round_info(t, 1).phase == Phase.AGGREGATE  # 2 of 3 is not more than 2/3
    assert fl.votes_for(t, 1, p.hash()) == 2
    voters[2].propose(t, 1, p)
    info = fl.round_info(t, 1)
    assert info.phase == Phase.FINALISED and info.result == p.hash() and info.accepted == 0b011 and info.winner == 2
    assert fl.global_model(t) == (CID, digest(100))
    assert fl.reputations(t) == [900_000, 800_000, 100_000]
    assert fl.proposals(t, 1) == {p.hash(): p}
    # reward 1 ETH: 60 % to the 2 accepted, 20 % winner bonus, 20 % to the 3 voters
    assert fl.credit_of(task.clients[0].sender) == ETH * 3 // 10
    assert fl.credit_of(task.clients[1].sender) == ETH * 3 // 10 + ETH // 5
    assert fl.credit_of(task.clients[2].sender) == 0
    assert all(fl.credit_of(v.sender) == ETH // 5 // 3 for v in voters)
    assert fl.round_info(t, 2).phase == Phase.TRAIN and fl.task_info(t)["current_round"] == 2
    acc = fl.accounting()
    assert fl.balance() == acc["credits"] + acc["escrow"] + acc["stakes"]


def test_start_rules(fl):
    task = running_task(fl, n_clients=1, n_miners=0, start=False, min_clients=2)
    t = task.task_id
    with pytest.raises(ContractRevert, match="RegistrationOpen"):
        task.clients[0].start_task(t)  # not the requester, registration still open
    with pytest.raises(ContractRevert, match="NotEnoughClients"):
        fl.start_task(t)
    fl.as_account(devnet_account(2)).register(t, [1, 1, 1], 5)
    with pytest.raises(ContractRevert, match="NotEnoughMiners"):
        fl.start_task(t)
    fl.as_account(devnet_account(150)).stake(ETH)
    increase_time(fl.w3, 3601)
    task.clients[0].start_task(t)  # anyone may start after the registration period
    assert fl.task_info(t)["status"] == TaskStatus.RUNNING
    with pytest.raises(ContractRevert, match="WrongTaskStatus"):
        fl.start_task(t)  # duplicate


def test_top_n_selection_by_reputation(fl):
    task = running_task(fl, n_clients=4, mech_kw={"selection_rule": 1, "selection_n": 2})
    # self-assessment 5000+100*i: clients 3 and 2 have the highest reputations
    assert fl.round_info(task.task_id, 1).selected == 0b1100
    with pytest.raises(ContractRevert, match="NotSelected"):
        task.clients[0].commit_model(task.task_id, 1, b"\1" * 32)


def test_submit_rejections(fl):
    task = running_task(fl, n_clients=3)
    t, c = task.task_id, task.clients[0]
    stranger = fl.as_account(devnet_account(60))
    with pytest.raises(ContractRevert, match="NotRegistered"):
        stranger.commit_model(t, 1, b"\1" * 32)
    with pytest.raises(ContractRevert, match="InvalidSubmission"):
        c.commit_model(t, 1, b"\0" * 32)
    with pytest.raises(ContractRevert, match="WrongPhase"):
        c.commit_model(t, 2, b"\1" * 32)  # round 2 is not open
    task.commit_models(1, who=[0])
    with pytest.raises(ContractRevert, match="AlreadyCommitted"):
        task.commit_models(1, who=[0])
    with pytest.raises(ContractRevert, match="WrongPhase"):
        task.reveal_models(1, who=[0])  # no reveal before every selected owner committed (or the deadline)
    with pytest.raises(ContractRevert, match="WrongPhase"):
        c.commit_scores(t, 1, b"\1" * 32)  # still training
    task.commit_models(1, who=[1])
    increase_time(fl.w3, 601)
    with pytest.raises(ContractRevert, match="DeadlinePassed"):  # late commitment
        task.commit_models(1, who=[2])
    fl.advance(t)
    assert fl.round_info(t, 1).phase == Phase.SUBMIT and fl.round_info(t, 1).models_committed == 0b011
    with pytest.raises(ContractRevert, match="NotCommitted"):
        task.clients[2].submit_model(t, 1, *task.model(2, 1))
    cid, d, bcid, n, salt = task.model(0, 1)
    for bad in [("", d, n), (cid, b"\0" * 32, n), (cid, d, 0)]:
        with pytest.raises(ContractRevert, match="InvalidSubmission"):
            c.submit_model(t, 1, bad[0], bad[1], bcid, bad[2], salt)
    for changed in [
        (cid, digest(9), bcid, n, salt),
        (cid, d, "bafy-other", n, salt),
        (cid, d, bcid, n + 1, salt),
        (cid, d, bcid, n, b"\x09" * 32),
    ]:
        with pytest.raises(ContractRevert, match="CommitmentMismatch"):
            c.submit_model(t, 1, *changed)
    task.reveal_models(1, who=[0])
    with pytest.raises(ContractRevert, match="AlreadySubmitted"):
        task.reveal_models(1, who=[0])
    increase_time(fl.w3, 121)
    with pytest.raises(ContractRevert, match="DeadlinePassed"):  # late reveal
        task.reveal_models(1, who=[1])
    fl.advance(t)
    assert fl.round_info(t, 1).phase == Phase.COMMIT and fl.round_info(t, 1).submitted == 0b001
    assert [s.client for s in fl.submissions(t, 1)] == [c.sender]  # nothing else recorded


def test_an_unregistered_caller_is_refused_in_every_phase(fl):
    """Every client call finds its caller through one storage word (index and commitment): an
    address that never registered has none, whatever it sends and in whichever phase."""
    task = running_task(fl, n_clients=2)
    t = task.task_id
    stranger = fl.as_account(devnet_account(61))
    theirs = task.model(0, 1)
    with pytest.raises(ContractRevert, match="NotRegistered"):
        stranger.commit_model(t, 1, model_commitment(t, 1, stranger.sender, *theirs))
    task.commit_models(1)
    with pytest.raises(ContractRevert, match="NotRegistered"):
        stranger.submit_model(t, 1, *theirs)
    task.reveal_models(1)
    scores = task.scores()
    with pytest.raises(ContractRevert, match="NotRegistered"):
        stranger.commit_scores(t, 1, score_commitment(t, 1, stranger.sender, scores, b"\1" * 32))
    task.commit_all(1)
    with pytest.raises(ContractRevert, match="NotRegistered"):
        stranger.reveal_scores(t, 1, scores, b"\1" * 32)
    task.reveal_all(1)
    assert fl.round_info(t, 1).phase == Phase.AGGREGATE
    with pytest.raises(ContractRevert, match="NotInCommittee"):
        stranger.propose(t, 1, proposal(task))
    ri = fl.round_info(t, 1)
    assert (ri.submitted, ri.committed, ri.revealed) == (0b11, 0b11, 0b11)  # nothing of the stranger's counted


def test_a_model_is_bound_to_its_producer_a_copycat_cannot_claim_it(fl):
    """Issue 23, hole 2: a free rider re-submitting a peer's model. Models are committed before any
    is revealed, and the commitment includes the sender: a copied commitment opens for nobody else,
    and a model revealed later cannot be claimed (every commitment is already in)."""
    task = running_task(fl, n_clients=2)
    t = task.task_id
    honest, copycat = task.clients
    theirs = task.model(0, 1)
    commitment = model_commitment(t, 1, honest.sender, *theirs)
    assert fl.contract.functions.modelCommitment(t, 1, honest.sender, *theirs).call() == commitment
    honest.commit_model(t, 1, commitment)
    copycat.commit_model(t, 1, commitment)  # copies the honest owner's commitment (all it can see)
    assert fl.round_info(t, 1).phase == Phase.SUBMIT
    honest.submit_model(t, 1, *theirs)  # now the CID is public
    with pytest.raises(ContractRevert, match="CommitmentMismatch"):
        copycat.submit_model(t, 1, *theirs)  # the commitment names the honest owner
    increase_time(fl.w3, 121)
    fl.advance(t)
    assert fl.round_info(t, 1).submitted == 0b01
    assert [s.client for s in fl.submissions(t, 1)] == [honest.sender]


def test_commit_reveal_rejections(fl):
    task = running_task(fl, n_clients=3)
    t = task.task_id
    task.submit_all(1, who=[0, 1])
    with pytest.raises(ContractRevert, match="DeadlineNotReached"):
        fl.advance(t)
    increase_time(fl.w3, 601)
    fl.advance(t)  # client 2 crashed: the round goes on without it
    task.reveal_models(1, who=[0, 1])
    assert fl.round_info(t, 1).phase == Phase.COMMIT
    with pytest.raises(ContractRevert, match="NotASubmitter"):
        task.clients[2].commit_scores(t, 1, b"\1" * 32)
    task.commit_all(1, who=[0])
    with pytest.raises(ContractRevert, match="AlreadyCommitted"):
        task.commit_all(1, who=[0])
    with pytest.raises(ContractRevert, match="WrongPhase"):
        task.reveal_all(1, who=[0])  # reveal before the commit phase closed
    task.commit_all(1, who=[1])
    assert fl.round_info(t, 1).phase == Phase.REVEAL
    c0, c1 = task.clients[0], task.clients[1]
    with pytest.raises(ContractRevert, match="CommitmentMismatch"):
        c0.reveal_scores(t, 1, encode_scores([1, 2, 3]), task.salts[0])  # changed its scores
    with pytest.raises(ContractRevert, match="CommitmentMismatch"):
        c0.reveal_scores(t, 1, task.scores(), task.salts[1])  # wrong salt
    with pytest.raises(ContractRevert, match="InvalidScores"):
        c0.reveal_scores(t, 1, encode_scores([1, 2]), task.salts[0])  # one score per client
    with pytest.raises(ContractRevert, match="NotCommitted"):
        task.clients[2].reveal_scores(t, 1, task.scores(), b"\0" * 32)
    bad = bytes.fromhex("ffff") + encode_scores([1, 2])  # 65535 bps
    commitment = score_commitment(t, 1, c1.sender, bad, b"\5" * 32)
    assert commitment != fl.contract.functions.scoreCommitment(t, 1, c0.sender, bad, b"\5" * 32).call()
    assert commitment == fl.contract.functions.scoreCommitment(t, 1, c1.sender, bad, b"\5" * 32).call()
    task.reveal_all(1, who=[0])
    with pytest.raises(ContractRevert, match="AlreadyRevealed"):
        task.reveal_all(1, who=[0])
    increase_time(fl.w3, 121)
    with pytest.raises(ContractRevert, match="DeadlinePassed"):
        task.reveal_all(1, who=[1])  # late reveal
    fl.advance(t)
    assert fl.round_info(t, 1).phase == Phase.AGGREGATE
    assert fl.round_info(t, 1).revealed == 0b001


def test_out_of_range_scores_are_rejected_even_when_committed(fl):
    task = running_task(fl, n_clients=2)
    t, c = task.task_id, task.clients[0]
    task.submit_all(1)
    bad = encode_scores([1]) + (10001).to_bytes(2, "big")
    c.commit_scores(t, 1, score_commitment(t, 1, c.sender, bad, b"\3" * 32))
    task.commit_all(1, who=[1])
    with pytest.raises(ContractRevert, match="InvalidScores"):
        c.reveal_scores(t, 1, bad, b"\3" * 32)


def test_every_score_lane_is_range_checked_across_calldata_words(fl):
    """The contract checks 16 scores per calldata word at once: 10000 passes in every position,
    10001 and 65535 fail in the first and last lane of each word, and the bytes after the last
    score (the salt) never count as scores."""
    task = running_task(fl, n_clients=18)  # 36 bytes of scores: one full word and 2 lanes of the next
    t = task.task_id
    task.submit_all(1)
    bad = [(0, 10001), (15, 10001), (16, 65535), (17, 10001), (17, 0x8000)]
    vectors = [[10000] * 18 for _ in bad] + [[10000] * 18]
    for v, (pos, value) in zip(vectors, bad, strict=False):
        v[pos] = value
    salt = b"\xff" * 32  # all lanes of 0xffff right after the scores

    def packed(v):  # encode_scores refuses out-of-range scores: pack by hand
        return b"".join(x.to_bytes(2, "big") for x in v)

    for i, v in enumerate(vectors):
        c = task.clients[i]
        c.commit_scores(t, 1, score_commitment(t, 1, c.sender, packed(v), salt))
    task.commit_all(1, who=list(range(len(vectors), 18)))
    assert fl.round_info(t, 1).phase == Phase.REVEAL
    for i, v in enumerate(vectors[:-1]):
        with pytest.raises(ContractRevert, match="InvalidScores"):
            task.clients[i].reveal_scores(t, 1, packed(v), salt)
    task.clients[len(bad)].reveal_scores(t, 1, packed(vectors[-1]), salt)
    assert fl.revealed_scores(t, 1)[len(bad)] == [10000] * 18


def test_votes_need_committee_membership_once_and_a_consistent_proposal(fl):
    task = running_task(fl, n_clients=2, n_miners=2, committee=1)
    t = task.task_id
    task.submit_all(1, who=[0])
    increase_time(fl.w3, 601)
    fl.advance(t)  # train -> submit (client 1 never committed)
    task.reveal_models(1, who=[0])  # -> commit
    increase_time(fl.w3, 121)
    fl.advance(t)  # nobody committed: straight to aggregate
    info = fl.round_info(t, 1)
    assert info.phase == Phase.AGGREGATE
    member = next(m for m in task.miners if m.sender == info.committee[0])
    outsider = next(m for m in task.miners if m.sender != info.committee[0])
    with pytest.raises(ContractRevert, match="NotInCommittee"):
        outsider.propose(t, 1, proposal(task, accepted=0b01))
    for bad, what in [
        (proposal(task, accepted=0b11), ProposalField.ACCEPTED),  # client 1 submitted nothing
        (proposal(task, accepted=0b01, winner=2), ProposalField.WINNER),
        (proposal(task, accepted=0b01, reputations=(1,)), ProposalField.REPUTATIONS),
        (proposal(task, accepted=0b01, next_selection=0b100), ProposalField.NEXT_SELECTION),
        (proposal(task, accepted=0b01, global_cid=""), ProposalField.GLOBAL_MODEL),
    ]:
        with pytest.raises(ContractRevert) as exc:
            member.propose(t, 1, bad)
        assert exc.value.name == "FedLedgerInvalidProposal" and exc.value.args_["what"] is what
    member.propose(t, 1, proposal(task, accepted=0b01))  # a committee of one: finalised at once
    assert fl.round_info(t, 1).phase == Phase.FINALISED
    with pytest.raises(ContractRevert, match="WrongPhase"):
        member.propose(t, 1, proposal(task, accepted=0b01))


def test_no_quorum_keeps_the_global_model_and_marks_the_round_failed(fl):
    task = running_task(fl, n_clients=2, n_miners=3, committee=3, rounds=1)
    t = task.task_id
    reputations = fl.reputations(t)
    task.submit_all(1)
    task.commit_all(1)
    task.reveal_all(1)
    by_addr = {m.sender: m for m in task.miners}
    a, b, c = (by_addr[x] for x in fl.round_info(t, 1).committee)
    a.propose(t, 1, proposal(task))
    with pytest.raises(ContractRevert, match="AlreadyVoted"):
        a.propose(t, 1, proposal(task))
    b.propose(t, 1, proposal(task))
    c.propose(t, 1, proposal(task, winner=2))  # a miner that computed something else votes against
    assert fl.round_info(t, 1).phase == Phase.AGGREGATE
    increase_time(fl.w3, 601)
    fl.advance(t)
    assert fl.round_info(t, 1).phase == Phase.FAILED
    assert fl.global_model(t) == (CID, digest(0))  # unchanged
    assert fl.task_info(t)["status"] == TaskStatus.FINISHED
    assert fl.task_info(t)["escrow"] == ETH  # nothing paid for a failed round
    assert fl.reputations(t) == reputations  # untouched: only a finalised proposal changes them


def test_a_failed_round_opens_the_next_with_the_same_selection(fl):
    task = running_task(fl, n_clients=2, rounds=3)
    t = task.task_id
    increase_time(fl.w3, 601)
    fl.advance(t)  # nobody submitted
    assert fl.round_info(t, 1).phase == Phase.FAILED
    assert fl.round_info(t, 2).phase == Phase.TRAIN and fl.round_info(t, 2).selected == 0b11
    with pytest.raises(ContractRevert, match="UnknownTask"):
        fl.advance(t + 1)
    other, _ = fl.publish_task(spec(), Mechanism())
    with pytest.raises(ContractRevert, match="WrongTaskStatus"):
        fl.advance(other)  # not started


def test_without_peer_validation_a_round_goes_from_train_to_aggregate(fl):
    task = running_task(fl, n_clients=3, rounds=2, mech_kw={"peer_validation": False})
    t = task.task_id
    assert fl.task_mechanism(t).peer_validation is False
    task.submit_all(1)
    info = fl.round_info(t, 1)
    assert info.phase == Phase.AGGREGATE and info.submitted == 0b111 and info.committed == 0
    with pytest.raises(ContractRevert, match="WrongPhase"):
        task.commit_all(1, who=[0])  # no commit phase in such a task
    task.miners[0].propose(t, 1, proposal(task))
    assert fl.round_info(t, 1).phase == Phase.FINALISED
    assert fl.revealed_scores(t, 1) == {}

    # the train deadline closes round 2 with the late owner left out, straight to aggregate
    task.submit_all(2, who=[0, 2])
    increase_time(fl.w3, 601)
    fl.advance(t)
    task.reveal_models(2, who=[0, 2])
    info = fl.round_info(t, 2)
    assert info.phase == Phase.AGGREGATE and info.submitted == 0b101
    with pytest.raises(ContractRevert, match="WrongPhase"):
        task.submit_all(2, who=[1])  # too late
    task.miners[0].propose(t, 2, proposal(task, accepted=0b101))
    assert fl.round_info(t, 2).phase == Phase.FINALISED and fl.task_info(t)["status"] == TaskStatus.FINISHED
