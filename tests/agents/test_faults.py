"""Crashes and bad inputs: the round goes on, nothing is lost or done twice, audit still passes."""

import math
import pickle
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import pytest

from fedledger.client.agent import LocalModel
from fedledger.core.chain import Phase, Proposal, TaskStatus, devnet_account
from fedledger.core.protocol.rounds import fetch_weights, reputations_before
from fedledger.core.storage import open_store
from fedledger.core.storage.cid import compute_cid
from fedledger.core.weights import WeightsMeta, dumps, sha256_hex
from tests.agents.harness import CLIENT0, MINER0, drive, kill, small_task, spawn, start


def audit(task_id: int, r: int, rpc: str, manifest: Path, store: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "fedledger.cli",
            "audit",
            "--task",
            str(task_id),
            "--round",
            str(r),
            "--rpc",
            rpc,
            "--manifest",
            str(manifest),
            "--store",
            store,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_client_killed_mid_round_does_not_stall_the_task(devnet, w3, deployed, tmp_path: Path):
    fl, manifest = deployed
    spec = f"embedded:{tmp_path / 'store'}"
    store = open_store(spec)
    cfg = small_task(rounds=1)
    task_id, req, clients, miners = start(fl, store, cfg, skip_clients=(2,))
    # owner 2 runs as its own process, like a real data owner
    proc = spawn(
        [
            "client",
            "run",
            "--task",
            str(task_id),
            "--data-owner",
            "2",
            "--rpc",
            devnet.rpc_url,
            "--manifest",
            str(manifest),
            "--store",
            spec,
            "--account",
            str(CLIENT0 + 2),
        ],
        tmp_path / "c2.log",
    )
    try:
        drive([*clients.values(), *miners], lambda: len(fl.clients(task_id)) == 3, timeout=120)
        drive([req], lambda: fl.task_info(task_id)["status"] == TaskStatus.RUNNING)
        kill(proc)  # mid-round: round 1 is open, owner 2 had no time to train
    finally:
        if proc.poll() is None:
            kill(proc)
    owner2 = devnet_account(CLIENT0 + 2).address
    drive(
        [req, *clients.values(), *miners],
        lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED,
        w3=w3,
        jump=61,
    )
    ri = fl.round_info(task_id, 1)
    idx2 = fl.client_info(task_id, owner2)["index"]
    assert ri.phase == Phase.FINALISED
    assert not ri.submitted >> idx2 & 1 and bin(ri.submitted).count("1") == 2
    assert audit(task_id, 1, devnet.rpc_url, manifest, spec).returncode == 0


def test_a_miner_killed_and_restarted_resumes_without_voting_twice(devnet, w3, deployed, tmp_path: Path):
    fl, manifest = deployed
    spec = f"embedded:{tmp_path / 'store'}"
    store = open_store(spec)
    cfg = small_task(rounds=2, committee_size=3)
    task_id, req, clients, miners = start(fl, store, cfg, miners=2)  # the third miner is a process
    m_account = MINER0 + 2
    me = devnet_account(m_account).address
    args = [
        "miner",
        "run",
        "--task",
        str(task_id),
        "--rpc",
        devnet.rpc_url,
        "--manifest",
        str(manifest),
        "--store",
        spec,
        "--account",
        str(m_account),
    ]
    for m in miners:  # stake now, but do not step them until the process miner has voted
        m.ledger.stake(m.ledger.min_stake())
    proc = spawn(args, tmp_path / "m1.log")
    try:
        # round 1: wait until the process miner voted, kill it right after, restart it
        drive(
            [req, *clients.values()],
            lambda: fl.task_info(task_id)["current_round"] == 1 and fl.round_info(task_id, 1).phase == Phase.AGGREGATE,
            timeout=180,
        )
        deadline = time.monotonic() + 180
        while fl.vote_of(task_id, 1, me) == b"\0" * 32:
            assert time.monotonic() < deadline, (tmp_path / "m1.log").read_text()
            time.sleep(0.1)
        kill(proc)
        proc = spawn(args, tmp_path / "m2.log")  # restarted while round 1 still waits for the others
        drive(
            [req, *clients.values(), *miners],
            lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED,
            timeout=300,
        )
    finally:
        if proc.poll() is None:
            kill(proc)
    for r in (1, 2):
        assert fl.round_info(task_id, r).phase == Phase.FINALISED  # 3 of 3 votes: the restarted miner voted
        votes = fl.events("ProposalVoted", taskId=task_id, round=r, miner=me)
        assert len(votes) == 1  # exactly once per round, across the crash
        # miners rebuild pre-round reputations from events: the same as the archive state says
        opened = fl.events("RoundOpened", taskId=task_id, round=r)[0]["block_number"]
        from_events = reputations_before(fl, task_id, r, opened)
        assert [from_events[i] for i in range(3)] == fl.reputations(task_id, block=opened)


def _bad_submitter(agent, kind: str):
    """Make a client upload something bad in place of its trained model."""

    def train(r: int) -> LocalModel:
        cid, digest = agent.ledger.global_model(agent.task_id)
        w, _ = fetch_weights(agent.store, cid, digest, expected=None)
        meta = WeightsMeta(model_spec=agent.cfg.model_spec(), task=str(agent.task_id), round=r, producer=agent.address)
        if kind == "tampered-digest":
            data = dumps(w, meta)
            digest = bytes.fromhex(sha256_hex(data + b"x"))  # digest of other bytes
        elif kind == "nan":
            bad = OrderedDict((k, v.clone()) for k, v in w.items())
            next(iter(bad.values())).view(-1)[0] = math.nan
            data = dumps(bad, meta)
            digest = bytes.fromhex(sha256_hex(data))
        else:  # a pickle, as torch.save would write: must never be unpickled
            data = pickle.dumps({k: v.numpy() for k, v in w.items()})
            digest = bytes.fromhex(sha256_hex(data))
        return LocalModel(compute_cid(data), digest, "", len(agent.x), data, b"")

    agent._train = train


def test_tampered_nan_and_pickle_submissions_are_rejected_and_the_round_finalises(devnet, w3, deployed, tmp_path: Path):
    fl, manifest = deployed
    spec = f"embedded:{tmp_path / 'store'}"
    store = open_store(spec)
    cfg = small_task(clients=5, min_clients=5, rounds=1, committee_size=2)
    task_id, req, clients, miners = start(fl, store, cfg, miners=2)
    for k, kind in {2: "tampered-digest", 3: "nan", 4: "pickle"}.items():
        _bad_submitter(clients[k], kind)
    drive([req, *clients.values(), *miners], lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED)
    ri = fl.round_info(task_id, 1)
    index = {a: i for i, a in enumerate(fl.clients(task_id))}
    owner_idx = {k: index[c.address] for k, c in clients.items()}
    assert ri.phase == Phase.FINALISED
    assert ri.submitted == 0b11111
    assert {k for k in clients if ri.accepted >> owner_idx[k] & 1} == {0, 1}
    rejected = miners[0].outcomes[1].rejected
    assert "does not match the on-chain digest" in rejected[owner_idx[2]]
    assert "NaN/infinite" in rejected[owner_idx[3]]
    assert "pickle" in rejected[owner_idx[4]] and "never unpickle" in rejected[owner_idx[4]]
    # honest peers gave the unusable models a score of zero
    scores = fl.revealed_scores(task_id, 1)
    assert all(scores[owner_idx[0]][owner_idx[k]] == 0 for k in (2, 3, 4))
    result = audit(task_id, 1, devnet.rpc_url, manifest, spec)
    assert result.returncode == 0 and "rejected as bad input" in result.stderr


def test_audit_fails_when_the_recorded_result_does_not_follow(devnet, w3, deployed, tmp_path: Path):
    fl, manifest = deployed
    spec = f"embedded:{tmp_path / 'store'}"
    store = open_store(spec)
    cfg = small_task(rounds=1, committee_size=1)
    task_id, req, clients, miners = start(fl, store, cfg, miners=1)
    miners[0].ledger.stake(miners[0].ledger.min_stake())  # staked, but its agent never runs
    drive(
        [req, *clients.values()],
        lambda: fl.task_info(task_id)["current_round"] == 1 and fl.round_info(task_id, 1).phase == Phase.AGGREGATE,
    )
    # a dishonest committee of one records an accepted set its own defence would not give
    honest = miners[0]
    outcome = __import__("fedledger.miner.round", fromlist=["compute_round"]).compute_round(fl, store, task_id, 1)
    if outcome.global_bytes is not None:
        store.put(outcome.global_bytes)
    forged = Proposal(
        outcome.proposal.global_cid,
        outcome.proposal.global_digest,
        0b001,
        outcome.proposal.reputations,
        0,
        outcome.proposal.next_selection,
    )
    honest.ledger.propose(task_id, 1, forged)
    assert fl.round_info(task_id, 1).phase == Phase.FINALISED
    result = audit(task_id, 1, devnet.rpc_url, manifest, spec)
    assert result.returncode == 1 and "accepted set" in result.stderr


def test_a_restarted_client_keeps_its_privacy_account(devnet, w3, deployed, tmp_path: Path):
    from fedledger.client.agent import ClientAgent

    fl, _ = deployed
    store = open_store(f"embedded:{tmp_path / 'store'}")
    cfg = small_task(clients=2, min_clients=2, rounds=2, dp="gaussian", noise_multiplier=1.0, clip=1.0)
    task_id, req, clients, miners = start(fl, store, cfg)
    drive([req, *clients.values(), *miners], lambda: fl.task_info(task_id)["current_round"] == 2)
    restarted = ClientAgent(clients[0].ledger, store, task_id, 0)  # a fresh process: nothing in memory
    drive([req, restarted, clients[1], *miners], lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED)
    # both owners hold the same number of samples and trained in both rounds: same privacy spend
    assert len(restarted.x) == len(clients[1].x)
    assert restarted.epsilon is not None and restarted.epsilon == pytest.approx(clients[1].epsilon, rel=1e-9)
    assert restarted.epsilon > 0


def test_a_client_too_late_for_a_phase_waits_instead_of_failing(devnet, w3, deployed, tmp_path: Path):
    fl, _ = deployed
    store = open_store(f"embedded:{tmp_path / 'store'}")
    cfg = small_task(clients=2, min_clients=2, rounds=1)
    task_id, req, clients, miners = start(fl, store, cfg)
    drive(
        [req, *clients.values(), *miners],
        lambda: fl.task_info(task_id)["current_round"] == 1 and fl.round_info(task_id, 1).phase == Phase.COMMIT,
    )
    w3.provider.make_request("evm_increaseTime", [61])  # the commit deadline passes before owner 0 acts
    w3.provider.make_request("evm_mine", [])
    assert clients[0].step() == "idle"  # DeadlinePassed: no crash, nothing sent
    assert fl.round_info(task_id, 1).committed == 0
    drive(
        [req, *clients.values(), *miners],
        lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED,
        w3=w3,
        jump=61,
    )
    assert fl.round_info(task_id, 1).phase == Phase.FINALISED  # the miner advanced; the round went on


def test_an_owner_killed_between_commit_and_reveal_still_reveals(devnet, w3, deployed, tmp_path: Path):
    """Agents are thin loops over chain state: an owner process killed after it committed to its
    model, and started again, retrains the same model (seeded), uploads it and reveals it. Until
    the reveal no committed model is in the store (uploaded only after every commitment is in)."""
    fl, manifest = deployed
    spec = f"embedded:{tmp_path / 'store'}"
    store = open_store(spec)
    cfg = small_task(rounds=2, train_s=900)  # no deadline while the process starts on a busy box
    task_id, req, clients, miners = start(fl, store, cfg, skip_clients=(0,))
    owner0 = devnet_account(CLIENT0).address
    args = ["client", "run", "--task", str(task_id), "--data-owner", "0", "--rpc", devnet.rpc_url]
    args += ["--manifest", str(manifest), "--store", spec, "--account", str(CLIENT0)]
    proc = spawn(args, tmp_path / "c0.log")
    try:
        drive([clients[1], clients[2]], lambda: len(fl.clients(task_id)) == 3, timeout=120)
        # owner 2 holds round 1's training open, so the process cannot get past its commitment
        drive(
            [req, clients[1], *miners],
            lambda: all(
                fl.events("ModelCommitted", taskId=task_id, round=1, client=a) for a in (owner0, clients[1].address)
            ),
            timeout=180,
        )
        kill(proc)
        assert fl.round_info(task_id, 1).phase == Phase.TRAIN
        assert not store.has(clients[1]._models[1].weights_cid)  # committed, not yet uploaded
        proc = spawn(args, tmp_path / "c0-restarted.log")
        drive(
            [req, *clients.values(), *miners],
            lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED,
            timeout=300,
        )
    finally:
        if proc.poll() is None:
            kill(proc)
    for r in (1, 2):
        ri = fl.round_info(task_id, r)
        assert ri.phase == Phase.FINALISED and ri.submitted == 0b111  # the restarted owner revealed
        assert len(fl.events("ModelCommitted", taskId=task_id, round=r, client=owner0)) == 1  # once per round
    assert "CommitmentMismatch" not in (tmp_path / "c0-restarted.log").read_text()
