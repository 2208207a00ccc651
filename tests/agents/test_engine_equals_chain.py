"""The in-process engine is the same engine as the chain: one federation (20 owners, 3 rounds, 4
label flippers, top-16 selection so reputation, standby order and selection all matter) under seven
defences, run by `fedledger.experiment` and by `fedledger simulate` on anvil, gives the same
selection, accepted set, winner, reputations and global model in every round.

Kept small so it runs in `make test`: the MLP on real MNIST with 5 local steps per round, one
miner on a committee of one (what is compared is what a round decides, not consensus), and peer
validation only for BPCV-FL, the one defence that reads it. All seven share the session's anvil.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fedledger.core.chain import FedLedger, bits, connect, devnet_account
from fedledger.core.defences.base import weights_digest
from fedledger.core.protocol.rounds import fetch_weights, in_model_order
from fedledger.core.protocol.task import TaskConfig
from fedledger.core.storage import open_store
from fedledger.experiment import ExperimentConfig, run_experiment
from fedledger.simulate import SimConfig, simulate

DEFENCES = ["root-guard", "fedavg", "krum", "trimmed-mean", "fltrust", "bpcv-fl", "ll-bcfl"]
MALICIOUS, ATTACK = 0.2, "label-flip"
TASK = TaskConfig(
    clients=20,
    min_clients=20,
    rounds=3,
    local_steps=5,
    selection="top-n",
    selection_n=16,
    committee_size=1,
    train_s=300,
    commit_s=300,
    reveal_s=300,
    aggregate_s=300,
)


def engine_config(task: TaskConfig) -> ExperimentConfig:
    """The same federation for the in-process engine."""
    return ExperimentConfig(
        dataset=task.dataset,
        model=task.model,
        clients=task.clients,
        malicious=MALICIOUS,
        attack=ATTACK,
        defence=task.defence,
        rounds=task.rounds,
        lr=task.lr,
        batch_size=task.batch_size,
        local_epochs=task.local_epochs,
        local_steps=task.local_steps or None,
        partition=task.partition,
        alpha=task.alpha,
        val_fraction=task.val_fraction,
        select=task.selection_n if task.selection == "top-n" else None,
        peer_validators=task.peer_validators,
        miner_test_size=task.test_size,
        root_size=task.root_size,
        seed=task.seed,
    )


def chain_rounds(report, out: Path) -> list[dict]:
    """Per round, what the chain recorded: selection, accepted, winner, reputations, global digest."""
    w3 = connect(report.rpc_url)
    fl = FedLedger.from_manifest(w3, report.manifest, devnet_account(0))
    store = open_store(report.store)
    index = {a: i for i, a in enumerate(fl.clients(report.task_id))}
    assert list(index.values()) == [index[devnet_account(1 + k).address] for k in range(TASK.clients)]  # index = owner
    rounds = []
    for r in range(1, TASK.rounds + 1):
        ri = fl.round_info(report.task_id, r)
        proposal = fl.proposals(report.task_id, r)[ri.result]
        weights, _ = fetch_weights(store, proposal.global_cid, proposal.global_digest, expected=None)
        weights = in_model_order(weights, TASK)
        rounds.append(
            {
                "selected": bits(ri.selected),
                "accepted": bits(ri.accepted),
                "winner": ri.winner - 1 if ri.winner else None,
                "reputations": list(proposal.reputations),
                "digest": weights_digest(weights),
            }
        )
    return rounds


def fl_defence(report) -> str:
    fl = FedLedger.from_manifest(connect(report.rpc_url), report.manifest, devnet_account(0))
    return fl.task_mechanism(report.task_id).defence


def engine_rounds(cfg: ExperimentConfig) -> tuple[list[dict], str]:
    from fedledger.core.data import load_dataset
    from fedledger.core.models import create_model, get_weights

    res = run_experiment(cfg)
    ds = load_dataset(cfg.dataset)
    digest = weights_digest(
        get_weights(create_model(cfg.model, seed=cfg.seed, in_shape=ds.input_shape, num_classes=ds.num_classes))
    )
    rounds = []
    for rr in res.rounds:
        digest = rr.digest or digest  # a round that adopts nothing keeps the global model
        rounds.append(
            {
                "selected": rr.participants,
                "accepted": rr.accepted,
                "winner": rr.winner,
                "reputations": rr.reputations,
                "digest": digest,
            }
        )
    return rounds, res.malicious


@pytest.mark.parametrize("defence", DEFENCES)
def test_engine_and_chain_decide_every_round_alike(defence: str, devnet, tmp_path: Path):
    task = replace(TASK, defence=defence, peer_validation=defence == "bpcv-fl")
    engine, malicious = engine_rounds(engine_config(task))
    report = simulate(
        SimConfig(
            task=task,
            malicious=MALICIOUS,
            attack=ATTACK,
            miners=1,
            rpc=devnet.rpc_url,
            out_dir=tmp_path / "sim",
            timeout=900,
        )
    )
    assert report.malicious == malicious and len(malicious) == 4
    assert [r.status for r in report.rounds] == ["finalised"] * TASK.rounds
    chain = chain_rounds(report, tmp_path)
    for r, (e, c) in enumerate(zip(engine, chain, strict=True), start=1):
        assert e == c, f"{defence}, round {r}: engine {e} != chain {c}"
    # The federation exercised the rules it compares: standbys, a defence that rejects, a
    # selection that moves (LL-BCFL accepts these flippers after 5 steps, but the standbys'
    # registration reputations beat the updated ones, so they rotate in).
    assert all(len(e["selected"]) == TASK.selection_n for e in engine)
    if defence in ("krum", "bpcv-fl", "fltrust"):
        assert any(set(e["accepted"]) != set(e["selected"]) for e in engine)
    if defence in ("krum", "ll-bcfl"):  # rejected or outranked owners give way to standbys
        assert engine[1]["selected"] != engine[0]["selected"]
    if defence == "krum":
        assert fl_defence(report) == "krum?num_malicious=4"  # the simulation states its attacker count
