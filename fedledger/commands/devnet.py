"""`fedledger devnet up|down|status`: a local Ethereum devnet in the background."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fedledger.commands.errors import fail

console = Console(stderr=True)
devnet_app = typer.Typer(help="Start and stop a local Ethereum devnet (anvil or Hardhat).", no_args_is_help=True)


@devnet_app.command("up")
def devnet_up(
    kind: Annotated[str, typer.Option(help="anvil (default) or hardhat")] = "anvil",
    port: Annotated[int, typer.Option(help="RPC port (0: a free one)", min=0, max=65535)] = 0,
    state: Annotated[
        Path | None,
        typer.Option(help="anvil state file: the chain (tasks, escrow, rounds) survives a kill and restarts from it"),
    ] = None,
) -> None:
    """Start a devnet in the background and print its RPC URL."""
    from fedledger.deploy import devnet as devnet_mod  # here: web3 is seconds of start-up

    if state is not None and not state.parent.is_dir():
        fail(f"--state {state}: directory {state.parent} does not exist; create it or choose another path")
    existing = devnet_mod.load_record()
    if existing is not None and _alive(existing.pid):
        fail(
            f"a {existing.kind} devnet is already running at {existing.rpc_url} (pid {existing.pid}); "
            "`fedledger devnet down` first"
        )
    try:
        net = devnet_mod.start(kind, port, state=state)
    except devnet_mod.DevnetError as exc:
        fail(str(exc))
    path = devnet_mod.save_record(net)
    kept = f", state {net.state} (written every {devnet_mod.STATE_INTERVAL_S} s)" if net.state else ""
    console.print(f"{kind} devnet up: pid {net.pid}, log {net.log}, record {path}{kept}")
    typer.echo(net.rpc_url)


@devnet_app.command("down")
def devnet_down() -> None:
    """Stop the devnet recorded in .fedledger/devnet.json."""
    from fedledger.deploy import devnet as devnet_mod  # here: web3 is seconds of start-up

    net = devnet_mod.load_record()
    if net is None:
        fail("no devnet recorded in .fedledger/devnet.json: nothing to stop")
    net.stop()
    devnet_mod.record_path().unlink(missing_ok=True)
    console.print(f"{net.kind} devnet (pid {net.pid}) stopped")


@devnet_app.command("status")
def devnet_status() -> None:
    """Print the recorded devnet and whether it is running."""
    from fedledger.deploy import devnet as devnet_mod  # here: web3 is seconds of start-up

    net = devnet_mod.load_record()
    if net is None:
        fail("no devnet recorded in .fedledger/devnet.json: `fedledger devnet up` starts one")
    typer.echo(json.dumps({**net.__dict__, "running": _alive(net.pid)}, indent=2))


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
