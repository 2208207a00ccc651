"""`fedledger devnet up|down|status` and `fedledger deploy`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from fedledger.deploy import devnet as devnet_mod
from fedledger.deploy.deployer import DEFAULT_MIN_STAKE, DEFAULT_UNSTAKE_DELAY
from fedledger.deploy.deployer import deploy as deploy_contracts

console = Console(stderr=True)
devnet_app = typer.Typer(help="Start and stop a local Ethereum devnet (anvil or Hardhat).", no_args_is_help=True)


@devnet_app.command("up")
def devnet_up(
    kind: Annotated[str, typer.Option(help="anvil (default) or hardhat")] = "anvil",
    port: Annotated[int, typer.Option(help="RPC port (0: a free one)")] = 0,
) -> None:
    """Start a devnet in the background and print its RPC URL."""
    existing = devnet_mod.load_record()
    if existing is not None and _alive(existing.pid):
        console.print(f"a {existing.kind} devnet is already running (pid {existing.pid}); `fedledger devnet down` first")
        typer.echo(existing.rpc_url)
        raise typer.Exit(1)
    try:
        net = devnet_mod.start(kind, port)
    except devnet_mod.DevnetError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    path = devnet_mod.save_record(net)
    console.print(f"{kind} devnet up: pid {net.pid}, log {net.log}, record {path}")
    typer.echo(net.rpc_url)


@devnet_app.command("down")
def devnet_down() -> None:
    """Stop the devnet recorded in .fedledger/devnet.json."""
    net = devnet_mod.load_record()
    if net is None:
        console.print("no devnet recorded in .fedledger/devnet.json")
        raise typer.Exit(1)
    net.stop()
    devnet_mod.record_path().unlink(missing_ok=True)
    console.print(f"{net.kind} devnet (pid {net.pid}) stopped")


@devnet_app.command("status")
def devnet_status() -> None:
    """Print the recorded devnet and whether it is running."""
    net = devnet_mod.load_record()
    if net is None:
        console.print("no devnet recorded")
        raise typer.Exit(1)
    typer.echo(json.dumps({**net.__dict__, "running": _alive(net.pid)}, indent=2))


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def default_rpc() -> str:
    net = devnet_mod.load_record()
    return net.rpc_url if net is not None else "http://127.0.0.1:8545"


def deploy(
    rpc: Annotated[Optional[str], typer.Option(help="RPC URL (default: the recorded devnet)")] = None,
    key: Annotated[Optional[str], typer.Option(help="deployer private key, hex", envvar="FEDLEDGER_KEY")] = None,
    keystore: Annotated[Optional[Path], typer.Option(help="encrypted keystore file (eth-account)")] = None,
    account: Annotated[Optional[int], typer.Option(help="devnet account index (test mnemonic)")] = None,
    force: Annotated[bool, typer.Option(help="deploy again even if a live deployment exists")] = False,
    min_stake: Annotated[int, typer.Option(help="minimum miner stake, wei")] = DEFAULT_MIN_STAKE,
    unstake_delay: Annotated[int, typer.Option(help="stake lock after unstaking, seconds")] = DEFAULT_UNSTAKE_DELAY,
    as_json: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False,
) -> None:
    """Deploy the contracts (idempotent) and write deployments/<chainId>.json."""
    from web3.exceptions import Web3Exception

    from fedledger.core.chain import ContractRevert, connect, load_account

    rpc = rpc or default_rpc()
    if key is None and keystore is None and account is None:
        account = 0  # devnet default; on a real network pass --key or --keystore
    try:
        w3 = connect(rpc)
        signer = load_account(key=key, keystore=keystore, index=account)
        manifest, fresh = deploy_contracts(w3, signer, force=force, min_stake=min_stake, unstake_delay=unstake_delay)
    except (ConnectionError, ValueError, ContractRevert, RuntimeError, Web3Exception) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    entry = manifest["contracts"]["FedLedger"]
    console.print(f"FedLedger {'deployed' if fresh else 'already deployed'} at {entry['address']} (chain {manifest['chainId']})")
    if as_json:
        typer.echo(json.dumps(manifest, indent=2))
