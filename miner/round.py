"""What a committee miner computes for one round, from the chain and storage alone.

`compute_round` is the whole miner-side data path after the reveal phase: fetch every
submission, reject bad inputs, run the task's defence, aggregate, and build the proposal.
Everything is deterministic, so every honest committee member (and `fedledger audit`, later)
derives the same proposal and its hash.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import torch

from client.validation import validation_targets
from fedledger.chain import FedLedger, Proposal, bitmap, bits
from fedledger.chain.types import REP_SCALE
from fedledger.lru import SizedLRU
from fedledger.models import StateDict
from fedledger.storage import StorageError, Store, compute_cid
from fedledger.task import TaskConfig
from fedledger.weights import WeightsError, WeightsMeta, check, dumps, loads, sha256_hex, spec_of
from miner.defences import ClientUpdate, Context, Decision, create_defence

log = logging.getLogger(__name__)

# Committee members must produce identical global-model bytes: no per-miner metadata.
GLOBAL_PRODUCER = "committee"


@dataclass
class RoundOutcome:
    """A miner's result for one round."""

    proposal: Proposal
    global_bytes: bytes | None  # None when the previous global model is kept
    decision: Decision | None
    rejected: dict[int, str] = field(default_factory=dict)  # client index -> why
    participants: list[int] = field(default_factory=list)


class BadInput(ValueError):
    """A submission that cannot be used (digest mismatch, unreadable or malformed weights)."""


def task_config(ledger: FedLedger, task_id: int) -> TaskConfig:
    return TaskConfig.from_chain(ledger.task_spec(task_id), ledger.task_mechanism(task_id))


class _ParsedWeights:
    """Weights already fetched, digest-checked and parsed in this process, keyed by (CID, digest).

    Content-addressed, so the parse of a CID never changes: agents sharing a process
    (`fedledger simulate`: 20 owners each validating 19 peers, 3 miners) parse each file once,
    as they share one verified-bytes cache (`CachingStore`). Callers get their own copies."""

    def __init__(self, max_bytes: int = 128 * 1024 * 1024) -> None:
        self._lru = SizedLRU(max_bytes)

    def get(self, cid: str, digest: bytes) -> tuple[StateDict, WeightsMeta] | None:
        hit = self._lru.get((cid, digest))
        if hit is None:
            return None
        weights, meta = hit
        return OrderedDict((k, v.clone()) for k, v in weights.items()), meta

    def put(self, cid: str, digest: bytes, weights: StateDict, meta: WeightsMeta) -> None:
        size = sum(v.numel() * v.element_size() for v in weights.values())
        self._lru.put((cid, digest), (OrderedDict((k, v.clone()) for k, v in weights.items()), meta), size)


_parsed = _ParsedWeights()


def fetch_weights(store: Store, cid: str, digest: bytes, expected: dict[str, Any] | None) -> tuple[StateDict, WeightsMeta]:
    """Bytes from storage (checked against the CID), the on-chain digest, then the safetensors
    checks (names, shapes, dtypes, finite values). Never unpickles."""
    hit = _parsed.get(cid, digest)
    if hit is None:
        hit = _fetch_weights(store, cid, digest)
        _parsed.put(cid, digest, *hit)
    try:
        check(hit[0], expected)
    except WeightsError as exc:
        raise BadInput(f"weights {cid}: {exc}") from None
    return hit


def _fetch_weights(store: Store, cid: str, digest: bytes) -> tuple[StateDict, WeightsMeta]:
    try:
        data = store.get(cid)
    except StorageError as exc:
        raise BadInput(f"weights {cid}: {exc}") from None
    if sha256_hex(data) != digest.hex():
        raise BadInput(f"weights {cid}: sha256 {sha256_hex(data)[:16]}.. does not match the on-chain digest {digest.hex()[:16]}..")
    try:
        return loads(data)
    except WeightsError as exc:
        raise BadInput(f"weights {cid}: {exc}") from None


