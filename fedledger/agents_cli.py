"""`fedledger task publish|status`, `client run`, `miner run`, `simulate`, `audit` and `demo`."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
task_app = typer.Typer(help="Publish and inspect tasks (requester).", no_args_is_help=True)
client_app = typer.Typer(help="Run a data owner's client agent.", no_args_is_help=True)
miner_app = typer.Typer(help="Run a miner agent.", no_args_is_help=True)

RpcOpt = Annotated[Optional[str], typer.Option(help="RPC URL (default: the recorded devnet)")]
ManifestOpt = Annotated[Optional[Path], typer.Option(help="deployment manifest (default: deployments/<chainId>.json)")]
StoreOpt = Annotated[str, typer.Option(help="storage: embedded:PATH or an IPFS RPC URL")]
KeyOpt = Annotated[Optional[str], typer.Option(help="private key, hex (prefer --keystore)", envvar="FEDLEDGER_KEY")]
KeystoreOpt = Annotated[Optional[Path], typer.Option(help="encrypted keystore file (eth-account)")]
AccountOpt = Annotated[Optional[int], typer.Option(help="devnet account index (public test mnemonic)")]
DEFAULT_STORE = "embedded:.fedledger/store"


def _ledger(rpc: str | None, manifest: Path | None, key: str | None, keystore: Path | None, account: int | None):
    from fedledger.deploy.cli import default_rpc
    from fedledger.core.chain import FedLedger, connect, load_account

    try:
        w3 = connect(rpc or default_rpc())
        path = manifest or Path("deployments") / f"{w3.eth.chain_id}.json"
        if not path.exists():
            raise ValueError(f"no deployment manifest at {path}: run `fedledger deploy` first")
        signer = load_account(key=key, keystore=keystore, index=account) if (key or keystore or account is not None) else None
        return FedLedger.from_manifest(w3, path, signer)
    except (ConnectionError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def _signer_given(key: str | None, keystore: Path | None, account: int | None) -> None:
    if not (key or keystore or account is not None):
        console.print("[red]error:[/red] give --key, --keystore or --account")
        raise typer.Exit(1)


def _run(agent, timeout: float = float("inf"), poll: float = 0.1) -> None:
    """Step an agent until it is done, printing what it does."""
    import time

    t0 = time.monotonic()
    while (act := agent.step()) != "done":
        if act != "idle":
            console.print(act)
        elif time.monotonic() - t0 > timeout:
            console.print(f"[red]gave up after {timeout:.0f} s[/red]")
            raise typer.Exit(2)
        else:
            time.sleep(poll)


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")


@task_app.command("publish")
def task_publish(
    config: Annotated[Path, typer.Option(help="task.toml (see the documented example in the repo)")],
    rpc: RpcOpt = None, manifest: ManifestOpt = None, store: StoreOpt = DEFAULT_STORE,
    key: KeyOpt = None, keystore: KeystoreOpt = None, account: AccountOpt = None,
) -> None:  # fmt: skip
    """Upload the initial model, escrow the reward and publish the task; prints its id."""
    from fedledger.requester import publish
    from fedledger.core.storage import open_store
    from fedledger.core.protocol.task import TaskConfig

    cfg = TaskConfig.from_toml(config)
    ledger = _ledger(rpc, manifest, key, keystore, 0 if account is None and not (key or keystore) else account)
    if cfg.test_pool >= 0 and not cfg.test_registry:  # the pool lives in this deployment's DataRegistry
        path = manifest or Path("deployments") / f"{ledger.w3.eth.chain_id}.json"
        registry = json.loads(path.read_text())["contracts"]["DataRegistry"]["address"]
        cfg = dataclasses.replace(cfg, test_registry=registry)
    task_id = publish(ledger, open_store(store), cfg)
    console.print(f"published task {task_id}: {cfg.model} on {cfg.dataset}, {cfg.rounds} rounds, defence {cfg.defence}")
    typer.echo(task_id)


@task_app.command("status")
def task_status(task: Annotated[int, typer.Option(help="task id")], rpc: RpcOpt = None, manifest: ManifestOpt = None) -> None:
    """Print a task's status, current round and phase as JSON."""
    ledger = _ledger(rpc, manifest, None, None, None)
    info = ledger.task_info(task)
    out = {**info, "status": info["status"].name}
    if info["current_round"]:
        ri = ledger.round_info(task, info["current_round"])
        out.update(phase=ri.phase.name, deadline=ri.deadline, committee=list(ri.committee))
    typer.echo(json.dumps(out, indent=2))


@task_app.command("start")
def task_start(
    task: Annotated[int, typer.Option(help="task id")], rpc: RpcOpt = None, manifest: ManifestOpt = None,
    key: KeyOpt = None, keystore: KeystoreOpt = None, account: AccountOpt = None,
    wait: Annotated[bool, typer.Option(help="keep running: start when possible, reclaim escrow at the end")] = True,
) -> None:  # fmt: skip
    """Run the requester agent: start the task once enough owners and miners joined."""
    from fedledger.requester import RequesterAgent

    agent = RequesterAgent(_ledger(rpc, manifest, key, keystore, 0 if account is None else account), task)
    if wait:
        _run(agent, poll=0.5)
    else:
        console.print(agent.step())


