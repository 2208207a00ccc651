"""`fedledger simulate`: a whole federation on a real chain and real storage.

Starts (or joins) a devnet and the storage, deploys, publishes the task, then runs the requester,
one client agent per data owner (in this process, or as separate OS processes) and the miners
until the last round closes, and reports accuracy, detection, gas and time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from fedledger.client.agent import ClientAgent
from fedledger.core.attacks import backdoor_target, create_attack
from fedledger.core.chain import FedLedger, Phase, bits, connect, devnet_account
from fedledger.core.chain.transport import hex_int, request, request_batch
from fedledger.core.metrics import attack_success_rate, detection, evaluate
from fedledger.core.models import create_model
from fedledger.core.protocol import rules
from fedledger.core.protocol.rounds import fetch_weights
from fedledger.core.protocol.task import TaskConfig
from fedledger.core.storage import CachingStore, open_store
from fedledger.deploy import devnet as devnet_mod
from fedledger.deploy.deployer import deploy
from fedledger.experiment import malicious_ids
from fedledger.miner.agent import MinerAgent
from fedledger.requester import RequesterAgent, publish

log = logging.getLogger(__name__)

REQUESTER_ACCOUNT = 0
IDLE_REPOLL_S = 0.5  # an idle agent is polled again after this long even without a new block
CLIENT_ACCOUNT0 = 1  # data owner k signs with devnet account 1 + k
MINER_ACCOUNT0 = 150  # miner m signs with devnet account 150 + m
PEERING_S = 2.0  # placement hosts: how often dropped IPFS connections are re-dialled


@dataclass
class SimConfig:
    task: TaskConfig
    malicious: float = 0.0
    attack: str = "label-flip"
    miners: int = 3
    rpc: str | None = None
    storage: str = "embedded"  # embedded | ipfs | a store spec (embedded:PATH, http://...)
    processes: int = 0  # data owners that run as their own OS process
    out_dir: Path = Path(".fedledger/simulate")
    keep: bool = False  # leave the devnet running (for `fedledger explorer`)
    timeout: float = 3600.0
    # local: this machine's loopback, one store; hosts: every owner and miner on a host of its
    # own with its own IPFS node (`fedledger.hosts`, needs root); one-host: the same processes
    # and network on a single host with one node (the baseline a hosts run is compared with)
    placement: str = "local"
    audit: bool = True  # hosts: audit every round from a fresh host at the end


@dataclass
class RoundReport:
    round: int
    status: str  # finalised | failed
    accuracy: float
    asr: float | None
    submitted: list[int]
    accepted: list[int]
    rejected: list[int]
    precision: float | None  # of "rejected" as a detector of malicious owners (None: nothing to detect)
    recall: float | None
    winner: int | None
    global_cid: str
    seconds: float
    phase_seconds: dict[str, float] = field(default_factory=dict)
    # time inside agent steps, by what they did: submit (fetch, train, upload, submit), commit
    # (validate every peer, commit), reveal, vote (a miner's verify, defence, aggregate, vote),
    # other (polling an unchanged phase, advance); in one process these add up to the round
    agent_seconds: dict[str, float] = field(default_factory=dict)
    # placement hosts/one-host: per host, bytes received/sent during the round on its IPFS link
    # (ipfs_rx: fetched from peers) and its chain link, from the kernel's interface counters
    traffic: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class SimReport:
    task_id: int
    rpc_url: str
    manifest: str
    store: str
    malicious: list[int]
    initial_accuracy: float
    rounds: list[RoundReport]
    gas_total: int
    gas_by_function: dict[str, dict[str, int]]
    gas_per_client_round: float
    seconds: float
    plot: str | None = None
    # placement hosts/one-host: where each party ran, what each node pins, the audits' verdicts
    hosts: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def simulate(cfg: SimConfig, *, on_round: Callable[[RoundReport], None] | None = None) -> SimReport:
    """Run the federation described by `cfg`; returns the report (see module docstring)."""
    torch.set_num_threads(1)  # several agents share this box: no OpenMP oversubscription
    t_start = time.perf_counter()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = None
    daemon_dir = None
    procs: list[subprocess.Popen] = []
    stack = contextlib.ExitStack()
    fed = None
    try:
        if cfg.placement != "local":
            from fedledger.hosts import CHAIN, HostFederation

            fed = stack.enter_context(
                HostFederation(
                    cfg.task.clients, cfg.miners, out, one_host=cfg.placement == "one-host", auditor=cfg.audit
                )
            )
            stack.enter_context(fed.on(CHAIN))  # the requester and this report sit on the chain's host
            rpc = fed.rpc_url
        elif cfg.rpc:
            rpc = cfg.rpc
        else:
            net = devnet_mod.start("anvil", log_dir=out)
            rpc = net.rpc_url
            if cfg.keep:
                devnet_mod.save_record(net)
        store_spec = cfg.storage
        if fed is not None:
            store_spec = fed.api(CHAIN)
        elif store_spec == "embedded":
            store_spec = f"embedded:{out / 'store'}"
        elif store_spec == "ipfs":
            from fedledger.core.storage import daemon

            daemon_dir = out / "ipfs"
            store_spec = daemon.start(daemon_dir).api
        store = CachingStore(open_store(store_spec, timeout=5.0))  # in-process agents share one "node"
        w3 = connect(rpc)
        manifest, _ = deploy(w3, devnet_account(REQUESTER_ACCOUNT), directory=out / "deployments")
        manifest_path = out / "deployments" / f"{manifest['chainId']}.json"
        start_block = w3.eth.block_number
        base = FedLedger.from_manifest(w3, manifest_path, devnet_account(REQUESTER_ACCOUNT))
        mal = malicious_ids(cfg.task.clients, cfg.malicious, cfg.task.seed)
        task = stated_task(cfg.task, len(mal))
        task_id = publish(base, store, task)
        accomplices = frozenset(devnet_account(CLIENT_ACCOUNT0 + k).address for k in mal)

        agents: list[Any] = [RequesterAgent(base, task_id)]
        traffic_seen = fed.traffic() if fed is not None else {}
        if fed is not None:
            procs += _spawn_on_hosts(fed, manifest_path, task_id, task.clients, cfg.miners, mal, cfg.attack)
        for m in range(cfg.miners if fed is None else 0):
            agents.append(MinerAgent(base.as_account(devnet_account(MINER_ACCOUNT0 + m)), store, task_id))
        n_proc = task.clients if cfg.processes < 0 else min(cfg.processes, task.clients)
        for k in range(task.clients if fed is None else 0):
            attack = cfg.attack if k in mal else None
            if k < n_proc:
                procs.append(_spawn_client(rpc, manifest_path, store_spec, task_id, k, attack, mal, out))
            else:
                ledger = base.as_account(devnet_account(CLIENT_ACCOUNT0 + k))
                agents.append(
                    ClientAgent(ledger, store, task_id, k, attack=attack, accomplices=accomplices, n_malicious=len(mal))
                )

        owners = {devnet_account(CLIENT_ACCOUNT0 + k).address: k for k in range(task.clients)}
        evaluator = _Evaluator(task, store, mal, cfg.attack, owners)
        rounds: list[RoundReport] = []
        done: set[int] = set()
        watch = _PhaseClock()
        # An agent that found nothing to do is polled again once the chain has a new block, or
        # after IDLE_REPOLL_S (deadlines pass without blocks): agents only read the chain, so
        # polling them on an unchanged chain within the same half-second cannot change what they do.
        idle_at: dict[int, tuple[int, float]] = {}
        work: dict[int, dict[str, float]] = {}  # round -> agent_seconds
        current = 0
        peered_at = time.monotonic()
        while len(done) < len(agents) or len(rounds) < task.rounds:
            busy = False
            if fed is not None and not fed.one_host and time.monotonic() - peered_at > PEERING_S:
                fed.keep_peered()
                peered_at = time.monotonic()
            block = w3.eth.block_number
            for i, agent in enumerate(agents):
                if i in done:
                    continue
                seen = idle_at.get(i)
                if seen is not None and seen[0] == block and time.monotonic() - seen[1] < IDLE_REPOLL_S:
                    continue
                t_step = time.perf_counter()
                act = agent.step()
                kind, r_act = _action(act)
                current = r_act or current
                work.setdefault(current, {}).setdefault(kind, 0.0)
                work[current][kind] += time.perf_counter() - t_step
                if act == "done":
                    done.add(i)
                elif act == "idle":
                    idle_at[i] = (block, time.monotonic())
                else:
                    busy = True
                    idle_at.pop(i, None)
                    block = w3.eth.block_number
                    log.info("%s %s", _name(agent), act)
                    watch.observe(base, task_id)
            watch.observe(base, task_id)
            for r in range(len(rounds) + 1, task.rounds + 1):
                closed = evaluator.round_report(base, task_id, r, watch)
                if closed is None:
                    break
                closed.agent_seconds = {k: round(v, 3) for k, v in sorted(work.get(r, {}).items())}
                if fed is not None:
                    now = fed.traffic()
                    closed.traffic = {h: {k: now[h][k] - traffic_seen[h][k] for k in now[h]} for h in now}
                    traffic_seen = now
                rounds.append(closed)
                _write_live(out / f"task-{task_id}.json", task_id, rounds)  # `fedledger explorer --metrics`
                if on_round is not None:
                    on_round(closed)
            _check_processes(procs, out)
            if time.perf_counter() - t_start > cfg.timeout:
                raise TimeoutError(f"simulation not finished after {cfg.timeout:.0f} s")
            if not busy:
                time.sleep(0.05)
        for p in procs:
            p.wait(timeout=120)
        hosts_info = _hosts_epilogue(fed, manifest_path, task_id, rounds, base) if fed is not None else None
        gas_total, by_fn = gas_used(base, start_block)
        client_fns = ("commitModel", "submitModel", "commitScores", "revealScores")
        client_gas = sum(by_fn[f]["gas"] for f in client_fns if f in by_fn)
        client_rounds = sum(len(rr.submitted) for rr in rounds) or 1
        report = SimReport(
            task_id=task_id,
            rpc_url=rpc,
            manifest=str(manifest_path),
            store=store_spec,
            malicious=mal,
            initial_accuracy=evaluator.initial_accuracy,
            rounds=rounds,
            gas_total=gas_total,
            gas_by_function=by_fn,
            gas_per_client_round=client_gas / client_rounds,
            seconds=time.perf_counter() - t_start,
            hosts=hosts_info,
        )
        report.plot = str(plot_accuracy(report, out / "accuracy.png"))
        (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2))
        return report
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        if daemon_dir is not None and not cfg.keep:
            from fedledger.core.storage import daemon

            daemon.stop(daemon_dir)
        if net is not None and not cfg.keep:
            net.stop()
        stack.close()  # placement hosts: every namespace, link, node and agent goes


def stated_task(task: TaskConfig, n_malicious: int) -> TaskConfig:
    """The task as a simulation publishes it: like `fedledger experiment`, it states its attacker
    count for a defence that takes one (Krum's f, Trimmed Mean's trim) unless the task states it
    (`fedledger.core.protocol.rules.state_attackers`)."""
    name, params = rules.parse_defence(task.defence)
    stated = rules.state_attackers(name, params, n_malicious)
    return task if stated == params else replace(task, defence=rules.defence_string(name, stated))


_KINDS = {"submitted": "submit", "committed": "commit", "revealed": "reveal", "voted": "vote"}


def _action(act: str) -> tuple[str, int | None]:
    """("submit", 3) for "submitted r3"; other steps count as "other"."""
    verb, _, rest = act.partition(" r")
    return _KINDS.get(verb, "other"), int(rest) if rest.isdigit() else None


def _write_live(path: Path, task_id: int, rounds: list[RoundReport]) -> None:
    """Per-round metrics so far, replaced atomically so a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"task_id": task_id, "rounds": [asdict(r) for r in rounds]}))
    os.replace(tmp, path)


