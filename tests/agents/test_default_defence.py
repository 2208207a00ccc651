"""The default defence on the chain: every honest owner kept and paid, every attacker dropped (real MNIST, anvil)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from fedledger.core.chain import FedLedger, devnet_account
from fedledger.core.protocol.task import TaskConfig
from fedledger.simulate import CLIENT_ACCOUNT0, SimConfig, simulate


def test_default_defence_keeps_and_pays_every_honest_owner_and_drops_the_flippers(devnet, w3, tmp_path: Path):
    task = TaskConfig(clients=6, min_clients=6, rounds=2, local_epochs=1, committee_size=3)  # no defence named
    assert task.defence == "root-guard"
    report = simulate(
        SimConfig(
            task=task,
            malicious=0.34,
            attack="label-flip",
            miners=3,
            rpc=devnet.rpc_url,
            out_dir=tmp_path / "sim",
            timeout=600,
        )
    )
    honest = sorted(set(range(6)) - set(report.malicious))
    assert len(report.malicious) == 2
    for r in report.rounds:
        assert r.status == "finalised"
        assert r.accepted == honest and r.precision == r.recall == 1.0
    fl = FedLedger.from_manifest(w3, Path(report.manifest), devnet_account(0))
    paid = Counter(e["payee"] for e in fl.events("PaymentCredited", taskId=report.task_id))
    owner = {devnet_account(CLIENT_ACCOUNT0 + k).address: k for k in range(6)}
    owners_paid = Counter({owner[a]: n for a, n in paid.items() if a in owner})
    assert all(owners_paid[k] >= len(report.rounds) for k in honest)  # credited in every round
    assert all(owners_paid[k] == 0 for k in report.malicious)
