"""The whole system on real parts: anvil, the js-ipfs daemon, real MNIST, client processes."""

import subprocess
import sys
from pathlib import Path

from fedledger.core.protocol.task import TaskConfig
from fedledger.simulate import SimConfig, simulate


def test_four_owners_two_as_processes_three_miners_bvfb_rejects_the_flipper(devnet, ipfs_api, tmp_path: Path):
    task = TaskConfig(clients=4, min_clients=4, rounds=2, local_epochs=1, defence="bvfb", committee_size=3)
    cfg = SimConfig(
        task=task,
        malicious=0.25,
        attack="label-flip",
        miners=3,
        rpc=devnet.rpc_url,
        storage=ipfs_api,
        processes=2,
        out_dir=tmp_path / "sim",
        timeout=600,
    )
    report = simulate(cfg)

    (bad,) = report.malicious
    assert [r.status for r in report.rounds] == ["finalised", "finalised"]
    for r in report.rounds:
        assert r.submitted == [0, 1, 2, 3]
        assert bad in r.rejected and r.accepted and bad not in r.accepted
        assert r.precision == 1.0 and r.recall == 1.0
    assert report.rounds[-1].accuracy > 0.8 > report.initial_accuracy  # it learned
    # commit model + reveal model + commit scores + reveal scores (~159k, docs/results/gas.md), plus
    # each phase closer's share: with 4 owners the last revealer's committee draw (~175k) adds ~45k
    assert report.gas_per_client_round < 230_000
    assert Path(report.plot).stat().st_size > 0
    assert (tmp_path / "sim" / "client-0.log").exists()  # owners 0 and 1 ran as their own processes

    for r in (1, 2):  # anyone can recompute each round from chain + IPFS alone
        audit = subprocess.run(
            [
                sys.executable,
                "-m",
                "fedledger.cli",
                "audit",
                "--task",
                str(report.task_id),
                "--round",
                str(r),
                "--rpc",
                devnet.rpc_url,
                "--manifest",
                report.manifest,
                "--store",
                ipfs_api,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert audit.returncode == 0, audit.stderr
        assert f"round {r} verified" in audit.stderr