def _name(agent: Any) -> str:
    if isinstance(agent, ClientAgent):
        return f"client {agent.k}"
    if isinstance(agent, MinerAgent):
        return f"miner {agent.address[:8]}"
    return "requester"


def _spawn_client(
    rpc: str, manifest: Path, store: str, task_id: int, k: int, attack: str | None, mal: list[int], out: Path
) -> subprocess.Popen:
    """Data owner k as its own OS process, exactly as a user would run it."""
    cmd = [
        sys.executable,
        "-m",
        "fedledger.cli",
        "client",
        "run",
        "--task",
        str(task_id),
        "--data-owner",
        str(k),
        "--rpc",
        rpc,
        "--manifest",
        str(manifest),
        "--store",
        store,
        "--account",
        str(CLIENT_ACCOUNT0 + k),
    ]
    if attack:
        mates = ",".join(devnet_account(CLIENT_ACCOUNT0 + m).address for m in mal)
        cmd += ["--attack", attack, "--accomplices", mates]
    log_file = open(out / f"client-{k}.log", "wb")  # noqa: SIM115 - closed with the process
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _check_processes(procs: list[subprocess.Popen], out: Path) -> None:
    for p in procs:
        if p.poll() not in (None, 0):
            args = [str(a) for a in p.args] if isinstance(p.args, list) else [str(p.args)]
            if "--data-owner" not in args:  # a miner on its own host
                raise RuntimeError(f"agent {' '.join(args[3:6])} exited with {p.returncode}; logs in {out / 'hosts'}")
            k = args[args.index("--data-owner") + 1]
            raise RuntimeError(f"client process {k} exited with {p.returncode}; see {out / f'client-{k}.log'}")


