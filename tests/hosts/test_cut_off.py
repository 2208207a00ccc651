"""Faults across hosts: a data owner's host unplugged mid-round (both links down) does not stall the
round, which finalises without it, and the owner takes part again once plugged back in; a miner's
host unplugged and plugged back resumes from the chain and the task finishes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fedledger.core.chain import FedLedger, Phase, TaskStatus, bits, connect, devnet_account
from fedledger.deploy.deployer import deploy
from fedledger.hosts import CHAIN, HostFederation, miner_host, owner_host
from fedledger.requester import publish

from ..agents.harness import CLIENT0, MINER0, small_task


def _wait(fed: HostFederation, what: str, ok: Callable[[], bool], timeout: float) -> None:
    """Poll `ok` (keeping the IPFS nodes peered, as kubo's Peering does) until it holds."""
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            logs = sorted(fed.out.glob("hosts/*/*.log"))
            tails = "\n".join(f"--- {f.parent.name}/{f.name}\n{f.read_text(errors='replace')[-1500:]}" for f in logs)
            raise AssertionError(f"{what} not reached in {timeout:.0f} s\n{tails}")
        fed.keep_peered()
        time.sleep(0.3)


def test_cut_off_owner_rejoins_and_miner_resumes(tmp_path: Path) -> None:
    # the train phase of round 1 has to run to its deadline (one owner is away): keep it short
    cfg = small_task(clients=2, min_clients=2, rounds=2, train_s=30, commit_s=20, reveal_s=20, aggregate_s=120)
    with HostFederation(2, 1, tmp_path, auditor=False) as fed, fed.on(CHAIN):
        # owners and miner prove they reach their own node, not another host's, at 127.0.0.1
        for party in (owner_host(0), owner_host(1), miner_host(0)):
            with fed.on(party):
                assert fed.store(party).peer_id() == fed.nodes[party].peer_id
        w3 = connect(fed.rpc_url)
        deploy(w3, devnet_account(0), force=True, directory=tmp_path / "deployments")
        manifest = tmp_path / "deployments" / "31337.json"
        fl = FedLedger.from_manifest(w3, manifest, devnet_account(0))
        task_id = publish(fl, fed.store(CHAIN), cfg)
        fed.give_manifest(manifest)
        common = ["--task", str(task_id), "--rpc", fed.rpc_url, "--manifest", "deployment.json"]
        common += ["--outage-timeout", "300"]
        procs = [fed.spawn(CHAIN, ["task", "start", *common, "--account", "0"], "requester")]
        procs.append(
            fed.spawn(
                miner_host(0),
                ["miner", "run", *common, "--store", fed.api(miner_host(0)), "--account", str(MINER0)],
                "miner",
            )
        )
        for k in range(2):
            args = ["client", "run", *common, "--store", fed.api(owner_host(k)), "--data-owner", str(k)]
            procs.append(fed.spawn(owner_host(k), [*args, "--account", str(CLIENT0 + k)], f"owner{k}"))

        _wait(fed, "round 1 open", lambda: fl.task_info(task_id)["current_round"] >= 1, 300)
        fed.cut(owner_host(1))  # mid-round: before it could fetch, train and submit
        _wait(fed, "round 1 past its train phase", lambda: fl.round_info(task_id, 1).phase != Phase.TRAIN, 120)
        fed.plug(owner_host(1))
        _wait(fed, "round 1 closed", lambda: fl.round_info(task_id, 1).phase == Phase.FINALISED, 180)
        index = {a: i for i, a in enumerate(fl.clients(task_id))}
        owner = [index[devnet_account(CLIENT0 + k).address] for k in range(2)]
        r1 = fl.round_info(task_id, 1)
        assert set(bits(r1.submitted)) == {owner[0]}  # finalised without the cut-off owner

        # The miner's node is the only one that pins round 1's global model: cut it once the owners
        # have trained on it (round 2 past its train phase), and round 2 cannot close without it.
        _wait(
            fed,
            "round 2 trained",
            lambda: fl.task_info(task_id)["current_round"] >= 2 and fl.round_info(task_id, 2).phase != Phase.TRAIN,
            180,
        )
        fed.cut(miner_host(0))
        _wait(fed, "round 2 waiting for its miner", lambda: fl.round_info(task_id, 2).phase == Phase.AGGREGATE, 120)
        time.sleep(3)
        assert fl.round_info(task_id, 2).phase == Phase.AGGREGATE  # nobody aggregates while it is away
        fed.plug(miner_host(0))
        _wait(fed, "the task finished", lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED, 300)
        r2 = fl.round_info(task_id, 2)
        assert r2.phase == Phase.FINALISED
        assert set(bits(r2.submitted)) == set(owner)  # the owner is back
        assert len(fl.events("RoundFinalised", taskId=task_id)) == 2
        for p in procs:
            p.wait(timeout=120)
        logs = {f.stem: f.read_text(errors="replace") for f in (tmp_path / "hosts").glob("*/*.log")}
        assert all(p.returncode == 0 for p in procs), logs
        assert "away" in logs["owner1"] and "back after" in logs["owner1"], logs["owner1"]
