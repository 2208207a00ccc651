"""A node outage mid-round: data owners, a miner and the requester run as their own processes; the
chain node (anvil with a state file) is killed and restarted; the task still finishes, every
round finalises once, nothing is submitted or voted twice and the rewards are the usual ones."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

from fedledger.core.chain import Phase, TaskStatus, connect, devnet_account
from fedledger.core.chain.contract import FedLedger
from fedledger.core.storage import open_store
from fedledger.deploy import devnet as devnet_mod
from fedledger.deploy.deployer import deploy
from fedledger.requester import publish

from .harness import CLIENT0, MINER0, kill, small_task, spawn

OWNERS, ROUNDS = 3, 2


def _wait(what: str, ok, timeout: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {f.name}\n{f.read_text()[-1500:]}" for f in sorted(logs.glob("*.log")))
            raise AssertionError(f"{what} not reached in {timeout:.0f} s\n{tails}")
        time.sleep(0.2)


def test_agents_ride_out_a_chain_node_outage(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    logs = tmp_path / "logs"
    logs.mkdir()
    node = devnet_mod.start("anvil", log_dir=tmp_path, state=state)
    procs = []
    try:
        w3 = connect(node.rpc_url)
        deploy(w3, devnet_account(0), force=True, directory=tmp_path / "deployments")
        manifest = tmp_path / "deployments" / "31337.json"
        fl = FedLedger.from_manifest(w3, manifest, devnet_account(0))
        spec = f"embedded:{tmp_path / 'store'}"
        cfg = small_task(
            clients=OWNERS, min_clients=OWNERS, rounds=ROUNDS, train_s=300, commit_s=300, reveal_s=300, aggregate_s=300
        )
        task_id = publish(fl, open_store(spec), cfg)
        common = ["--task", str(task_id), "--rpc", node.rpc_url, "--manifest", str(manifest), "--outage-timeout", "120"]
        procs.append(spawn(["task", "start", *common, "--account", "0"], logs / "requester.log"))
        procs.append(spawn(["miner", "run", *common, "--store", spec, "--account", str(MINER0)], logs / "miner.log"))
        for k in range(OWNERS):
            procs.append(
                spawn(
                    ["client", "run", *common, "--store", spec, "--data-owner", str(k), "--account", str(CLIENT0 + k)],
                    logs / f"owner{k}.log",
                )
            )

        # mid-round: round 1 open and at least one model submitted
        _wait(
            "a submission in round 1",
            lambda: fl.task_info(task_id)["current_round"] >= 1 and fl.round_info(task_id, 1).submitted != 0,
            240,
            logs,
        )
        time.sleep(1.5)  # let anvil write the state file at least once after the submission
        os.killpg(node.pid, signal.SIGKILL)
        time.sleep(4)  # the agents find the node gone
        node = devnet_mod.start("anvil", port=node.port, log_dir=tmp_path, state=state)
        fl = FedLedger.from_manifest(connect(node.rpc_url), manifest, devnet_account(0))
        assert fl.task_info(task_id)["current_round"] >= 1  # the chain came back with the task

        _wait("the task finished", lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED, 420, logs)
        for p in procs:
            p.wait(timeout=120)
            assert p.returncode == 0, [f.read_text()[-2000:] for f in sorted(logs.glob("*.log"))]
        assert "away" in (logs / "miner.log").read_text() or any(
            "away" in (logs / f"owner{k}.log").read_text() for k in range(OWNERS)
        )  # they did see the outage
        finalised = Counter(e["round"] for e in fl.events("RoundFinalised", taskId=task_id))
        assert finalised == {r: 1 for r in range(1, ROUNDS + 1)}
        for r in range(1, ROUNDS + 1):
            assert fl.round_info(task_id, r).phase == Phase.FINALISED
            submitted = Counter(e["client"] for e in fl.events("ModelSubmitted", taskId=task_id, round=r))
            assert len(submitted) == OWNERS and set(submitted.values()) == {1}  # each owner exactly once
            votes = Counter(e["miner"] for e in fl.events("ProposalVoted", taskId=task_id, round=r))
            assert set(votes.values()) == {1}
        # rewards as without an outage: FedAvg accepts every owner, so every owner earns the same
        # client reward, one winner bonus is paid per round, and all credits add up to the escrow
        by_kind: dict[int, Counter[str]] = {}
        for e in fl.events("PaymentCredited", taskId=task_id):
            by_kind.setdefault(int(e["kind"]), Counter())[e["payee"]] += int(e["amount"])
        owners = [devnet_account(CLIENT0 + k).address for k in range(OWNERS)]
        client_reward, winner_bonus = by_kind[0], by_kind.get(1, Counter())
        assert len({client_reward[a] for a in owners}) == 1 and client_reward[owners[0]] > 0
        bonuses = [e for e in fl.events("PaymentCredited", taskId=task_id) if int(e["kind"]) == 1]
        assert len(bonuses) == ROUNDS and set(winner_bonus) <= set(owners)  # once per round, not twice
        credited = sum((c for c in by_kind.values()), Counter())
        spec_ = fl.task_spec(task_id)
        assert sum(credited.values()) == spec_.reward_per_round * spec_.rounds
    finally:
        for p in procs:
            if p.poll() is None:
                kill(p)
        node.stop()


def test_agents_ride_out_an_ipfs_daemon_outage(devnet, w3, deployed, tmp_path: Path) -> None:
    """The IPFS daemon every agent stores in is killed mid-round and restarted on its kept repo and
    port: the agents wait, resume and finish the task; nothing is submitted twice."""
    from fedledger.core.storage import daemon

    fl, manifest = deployed
    logs = tmp_path / "logs"
    logs.mkdir()
    repo, state = tmp_path / "ipfs-repo", tmp_path / "ipfs-state"
    ipfs = daemon.start(state, repo=repo)
    port = int(ipfs.api.rsplit(":", 1)[1])
    procs = []
    try:
        cfg = small_task(
            clients=OWNERS, min_clients=OWNERS, rounds=ROUNDS, train_s=300, commit_s=300, reveal_s=300, aggregate_s=300
        )
        task_id = publish(fl, open_store(ipfs.api), cfg)
        common = [
            "--task",
            str(task_id),
            "--rpc",
            devnet.rpc_url,
            "--manifest",
            str(manifest),
            "--outage-timeout",
            "120",
            "--store",
            ipfs.api,
        ]
        procs.append(spawn(["task", "start", *common[:-2], "--account", "0"], logs / "requester.log"))
        procs.append(spawn(["miner", "run", *common, "--account", str(MINER0)], logs / "miner.log"))
        for k in range(OWNERS):
            procs.append(
                spawn(
                    ["client", "run", *common, "--data-owner", str(k), "--account", str(CLIENT0 + k)],
                    logs / f"owner{k}.log",
                )
            )
        _wait(
            "a submission in round 1",
            lambda: fl.task_info(task_id)["current_round"] >= 1 and fl.round_info(task_id, 1).submitted != 0,
            240,
            logs,
        )
        os.kill(ipfs.pid, signal.SIGKILL)
        time.sleep(4)
        ipfs = daemon.start(state, repo=repo, port=port)
        _wait("the task finished", lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED, 420, logs)
        for p in procs:
            p.wait(timeout=120)
            assert p.returncode == 0, [f.read_text()[-2000:] for f in sorted(logs.glob("*.log"))]
    finally:
        for p in procs:
            if p.poll() is None:
                kill(p)
        daemon.stop(state)
    assert any("IPFS daemon is away" in f.read_text() for f in logs.glob("*.log"))  # the outage was seen
    for r in range(1, ROUNDS + 1):
        assert fl.round_info(task_id, r).phase == Phase.FINALISED
        assert fl.round_info(task_id, r).accepted == fl.round_info(task_id, r).submitted  # none taken for bad input
        submitted = Counter(e["client"] for e in fl.events("ModelSubmitted", taskId=task_id, round=r))
        assert len(submitted) == OWNERS and set(submitted.values()) == {1}
    # the restarted node kept what was stored before the kill: round 1's models are still there
    again = daemon.start(state, repo=repo, port=port)
    try:
        store = open_store(again.api)
        for s in fl.submissions(task_id, 1):
            assert len(store.get(s.weights_cid)) > 0
    finally:
        daemon.stop(state)
