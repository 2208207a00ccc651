"""`fedledger experiment`: run a whole federation in one process (no chain), the fast path for
paper sweeps and the baseline for the ledger's overhead."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fedledger.commands._checks import check_attack, check_dataset, check_defence
from fedledger.commands.errors import fail

__all__ = ["experiment", "parse_kv"]


def parse_kv(items: list[str] | None) -> dict[str, Any]:
    """``["theta=0.5", "mode=all-to-one"]`` -> ``{"theta": 0.5, "mode": "all-to-one"}``
    (values are Python literals when they parse as one, strings otherwise)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}")
        try:
            value: Any = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        out[key.strip().replace("-", "_")] = value
    return out


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def experiment(
    dataset: Annotated[str, typer.Option(help="mnist, fashion-mnist or cifar10")] = "mnist",
    model: Annotated[str, typer.Option(help="mlp, cnn or resnet18 ([vision] extra)")] = "mlp",
    clients: Annotated[int, typer.Option(help="number of data owners", min=1)] = 20,
    malicious: Annotated[float, typer.Option(help="fraction of malicious clients", min=0.0, max=1.0)] = 0.0,
    attack: Annotated[
        str,
        typer.Option(
            help="none, label-flip, all-to-one, backdoor, gaussian, sign-flip, scaling, free-rider, alie, ipm, "
            "copycat, collusive, adaptive (parameters as a query: copycat?noise=0.01)"
        ),
    ] = "none",
    defence: Annotated[
        str,
        typer.Option(
            help="root-guard, fedavg, krum, multi-krum, median, trimmed-mean, bvfb, ll-bcfl, bpcv-fl, bcs-fl, "
            "model-chain, fltrust, trust-root, oracle (benchmarks only: told who is malicious)"
        ),
    ] = "root-guard",
    rounds: Annotated[int, typer.Option(help="federation rounds", min=1)] = 20,
    local_epochs: Annotated[int, typer.Option(help="local epochs per round", min=1)] = 5,
    local_steps: Annotated[int | None, typer.Option(help="local SGD steps (overrides --local-epochs)")] = None,
    lr: Annotated[float, typer.Option(help="SGD learning rate")] = 0.1,
    batch_size: Annotated[int, typer.Option(help="local batch size", min=1)] = 32,
    partition: Annotated[str, typer.Option(help="iid, dirichlet or shards")] = "iid",
    alpha: Annotated[float, typer.Option(help="Dirichlet concentration")] = 0.5,
    dp: Annotated[str | None, typer.Option(help="GD-DP mechanism: gaussian or laplace")] = None,
    epsilon: Annotated[float, typer.Option(help="Laplace: per-step epsilon")] = 10.0,
    sigma: Annotated[float, typer.Option(help="Gaussian: noise multiplier")] = 1.0,
    clip: Annotated[float, typer.Option(help="per-sample clipping bound C")] = 1.0,
    prune: Annotated[float, typer.Option(help="fraction of each update pruned by magnitude")] = 0.0,
    val_fraction: Annotated[float, typer.Option(help="share of each client's data held out for validation")] = 0.1,
    select: Annotated[int | None, typer.Option(help="clients per round (LL-BCFL top-N, BPCV-FL)")] = None,
    peer_validators: Annotated[int, typer.Option(help="BPCV-FL: peers that score each model (0: every peer)")] = 0,
    theta: Annotated[float | None, typer.Option(help="BVFB threshold (default 0.6)")] = None,
    attack_arg: Annotated[
        list[str] | None, typer.Option("--attack-arg", help="attack option KEY=VALUE (repeatable)")
    ] = None,
    defence_arg: Annotated[
        list[str] | None, typer.Option("--defence-arg", help="defence option KEY=VALUE (repeatable)")
    ] = None,
    data_path: Annotated[str | None, typer.Option(help="dataset directory (CIFAR-10 python batches)")] = None,
    seed: Annotated[int, typer.Option(help="seed for data split, init, training, attackers")] = 0,
    threads: Annotated[int, typer.Option(help="torch threads (1 when processes run side by side)", min=1)] = 1,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the full result as JSON here")] = None,
) -> None:
    """Run a federation in one process (no chain) and print a per-round table."""
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from fedledger.core.data import DatasetMissingError
    from fedledger.experiment import ExperimentConfig, RoundResult, run_experiment

    # names checked before the data is loaded (that alone takes seconds)
    check_defence(defence)
    check_attack(attack)
    check_dataset(dataset, data_path)
    if dp is not None and dp.lower() not in ("laplace", "gaussian"):
        fail(f"--dp: unknown mechanism {dp!r}; choose laplace or gaussian (or leave it out)")
    if partition not in ("iid", "dirichlet", "shards"):
        fail(f"--partition: unknown partition {partition!r}; choose one of: iid, dirichlet, shards")
    for option, value, ok in (
        ("--lr", lr, lr > 0),
        ("--alpha", alpha, alpha > 0),
        ("--prune", prune, 0 <= prune < 1),
        ("--val-fraction", val_fraction, 0 <= val_fraction < 1),
    ):
        if not ok:
            fail(f"{option} {value} is out of range (--lr and --alpha > 0; --prune and --val-fraction in [0, 1))")
    torch.set_num_threads(threads)
    defence_kwargs = parse_kv(defence_arg)
    if theta is not None:
        defence_kwargs["theta"] = theta
    cfg = ExperimentConfig(
        dataset=dataset,
        model=model,
        clients=clients,
        malicious=malicious,
        attack=attack,
        attack_kwargs=parse_kv(attack_arg),
        defence=defence,
        defence_kwargs=defence_kwargs,
        rounds=rounds,
        lr=lr,
        batch_size=batch_size,
        local_epochs=local_epochs,
        local_steps=local_steps,
        prune_ratio=prune,
        partition=partition,
        alpha=alpha,
        dp=dp,
        epsilon=epsilon,
        noise_multiplier=sigma,
        max_grad_norm=clip,
        select=select,
        peer_validators=peer_validators,
        val_fraction=val_fraction,
        seed=seed,
        data_path=data_path,
    )
    console = Console()
    table = Table(title=f"{dataset}/{model} {clients} clients, {malicious:.0%} {attack}, defence {defence}")
    for col in ("round", "accuracy", "accepted", "mal. in", "precision", "recall", "ASR", "eps", "s"):
        table.add_column(col, justify="right")

    with Progress(
        TextColumn("[bold]rounds"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[acc]}"),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("rounds", total=rounds, acc="")

        def on_round(rr: RoundResult) -> None:
            table.add_row(
                str(rr.round),
                f"{rr.accuracy:.4f}",
                f"{len(rr.accepted)}/{len(rr.participants)}",
                str(len(rr.malicious_participants)),
                _fmt(rr.precision),
                _fmt(rr.recall),
                _fmt(rr.asr),
                _fmt(rr.epsilon, 2),
                f"{rr.seconds:.1f}",
            )
            bar.update(task, advance=1, acc=f"acc {rr.accuracy:.4f}")

        try:
            result = run_experiment(cfg, progress=on_round)
        except (DatasetMissingError, ValueError) as exc:
            fail(str(exc))
    console.print(table)
    console.print(f"final accuracy {result.final_accuracy:.4f}; malicious {result.malicious}; {result.seconds:.1f} s")
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_dict(), indent=1))
        console.print(f"wrote {json_out}")
