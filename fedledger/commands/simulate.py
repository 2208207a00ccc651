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
    clients: Annotated[
        int | None, typer.Option(help="data owners [default: 20; with --hosts: hosts - miners]", min=1)
    ] = None,
    malicious: Annotated[float, typer.Option(help="fraction of malicious owners", min=0.0, max=1.0)] = 0.3,
    attack: Annotated[str, typer.Option(help="attack of the malicious owners")] = "label-flip",
    defence: Annotated[str, typer.Option(help="defence (parameters as defence?k=v)")] = "root-guard",
    rounds: Annotated[int, typer.Option(min=1)] = 10,
    dataset: Annotated[str, typer.Option()] = "mnist",
    model: Annotated[str, typer.Option(help="mlp or cnn")] = "mlp",
    miners: Annotated[int | None, typer.Option(help="miners that stake [default: 3; with --hosts: 1]", min=1)] = None,
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
    hosts: Annotated[
        int,
        typer.Option(
            help="spread the federation over N hosts (network namespaces, needs root): one owner or miner "
            "per host, each with its own IPFS node, plus a host for the chain node; 0: one machine",
            min=0,
        ),
    ] = 0,
    baseline: Annotated[
        bool, typer.Option(help="with --hosts: run the same federation on one host too and compare round times")
    ] = True,
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
    clients, miners = _placement(hosts, clients, miners, rpc, storage, processes, keep)
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
            peer_validation=peer_validation,
            peer_validators=peer_validators,
            dp=dp,
            epsilon=epsilon,
            local_epochs=local_epochs,
            partition=partition,
            alpha=alpha,
            seed=seed,
            committee_size=min(committee, miners) if hosts else committee,
            # agents in one process act one after another: give each phase time for all of them
            train_s=max(600, 30 * clients),
            commit_s=max(120, 3 * clients),
            reveal_s=max(120, 2 * clients),
            aggregate_s=max(600, 10 * clients),
        )
    if hosts and task.clients != clients:
        fail(f"--hosts {hosts} with {miners} miner(s) has room for {clients} owner(s); {config} names {task.clients}")
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
    if hosts:
        _hosts_and_report(cfg, baseline, json_out)
    else:
        _simulate_and_report(cfg, json_out)


def _placement(
    hosts: int, clients: int | None, miners: int | None, rpc: str | None, storage: str, processes: int, keep: bool
) -> tuple[int, int]:
    """(owners, miners); with --hosts, one party per host, and the options that cannot go with it refused."""
    if not hosts:
        return (20 if clients is None else clients), (3 if miners is None else miners)
    from fedledger.core import netns

    for given, name in (
        (rpc, "--rpc"),
        (storage != "embedded", "--storage"),
        (processes, "--processes"),
        (keep, "--keep"),
    ):
        if given:
            fail(f"{name} cannot go with --hosts: every host runs its own chain client and IPFS node")
    miners = 1 if miners is None else miners
    if miners < 1 or hosts - miners < 1:
        fail(f"--hosts {hosts} with {miners} miner(s) leaves no host for a data owner: give at least miners + 1 hosts")
    if clients is not None and clients != hosts - miners:
        fail(
            f"--hosts {hosts} puts one party per host: {hosts - miners} owners beside {miners} miner(s), not {clients}"
        )
    problem = netns.available()
    if problem:
        fail(problem)
    return hosts - miners, miners


def _hosts_and_report(cfg: Any, baseline: bool, json_out: Path | None) -> None:
    """The federation on its hosts, then (with `baseline`) the same on one host; per-host traffic and round times."""
    import signal
    import sys
    from dataclasses import replace

    # SIGTERM ends the run like Ctrl-C does: through the `finally`s that remove namespaces and processes
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    console.print(f"{cfg.task.clients} owner host(s) and {cfg.miners} miner host(s), plus the chain's host")
    runs = {"hosts": _run_quiet(replace(cfg, placement="hosts", out_dir=cfg.out_dir / "hosts"))}
    _print_report(runs["hosts"])
    _print_hosts(runs["hosts"])
    if baseline:
        console.print("the same federation on one host (one IPFS node, same processes) for comparison")
        runs["one-host"] = _run_quiet(replace(cfg, placement="one-host", audit=False, out_dir=cfg.out_dir / "one-host"))
    _print_times(runs)
    if json_out is not None:
        json_out.write_text(json.dumps({k: r.to_dict() for k, r in runs.items()}, indent=2))


