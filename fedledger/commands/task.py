"""`fedledger task publish|status|start`: the requester's commands."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer

from fedledger.commands._common import (
    DEFAULT_OUTAGE_S,
    DEFAULT_STORE,
    AccountOpt,
    KeyOpt,
    KeystoreOpt,
    ManifestOpt,
    OutageOpt,
    RpcOpt,
    StoreOpt,
    TaskOpt,
    console,
    ledger,
    require_task,
    run_agent,
)
from fedledger.commands.errors import fail

task_app = typer.Typer(help="Publish and inspect tasks (requester).", no_args_is_help=True)


@task_app.command("publish")
def task_publish(
    config: Annotated[Path, typer.Option(help="task.toml (see the documented example in the repo)")],
    rpc: RpcOpt = None,
    manifest: ManifestOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    key: KeyOpt = None,
    keystore: KeystoreOpt = None,
    account: AccountOpt = None,
) -> None:
    """Upload the initial model, escrow the reward and publish the task; prints its id."""
    from fedledger.core.chain.manifest import manifest_path
    from fedledger.core.protocol.task import TaskConfig
    from fedledger.core.storage import open_store
    from fedledger.requester import publish

    cfg = TaskConfig.from_toml(config)
    fl = ledger(rpc, manifest, key, keystore, 0 if account is None and not (key or keystore) else account)
    if cfg.test_pool >= 0 and not cfg.test_registry:  # the pool lives in this deployment's DataRegistry
        path = manifest or manifest_path(fl.w3.eth.chain_id)
        registry = json.loads(path.read_text())["contracts"]["DataRegistry"]["address"]
        cfg = dataclasses.replace(cfg, test_registry=registry)
    from fedledger.core.chain.transport import RpcError

    try:
        task_id = publish(fl, open_store(store), cfg)
    except RpcError as exc:
        if "insufficient funds" not in str(exc).lower():
            raise
        fail(
            f"{fl.sender} cannot pay the escrow ({cfg.rounds} x {cfg.reward_per_round_eth} ETH) and gas: fund it first"
        )
    console.print(f"published task {task_id}: {cfg.model} on {cfg.dataset}, {cfg.rounds} rounds, defence {cfg.defence}")
    typer.echo(task_id)


@task_app.command("status")
def task_status(task: TaskOpt, rpc: RpcOpt = None, manifest: ManifestOpt = None) -> None:
    """Print a task's status, current round and phase as JSON."""
    fl = ledger(rpc, manifest, None, None, None)
    require_task(fl, task)
    info = fl.task_info(task)
    out = {**info, "status": info["status"].name}
    if info["current_round"]:
        ri = fl.round_info(task, info["current_round"])
        out.update(phase=ri.phase.name, deadline=ri.deadline, committee=list(ri.committee))
    typer.echo(json.dumps(out, indent=2))


@task_app.command("start")
def task_start(
    task: TaskOpt,
    rpc: RpcOpt = None,
    manifest: ManifestOpt = None,
    key: KeyOpt = None,
    keystore: KeystoreOpt = None,
    account: AccountOpt = None,
    wait: Annotated[bool, typer.Option(help="keep running: start when possible, reclaim escrow at the end")] = True,
    outage_timeout: OutageOpt = DEFAULT_OUTAGE_S,
) -> None:
    """Run the requester agent: start the task once enough owners and miners joined."""
    from fedledger.requester import RequesterAgent

    fl = ledger(rpc, manifest, key, keystore, 0 if account is None else account)
    require_task(fl, task)
    agent = RequesterAgent(fl, task)
    if wait:
        run_agent(agent, poll=0.5, outage=outage_timeout)
    else:
        console.print(agent.step())
