"""`fedledger ipfs ...` (placeholder until the storage layer lands)."""

import typer

ipfs_app = typer.Typer(help="IPFS daemon and CID tools.", no_args_is_help=True)