def _run_quiet(cfg: Any) -> Any:
    from fedledger.simulate import simulate as run_simulation

    def on_round(rr: Any) -> None:
        fetched = sum(t["ipfs_rx"] for t in rr.traffic.values())
        console.print(
            f"  round {rr.round:>3} {rr.status:<9} acc {rr.accuracy:.4f} {rr.seconds:6.1f} s  "
            f"fetched from peers {fetched / 1e6:.2f} MB"
        )

    return run_simulation(cfg, on_round=on_round)


def _print_hosts(report: Any) -> None:
    """Bytes each host fetched from its IPFS peers per round (kernel counters of its link)."""
    info = report.hosts or {}
    hosts = list(info.get("addresses", {}))
    names = {"owner": "data owner ", "miner": "miner "}
    roles = {h: [names[p[:5]] + p[5:] for p, on in info.get("where", {}).items() if on == h] for h in hosts}
    roles["chain"] = ["chain node", "requester", *roles.get("chain", [])]
    roles["auditor"] = ["audit, after the run"]
    table = Table(title="per host: MB fetched from IPFS peers (received on its IPFS link) / served / chain RPC")
    table.add_column("host")
    table.add_column("runs")
    for r in report.rounds:
        table.add_column(f"round {r.round}: in / out", justify="right")
    table.add_column("chain RPC in / out", justify="right")
    table.add_column("pins", justify="right")
    for h in hosts:
        cells = [f"{r.traffic[h]['ipfs_rx'] / 1e6:.2f} / {r.traffic[h]['ipfs_tx'] / 1e6:.2f}" for r in report.rounds]
        rpc_in = sum(r.traffic[h]["rpc_rx"] for r in report.rounds) / 1e6
        rpc_out = sum(r.traffic[h]["rpc_tx"] for r in report.rounds) / 1e6
        pins = len(info.get("pins", {}).get(h, []))
        table.add_row(h, ", ".join(roles.get(h, [])), *cells, f"{rpc_in:.2f} / {rpc_out:.2f}", str(pins))
    Console(width=160).print(table)
    audit = info.get("audit", {})
    for r in report.rounds:
        a = audit.get(str(r.round))
        if a:
            verdict = "verified" if a["exit"] == 0 and "verified" in a["said"] else f"FAILED (exit {a['exit']})"
            console.print(f"audit of round {r.round} from the fresh auditor host: {verdict}")
    if audit:
        console.print(
            f"the auditor's node held {audit.get('blocks_before')} blocks before, {audit.get('blocks_after')} after: "
            "all it checked came over the network"
        )
    console.print(f"network and nodes up in {info.get('start_seconds', 0):.1f} s")


def _print_times(runs: dict[str, Any]) -> None:
    table = Table(title="round time (s): open to close")
    table.add_column("round")
    for name in runs:
        table.add_column(name, justify="right")
    for i, r in enumerate(runs["hosts"].rounds):
        table.add_row(
            str(r.round), *(f"{run.rounds[i].seconds:.1f}" if i < len(run.rounds) else "-" for run in runs.values())
        )
    table.add_row("total run", *(f"{run.seconds:.1f}" for run in runs.values()))
    Console(width=120).print(table)


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
    """The main job in a few minutes: 10 owners (30 % label flippers), root-guard, 3 miners, 5 rounds."""
    from fedledger.core.protocol.task import TaskConfig
    from fedledger.simulate import SimConfig

    task = TaskConfig(clients=10, min_clients=10, rounds=5, local_epochs=2, defence="root-guard", committee_size=3)
    # two owners run as their own OS processes, as real data owners would
    _simulate_and_report(SimConfig(task=task, malicious=0.3, attack="label-flip", miners=3, processes=2, out_dir=out))
    sim = Path(".fedledger/simulate")
    console.print(
        f"\nNext: open {out / 'accuracy.png'} and {out / 'report.json'}. Larger runs: `fedledger simulate --help`.\n"
        f"To browse a run in the explorer, keep its chain: `fedledger simulate --keep --rounds 3`, then\n"
        f"`fedledger explorer --manifest {sim}/deployments/31337.json --storage embedded:{sim}/store --metrics {sim}`\n"
        "and open http://127.0.0.1:8080 (`fedledger devnet down` stops the chain)."
    )
