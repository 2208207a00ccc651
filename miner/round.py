"""What a committee miner computes for one round, from the chain and storage alone.

`compute_round` is the whole miner-side data path after the reveal phase: fetch every
submission, reject bad inputs, run the task's defence, aggregate, and build the proposal.
Everything is deterministic, so every honest committee member (and `fedledger audit`, later)
derives the same proposal and its hash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from fedledger.core.chain import FedLedger, Proposal, bitmap, bits
from fedledger.core.defences import Context, Decision
from fedledger.core.protocol import rules
from fedledger.core.protocol.rounds import (
    fetch_weights,
    in_model_order,
    load_updates,
    miner_test_set,
    reputations_before,
    round_start,
    task_config,
)
from fedledger.core.protocol.task import TaskConfig
from fedledger.core.storage import Store, compute_cid
from fedledger.core.weights import WeightsMeta, dumps, sha256_hex

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


def compute_round(ledger: FedLedger, store: Store, task_id: int, round_: int) -> RoundOutcome:
    """The proposal an honest committee member makes for `round_` (after its reveal phase)."""
    cfg = task_config(ledger, task_id)
    info = ledger.round_info(task_id, round_)
    global_cid, global_digest, opened_block = round_start(ledger, task_id, round_)
    global_w, _ = fetch_weights(store, global_cid, global_digest, expected=None)
    global_w = in_model_order(global_w, cfg)
    updates, rejected = load_updates(ledger, store, task_id, round_, global_w)
    participants = sorted(u.client_id for u in updates)

    n_clients = info.n_clients
    reps_before = reputations_before(ledger, task_id, round_, opened_block)
    before = [reps_before[i] for i in range(n_clients)]
    revealed = ledger.revealed_scores(task_id, round_)
    submitted = bits(info.submitted)
    peer_scores = rules.round_peer_scores(revealed, submitted, cfg.peer_validators, info.seed, usable=participants)
    # Only owners registered when the round opened count: a registration during the aggregate
    # phase must not make two committee members (or a later audit) see different sets.
    selected = bits(info.selected)
    test_x, test_y = miner_test_set(ledger, store, cfg)
    ctx = Context(
        round=round_,
        global_weights=global_w,
        model_spec=cfg.model,
        in_shape=tuple(cfg.data().input_shape),
        num_classes=cfg.data().num_classes,
        test_x=test_x,
        test_y=test_y,
        root_x=test_x[: cfg.root_size],
        root_y=test_y[: cfg.root_size],
        train_config=cfg.train_config(),
        seed=cfg.seed,
        peer_scores=peer_scores,
        reputation=rules.reputations(before),
        standby=rules.standby(selected, n_clients),
        best_accuracy=_best_accuracy(ledger, store, task_id, round_, cfg, test_x, test_y),
    )

    name, terms = rules.task_terms(cfg)
    decision = rules.build_defence(name, terms, len(updates)).aggregate(updates, ctx) if updates else None
    accepted = decision.accepted if decision else []
    global_bytes = None
    new_cid, new_digest = global_cid, global_digest
    if decision is not None and decision.global_update is not None:
        meta = WeightsMeta(model_spec=cfg.model_spec(), task=str(task_id), round=round_, producer=GLOBAL_PRODUCER)
        global_bytes = dumps(decision.global_update, meta)
        new_cid, new_digest = compute_cid(global_bytes), bytes.fromhex(sha256_hex(global_bytes))

    close = rules.close_round(terms, decision, before, selected)
    proposal = Proposal(
        global_cid=new_cid,
        global_digest=new_digest,
        accepted=bitmap(accepted),
        reputations=close.reputations,
        winner=(close.winner + 1) if close.winner is not None else 0,
        next_selection=bitmap(close.next_selection) or info.selected,
    )
    return RoundOutcome(proposal, global_bytes, decision, rejected, participants)


def _best_accuracy(
    ledger: FedLedger, store: Store, task_id: int, round_: int, cfg: TaskConfig, x: torch.Tensor, y: torch.Tensor
) -> float | None:
    """Model Chain's benchmark: best test accuracy of the global models adopted before `round_`."""
    if not rules.uses_benchmark(cfg.defence):
        return None
    from fedledger.core.metrics import evaluate
    from fedledger.core.models import create_model

    model = create_model(cfg.model, in_shape=tuple(cfg.data().input_shape), num_classes=cfg.data().num_classes)
    accuracies = []
    seen = set()
    spec = ledger.task_spec(task_id)
    candidates = [(spec.initial_weights_cid, spec.initial_digest)] + [
        (e["globalCID"], bytes(e["globalDigest"]))
        for e in ledger.events("RoundFinalised", taskId=task_id)
        if e["round"] < round_
    ]
    for cid, digest in candidates:
        if cid in seen:
            continue
        seen.add(cid)
        w, _ = fetch_weights(store, cid, digest, expected=None)
        accuracies.append(evaluate(model, x, y, weights=w)[0])
    return rules.benchmark(accuracies)
