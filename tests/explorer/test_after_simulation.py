"""The explorer over a real simulated federation (agents, MNIST, embedded store)."""

import hashlib
from pathlib import Path

from fastapi.testclient import TestClient

from fedledger.core.protocol.task import TaskConfig
from fedledger.explorer import create_app
from fedledger.simulate import SimConfig, simulate


def test_the_explorer_shows_a_simulated_task(devnet, tmp_path: Path):
    task = TaskConfig(clients=3, min_clients=3, rounds=2, local_epochs=1, defence="bvfb", committee_size=1)
    out = tmp_path / "sim"
    report = simulate(
        SimConfig(
            task=task, malicious=0.34, attack="label-flip", miners=1, rpc=devnet.rpc_url, out_dir=out, timeout=600
        )
    )
    app = create_app(rpc_url=devnet.rpc_url, manifest=report.manifest, storage=report.store, metrics=out)
    with TestClient(app) as http:
        t = report.task_id
        detail = http.get(f"/api/tasks/{t}").json()
        assert detail["status"].lower() == "finished"
        rounds = http.get(f"/api/tasks/{t}/rounds").json()
        rounds = rounds["rounds"] if isinstance(rounds, dict) else rounds
        assert [str(r["phase"]).lower() for r in rounds] == ["finalised", "finalised"]
        body = http.get(f"/api/tasks/{t}/rounds/2").text
        (bad,) = report.malicious
        assert str(round(report.rounds[-1].accuracy, 4))[:5] in body  # accuracy from the simulation's metrics
        latest = http.get("/api/getLatestModel", params={"task": t}).json()
        assert latest["cid"] == report.rounds[-1].global_cid
        model = http.get(f"/ipfs/{latest['cid']}")
        assert model.status_code == 200
        assert hashlib.sha256(model.content).hexdigest() == str(latest["digest"]).removeprefix("0x")
        page = http.get(f"/task/{t}")
        assert page.status_code == 200 and "heat" in page.text.lower()
        assert bad not in report.rounds[0].accepted