def _spawn_on_hosts(
    fed: Any, manifest: Path, task_id: int, owners: int, miners: int, mal: list[int], attack: str
) -> list[subprocess.Popen]:
    """Every owner and miner as its own process on its host, given only the chain's RPC URL, a copy
    of the manifest and its own IPFS node."""
    from fedledger.hosts import miner_host, owner_host

    fed.give_manifest(manifest)
    common = ["--task", str(task_id), "--rpc", fed.rpc_url, "--manifest", "deployment.json"]
    procs = []
    for m in range(miners):
        party = miner_host(m)
        args = ["miner", "run", *common, "--store", fed.api(party), "--account", str(MINER_ACCOUNT0 + m)]
        procs.append(fed.spawn(party, args, f"miner-{m}"))
    for k in range(owners):
        party = owner_host(k)
        args = ["client", "run", *common, "--store", fed.api(party), "--data-owner", str(k)]
        args += ["--account", str(CLIENT_ACCOUNT0 + k)]
        if k in mal:
            args += [
                "--attack",
                attack,
                "--accomplices",
                ",".join(devnet_account(CLIENT_ACCOUNT0 + j).address for j in mal),
            ]
        procs.append(fed.spawn(party, args, f"client-{k}"))
    return procs


def _hosts_epilogue(
    fed: Any, manifest: Path, task_id: int, rounds: list[RoundReport], ledger: FedLedger
) -> dict[str, Any]:
    """Where each party ran, what each host's node pins, and `fedledger audit` of every round run
    from the auditor's host, whose node was empty: it fetches all it needs over the network."""
    from fedledger.hosts import AUDITOR

    pins = {}
    for host in fed.hosts:
        with fed.on(host):
            store = fed.store(host)
            pins[host] = sorted(store.pins())
            store.close()
    audits: dict[str, Any] = {}
    if AUDITOR in fed.hosts:
        with fed.on(AUDITOR):
            store = fed.store(AUDITOR)
            audits["blocks_before"] = store.local_blocks()
            store.close()
        running = {}
        for rr in rounds:  # one auditor process per round, all at once
            args = ["audit", "--task", str(task_id), "--round", str(rr.round), "--rpc", fed.rpc_url]
            args += ["--manifest", "deployment.json", "--store", fed.api(AUDITOR)]
            running[rr.round] = fed.spawn(AUDITOR, args, f"audit-r{rr.round}")
        for r, p in running.items():
            p.wait(timeout=600)
            said = (fed.host_dir(AUDITOR) / f"audit-r{r}.log").read_text(errors="replace")
            audits[str(r)] = {"exit": p.returncode, "said": " ".join(said.split())[-300:]}
        with fed.on(AUDITOR):
            store = fed.store(AUDITOR)
            audits["blocks_after"] = store.local_blocks()
            store.close()
    # who must keep what alive: an owner its submissions (weights and behaviour model), a
    # committee miner the global models it voted for
    from fedledger.hosts import owner_host

    owners: dict[str, str] = {
        str(devnet_account(CLIENT_ACCOUNT0 + k).address): owner_host(k) for k in range(fed.owners)
    }
    keeps: dict[str, list[str]] = {}
    for rr in rounds:
        for sub in ledger.submissions(task_id, rr.round):
            keeps.setdefault(owners[sub.client], []).extend([sub.weights_cid, sub.behaviour_cid])
    return {
        "placement": "one-host" if fed.one_host else "hosts",
        "submitted": keeps,
        "pids": sorted([fed.devnet.pid, *(n.daemon.pid for n in fed.nodes.values()), *(p.pid for p in fed.procs)]),
        "start_seconds": round(fed.start_seconds, 1),
        "where": {p: fed.host_of(p) for p in fed.parties},
        "addresses": {h: fed.net[h].address("ipfs") for h in fed.hosts},
        "pins": pins,
        "audit": audits,
    }


