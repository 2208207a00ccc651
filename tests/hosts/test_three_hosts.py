"""Three hosts (two data owners and a miner, each with its own empty IPFS node) plus the chain's
host finish a 2-round federation in which every model moves over the virtual IPFS network: the
miner's link receives both owners' models each round, the owners' links the global model, a fresh
auditor host fetches everything it checks over the network, and each node pins what it must keep."""

from __future__ import annotations

import os
from pathlib import Path

from fedledger.core import netns
from fedledger.core.models import create_model
from fedledger.simulate import SimConfig, simulate

from ..agents.harness import small_task


def _model_bytes(task) -> int:
    ds = task.data()
    model = create_model(task.model, in_shape=tuple(ds.input_shape), num_classes=ds.num_classes)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def test_three_hosts_move_content_only_over_the_virtual_network(tmp_path: Path) -> None:
    task = small_task(clients=2, min_clients=2, rounds=2, train_s=300, commit_s=300, reveal_s=300, aggregate_s=300)
    report = simulate(SimConfig(task=task, miners=1, placement="hosts", out_dir=tmp_path))

    assert [r.status for r in report.rounds] == ["finalised", "finalised"]
    assert all(r.submitted == [0, 1] for r in report.rounds)
    info = report.hosts
    assert info["where"] == {"owner0": "owner0", "owner1": "owner1", "miner0": "miner0"}
    assert len(set(info["addresses"].values())) == 5  # chain, two owners, miner, auditor

    # Measured at each host's IPFS link: the miner fetched both owners' models in every round,
    # each owner fetched the global model it trains on; the chain's RPC runs on another link.
    size = _model_bytes(task)
    for r in report.rounds:
        assert r.traffic["miner0"]["ipfs_rx"] > 2 * size, (r.round, r.traffic)
        for owner in ("owner0", "owner1"):
            assert r.traffic[owner]["ipfs_rx"] > size, (r.round, owner, r.traffic)
            assert r.traffic[owner]["ipfs_tx"] > size  # its own model went out to the miner
    # the auditor did nothing until the audits: then everything it checked came over its link
    assert info["audit"]["blocks_before"] == 0 and info["audit"]["blocks_after"] > 0
    for r in report.rounds:
        audit = info["audit"][str(r.round)]
        assert audit["exit"] == 0 and "verified" in audit["said"], audit

    # who keeps what alive: each owner pins exactly what it submitted, the miner the global models
    for owner in ("owner0", "owner1"):
        assert sorted(info["pins"][owner]) == sorted(info["submitted"][owner])
        assert len(info["submitted"][owner]) == 2 * len(report.rounds)  # weights + behaviour model per round
    assert set(info["pins"]["miner0"]) == {r.global_cid for r in report.rounds}
    assert info["pins"]["auditor"] == []

    # torn down: no namespace, and none of the run's processes (chain node, IPFS nodes, agents) left
    assert [ns for ns in netns.namespaces() if ns.startswith(f"fl{os.getpid()}x")] == []
    assert info["pids"] and [pid for pid in info["pids"] if Path(f"/proc/{pid}").exists()] == []
