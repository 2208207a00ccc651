"""Every command and sub-command answers --help (users expect it everywhere)."""

import typer
from typer.testing import CliRunner

from fedledger.cli import app


def _paths(command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    if hasattr(command, "commands"):  # a group (typer ships its own click)
        for name, sub in command.commands.items():
            out += _paths(sub, (*prefix, name))
    return out


def test_every_command_has_help():
    root = typer.main.get_command(app)
    paths = _paths(root)
    names = {" ".join(p) for p in paths}
    for expected in ("devnet up", "deploy", "ipfs cid", "experiment", "task publish", "client run", "miner run",
                     "simulate", "audit", "demo", "explorer", "data share", "data split", "bench"):  # fmt: skip
        assert expected in names, f"`fedledger {expected}` is missing"
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output