class _PhaseClock:
    """When each phase of each round was first seen open (polled after every agent action)."""

    def __init__(self) -> None:
        self.first: dict[tuple[int, Phase], float] = {}

    def observe(self, ledger: FedLedger, task_id: int) -> None:
        r = ledger.task_info(task_id)["current_round"]
        if r:
            self.first.setdefault((r, ledger.round_info(task_id, r).phase), time.perf_counter())

    def round_times(self, r: int) -> tuple[float, dict[str, float]]:
        """(seconds from round open to close, seconds each phase stood open)."""
        seen = sorted((t, phase) for (rr, phase), t in self.first.items() if rr == r)
        closed = [t for t, p in seen if p in (Phase.FINALISED, Phase.FAILED)]
        end = min([*closed, *(t for (rr, _), t in self.first.items() if rr == r + 1)], default=time.perf_counter())
        phases = {}
        for (t, phase), nxt in zip(seen, [*seen[1:], (end, None)], strict=True):
            if phase not in (Phase.FINALISED, Phase.FAILED):
                phases[phase.name.lower()] = min(nxt[0], end) - t
        return end - seen[0][0] if seen else 0.0, phases


class _Evaluator:
    """Scores each closed round's global model on the evaluation part of the test set."""

    def __init__(self, task: TaskConfig, store: Any, mal: list[int], attack: str, owners: dict[Any, int]) -> None:
        self.task, self.store, self.mal, self.owners = task, store, set(mal), owners
        ds = task.data()
        self.model = create_model(task.model, in_shape=tuple(ds.input_shape), num_classes=ds.num_classes)
        _, (self.x, self.y) = task.test_split()
        self.backdoor_target = backdoor_target(create_attack(attack)) if mal else None
        init = create_model(task.model, seed=task.seed, in_shape=tuple(ds.input_shape), num_classes=ds.num_classes)
        self.initial_accuracy = evaluate(init, self.x, self.y)[0]

    def round_report(self, ledger: FedLedger, task_id: int, r: int, watch: _PhaseClock) -> RoundReport | None:
        ri = ledger.round_info(task_id, r)
        if ri.phase not in (Phase.FINALISED, Phase.FAILED):
            return None
        cid, digest = ledger.global_model(task_id)
        fin = ledger.events("RoundFinalised", taskId=task_id, round=r)
        if fin:
            cid, digest = fin[0]["globalCID"], bytes(fin[0]["globalDigest"])
        else:
            from fedledger.core.protocol.rounds import round_start

            cid, digest, _ = round_start(ledger, task_id, r)  # failed: the global model is unchanged
        w, _ = fetch_weights(self.store, cid, digest, expected=None)
        acc = evaluate(self.model, self.x, self.y, weights=w)[0]
        asr = (
            attack_success_rate(self.model, self.x, self.y, target=self.backdoor_target, weights=w)
            if self.backdoor_target is not None
            else None
        )
        # chain indexes are registration order; report data-owner ids
        registered = ledger.clients(task_id)
        owner = {i: self.owners.get(a, i) for i, a in enumerate(registered)}
        submitted = sorted(owner[i] for i in bits(ri.submitted))
        accepted = sorted(owner[i] for i in bits(ri.accepted))
        det = detection(submitted, accepted, self.mal)
        seconds, phases = watch.round_times(r)
        report = RoundReport(
            round=r,
            status="finalised" if ri.phase == Phase.FINALISED else "failed",
            accuracy=acc,
            asr=asr,
            submitted=submitted,
            accepted=accepted,
            rejected=[k for k in submitted if k not in accepted],
            precision=det.precision,
            recall=det.recall,
            winner=owner[ri.winner - 1] if ri.winner else None,
            global_cid=cid,
            seconds=seconds,
            phase_seconds=phases,
        )
        return report


