"""`fedledger explorer`: serve the block explorer (web pages + /api/) for a FedLedger deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedledger.commands.errors import fail

__all__ = ["explorer"]


def explorer(
    rpc: Annotated[
        str | None, typer.Option(help="node RPC URL (default: the recorded devnet, else http://127.0.0.1:8545)")
    ] = None,
    port: Annotated[int, typer.Option(help="HTTP port of the explorer", min=0, max=65535)] = 8080,
    host: Annotated[str, typer.Option(help="interface to listen on (127.0.0.1: this machine only)")] = "127.0.0.1",
    manifest: Annotated[
        Path | None, typer.Option(help="deployment manifest (default deployments/<chainId>.json)")
    ] = None,
    storage: Annotated[
        str | None, typer.Option(help="store for download links: embedded:PATH or http://HOST:PORT")
    ] = "embedded:.fedledger/store",
    metrics: Annotated[
        Path | None, typer.Option(help="per-round metrics JSON of a simulation (file or directory)")
    ] = None,
    no_ots: Annotated[bool, typer.Option("--no-ots", help="use plain eth_* even if the node answers ots_*")] = False,
) -> None:
    """Serve the block explorer: blocks, transactions, addresses, tasks and rounds, live."""
    import uvicorn
    from rich.console import Console

    from fedledger.core.chain.manifest import default_rpc, manifest_path
    from fedledger.explorer import create_app
    from fedledger.explorer.rpc import ChainReader, RpcError

    console = Console(stderr=True)
    if metrics is not None and not metrics.exists():
        fail(f"--metrics {metrics}: no such file or directory (a simulation's output directory or report JSON)")
    rpc = rpc or default_rpc()
    try:
        chain_id = ChainReader(rpc).chain_id
    except RpcError as exc:
        fail(str(exc))
    manifest = manifest or manifest_path(chain_id)
    if not manifest.is_file():
        fail(f"no deployment manifest {manifest}: run `fedledger deploy` or pass --manifest")
    if storage and storage.startswith("embedded:") and not Path(storage[len("embedded:") :]).exists():
        storage = None  # no local store here: serve without download links rather than create one
    try:
        app = create_app(
            rpc_url=rpc, manifest=manifest, storage=storage, metrics=metrics, use_ots=False if no_ots else None
        )
    except (ConnectionError, KeyError, ValueError) as exc:
        fail(str(exc))
    console.print(f"fedledger explorer on http://{host}:{port}  (node {rpc}, chain {chain_id}, API docs /api/docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
