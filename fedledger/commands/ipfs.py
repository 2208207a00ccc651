"""`fedledger ipfs ...`: run a local js-ipfs daemon, compute CIDs, move content around."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from fedledger.commands.errors import fail
from fedledger.core.storage import DEFAULT_STORE, EmbeddedStore, RpcStore, compute_cid, open_store
from fedledger.core.storage import daemon as ipfs_daemon
from fedledger.core.storage import push as push_blocks
from fedledger.core.storage.errors import StorageError

ipfs_app = typer.Typer(help="IPFS daemon and CID tools.", no_args_is_help=True)

StateDir = Annotated[
    Path | None, typer.Option("--state-dir", help="Where ipfs.json and ipfs.log live [default: ./.fedledger].")
]


def _fail(exc: Exception) -> NoReturn:
    fail(str(exc))


@ipfs_app.command()
def up(state_dir: StateDir = None) -> None:
    """Start an offline js-ipfs daemon on loopback with a temporary repo; print its API URL."""
    try:
        daemon = ipfs_daemon.start(state_dir)
    except StorageError as exc:
        _fail(exc)
    typer.echo(f"IPFS API {daemon.api} (pid {daemon.pid}, log {daemon.log})")


@ipfs_app.command()
def down(state_dir: StateDir = None) -> None:
    """Stop the daemon started by `fedledger ipfs up` and delete its temporary repo."""
    daemon = ipfs_daemon.stop(state_dir)
    typer.echo(f"stopped pid {daemon.pid}" if daemon else "no daemon recorded")


@ipfs_app.command()
def cid(
    file: Annotated[Path, typer.Argument(help="File to hash ('-' for standard input).")],
    cid_version: Annotated[
        int,
        typer.Option(
            "--cid-version",
            min=0,
            max=1,
            help="0: like `ipfs add --only-hash -Q`; 1: with `--cid-version 1 --raw-leaves`.",
        ),
    ] = 1,
) -> None:
    """Print the CID `ipfs add` would give FILE, without storing anything."""
    data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    typer.echo(compute_cid(data, cid_version))


@ipfs_app.command()
def put(
    file: Annotated[Path, typer.Argument(help="File to store.")],
    store: Annotated[str, typer.Option(help="embedded:PATH or http://HOST:PORT.")] = DEFAULT_STORE,
    cid_version: Annotated[int, typer.Option("--cid-version", min=0, max=1)] = 1,
) -> None:
    """Store FILE (pinned) and print its CID."""
    try:
        typer.echo(open_store(store, cid_version=cid_version).put(file.read_bytes()))
    except StorageError as exc:
        _fail(exc)


@ipfs_app.command()
def get(
    cid_: Annotated[str, typer.Argument(metavar="CID", help="CID to fetch.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write.")],
    store: Annotated[str, typer.Option(help="embedded:PATH or http://HOST:PORT.")] = DEFAULT_STORE,
) -> None:
    """Fetch CID, verify it against its CID, and write it to OUTPUT."""
    try:
        output.write_bytes(open_store(store).get(cid_))
    except StorageError as exc:
        _fail(exc)


@ipfs_app.command()
def push(
    cid_: Annotated[str, typer.Argument(metavar="CID", help="CID in the embedded store.")],
    to: Annotated[str, typer.Option("--to", help="Daemon API, e.g. http://127.0.0.1:5001.")],
    store: Annotated[str, typer.Option(help="Embedded store to read from (embedded:PATH or PATH).")] = DEFAULT_STORE,
) -> None:
    """Copy CID's blocks from the embedded store to a daemon, pin, and check it serves them."""
    try:
        source = open_store(store)
        if not isinstance(source, EmbeddedStore):
            raise StorageError(f"--store must be an embedded store, not {store!r}")
        push_blocks(cid_, source, RpcStore(to))
    except StorageError as exc:
        _fail(exc)
    typer.echo(f"pushed {cid_} to {to}")
