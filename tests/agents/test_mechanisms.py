"""Selection, mutual supervision and rewards through the agents and the chain (real MNIST)."""

from pathlib import Path

from fedledger.client.agent import ClientAgent
from fedledger.core.chain import Phase, TaskStatus, bits, devnet_account
from fedledger.core.storage import open_store
from fedledger.requester import publish
from tests.agents.harness import CLIENT0, drive, small_task, start


def _owner_bits(fl, task_id, bitmap: int, clients: dict) -> set[int]:
    index = {a: i for i, a in enumerate(fl.clients(task_id))}
    return {k for k, c in clients.items() if bitmap >> index[c.address] & 1}


def test_ll_bcfl_top_n_selection_follows_on_chain_reputation(devnet, w3, deployed, tmp_path: Path):
    fl, _ = deployed
    store = open_store(f"embedded:{tmp_path / 'store'}")
    cfg = small_task(
        clients=4,
        min_clients=4,
        rounds=3,
        defence="ll-bcfl",
        selection="top-n",
        selection_n=3,
        local_steps=0,
        local_epochs=1,
    )
    task_id, req, clients, miners = start(fl, store, cfg, skip_clients=(0,))
    flipper = ClientAgent(fl.as_account(devnet_account(CLIENT0)), store, task_id, 0, attack="label-flip")
    flipper.register()  # first to register: index 0, wins the tie of equal self-assessments
    clients[0] = flipper
    drive([req, *clients.values(), *miners], lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED)
    picked = [_owner_bits(fl, task_id, fl.round_info(task_id, r).selected, clients) for r in (1, 2, 3)]
    assert picked[0] == {0, 1, 2}  # round 1: top 3 by self-assessment (ties to the earlier registrant)
    assert picked[1] == picked[2] == {1, 2, 3}  # its updates fail validation: reputation drops, the standby joins
    reps = fl.reputations(task_id)
    index = {a: i for i, a in enumerate(fl.clients(task_id))}
    assert reps[index[flipper.address]] < min(reps[index[clients[k].address]] for k in (1, 2, 3))


def test_bpcv_fl_mutual_validation_eliminates_the_worst_and_pays_the_winner(devnet, w3, deployed, tmp_path: Path):
    fl, _ = deployed
    store = open_store(f"embedded:{tmp_path / 'store'}")
    cfg = small_task(clients=4, min_clients=4, rounds=1, defence="bpcv-fl", local_steps=0, local_epochs=1)
    task_id, req, clients, miners = start(fl, store, cfg, skip_clients=(2,))
    clients[2] = ClientAgent(fl.as_account(devnet_account(CLIENT0 + 2)), store, task_id, 2, attack="label-flip")
    drive([req, *clients.values(), *miners], lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED)
    ri = fl.round_info(task_id, 1)
    assert ri.phase == Phase.FINALISED
    index = {a: i for i, a in enumerate(fl.clients(task_id))}
    scores = fl.revealed_scores(task_id, 1)
    quality = {
        k: sum(s[index[c.address]] for v, s in scores.items() if v != index[c.address]) for k, c in clients.items()
    }
    assert min(quality, key=quality.get) == 2  # peers judge the flipper worst on their own data
    assert _owner_bits(fl, task_id, ri.accepted, clients) == {0, 1, 3}  # the worst is eliminated
    winner = next(k for k, c in clients.items() if index[c.address] == ri.winner - 1)
    assert winner == max(quality, key=quality.get)
    credits = {
        k: e["amount"]
        for k in clients
        for e in fl.events("PaymentCredited", payee=clients[k].address, taskId=task_id)
        if e["kind"] == 1
    }  # winner bonus
    assert list(credits) == [winner]
    assert bits(ri.submitted) == [0, 1, 2, 3]


def test_trust_root_stops_a_backdoor_majority_on_chain_and_the_audit_agrees(devnet, tmp_path: Path):
    """9 of 10 owners plant a pixel trigger; three miners confine every update to the features the
    root data varies (after loading weights that arrive in any key order), the audit recomputes it."""
    import subprocess
    import sys

    from fedledger.simulate import SimConfig, simulate

    task = small_task(
        clients=10, min_clients=10, rounds=2, local_steps=0, local_epochs=2, defence="trust-root", committee_size=3
    )
    report = simulate(
        SimConfig(
            task=task,
            malicious=0.9,
            attack="backdoor",
            miners=3,
            rpc=devnet.rpc_url,
            out_dir=tmp_path / "sim",
            timeout=600,
        )
    )
    assert [r.status for r in report.rounds] == ["finalised", "finalised"]
    assert all(r.asr < 0.05 for r in report.rounds)  # BVFB alone: 1.0 in round 2 (tests/engine)
    assert report.rounds[-1].accuracy > 0.8
    audit = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedledger.cli",
            "audit",
            "--task",
            str(report.task_id),
            "--round",
            "2",
            "--rpc",
            devnet.rpc_url,
            "--manifest",
            report.manifest,
            "--store",
            report.store,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert audit.returncode == 0, audit.stderr


