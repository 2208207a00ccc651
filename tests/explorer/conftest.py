"""Explorer fixtures: a FedLedger deployment on the session's anvil, a short task driven through
the bindings (real safetensors bytes in an embedded store), and the explorer served over HTTP."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from safetensors.numpy import save as st_save

from fedledger.core.chain import FedLedger, Proposal, devnet_account, encode_scores, model_commitment, score_commitment
from fedledger.core.chain.types import REP_SCALE
from fedledger.core.storage import EmbeddedStore
from fedledger.deploy.devnet import free_port
from tests.chain.helpers import Task, running_task

BAD = 3  # the client whose model its peers score low and the committee rejects


@dataclass
class Deployment:
    fl: FedLedger
    manifest: Path
    store: EmbeddedStore
    metrics: Path


def weights(task_id: int, round_: int, who: str) -> bytes:
    """A small real safetensors file, different for every (task, round, producer)."""
    seed = int.from_bytes(hashlib.sha256(f"{task_id}/{round_}/{who}".encode()).digest()[:4], "big")
    rng = np.random.default_rng(seed)
    tensors = {"fc.weight": rng.standard_normal((4, 3)).astype(np.float32), "fc.bias": np.zeros(4, np.float32)}
    return st_save(tensors, metadata={"format": "fedledger-weights/1", "task": str(task_id), "round": str(round_)})


def scores_of(v: int, n: int, round_: int) -> list[int]:
    """Validator v's accuracy (bps) of every client's model: honest ~85-95 %, BAD ~10-20 %."""
    return [
        0 if j == v else (1000 + 300 * v + 200 * round_ if j == BAD else 8500 + 250 * j + 100 * v + 150 * round_)
        for j in range(n)
    ]


def play_round(dep: Deployment, task: Task, r: int, *, upto: str = "final") -> None:
    """Drive round r through the bindings: submit, commit, reveal, then every committee member
    votes for the same proposal (BAD rejected, best-scored client wins). `upto` stops early."""
    t = task.task_id
    n = len(task.clients)
    models = {}
    for i, c in enumerate(task.clients):
        data = weights(t, r, c.sender)
        cid = dep.store.put(data)
        behaviour = dep.store.put(weights(t, r, "behaviour " + c.sender))
        models[i] = (cid, hashlib.sha256(data).digest(), behaviour, 1000 + 10 * i, bytes([i + 1, r, 7]) + bytes(29))
        c.commit_model(t, r, model_commitment(t, r, c.sender, *models[i]))
    for i, c in enumerate(task.clients):
        c.submit_model(t, r, *models[i])
    if upto == "submit":
        return
    salts = {}
    for v, c in enumerate(task.clients):
        salts[v] = bytes([v + 1, r]) * 16
        s = encode_scores(scores_of(v, n, r))
        c.commit_scores(t, r, score_commitment(t, r, c.sender, s, salts[v]))
    for v, c in enumerate(task.clients):
        c.reveal_scores(t, r, encode_scores(scores_of(v, n, r)), salts[v])
    if upto == "reveal":
        return
    quality = [sum(scores_of(v, n, r)[j] for v in range(n) if v != j) for j in range(n)]
    winner = max(range(n), key=quality.__getitem__)
    data = weights(t, r, "global")
    cid = dep.store.put(data)
    reps = tuple(min(REP_SCALE, quality[j] * REP_SCALE // (10000 * (n - 1))) for j in range(n))
    p = Proposal(cid, hashlib.sha256(data).digest(), ((1 << n) - 1) & ~(1 << BAD), reps, winner + 1, (1 << n) - 1)
    by_addr = {m.sender: m for m in task.miners}
    for a in dep.fl.round_info(t, r).committee:
        by_addr[a].propose(t, r, p)


def new_task(dep: Deployment) -> Task:
    return running_task(dep.fl, n_clients=4, n_miners=3, committee=3, rounds=2)


@pytest.fixture(scope="module")
def deployment(w3, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    from fedledger.deploy.deployer import deploy

    d = tmp_path_factory.mktemp("explorer")
    deploy(w3, devnet_account(0), force=True, directory=d, min_stake=10**18, unstake_delay=3600)
    fl = FedLedger.from_manifest(w3, d / "31337.json", devnet_account(0))
    return Deployment(fl, d / "31337.json", EmbeddedStore(d / "store"), d / "metrics")


@dataclass
class Run:
    task: Task
    failed_tx: str


@pytest.fixture(scope="module")
def run(deployment: Deployment) -> Run:
    """A finished task: 4 clients, 3 miners on the committee, 2 finalised rounds, a metrics file,
    and one reverted transaction (a duplicate submission)."""
    task = new_task(deployment)
    play_round(deployment, task, 1)
    play_round(deployment, task, 2)
    deployment.metrics.mkdir(exist_ok=True)
    (deployment.metrics / f"task-{task.task_id}.json").write_text(
        json.dumps({"rounds": [{"round": 1, "accuracy": 0.912}, {"round": 2, "accuracy": 0.934}]})
    )
    # a transaction that reverts on chain: sent with a fixed gas so estimation does not stop it
    c = task.clients[0]
    # web3 path: a raw revert
    fn = c.contract.functions.submitModel(task.task_id, 2, "bafkreibad", b"\x01" * 32, "", 5, b"\0" * 32)
    tx = fn.build_transaction(
        {
            "from": c.sender,
            "gas": 200_000,
            "nonce": c.w3.eth.get_transaction_count(c.sender),
            "chainId": 31337,
            **c.transactor._fee_fields(),
        }
    )
    signed = c.account.sign_transaction(tx)
    h = c.w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = c.w3.eth.wait_for_transaction_receipt(h)
    assert receipt["status"] == 0
    c.transactor.resync_nonce()
    return Run(task, "0x" + bytes(h).hex())


class Server:
    """The explorer app served by uvicorn in a thread, on a free port."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("explorer did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def make_app(devnet, deployment: Deployment):
    from fedledger.explorer import create_app

    def make(**kw):
        return create_app(
            rpc_url=devnet.rpc_url,
            manifest=deployment.manifest,
            storage=f"embedded:{deployment.store.root}",
            metrics=deployment.metrics,
            **kw,
        )

    return make


@pytest.fixture(scope="module")
def server(make_app) -> Iterator[Server]:
    with Server(make_app(poll_interval=0.2)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server, run) -> Iterator[httpx.Client]:
    """HTTP client of the served explorer (after the task has run)."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c
