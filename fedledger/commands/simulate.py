"""`fedledger simulate` and `fedledger demo`: a whole federation on a devnet + storage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fedledger.commands._checks import check_attack, check_store
from fedledger.commands._common import console, setup_logging
from fedledger.commands.errors import fail


def simulate(
    clients: Annotated[int, typer.Option(help="data owners", min=1)] = 20,
    malicious: Annotated[float, typer.Option(help="fraction of malicious owners", min=0.0, max=1.0)] = 0.3,
    attack: Annotated[str, typer.Option(help="attack of the malicious owners")] = "label-flip",
    defence: Annotated[str, typer.Option(help="defence (parameters as defence?k=v)")] = "bvfb",
    rounds: Annotated[int, typer.Option(min=1)] = 10,
    dataset: Annotated[str, typer.Option()] = "mnist",
    model: Annotated[str, typer.Option(help="mlp or cnn")] = "mlp",
    miners: Annotated[int, typer.Option(help="miners that stake", min=1)] = 3,
    committee: Annotated[int, typer.Option(help="committee size per round", min=1)] = 3,
    peer_validation: Annotated[bool, typer.Option(help="owners score each other's models (commit, reveal)")] = True,
    peer_validators: Annotated[
        int, typer.Option(help="peers that score each model, drawn per round (0: every peer)")
    ] = 0,
    dp: Annotated[str, typer.Option(help="none, laplace or gaussian")] = "none",
    epsilon: Annotated[float, typer.Option(help="Laplace epsilon per step")] = 10.0,
    local_epochs: Annotated[int, typer.Option(min=1)] = 5,
    partition: Annotated[str, typer.Option(help="iid, dirichlet or shards")] = "iid",
    alpha: Annotated[float, typer.Option(help="Dirichlet alpha")] = 0.5,
    seed: Annotated[int, typer.Option()] = 0,
    storage: Annotated[
        str, typer.Option(help="embedded, ipfs (starts the js-ipfs daemon) or a store spec")
    ] = "embedded",
    processes: Annotated[int, typer.Option(help="data owners run as their own OS process (-1: all)", min=-1)] = 0,
    rpc: Annotated[str | None, typer.Option(help="use this node instead of starting anvil")] = None,
    out: Annotated[Path, typer.Option(help="output directory")] = Path(".fedledger/simulate"),
    json_out: Annotated[Path | None, typer.Option("--json", help="write the report as JSON here too")] = None,
    keep: Annotated[bool, typer.Option(help="leave the devnet running for `fedledger explorer`")] = False,
    config: Annotated[Path | None, typer.Option(help="task.toml; the options above override nothing in it")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a whole federation on a devnet + storage: deploy, publish, clients, miners, report."""
    from fedledger.core.protocol.task import TaskConfig
    from fedledger.simulate import SimConfig

    setup_logging(verbose)
    if config is not None:
        task = TaskConfig.from_toml(config)
    else:
        task = TaskConfig(
            model=model,
            dataset=dataset,
            clients=clients,
            min_clients=clients,
            rounds=rounds,
            defence=defence,
            committee_size=committee,
            peer_validation=peer_validation,
            peer_validators=peer_validators,
            dp=dp,
            epsilon=epsilon,
            local_epochs=local_epochs,
            partition=partition,
            alpha=alpha,
            seed=seed,
            # agents in one process act one after another: give each phase time for all of them
            train_s=max(600, 30 * clients),
            commit_s=max(120, 3 * clients),
            reveal_s=max(120, 2 * clients),
            aggregate_s=max(600, 10 * clients),
        )
    task.validate()  # every setting checked before a devnet starts
    check_attack(attack)
    check_store(storage, "--storage", words=("embedded", "ipfs"))
    if task.committee_size > miners:
        fail(f"--committee {task.committee_size} needs at least as many miners (--miners {miners})")
    cfg = SimConfig(
        task=task,
        malicious=malicious,
        attack=attack,
        miners=miners,
        rpc=rpc,
        storage=storage,
        processes=processes,
        out_dir=out,
        keep=keep,
    )
    _simulate_and_report(cfg, json_out)


def _simulate_and_report(cfg: Any, json_out: Path | None = None) -> None:
    """Run a simulation with a progress bar and a line per round, then print the report."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from fedledger.simulate import simulate as run_simulation

    task = cfg.task
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} rounds"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        bar = progress.add_task(f"{task.clients} owners, {task.defence}", total=task.rounds)

        def on_round(rr: Any) -> None:
            progress.update(bar, advance=1)
            progress.console.print(
                f"round {rr.round:>3} {rr.status:<9} acc {rr.accuracy:.4f}  accepted {len(rr.accepted)}/{len(rr.submitted)}"
                f"  precision {_f(rr.precision)} recall {_f(rr.recall)}"
                + (f"  ASR {rr.asr:.3f}" if rr.asr is not None else "")
            )

        report = run_simulation(cfg, on_round=on_round)
    _print_report(report)
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=2))


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _print_report(report: Any) -> None:
    table = Table(title=f"task {report.task_id}: malicious owners {report.malicious}")
    for col in ("round", "status", "accuracy", "ASR", "rejected owners", "precision", "recall", "s"):
        table.add_column(col, no_wrap=True)
    for r in report.rounds:
        table.add_row(
            str(r.round),
            r.status,
            f"{r.accuracy:.4f}",
            "" if r.asr is None else f"{r.asr:.3f}",
            ",".join(map(str, r.rejected)) or "-",
            _f(r.precision),
            _f(r.recall),
            f"{r.seconds:.1f}",
        )
    Console(width=120).print(table)
    phases: dict[str, float] = {}
    for r in report.rounds:
        for k, v in r.phase_seconds.items():
            phases[k] = phases.get(k, 0.0) + v
    console.print("wall time per phase (all rounds): " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    console.print(
        f"gas: {report.gas_total:,} in all; {report.gas_per_client_round:,.0f} per client per round "
        f"(submit + commit + reveal)"
    )
    console.print(
        f"total {report.seconds:.1f} s; report {Path(report.plot).parent / 'report.json'}; plot {report.plot}"
    )


def demo(
    out: Annotated[Path, typer.Option(help="output directory")] = Path(".fedledger/demo"),
) -> None:
    """The main job in a few minutes: 10 owners (30 % label flippers), BVFB, 3 miners, 5 rounds."""
    from fedledger.core.protocol.task import TaskConfig
    from fedledger.simulate import SimConfig

    task = TaskConfig(clients=10, min_clients=10, rounds=5, local_epochs=2, defence="bvfb", committee_size=3)
    # two owners run as their own OS processes, as real data owners would
    _simulate_and_report(SimConfig(task=task, malicious=0.3, attack="label-flip", miners=3, processes=2, out_dir=out))
    sim = Path(".fedledger/simulate")
    console.print(
        f"\nNext: open {out / 'accuracy.png'} and {out / 'report.json'}. Larger runs: `fedledger simulate --help`.\n"
        f"To browse a run in the explorer, keep its chain: `fedledger simulate --keep --rounds 3`, then\n"
        f"`fedledger explorer --manifest {sim}/deployments/31337.json --storage embedded:{sim}/store --metrics {sim}`\n"
        "and open http://127.0.0.1:8080 (`fedledger devnet down` stops the chain)."
    )
