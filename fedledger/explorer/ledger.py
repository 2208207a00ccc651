"""What the explorer knows about fedledger: decoded calls and events, tasks, rounds, roles.

Everything comes from the chain alone: the contract's read views for the current state and its
events for the history (who submitted when, the revealed score vectors, every proposal and
vote). Reputation per round is read from the finalised proposals (`ProposalSubmitted` carries the
new reputations), so it needs no archive state and works on any node.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from eth_utils import is_hex_address, to_checksum_address
from hexbytes import HexBytes

from fedledger.core.chain import ContractRevert, FedLedger, decode_scores
from fedledger.core.chain.types import REP_SCALE, Phase, Proposal, TaskStatus, bits
from fedledger.core.protocol import rules
from fedledger.explorer.rpc import ChainReader, hex_int

JS_SAFE = 2**53  # larger ints go to JSON as strings (browsers' numbers are doubles)
CREDIT_KINDS = ["client reward", "winner bonus", "committee reward", "escrow refund"]


class NotFoundError(LookupError):
    """The thing asked for does not exist on this chain (-> 404)."""


class BadRequest(ValueError):
    """The request is malformed (-> 400)."""


def plain(value: Any) -> Any:
    """A JSON-ready copy: bytes as 0x-hex, enums by name, big ints as strings."""
    if isinstance(value, (bytes, bytearray, HexBytes)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Enum):
        return value.name.lower()
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) >= JS_SAFE else value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


def wei(value: int) -> str:
    """Wei as a decimal string (exact, JSON-safe)."""
    return str(int(value))


def parse_address(text: str) -> str:
    """A checksummed address, or `BadRequest`."""
    if not is_hex_address(text):
        raise BadRequest(f"{text!r} is not an address (0x followed by 40 hex digits)")
    return to_checksum_address(text)


def parse_tx_hash(text: str) -> str:
    t = text.lower()
    if not (t.startswith("0x") and len(t) == 66 and all(c in "0123456789abcdef" for c in t[2:])):
        raise BadRequest(f"{text!r} is not a transaction hash (0x followed by 64 hex digits)")
    return t


def load_metrics(path: str | Path | None, task_id: int) -> dict[int, dict[str, float]]:
    """Per-round metrics of a task from the simulation's JSON, if any (round -> {name: value}).

    The hook for `fedledger simulate`: PATH is a file, or a directory holding `task-<id>.json`
    or the simulation's `report.json`. Accepted shapes: `{"rounds": [{"round": 1, "accuracy":
    0.91, ...}]}` (the simulation's report; its `task_id`, if any, must match), a bare list of
    such records, or `{"<task id>": <either>}` for one file covering many tasks. Read on every
    request, so a file rewritten after each round shows up live.
    """
    if path is None:
        return {}
    p = Path(path)
    if p.is_dir():
        p = p / f"task-{task_id}.json" if (p / f"task-{task_id}.json").is_file() else p / "report.json"
    if not p.is_file():
        return {}
    try:
        data: Any = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}  # a file being written by the simulation right now: try again next request
    if isinstance(data, dict) and str(task_id) in data:
        data = data[str(task_id)]
    if isinstance(data, dict):
        if "task_id" in data and int(data["task_id"]) != task_id:
            return {}  # another task's report
        data = data.get("rounds", [])
    out: dict[int, dict[str, float]] = {}
    for rec in data if isinstance(data, list) else []:
        if isinstance(rec, dict) and "round" in rec:
            out[int(rec["round"])] = {
                k: float(v)
                for k, v in rec.items()
                if k != "round" and isinstance(v, int | float) and not isinstance(v, bool)
            }
    return out


class Ledger:
    """Decoded views of one FedLedger deployment over a `ChainReader`."""

    def __init__(self, reader: ChainReader, fl: FedLedger, *, deploy_block: int = 0, metrics: str | Path | None = None):
        self.reader = reader
        self.fl = fl
        self.address = fl.address
        self.deploy_block = deploy_block
        self.metrics = metrics

    # ---- generic decoding -----------------------------------------------------------------
    def decode_log(self, log: dict[str, Any]) -> dict[str, Any]:
        """A raw log as {event, args, address, block, tx, log_index}; `event` None if not ours."""
        base = {
            "address": to_checksum_address(log["address"]),
            "block": hex_int(log.get("blockNumber")),
            "tx": log.get("transactionHash"),
            "log_index": hex_int(log.get("logIndex")),
        }
        topics = [str(t).lower() for t in log.get("topics") or []]
        decoded = self.fl.decode_log({**log, "topics": topics})
        if decoded is None:
            return {**base, "event": None, "args": {"topics": topics, "data": log.get("data")}}
        meta = ("event", "block_number", "tx_hash", "log_index")
        return {**base, "event": decoded["event"], "args": {k: v for k, v in decoded.items() if k not in meta}}

    def decode_input(self, to: str | None, data: str | None) -> dict[str, Any] | None:
        """{function, args} for a call to the FedLedger contract; None for anything else."""
        if not to or not data or len(data) < 10 or to_checksum_address(to) != self.address:
            return None
        try:
            decoded = self.fl.decode_input(data)
        except Exception:  # truncated input (ots_ block lists keep 4 bytes): eth_abi's errors vary
            decoded = None
        if decoded is None:
            return {"function": self.method_name(to, data) or "unknown selector " + data[:10], "args": {}}
        return {"function": decoded[0], "args": decoded[1]}

    def method_name(self, to: str | None, data: str | None) -> str | None:
        """The FedLedger function a call's 4-byte selector names (None if not ours)."""
        if not to or not data or len(data) < 10 or to_checksum_address(to) != self.address:
            return None
        return self.fl.function_name(data)

    def decode_revert(self, data: str | None) -> str | None:
        if not data:
            return None
        return str(self.fl.decoder.decode(data))

    def _task_logs(self, task_id: int) -> list[dict[str, Any]]:
        """Every event of a task (taskId is the first indexed topic of all of them but
        PaymentCredited, whose second it is), decoded, in chain order."""
        topic = "0x" + task_id.to_bytes(32, "big").hex()
        raw = self.reader.logs(self.address, [None, topic], self.deploy_block)
        credit_topic = self.fl.event_topic("PaymentCredited")
        raw += self.reader.logs(self.address, [credit_topic, None, topic], self.deploy_block)
        logs = [self.decode_log(log) for log in raw]
        logs = [log for log in logs if log["event"]]
        logs.sort(key=lambda log: (log["block"], log["log_index"]))
        return logs

    def _times(self, numbers: set[int]) -> dict[int, int]:
        ordered = sorted(numbers)
        blocks = self.reader.blocks(ordered)
        return {n: hex_int(b["timestamp"]) for n, b in zip(ordered, blocks, strict=True) if b}

    # ---- tasks ----------------------------------------------------------------------------
    def task_count(self) -> int:
        return self.fl.task_count()

    def _check_task(self, task_id: int) -> dict[str, Any]:
        if task_id < 1 or task_id > self.task_count():
            raise NotFoundError(f"no task {task_id} (this deployment has {self.task_count()} tasks)")
        try:
            return self.fl.task_info(task_id)
        except ContractRevert as exc:
            raise NotFoundError(f"no task {task_id}: {exc}") from None

    def task_summaries(self) -> list[dict[str, Any]]:
        """One line per task, newest first."""
        out = []
        for t in range(self.task_count(), 0, -1):
            info = self.fl.task_info(t)
            spec = self.fl.task_spec(t)
            mech = self.fl.task_mechanism(t)
            out.append(
                {
                    "id": t,
                    "requester": info["requester"],
                    "status": info["status"].name.lower(),
                    "current_round": info["current_round"],
                    "rounds": spec.rounds,
                    "model": spec.model_spec,
                    "dataset": spec.dataset_id,
                    "defence": mech.defence,
                    "clients": len(self.fl.clients(t)),
                    "reward_per_round_wei": wei(spec.reward_per_round),
                    "escrow_wei": wei(info["escrow"]),
                }
            )
        return out

    def task(self, task_id: int) -> dict[str, Any]:
        """Everything about one task: parameters, clients, escrow and payouts, every round."""
        info = self._check_task(task_id)
        spec = self.fl.task_spec(task_id)
        mech = self.fl.task_mechanism(task_id)
        logs = self._task_logs(task_id)
        times = self._times({log["block"] for log in logs})
        for log in logs:
            log["time"] = times.get(log["block"])
        clients = self.fl.clients(task_id)
        index_of = {c: i for i, c in enumerate(clients)}
        reps_now = self.fl.reputations(task_id)

        registered = {log["args"]["client"]: log for log in logs if log["event"] == "ClientRegistered"}
        client_rows = []
        for i, c in enumerate(clients):
            ci = self.fl.client_info(task_id, c)
            reg = registered.get(c)
            client_rows.append(
                {
                    "index": i,
                    "address": c,
                    "reputation": ci["reputation"],
                    "n_samples": ci["n_samples"],
                    "self_score_bps": ci["self_score_bps"],
                    "registered_block": reg["block"] if reg else None,
                    "credit_wei": wei(self.fl.credit_of(c)),
                }
            )

        by_round: dict[int, list[dict[str, Any]]] = defaultdict(list)
        round_of_tx: dict[str, int] = {}
        for log in logs:
            r = log["args"].get("round")
            if r is not None:
                by_round[int(r)].append(log)
            if log["event"] == "RoundFinalised":  # the finalising tx pays the round (and opens the next)
                round_of_tx[log["tx"]] = int(r)
        metrics = load_metrics(self.metrics, task_id)
        rounds = [
            self._round(task_id, r, by_round.get(r, []), index_of, metrics.get(r, {}), mech.peer_validators)
            for r in range(1, int(info["current_round"]) + 1)
        ]

        # reputation after each round: registration values, then each finalised proposal's
        history = [[int(registered[c]["args"]["reputation"]) if c in registered else 0 for c in clients]]
        for rd in rounds:
            prev = history[-1]
            final = next((p for p in rd["proposals"] if p["final"]), None)
            if final is None:
                history.append(list(prev))
                continue
            new = list(prev)
            for i, rep in enumerate(final["reputations"]):
                if i < len(new):
                    new[i] = rep
            history.append(new)

        payouts = []
        totals: dict[str, int] = defaultdict(int)
        for log in logs:
            if log["event"] == "PaymentCredited":
                a = log["args"]
                totals[a["payee"]] += int(a["amount"])
                payouts.append(
                    {
                        "payee": a["payee"],
                        "amount_wei": wei(a["amount"]),
                        "kind": CREDIT_KINDS[int(a["kind"])],
                        "round": round_of_tx.get(log["tx"]),
                        "block": log["block"],
                        "tx": log["tx"],
                    }
                )
        cid, digest = self.fl.global_model(task_id)
        last_final = max((rd["round"] for rd in rounds if rd["status"] == "finalised"), default=0)
        published = next((log for log in logs if log["event"] == "TaskPublished"), None)
        return {
            "id": task_id,
            "requester": info["requester"],
            "status": info["status"].name.lower(),
            "current_round": int(info["current_round"]),
            "published_at": int(info["published_at"]),
            "published_block": published["block"] if published else None,
            "escrow_wei": wei(info["escrow"]),
            "escrow_total_wei": wei(spec.reward_per_round * spec.rounds),
            "paid_wei": wei(sum(totals.values())),
            "spec": {**plain(spec.__dict__), "reward_per_round_wei": wei(spec.reward_per_round)},
            "mechanism": plain(mech.__dict__),
            "clients": client_rows,
            "reputations_now": reps_now,
            "rep_scale": REP_SCALE,
            "global_model": {"cid": cid, "digest": "0x" + digest.hex(), "round": last_final},
            "rounds": rounds,
            "reputation_history": [{"round": r, "reputations": reps} for r, reps in enumerate(history)],
            "payouts": payouts,
            "payout_totals": {k: wei(v) for k, v in totals.items()},
            "metrics": {str(k): v for k, v in sorted(metrics.items())},
        }

    def round(self, task_id: int, round_: int) -> dict[str, Any]:
        view = self.task(task_id)
        for rd in view["rounds"]:
            if rd["round"] == round_:
                return {"task": task_id, **rd}
        raise NotFoundError(f"task {task_id} has no round {round_} yet (current round {view['current_round']})")

    def _round(
        self,
        task_id: int,
        r: int,
        logs: list[dict[str, Any]],
        index_of: dict[str, int],
        metrics: dict[str, float],
        peer_validators: int = 0,
    ) -> dict[str, Any]:
        ri = self.fl.round_info(task_id, r)

        def row(log: dict[str, Any], **extra: Any) -> dict[str, Any]:
            return {"block": log["block"], "time": log["time"], "tx": log["tx"], **extra}

        opened = next((log for log in logs if log["event"] == "RoundOpened"), None)
        t0 = opened["time"] if opened else None
        phases = [
            row(log, phase=Phase(int(log["args"]["phase"])).name.lower(), deadline=int(log["args"]["deadline"]))
            for log in logs
            if log["event"] == "PhaseChanged"
        ]
        submissions = []
        for log in logs:
            if log["event"] == "ModelSubmitted":
                a = log["args"]
                idx = index_of.get(a["client"], -1)
                submissions.append(
                    row(
                        log,
                        index=idx,
                        client=a["client"],
                        weights_cid=a["weightsCID"],
                        digest="0x" + bytes(a["digest"]).hex(),
                        behaviour_cid=a["behaviourCID"],
                        n_samples=int(a["nSamples"]),
                        after_s=(log["time"] - t0) if t0 is not None and log["time"] is not None else None,
                        accepted=bool(ri.accepted >> idx & 1) if ri.phase == Phase.FINALISED else None,
                    )
                )
        commits = [
            row(log, index=index_of.get(log["args"]["client"], -1), client=log["args"]["client"])
            for log in logs
            if log["event"] == "ScoresCommitted"
        ]
        reveals = {}
        for log in logs:
            if log["event"] == "ScoresRevealed":
                idx = index_of.get(log["args"]["client"], -1)
                reveals[idx] = row(
                    log, index=idx, client=log["args"]["client"], scores=decode_scores(bytes(log["args"]["scores"]))
                )

        # mutual-validation matrix: rows = validators (revealers), columns = submitters; the
        # miners count only the scores each validator was assigned (not its own, not those of
        # non-submitters, not peers the round seed did not draw for it), so the rest is blank;
        # quality is BPCV-FL's rule over what counts (`rules.peer_quality`)
        targets = sorted(s["index"] for s in submissions)
        validators = sorted(reveals)
        revealed = {v: reveals[v]["scores"] for v in validators}
        counted = rules.round_peer_scores(revealed, targets, peer_validators, ri.seed)
        matrix = [[counted.get(v, {}).get(t) for t in targets] for v in validators]
        q = rules.peer_quality(counted, targets)
        quality = [round(q[t]) if any(t in c for c in counted.values()) else None for t in targets]

        votes_by_hash: dict[str, list[dict[str, Any]]] = defaultdict(list)
        votes = []
        for log in logs:
            if log["event"] == "ProposalVoted":
                h = "0x" + bytes(log["args"]["proposalHash"]).hex()
                v = row(log, miner=log["args"]["miner"], proposal=h, votes=int(log["args"]["votes"]))
                votes.append(v)
                votes_by_hash[h].append(v)
        final_hash = "0x" + ri.result.hex() if ri.phase == Phase.FINALISED else None
        proposals = []
        for log in logs:
            if log["event"] == "ProposalSubmitted":
                p = Proposal.from_abi(log["args"]["proposal"])
                h = "0x" + bytes(log["args"]["proposalHash"]).hex()
                proposals.append(
                    row(
                        log,
                        hash=h,
                        global_cid=p.global_cid,
                        global_digest="0x" + p.global_digest.hex(),
                        accepted=bits(p.accepted),
                        winner=p.winner - 1 if p.winner else None,
                        reputations=list(p.reputations),
                        next_selection=bits(p.next_selection),
                        voters=[v["miner"] for v in votes_by_hash[h]],
                        votes=len(votes_by_hash[h]),
                        final=h == final_hash,
                    )
                )

        status = {Phase.FINALISED: "finalised", Phase.FAILED: "failed"}.get(ri.phase, "open")
        final = next((log for log in logs if log["event"] == "RoundFinalised"), None)
        failed = next((log for log in logs if log["event"] == "RoundFailed"), None)
        submitted_idx = [s["index"] for s in submissions]
        result: dict[str, Any] = {
            "status": status,
            "global_cid": None,
            "digest": None,
            "accepted": [],
            "rejected": [],
            "winner": None,
            "block": None,
            "time": None,
            "tx": None,
            "proposal": None,
            "at_phase": None,
        }
        if final is not None:
            a = final["args"]
            acc = bits(int(a["accepted"]))
            result.update(
                global_cid=a["globalCID"],
                digest="0x" + bytes(a["globalDigest"]).hex(),
                accepted=acc,
                rejected=[i for i in submitted_idx if i not in acc],
                winner=int(a["winner"]) - 1 if int(a["winner"]) else None,
                block=final["block"],
                time=final["time"],
                tx=final["tx"],
                proposal=final_hash,
            )
        elif failed is not None:
            result.update(
                at_phase=Phase(int(failed["args"]["atPhase"])).name.lower(), block=failed["block"], time=failed["time"]
            )
        return {
            "round": r,
            "phase": ri.phase.name.lower(),
            "deadline": ri.deadline,
            "opened_at": ri.opened_at,
            "opened_block": opened["block"] if opened else None,
            "n_clients": ri.n_clients,
            "selected": bits(ri.selected),
            "committee": list(ri.committee),
            "seed": "0x" + ri.seed.hex(),
            "phases": phases,
            "submissions": submissions,
            "commits": commits,
            "reveals": list(reveals.values()),
            "scores": {"validators": validators, "targets": targets, "matrix": matrix, "quality": quality},
            "proposals": proposals,
            "votes": votes,
            "status": status,
            "result": result,
            "metrics": metrics,
            "accuracy": metrics.get("accuracy"),
        }

    def latest_model(self, task_id: int) -> dict[str, Any]:
        """The task's current global model (the last finalised round's, or the initial one)."""
        info = self._check_task(task_id)
        cid, digest = self.fl.global_model(task_id)
        finals = self.fl.events("RoundFinalised", from_block=self.deploy_block, taskId=task_id)
        last = finals[-1] if finals else None
        return {
            "task": task_id,
            "round": int(last["round"]) if last else 0,
            "cid": cid,
            "digest": "0x" + digest.hex(),
            "block": last["block_number"] if last else None,
            "tx": last["tx_hash"] if last else None,
            "initial": last is None,
            "task_status": info["status"].name.lower(),
        }

    # ---- addresses and CIDs -----------------------------------------------------------------
    def roles(self, address: str) -> dict[str, Any]:
        """What `address` is to fedledger: the contract, requester of tasks, data owner, miner."""
        topic = "0x" + bytes.fromhex(address[2:].lower()).rjust(32, b"\0").hex()

        def tasks_where(event: str, position: int) -> list[int]:
            ev_topic = self.fl.event_topic(event)
            topics: list[Any] = [ev_topic, None, None]
            topics[position] = topic
            logs = self.reader.logs(self.address, topics, self.deploy_block)
            return sorted({int(self.decode_log(log)["args"]["taskId"]) for log in logs})

        requester = tasks_where("TaskPublished", 2)
        owner = tasks_where("ClientRegistered", 2)
        stake = self.fl.stake_of(address)
        staked = self.reader.logs(self.address, [self.fl.event_topic("Staked"), topic], self.deploy_block)
        names = []
        if address == self.address:
            names.append("FedLedger contract")
        if requester:
            names.append("requester")
        if owner:
            names.append("data owner")
        if staked or stake["amount"]:
            names.append("miner")
        return {
            "roles": names,
            "requester_of": requester,
            "data_owner_of": owner,
            "stake_wei": wei(stake["amount"]),
            "miner_active": bool(stake["active"]),
            "credit_wei": wei(self.fl.credit_of(address)),
        }

    def cid_uses(self, cid: str) -> list[dict[str, Any]]:
        """Where a CID appears on chain: initial weights, submissions, behaviour models, global models."""
        out = []
        for t in range(1, self.task_count() + 1):
            if self.fl.task_spec(t).initial_weights_cid == cid:
                out.append({"what": "initial weights", "task": t, "round": 0})
        for e in self.fl.events("ModelSubmitted", from_block=self.deploy_block):
            for field, what in (("weightsCID", "client weights"), ("behaviourCID", "behaviour model")):
                if e[field] == cid:
                    out.append(
                        {
                            "what": what,
                            "task": int(e["taskId"]),
                            "round": int(e["round"]),
                            "client": e["client"],
                            "block": e["block_number"],
                            "tx": e["tx_hash"],
                        }
                    )
        for e in self.fl.events("RoundFinalised", from_block=self.deploy_block):
            if e["globalCID"] == cid:
                out.append(
                    {
                        "what": "global model",
                        "task": int(e["taskId"]),
                        "round": int(e["round"]),
                        "block": e["block_number"],
                        "tx": e["tx_hash"],
                    }
                )
        return out

    def status_names(self) -> dict[str, list[str]]:
        return {"task": [s.name.lower() for s in TaskStatus], "phase": [p.name.lower() for p in Phase]}
