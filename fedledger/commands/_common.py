"""Options and helpers every agent command shares: the ledger binding, the signer, the loop."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from fedledger.commands.errors import fail

console = Console(stderr=True)

RpcOpt = Annotated[Optional[str], typer.Option(help="RPC URL (default: the recorded devnet)")]
ManifestOpt = Annotated[Optional[Path], typer.Option(help="deployment manifest (default: deployments/<chainId>.json)")]
StoreOpt = Annotated[str, typer.Option(help="storage: embedded:PATH or an IPFS RPC URL")]
KeyOpt = Annotated[Optional[str], typer.Option(help="private key, hex (prefer --keystore)", envvar="FEDLEDGER_KEY")]
KeystoreOpt = Annotated[Optional[Path], typer.Option(help="encrypted keystore file (eth-account)")]
AccountOpt = Annotated[Optional[int], typer.Option(help="devnet account index (public test mnemonic)")]
TaskOpt = Annotated[int, typer.Option(help="task id", min=0)]
DEFAULT_STORE = "embedded:.fedledger/store"


def ledger(rpc: str | None, manifest: Path | None, key: str | None, keystore: Path | None, account: int | None) -> Any:
    """The FedLedger binding of the deployment (read-only unless a signer is given)."""
    from fedledger.core.chain import FedLedger, connect, load_account
    from fedledger.core.chain.manifest import default_rpc, manifest_path

    try:
        w3 = connect(rpc or default_rpc())
        path = manifest or manifest_path(w3.eth.chain_id)
        if not path.exists():
            fail(f"no deployment manifest at {path}: run `fedledger deploy` first (or pass --manifest)")
        signer = load_account(key=key, keystore=keystore, index=account) if (key or keystore or account is not None) else None
        return FedLedger.from_manifest(w3, path, signer)
    except ValueError as exc:
        fail(str(exc))


def require_signer(key: str | None, keystore: Path | None, account: int | None) -> None:
    if not (key or keystore or account is not None):
        fail("give --key, --keystore or --account")


def require_task(ledger: Any, task: int) -> None:
    """Stop with one line when `task` does not exist on this deployment."""
    count = ledger.task_count()
    if task >= count:
        fail(f"no task {task} on this deployment ({count} task(s): ids 0-{count - 1})" if count else
             f"no task {task}: nothing has been published on this deployment yet")  # fmt: skip


def run_agent(agent: Any, timeout: float = float("inf"), poll: float = 0.1) -> None:
    """Step an agent until it is done, printing what it does."""
    t0 = time.monotonic()
    while (act := agent.step()) != "done":
        if act != "idle":
            console.print(act)
        elif time.monotonic() - t0 > timeout:
            fail(f"gave up after {timeout:.0f} s (raise --timeout to wait longer)")
        else:
            time.sleep(poll)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
