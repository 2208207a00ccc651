"""Driving agents by hand, so a test can crash, restart or corrupt any of them at a chosen point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fedledger.client.agent import ClientAgent
from fedledger.core.chain import FedLedger, devnet_account
from fedledger.core.protocol.task import TaskConfig
from fedledger.miner.agent import MinerAgent
from fedledger.requester import RequesterAgent, publish

CLIENT0, MINER0 = 1, 150


def small_task(**kw) -> TaskConfig:
    base = dict(
        clients=3,
        min_clients=3,
        rounds=2,
        local_steps=10,
        defence="fedavg",
        committee_size=1,
        train_s=60,
        commit_s=60,
        reveal_s=60,
        aggregate_s=60,
    )
    base.update(kw)
    return TaskConfig(**base)


def start(fl: FedLedger, store, cfg: TaskConfig, *, miners: int = 1, skip_clients: tuple[int, ...] = ()):
    task_id = publish(fl, store, cfg)
    clients = {
        k: ClientAgent(fl.as_account(devnet_account(CLIENT0 + k)), store, task_id, k)
        for k in range(cfg.clients)
        if k not in skip_clients
    }
    miner_agents = [MinerAgent(fl.as_account(devnet_account(MINER0 + m)), store, task_id) for m in range(miners)]
    return task_id, RequesterAgent(fl, task_id), clients, miner_agents


def drive(agents: list, until: Callable[[], bool], *, timeout: float = 300, w3=None, jump: int = 0) -> None:
    """Step agents until `until()`; when nothing moves and `jump` is set, move the chain clock
    forward (a stalled phase reaches its deadline without waiting in real time)."""
    t0 = time.monotonic()
    idle_since = time.monotonic()
    while not until():
        moved = False
        for a in agents:
            if a.step() not in ("idle", "done"):
                moved = True
        if moved:
            idle_since = time.monotonic()
        elif jump and w3 is not None and time.monotonic() - idle_since > 0.5:
            w3.provider.make_request("evm_increaseTime", [jump])
            w3.provider.make_request("evm_mine", [])
            idle_since = time.monotonic()
        else:
            time.sleep(0.05)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("agents did not reach the expected state")


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fedledger.cli", *args],
        stdout=open(log, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def kill(p: subprocess.Popen) -> None:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
