"""`fedledger experiment` (placeholder until the FL engine lands)."""

import typer


def experiment() -> None:
    """Run a federation in one process (not built yet)."""
    raise typer.Exit(code=2)