def gas_used(ledger: FedLedger, from_block: int) -> tuple[int, dict[str, dict[str, int]]]:
    """Total gas and gas per contract function of every transaction since `from_block`."""
    by_fn: dict[str, dict[str, int]] = defaultdict(lambda: {"calls": 0, "gas": 0})
    total = 0
    for n in range(from_block, hex_int(request(ledger.w3, "eth_blockNumber", [])) + 1):
        block, receipts = (
            a.get("result") or {}
            for a in request_batch(
                ledger.w3, [("eth_getBlockByNumber", [hex(n), True]), ("eth_getBlockReceipts", [hex(n)])]
            )
        )
        gas = {r["transactionHash"]: hex_int(r["gasUsed"]) for r in receipts or []}
        for tx in block.get("transactions", []):
            name = "deploy" if tx["to"] is None else ledger.function_name(tx["input"]) or "transfer"
            g = gas.get(tx["hash"], 0)
            by_fn[name]["calls"] += 1
            by_fn[name]["gas"] += g
            total += g
    return total, dict(by_fn)


def plot_accuracy(report: SimReport, path: Path) -> Path:
    """Accuracy (and backdoor success) per round as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [0] + [r.round for r in report.rounds]
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    ax.plot(xs, [report.initial_accuracy] + [r.accuracy for r in report.rounds], marker="o", label="test accuracy")
    if any(r.asr is not None for r in report.rounds):
        ax.plot(
            [r.round for r in report.rounds], [r.asr or 0 for r in report.rounds], marker="x", label="backdoor success"
        )
    for r in report.rounds:
        if r.status == "failed":
            ax.axvline(r.round, color="red", alpha=0.3)
    ax.set_xlabel("round")
    ax.set_ylabel("fraction")
    ax.set_ylim(0, 1)
    ax.set_title(f"fedledger task {report.task_id}: {len(report.malicious)} malicious")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
