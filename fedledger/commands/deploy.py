"""`fedledger deploy`: deploy the contracts (idempotent) and write the manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from fedledger.commands.errors import fail

# The deployer's defaults (checked equal in tests/test_bad_inputs.py), repeated here so the CLI
# starts without importing web3.
DEFAULT_MIN_STAKE = 10**18  # 1 ETH
DEFAULT_UNSTAKE_DELAY = 7 * 24 * 3600

console = Console(stderr=True)


def deploy(
    rpc: Annotated[str | None, typer.Option(help="RPC URL (default: the recorded devnet)")] = None,
    key: Annotated[str | None, typer.Option(help="deployer private key, hex", envvar="FEDLEDGER_KEY")] = None,
    keystore: Annotated[Path | None, typer.Option(help="encrypted keystore file (eth-account)")] = None,
    account: Annotated[int | None, typer.Option(help="devnet account index (test mnemonic)")] = None,
    force: Annotated[bool, typer.Option(help="deploy again even if a live deployment exists")] = False,
    min_stake: Annotated[int, typer.Option(help="minimum miner stake, wei", min=0)] = DEFAULT_MIN_STAKE,
    unstake_delay: Annotated[
        int, typer.Option(help="stake lock after unstaking, seconds", min=0)
    ] = DEFAULT_UNSTAKE_DELAY,
    as_json: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False,
) -> None:
    """Deploy the contracts (idempotent) and write deployments/<chainId>.json."""
    from web3.exceptions import Web3Exception

    from fedledger.core.chain import ContractRevert, connect, load_account
    from fedledger.core.chain.manifest import default_rpc
    from fedledger.deploy.deployer import deploy as deploy_contracts

    rpc = rpc or default_rpc()
    if key is None and keystore is None and account is None:
        account = 0  # devnet default; on a real network pass --key or --keystore
    try:
        w3 = connect(rpc)
        signer = load_account(key=key, keystore=keystore, index=account)
        manifest, fresh = deploy_contracts(w3, signer, force=force, min_stake=min_stake, unstake_delay=unstake_delay)
    except (ConnectionError, ValueError, ContractRevert, RuntimeError, Web3Exception) as exc:
        fail(str(exc))
    entry = manifest["contracts"]["FedLedger"]
    console.print(
        f"FedLedger {'deployed' if fresh else 'already deployed'} at {entry['address']} (chain {manifest['chainId']})"
    )
    if as_json:
        typer.echo(json.dumps(manifest, indent=2))
