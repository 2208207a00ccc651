"""Options and helpers every agent command shares: the ledger binding, the signer, the loop."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from fedledger.commands.errors import fail

console = Console(stderr=True)

RpcOpt = Annotated[str | None, typer.Option(help="RPC URL (default: the recorded devnet)")]
ManifestOpt = Annotated[Path | None, typer.Option(help="deployment manifest (default: deployments/<chainId>.json)")]
StoreOpt = Annotated[str, typer.Option(help="storage: embedded:PATH or an IPFS RPC URL")]
KeyOpt = Annotated[str | None, typer.Option(help="private key, hex (prefer --keystore)", envvar="FEDLEDGER_KEY")]
KeystoreOpt = Annotated[Path | None, typer.Option(help="encrypted keystore file (eth-account)")]
AccountOpt = Annotated[int | None, typer.Option(help="devnet account index (public test mnemonic)", min=0)]
TaskOpt = Annotated[int, typer.Option(help="task id (1, 2, ...)", min=1)]
DEFAULT_STORE = "embedded:.fedledger/store"


def ledger(rpc: str | None, manifest: Path | None, key: str | None, keystore: Path | None, account: int | None) -> Any:
    """The FedLedger binding of the deployment (read-only unless a signer is given)."""
    import json

    from fedledger.core.chain import FedLedger, connect, load_account
    from fedledger.core.chain.manifest import default_rpc, manifest_path
    from fedledger.core.chain.transport import NodeUnavailable

    url = rpc or default_rpc()
    try:
        w3 = connect(url)
    except NodeUnavailable as exc:
        fail(f"{exc}: start one with `fedledger devnet up` or pass --rpc URL")
    except ValueError as exc:  # not a URL web3 can use
        fail(f"--rpc {url}: {exc}")
    path = manifest or manifest_path(w3.eth.chain_id)
    try:
        if not path.exists():
            fail(f"no deployment manifest at {path}: run `fedledger deploy` first (or pass --manifest)")
        json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"{path} is not a deployment manifest (not JSON: {exc}); pass the file `fedledger deploy` wrote")
    try:
        signer = (
            load_account(key=key, keystore=keystore, index=account)
            if (key or keystore or account is not None)
            else None
        )
        fl = FedLedger.from_manifest(w3, path, signer)
    except ValueError as exc:
        fail(str(exc))
    if not fl.deployed():
        fail(
            f"{path} names FedLedger at {fl.address}, but this chain has no contract there: the chain was reset "
            "(start it with `fedledger devnet up --state FILE` to keep it) or the manifest is stale; "
            "run `fedledger deploy`"
        )
    return fl


def agent_ledger(
    task: int,
    rpc: str | None,
    manifest: Path | None,
    key: str | None,
    keystore: Path | None,
    account: int | None,
    verbose: bool,
) -> Any:
    """What every agent command does first: logging, one torch thread, a signer, the deployment, the task."""
    import torch

    setup_logging(verbose)
    torch.set_num_threads(1)
    require_signer(key, keystore, account)
    fl = ledger(rpc, manifest, key, keystore, account)
    require_task(fl, task)
    return fl


def require_signer(key: str | None, keystore: Path | None, account: int | None) -> None:
    if not (key or keystore or account is not None):
        fail("give --key, --keystore or --account")


def require_task(ledger: Any, task: int) -> None:
    """Stop with one line when `task` does not exist on this deployment."""
    count = ledger.task_count()  # task ids are 1..count
    if not 1 <= task <= count:
        fail(
            f"no task {task} on this deployment (task ids 1-{count})"
            if count
            else f"no task {task}: nothing has been published on this deployment yet"
        )


OutageOpt = Annotated[
    float,
    typer.Option(help="keep retrying this many seconds while the chain node or IPFS daemon is away, then stop", min=0),
]
DEFAULT_OUTAGE_S = 600.0


def _outage(exc: BaseException) -> str | None:
    """What is away, when `exc` means the chain node or the storage daemon did not answer."""
    import requests

    from fedledger.core.chain.transport import NodeUnavailable
    from fedledger.core.storage.errors import DaemonUnavailable

    if isinstance(exc, (NodeUnavailable, requests.ConnectionError, requests.Timeout)):
        return "the chain node"
    if isinstance(exc, DaemonUnavailable):
        return "the IPFS daemon"
    return None


def _resync(agent: Any) -> None:
    """After an outage the node may have lost its last second (anvil writes its state file every
    second): take the account's nonce from the node again instead of the local count."""
    ledger = getattr(agent, "ledger", None)
    if ledger is not None and getattr(ledger, "account", None) is not None:
        ledger.transactor.resync_nonce()


def run_agent(agent: Any, timeout: float = float("inf"), poll: float = 0.1, outage: float = DEFAULT_OUTAGE_S) -> None:
    """Step an agent until it is done, printing what it does. While the chain node or the IPFS
    daemon is away, retry with backoff (one status line per attempt) and resume when it is back:
    an agent keeps no state the chain and storage do not hold, so a step can always be retried."""
    t0 = time.monotonic()
    away_since: float | None = None
    delay = 0.5
    while True:
        try:
            act = agent.step()
        except Exception as exc:
            what = _outage(exc)
            if what is None:
                raise
            now = time.monotonic()
            away_since = away_since if away_since is not None else now
            if now - away_since > outage:
                fail(f"{what} has been away for {now - away_since:.0f} s, giving up (--outage-timeout): {exc}")
            console.print(
                f"{what} is away ({type(exc).__name__}); retrying in {delay:.1f} s "
                f"(away {now - away_since:.0f} s of at most {outage:.0f} s)"
            )
            time.sleep(delay)
            delay = min(2 * delay, 10.0)
            continue
        if away_since is not None:
            console.print(f"back after {time.monotonic() - away_since:.0f} s: resuming from the chain")
            away_since, delay = None, 0.5
            _resync(agent)
        if act == "done":
            return
        if act != "idle":
            console.print(act)
        elif time.monotonic() - t0 > timeout:
            fail(f"gave up after {timeout:.0f} s (raise --timeout to wait longer)")
        else:
            time.sleep(poll)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