def miner_test_set(ledger: FedLedger, store: Store, cfg: TaskConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The miners' common test set: the dataset's seeded test part, or the test split of a Model
    Chain data pool (shares recomputed from the chain, bytes checked against their digests)."""
    if cfg.test_pool < 0:
        return cfg.test_split()[0]
    from fedledger.chain.data_registry import DataRegistry
    from fedledger.pooldata import ExamplesError, unpack

    registry = DataRegistry(ledger.w3, cfg.test_registry, _abi("DataRegistry"))
    xs, ys = [], []
    for share in registry.recompute_split(cfg.test_pool).test:
        try:
            data = store.get(share.cid)
            if sha256_hex(data) != share.digest.hex():
                raise BadInput(f"share {share.share_id}: bytes do not match the digest on chain")
            x, y = unpack(data, input_shape=tuple(cfg.data().input_shape), num_classes=cfg.data().num_classes)
        except (BadInput, StorageError, ExamplesError) as exc:  # every miner skips the same shares
            log.warning("pool %d: share %d unusable as test data: %s", cfg.test_pool, share.share_id, exc)
            continue
        xs.append(x)
        ys.append(y)
    if not xs:
        raise ValueError(f"pool {cfg.test_pool} has no usable test data")
    return torch.cat(xs), torch.cat(ys)


def _abi(name: str) -> list[dict[str, Any]]:
    from deploy.compile import compile_contracts

    return compile_contracts()[name]["abi"]


def round_start(ledger: FedLedger, task_id: int, round_: int) -> tuple[str, bytes, int]:
    """(global CID, digest, block) the round started from: the last finalised round before it,
    else the task's initial model; block is where round `round_` opened."""
    opened = ledger.events("RoundOpened", taskId=task_id, round=round_)
    if not opened:
        raise ValueError(f"task {task_id} round {round_} has not opened")
    block = opened[0]["block_number"]
    finalised = [e for e in ledger.events("RoundFinalised", taskId=task_id, to_block=block) if e["round"] < round_]
    if finalised:
        last = finalised[-1]
        return last["globalCID"], bytes(last["globalDigest"]), block
    spec = ledger.task_spec(task_id)
    return spec.initial_weights_cid, spec.initial_digest, block


def reputations_before(ledger: FedLedger, task_id: int, round_: int, opened_block: int) -> dict[int, int]:
    """Client index -> on-chain reputation when `round_` opened, from events alone (a node
    without archive state serves them too): the registration values, overwritten by the last
    proposal finalised before the round."""
    reps = {int(e["index"]): int(e["reputation"]) for e in ledger.events("ClientRegistered", taskId=task_id, to_block=opened_block)}
    finalised = [e for e in ledger.events("RoundFinalised", taskId=task_id, to_block=opened_block) if e["round"] < round_]
    if finalised:
        last = finalised[-1]
        proposal = ledger.proposals(task_id, int(last["round"]))[bytes(last["proposalHash"])]
        reps.update(enumerate(proposal.reputations))
    return reps


def load_updates(
    ledger: FedLedger, store: Store, task_id: int, round_: int, global_w: StateDict
) -> tuple[list[ClientUpdate], dict[int, str]]:
    """Every submission of the round as a ClientUpdate; bad ones go to `rejected` with the reason."""
    expected = spec_of(global_w)
    pace_spec = {k: v for k, v in expected.items() if v[1].is_floating_point}
    updates, rejected = [], {}
    for s in ledger.submissions(task_id, round_):
        try:
            weights, _ = fetch_weights(store, s.weights_cid, s.digest, expected)
            pace = None
            if s.behaviour_cid:
                data = store.get(s.behaviour_cid)
                pace, _ = loads(data, expected=pace_spec)
            updates.append(ClientUpdate(s.index, OrderedDict((k, weights[k]) for k in global_w), s.n_samples, pace=pace))
        except (BadInput, StorageError, WeightsError) as exc:
            rejected[s.index] = str(exc)
            log.warning("round %d: rejected client %d: %s", round_, s.index, exc)
    return updates, rejected


def defence_from(cfg: TaskConfig, n_submitted: int) -> Any:
    """The task's defence; its on-chain name may carry parameters: `krum?num_malicious=4`."""
    name, _, query = cfg.defence.partition("?")
    kwargs: dict[str, Any] = {k: _number(v) for k, v in parse_qsl(query)}
    key = name.lower().replace("_", "-")
    if key in ("bvfb", "trust-root"):
        kwargs.setdefault("theta", cfg.theta)
    if key == "ll-bcfl":
        kwargs.setdefault("w4", cfg.rep_eval)
        kwargs.setdefault("w5", cfg.rep_prev)
        if cfg.selection == "top-n":
            kwargs.setdefault("top_n", cfg.selection_n)
    if key in ("krum", "multi-krum") and "num_malicious" in kwargs:
        kwargs["num_malicious"] = max(0, min(int(kwargs["num_malicious"]), (n_submitted - 3) // 2))
    return create_defence(name, **kwargs)


def _number(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def compute_round(ledger: FedLedger, store: Store, task_id: int, round_: int) -> RoundOutcome:
    """The proposal an honest committee member makes for `round_` (after its reveal phase)."""
    cfg = task_config(ledger, task_id)
    info = ledger.round_info(task_id, round_)
    global_cid, global_digest, opened_block = round_start(ledger, task_id, round_)
    global_w, _ = fetch_weights(store, global_cid, global_digest, expected=None)
    updates, rejected = load_updates(ledger, store, task_id, round_, global_w)
    participants = sorted(u.client_id for u in updates)

    n_clients = info.n_clients
    reps_before = reputations_before(ledger, task_id, round_, opened_block)
    reputation = {i: reps_before[i] / REP_SCALE for i in range(n_clients)}
    revealed = ledger.revealed_scores(task_id, round_)
    ok = set(participants)
    # only the scores each validator was assigned (every peer, or those the round seed drew)
    targets = validation_targets(bits(info.submitted), cfg.peer_validators, info.seed)
    peer_scores = {v: {t: s[t] for t in targets.get(v, []) if t in ok and t < len(s)}
                   for v, s in revealed.items() if v in ok}  # fmt: skip
    # Only owners registered when the round opened count: a registration during the aggregate
    # phase must not make two committee members (or a later audit) see different sets.
    standby = [i for i in range(n_clients) if not info.selected >> i & 1]  # registration order: most timely first
    test_x, test_y = miner_test_set(ledger, store, cfg)
    ctx = Context(
        round=round_, global_weights=global_w, model_spec=cfg.model, in_shape=tuple(cfg.data().input_shape),
        num_classes=cfg.data().num_classes, test_x=test_x, test_y=test_y, root_x=test_x[: cfg.root_size],
        root_y=test_y[: cfg.root_size], train_config=cfg.train_config(), seed=cfg.seed, peer_scores=peer_scores,
        reputation=reputation, best_accuracy=_best_accuracy(ledger, store, task_id, round_, cfg, test_x, test_y),
        standby=standby,
    )  # fmt: skip

    decision = defence_from(cfg, len(updates)).aggregate(updates, ctx) if updates else None
    accepted = decision.accepted if decision else []
    global_bytes = None
    new_cid, new_digest = global_cid, global_digest
    if decision is not None and decision.global_update is not None:
        meta = WeightsMeta(model_spec=cfg.model_spec(), task=str(task_id), round=round_, producer=GLOBAL_PRODUCER)
        global_bytes = dumps(decision.global_update, meta)
        new_cid, new_digest = compute_cid(global_bytes), bytes.fromhex(sha256_hex(global_bytes))

    state = decision.state if decision else {}
    if "reputation" in state:
        new_rep = {i: state["reputation"].get(i, reputation[i]) for i in range(n_clients)}
    else:
        # LL-BCFL's rule for every defence: rep = w4 * eval + w5 * rep_prev for the selected
        # clients (eval 1 if accepted, else 0); others keep theirs.
        new_rep = {
            i: (cfg.rep_eval * (1.0 if i in accepted else 0.0) + cfg.rep_prev * reputation[i])
            if info.selected >> i & 1 else reputation[i]
            for i in range(n_clients)
        }  # fmt: skip
    reps = tuple(max(0, min(2**32 - 1, int(round(new_rep[i] * REP_SCALE)))) for i in range(n_clients))

    winner = state.get("winner")
    if winner is None and accepted and decision is not None:
        winner = min(accepted, key=lambda k: (-float(decision.scores.get(k, 0.0)), k))
    next_sel = state.get("next_selection")
    if next_sel is None:
        everyone = list(range(n_clients))
        if cfg.selection == "top-n":
            next_sel = sorted(sorted(everyone, key=lambda i: (-new_rep[i], i))[: cfg.selection_n])
        else:
            next_sel = everyone
    proposal = Proposal(
        global_cid=new_cid, global_digest=new_digest, accepted=bitmap(accepted), reputations=reps,
        winner=(winner + 1) if winner is not None else 0, next_selection=bitmap(next_sel) or info.selected,
    )  # fmt: skip
    return RoundOutcome(proposal, global_bytes, decision, rejected, participants)


def _best_accuracy(
    ledger: FedLedger, store: Store, task_id: int, round_: int, cfg: TaskConfig, x: torch.Tensor, y: torch.Tensor
) -> float | None:
    """Model Chain's benchmark: best test accuracy of the global models adopted before `round_`."""
    if not cfg.defence.startswith("model-chain"):
        return None
    from fedledger.metrics import evaluate
    from fedledger.models import create_model

    model = create_model(cfg.model, in_shape=tuple(cfg.data().input_shape), num_classes=cfg.data().num_classes)
    best = None
    seen = set()
    spec = ledger.task_spec(task_id)
    candidates = [(spec.initial_weights_cid, spec.initial_digest)] + [
        (e["globalCID"], bytes(e["globalDigest"])) for e in ledger.events("RoundFinalised", taskId=task_id) if e["round"] < round_
    ]
    for cid, digest in candidates:
        if cid in seen:
            continue
        seen.add(cid)
        w, _ = fetch_weights(store, cid, digest, expected=None)
        acc = evaluate(model, x, y, weights=w)[0]
        best = acc if best is None else max(best, acc)
    return best