@client_app.command("run")
def client_run(
    task: Annotated[int, typer.Option(help="task id")],
    data_owner: Annotated[int, typer.Option(help="index K of this owner's data partition")],
    rpc: RpcOpt = None, manifest: ManifestOpt = None, store: StoreOpt = DEFAULT_STORE,
    key: KeyOpt = None, keystore: KeystoreOpt = None, account: AccountOpt = None,
    attack: Annotated[Optional[str], typer.Option(help="simulate a malicious owner: label-flip, backdoor, ...")] = None,
    accomplices: Annotated[str, typer.Option(help="comma-separated addresses of the colluding owners")] = "",
    dp: Annotated[Optional[str], typer.Option(help="override the task's GD-DP: none, laplace or gaussian")] = None,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 24 * 3600,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:  # fmt: skip
    """Run data owner K's agent until the task ends: register, train, submit, validate, withdraw."""
    import torch

    from fedledger.client.agent import ClientAgent
    from fedledger.core.storage import open_store

    _logging(verbose)
    torch.set_num_threads(1)
    _signer_given(key, keystore, account)
    ledger = _ledger(rpc, manifest, key, keystore, account)
    mates = frozenset(a.strip() for a in accomplices.split(",") if a.strip())
    agent = ClientAgent(ledger, open_store(store, timeout=5.0), task, data_owner, attack=attack, accomplices=mates,
                        n_malicious=max(1, len(mates)), dp=dp)  # fmt: skip
    console.print(f"data owner {data_owner} ({ledger.sender}) on task {task}")
    _run(agent, timeout)


@miner_app.command("run")
def miner_run(
    task: Annotated[int, typer.Option(help="task id")], rpc: RpcOpt = None, manifest: ManifestOpt = None,
    store: StoreOpt = DEFAULT_STORE, key: KeyOpt = None, keystore: KeystoreOpt = None, account: AccountOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:  # fmt: skip
    """Run a miner until the task ends: stake, verify, defend, aggregate, vote, advance."""
    import torch

    from fedledger.core.storage import open_store
    from fedledger.miner.agent import MinerAgent

    _logging(verbose)
    torch.set_num_threads(1)
    _signer_given(key, keystore, account)
    _run(MinerAgent(_ledger(rpc, manifest, key, keystore, account), open_store(store, timeout=5.0), task))


def simulate(
    clients: Annotated[int, typer.Option(help="data owners")] = 20,
    malicious: Annotated[float, typer.Option(help="fraction of malicious owners")] = 0.3,
    attack: Annotated[str, typer.Option(help="attack of the malicious owners")] = "label-flip",
    defence: Annotated[str, typer.Option(help="defence (parameters as defence?k=v)")] = "bvfb",
    rounds: Annotated[int, typer.Option()] = 10,
    dataset: Annotated[str, typer.Option()] = "mnist",
    model: Annotated[str, typer.Option(help="mlp or cnn")] = "mlp",
    miners: Annotated[int, typer.Option(help="miners that stake")] = 3,
    committee: Annotated[int, typer.Option(help="committee size per round")] = 3,
    peer_validation: Annotated[bool, typer.Option(help="owners score each other's models (commit, reveal)")] = True,
    peer_validators: Annotated[int, typer.Option(help="peers that score each model, drawn per round (0: every peer)")] = 0,
    dp: Annotated[str, typer.Option(help="none, laplace or gaussian")] = "none",
    epsilon: Annotated[float, typer.Option(help="Laplace epsilon per step")] = 10.0,
    local_epochs: Annotated[int, typer.Option()] = 5,
    partition: Annotated[str, typer.Option(help="iid, dirichlet or shards")] = "iid",
    alpha: Annotated[float, typer.Option(help="Dirichlet alpha")] = 0.5,
    seed: Annotated[int, typer.Option()] = 0,
    storage: Annotated[str, typer.Option(help="embedded, ipfs (starts the js-ipfs daemon) or a store spec")] = "embedded",
    processes: Annotated[int, typer.Option(help="data owners run as their own OS process (-1: all)")] = 0,
    rpc: Annotated[Optional[str], typer.Option(help="use this node instead of starting anvil")] = None,
    out: Annotated[Path, typer.Option(help="output directory")] = Path(".fedledger/simulate"),
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the report as JSON here too")] = None,
    keep: Annotated[bool, typer.Option(help="leave the devnet running for `fedledger explorer`")] = False,
    config: Annotated[Optional[Path], typer.Option(help="task.toml; the options above override nothing in it")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a whole federation on a devnet + storage: deploy, publish, clients, miners, report."""
    from fedledger.simulate import SimConfig
    from fedledger.core.protocol.task import TaskConfig

    _logging(verbose)
    if config is not None:
        task = TaskConfig.from_toml(config)
    else:
        task = TaskConfig(
            model=model, dataset=dataset, clients=clients, min_clients=clients, rounds=rounds, defence=defence,
            committee_size=committee, peer_validation=peer_validation, peer_validators=peer_validators, dp=dp,
            epsilon=epsilon, local_epochs=local_epochs, partition=partition, alpha=alpha, seed=seed,
            # agents in one process act one after another: give each phase time for all of them
            train_s=max(600, 30 * clients), commit_s=max(120, 3 * clients), reveal_s=max(120, 2 * clients),
            aggregate_s=max(600, 10 * clients),
        )  # fmt: skip
    cfg = SimConfig(task=task, malicious=malicious, attack=attack, miners=miners, rpc=rpc, storage=storage,
                    processes=processes, out_dir=out, keep=keep)  # fmt: skip
    _simulate_and_report(cfg, json_out)


def _simulate_and_report(cfg, json_out: Path | None = None) -> None:
    """Run a simulation with a progress bar and a line per round, then print the report."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from fedledger.simulate import simulate as run_simulation

    task = cfg.task
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} rounds"),
                  TimeElapsedColumn(), console=console) as progress:  # fmt: skip
        bar = progress.add_task(f"{task.clients} owners, {task.defence}", total=task.rounds)

        def on_round(rr) -> None:
            progress.update(bar, advance=1)
            progress.console.print(
                f"round {rr.round:>3} {rr.status:<9} acc {rr.accuracy:.4f}  accepted {len(rr.accepted)}/{len(rr.submitted)}"
                f"  precision {_f(rr.precision)} recall {_f(rr.recall)}" + (f"  ASR {rr.asr:.3f}" if rr.asr is not None else "")
            )

        report = run_simulation(cfg, on_round=on_round)
    _print_report(report)
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=2))


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _print_report(report) -> None:
    table = Table(title=f"task {report.task_id}: malicious owners {report.malicious}")
    for col in ("round", "status", "accuracy", "ASR", "rejected owners", "precision", "recall", "s"):
        table.add_column(col, no_wrap=True)
    for r in report.rounds:
        table.add_row(str(r.round), r.status, f"{r.accuracy:.4f}", "" if r.asr is None else f"{r.asr:.3f}",
                      ",".join(map(str, r.rejected)) or "-", _f(r.precision), _f(r.recall), f"{r.seconds:.1f}")  # fmt: skip
    Console(width=120).print(table)
    phases: dict[str, float] = {}
    for r in report.rounds:
        for k, v in r.phase_seconds.items():
            phases[k] = phases.get(k, 0.0) + v
    console.print("wall time per phase (all rounds): " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    console.print(f"gas: {report.gas_total:,} in all; {report.gas_per_client_round:,.0f} per client per round "
                  f"(submit + commit + reveal)")  # fmt: skip
    console.print(f"total {report.seconds:.1f} s; report {Path(report.plot).parent / 'report.json'}; plot {report.plot}")


def audit(
    task: Annotated[int, typer.Option(help="task id")],
    round_: Annotated[int, typer.Option("--round", help="round to recompute")],
    rpc: RpcOpt = None, manifest: ManifestOpt = None, store: StoreOpt = DEFAULT_STORE,
) -> None:  # fmt: skip
    """Recompute a round from chain + storage; exit 1 if the recorded result does not follow."""
    from fedledger.core.chain import Phase
    from fedledger.core.storage import open_store
    from fedledger.miner.round import compute_round

    ledger = _ledger(rpc, manifest, None, None, None)
    ri = ledger.round_info(task, round_)
    if ri.phase not in (Phase.FINALISED, Phase.FAILED):
        console.print(f"round {round_} is still open ({ri.phase.name}): nothing recorded to audit yet")
        raise typer.Exit(2)
    outcome = compute_round(ledger, open_store(store, timeout=5.0), task, round_)
    for k, why in sorted(outcome.rejected.items()):
        console.print(f"client {k} rejected as bad input: {why}")
    if ri.phase == Phase.FAILED:
        console.print(f"round {round_} failed on chain (no quorum or no submission): the global model was kept")
        raise typer.Exit(0)
    recorded = ledger.proposals(task, round_)[ri.result]
    mine = outcome.proposal
    diffs = [
        name for name, a, b in [
            ("global model", (recorded.global_cid, recorded.global_digest), (mine.global_cid, mine.global_digest)),
            ("accepted set", recorded.accepted, mine.accepted), ("reputations", recorded.reputations, mine.reputations),
            ("winner", recorded.winner, mine.winner), ("next selection", recorded.next_selection, mine.next_selection),
        ] if a != b
    ]  # fmt: skip
    if diffs:
        console.print(f"[red]round {round_} does NOT follow from chain + storage:[/red] {', '.join(diffs)} differ")
        raise typer.Exit(1)
    console.print(f"[green]round {round_} verified[/green]: global {mine.global_cid}, accepted "
                  f"{[i for i in range(256) if mine.accepted >> i & 1]}, winner {mine.winner - 1 if mine.winner else None}")  # fmt: skip


def demo(
    out: Annotated[Path, typer.Option(help="output directory")] = Path(".fedledger/demo"),
) -> None:
    """The main job in a few minutes: 10 owners (30 % label flippers), BVFB, 3 miners, 5 rounds."""
    from fedledger.simulate import SimConfig
    from fedledger.core.protocol.task import TaskConfig

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
