"""The `fedledger` command line: this module only wires the commands (one module each in
`fedledger/commands/`) and turns user mistakes into one line and exit code 2 (`main`)."""

from __future__ import annotations

import sys
import traceback

import typer
from typer.exceptions import TyperException

from fedledger.commands.audit import audit
from fedledger.commands.bench import bench
from fedledger.commands.client import client_app
from fedledger.commands.data import data_app
from fedledger.commands.deploy import deploy
from fedledger.commands.devnet import devnet_app
from fedledger.commands.errors import user_errors
from fedledger.commands.experiment import experiment
from fedledger.commands.explorer import explorer
from fedledger.commands.ipfs import ipfs_app
from fedledger.commands.miner import miner_app
from fedledger.commands.simulate import demo, simulate
from fedledger.commands.task import task_app

app = typer.Typer(
    name="fedledger",
    help="Blockchain-based federated learning: contracts on an Ethereum devnet, models on IPFS. "
    "User mistakes end with one line and exit code 2; --debug (first) shows the traceback.",
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; the one place where errors become exit codes: usage errors and user mistakes
    (`commands.errors.user_errors()`) print one line and give 2, `--debug` adds the traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        result = typer.main.get_command(app).main(args=args, prog_name="fedledger", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print("fedledger: aborted", file=sys.stderr)
        return 130
    except TyperException as exc:  # a bad option or value: one line saying what is wrong and where help is
        print(_usage_line(exc), file=sys.stderr)
        return 2
    except user_errors() as exc:  # evaluated only when an exception gets here
        if debug:
            traceback.print_exc()
        print(f"fedledger: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fedledger: interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


def _usage_line(exc: TyperException) -> str:
    """`fedledger task status: Invalid value for '--task': ... (see `fedledger task status --help`)`."""
    message = " ".join(exc.format_message().split())  # click's messages may wrap: keep one line
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None) or "fedledger"
    return f"{command}: {message} (see `{command} --help`)"


if __name__ == "__main__":
    sys.exit(main())
