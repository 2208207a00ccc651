"""`fedledger miner run`: a miner's agent."""

from __future__ import annotations

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
    agent_ledger,
    run_agent,
)

miner_app = typer.Typer(help="Run a miner agent.", no_args_is_help=True)


@miner_app.command("run")
def miner_run(
    task: TaskOpt,
    rpc: RpcOpt = None,
    manifest: ManifestOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    key: KeyOpt = None,
    keystore: KeystoreOpt = None,
    account: AccountOpt = None,
    outage_timeout: OutageOpt = DEFAULT_OUTAGE_S,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a miner until the task ends: stake, verify, defend, aggregate, vote, advance."""
    from fedledger.core.storage import open_store
    from fedledger.miner.agent import MinerAgent

    fl = agent_ledger(task, rpc, manifest, key, keystore, account, verbose)
    run_agent(MinerAgent(fl, open_store(store, timeout=5.0), task), outage=outage_timeout)
