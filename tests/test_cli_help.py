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
    for expected in (
        "devnet up",
        "deploy",
        "ipfs cid",
        "experiment",
        "task publish",
        "client run",
        "miner run",
        "simulate",
        "audit",
        "demo",
        "explorer",
        "data share",
        "data split",
        "bench",
    ):
        assert expected in names, f"`fedledger {expected}` is missing"
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def _readme_commands() -> list[list[str]]:
    """The command lines of README's "Using it" block, `a | b | c` shorthands expanded."""
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("## Using it", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    out = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = shlex.split(re.sub(r"[\[\]]", "", line))
        assert words[0].endswith("fedledger"), line
        alternatives = " ".join(words[1:]).split(" | ")
        group = alternatives[0].split()[:1] if len(alternatives) > 1 else []
        out.append(alternatives[0].split())
        out += [group + alt.split() for alt in alternatives[1:]]
    return out


def test_readme_commands_exist_with_their_options():
    root = typer.main.get_command(app)
    commands = _readme_commands()
    assert len(commands) >= 15
    for words in commands:
        command, rest = root, list(words)
        while rest and hasattr(command, "commands") and rest[0] in command.commands:  # typer ships its own click
            command = command.commands[rest.pop(0)]
        group_left = hasattr(command, "commands") and any(not w.startswith("-") for w in rest)
        assert not group_left, f"README: `fedledger {' '.join(words)}` names no command"
        known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
        for word in rest:
            if word.startswith("--"):
                assert word in known, f"README: `fedledger {' '.join(words)}`: {word} is not an option of that command"