def test_a_task_without_peer_validation_skips_commit_and_reveal_and_still_audits(devnet, w3, deployed, tmp_path: Path):
    import pytest

    from fedledger.miner.round import compute_round

    fl, _ = deployed
    store = open_store(f"embedded:{tmp_path / 'store'}")
    tasks_before = fl.task_count()
    with pytest.raises(ValueError, match="peer_validation"):
        publish(fl, store, small_task(defence="bpcv-fl", peer_validation=False))  # it needs the scores
    with pytest.raises(ValueError, match="peer_validators"):
        publish(fl, store, small_task(peer_validators=-1))
    assert fl.task_count() == tasks_before  # refused before anything went on chain
    cfg = small_task(
        clients=4, min_clients=4, rounds=1, defence="bvfb", local_steps=0, local_epochs=1, peer_validation=False
    )
    task_id, req, clients, miners = start(fl, store, cfg, skip_clients=(3,))
    clients[3] = ClientAgent(fl.as_account(devnet_account(CLIENT0 + 3)), store, task_id, 3, attack="label-flip")
    drive([req, *clients.values(), *miners], lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED)
    ri = fl.round_info(task_id, 1)
    assert ri.phase == Phase.FINALISED and ri.committed == 0 and ri.revealed == 0
    assert fl.events("ScoresCommitted", taskId=task_id) == []
    phases = [Phase(e["phase"]) for e in fl.events("PhaseChanged", taskId=task_id)]
    assert phases == [Phase.TRAIN, Phase.SUBMIT, Phase.AGGREGATE, Phase.FINALISED]
    assert _owner_bits(fl, task_id, ri.accepted, clients) == {0, 1, 2}  # BVFB needs no peer scores
    recorded = fl.proposals(task_id, 1)[ri.result]
    assert compute_round(fl, store, task_id, 1).proposal == recorded  # what `audit` checks


def test_sampled_peer_validation_scores_each_model_by_k_peers_drawn_from_the_round_seed(
    devnet, w3, deployed, tmp_path: Path
):
    from fedledger.core.protocol.validation import validation_targets
    from fedledger.miner.round import compute_round

    fl, _ = deployed
    store = open_store(f"embedded:{tmp_path / 'store'}")
    cfg = small_task(
        clients=5, min_clients=5, rounds=1, defence="bpcv-fl", local_steps=0, local_epochs=1, peer_validators=2
    )
    task_id, req, clients, miners = start(fl, store, cfg, skip_clients=(4,))
    clients[4] = ClientAgent(fl.as_account(devnet_account(CLIENT0 + 4)), store, task_id, 4, attack="label-flip")
    drive([req, *clients.values(), *miners], lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED)
    ri = fl.round_info(task_id, 1)
    assert ri.phase == Phase.FINALISED and fl.task_mechanism(task_id).peer_validators == 2
    targets = validation_targets(bits(ri.submitted), 2, ri.seed)
    revealed = fl.revealed_scores(task_id, 1)
    assert set(revealed) == set(bits(ri.submitted))
    for v, scores in revealed.items():  # each owner scored exactly its 2 assigned peers, nobody else
        assert [t for t, s in enumerate(scores) if s > 0] == targets[v]
    index = {a: i for i, a in enumerate(fl.clients(task_id))}
    assert _owner_bits(fl, task_id, ri.accepted, clients) == {0, 1, 2, 3}  # its 2 validators sank the flipper
    assert ri.winner - 1 != index[clients[4].address]
    assert compute_round(fl, store, task_id, 1).proposal == fl.proposals(task_id, 1)[ri.result]  # the audit agrees


def test_colluders_find_each_other_by_address_whatever_the_registration_order(devnet, w3, deployed, tmp_path: Path):
    fl, _ = deployed
    store = open_store(f"embedded:{tmp_path / 'store'}")
    cfg = small_task(clients=4, min_clients=4, rounds=1, defence="bpcv-fl", local_steps=5)
    task_id, req, clients, miners = start(fl, store, cfg, skip_clients=(1, 3))
    mates = frozenset(devnet_account(CLIENT0 + k).address for k in (1, 3))
    for k in (1, 3):
        clients[k] = ClientAgent(
            fl.as_account(devnet_account(CLIENT0 + k)),
            store,
            task_id,
            k,
            attack="collusive",
            accomplices=mates,
            n_malicious=2,
        )
    order = [clients[k] for k in (3, 2, 1, 0)]  # owner 3 registers first: chain index 0
    drive([req, *order, *miners], lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED)
    index = {a: i for i, a in enumerate(fl.clients(task_id))}
    idx = {k: index[c.address] for k, c in clients.items()}
    assert idx[3] == 0 and idx[0] == 3
    scores = fl.revealed_scores(task_id, 1)
    for k, mate in ((1, 3), (3, 1)):
        assert scores[idx[k]][idx[mate]] == 10_000  # vouches for its accomplice ...
        assert scores[idx[k]][idx[0]] == scores[idx[k]][idx[2]] == 0  # ... and sinks the honest owners
        assert scores[idx[k]][idx[k]] == 0  # never scores itself
