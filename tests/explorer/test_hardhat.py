"""The explorer on a real Hardhat node, which has no `ots_*` methods: the `eth_*` fallback is
picked by itself and gives the same views."""

from __future__ import annotations

import httpx

from tests.explorer.conftest import Deployment, Server, play_round


def test_explorer_on_hardhat_falls_back_to_eth(tmp_path):
    from fedledger.core.chain import FedLedger, connect, devnet_account
    from fedledger.core.storage import EmbeddedStore
    from fedledger.deploy import devnet
    from fedledger.deploy.deployer import deploy
    from fedledger.explorer import create_app
    from tests.chain.helpers import MINER_ACCOUNTS, running_task

    net = devnet.start("hardhat", log_dir=tmp_path)
    try:
        w3 = connect(net.rpc_url)
        deploy(w3, devnet_account(0), force=True, directory=tmp_path, min_stake=10**18, unstake_delay=3600)
        fl = FedLedger.from_manifest(w3, tmp_path / "31337.json", devnet_account(0))
        dep = Deployment(fl, tmp_path / "31337.json", EmbeddedStore(tmp_path / "store"), tmp_path / "metrics")
        for i in MINER_ACCOUNTS[:3]:  # Hardhat funds only its first 20 accounts
            w3.provider.make_request("hardhat_setBalance", [devnet_account(i).address, hex(100 * 10**18)])
        task = running_task(fl, n_clients=4, n_miners=3, committee=3, rounds=2)
        play_round(dep, task, 1)
        app = create_app(rpc_url=net.rpc_url, manifest=dep.manifest, storage=f"embedded:{dep.store.root}")
        with Server(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
            assert c.get("/api/head").json()["ots_api_level"] == 0
            r1 = c.get(f"/api/tasks/{task.task_id}/rounds/1").json()
            assert r1["status"] == "finalised" and len(r1["submissions"]) == 4 and len(r1["scores"]["matrix"]) == 4
            sub = fl.submissions(task.task_id, 1)[0]
            tx = c.get(f"/api/tx/{sub.tx_hash}").json()
            assert tx["call"]["function"] == "submitModel" and tx["events"][0]["event"] == "ModelSubmitted"
            addr = c.get(f"/api/address/{sub.client}").json()
            assert "data owner" in addr["roles"] and sub.tx_hash in [x["hash"] for x in addr["transactions"]]
            assert c.get(f"/task/{task.task_id}").status_code == 200
    finally:
        net.stop()
