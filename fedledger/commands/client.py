"""`fedledger client run`: a data owner's agent."""

from __future__ import annotations

from typing import Annotated

import typer

from fedledger.commands._checks import check_attack, check_dp, check_store
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
    console,
    run_agent,
)
from fedledger.commands.errors import fail


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


client_app = typer.Typer(help="Run a data owner's client agent.", no_args_is_help=True)


@client_app.command("run")
def client_run(
    task: TaskOpt,
    data_owner: Annotated[int, typer.Option(help="index K of this owner's data partition", min=0)],
    rpc: RpcOpt = None,
    manifest: ManifestOpt = None,
    store: StoreOpt = DEFAULT_STORE,
    key: KeyOpt = None,
    keystore: KeystoreOpt = None,
    account: AccountOpt = None,
    attack: Annotated[str | None, typer.Option(help="simulate a malicious owner: label-flip, backdoor, ...")] = None,
    accomplices: Annotated[str, typer.Option(help="comma-separated addresses of the colluding owners")] = "",
    dp: Annotated[str | None, typer.Option(help="override the task's GD-DP: none, laplace or gaussian")] = None,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 24 * 3600,
    outage_timeout: OutageOpt = DEFAULT_OUTAGE_S,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run data owner K's agent until the task ends: register, train, submit, validate, withdraw."""
    from fedledger.client.agent import ClientAgent
    from fedledger.core.storage import open_store

    check_attack(attack)
    check_dp(dp)
    check_store(store)
    mates = frozenset(a.strip() for a in accomplices.split(",") if a.strip())
    bad = sorted(a for a in mates if not (a.startswith("0x") and len(a) == 42 and _is_hex(a[2:])))
    if bad:
        fail(f"--accomplices: {', '.join(bad)} is not an address (0x and 40 hex digits, comma-separated)")
    fl = agent_ledger(task, rpc, manifest, key, keystore, account, verbose)
    from fedledger.core.protocol.rounds import task_config

    owners = task_config(fl, task).clients  # the task's data is partitioned for this many owners
    if data_owner >= owners:
        fail(f"--data-owner {data_owner}: task {task} partitions its data for {owners} owners (0-{owners - 1})")
    agent = ClientAgent(
        fl,
        open_store(store, timeout=5.0),
        task,
        data_owner,
        attack=attack,
        accomplices=mates,
        n_malicious=max(1, len(mates)),
        dp=dp,
    )
    console.print(f"data owner {data_owner} ({fl.sender}) on task {task}")
    run_agent(agent, timeout, outage=outage_timeout)
