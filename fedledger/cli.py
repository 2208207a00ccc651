"""The `fedledger` command line: this module only wires the sub-commands together.

Each command lives in the module of the part it drives (deploy/cli.py, fedledger/storage/cli.py,
fedledger/experiment_cli.py, ...), as in the `flwr` CLI.
"""

from __future__ import annotations

import typer

from fedledger.deploy.cli import deploy, devnet_app
from fedledger.agents_cli import audit, client_app, demo, miner_app, simulate, task_app
from fedledger.bench_cli import bench
from fedledger.data_cli import data_app
from fedledger.experiment_cli import experiment
from fedledger.explorer_cli import explorer
from fedledger.storage_cli import ipfs_app

app = typer.Typer(
    name="fedledger",
    help="Blockchain-based federated learning: contracts on an Ethereum devnet, models on IPFS.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print locals: they may hold private keys
)
app.add_typer(devnet_app, name="devnet")
app.command(name="deploy")(deploy)
app.add_typer(ipfs_app, name="ipfs")
app.command(name="experiment")(experiment)
app.command(name="explorer")(explorer)
app.add_typer(task_app, name="task")
app.add_typer(client_app, name="client")
app.add_typer(miner_app, name="miner")
app.command(name="simulate")(simulate)
app.command(name="audit")(audit)
app.command(name="demo")(demo)
app.add_typer(data_app, name="data")
app.command(name="bench")(bench)


if __name__ == "__main__":
    app()
