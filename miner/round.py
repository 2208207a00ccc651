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
from fedledger.core.chain.types import REP_SCALE
from fedledger.core.defences import Context, Decision
from fedledger.core.protocol.rounds import (
    defence_from,
    fetch_weights,
    load_updates,
    miner_test_set,
    reputations_before,
    round_start,
    task_config,
)
from fedledger.core.protocol.task import TaskConfig
from fedledger.core.protocol.validation import validation_targets
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
    from fedledger.core.metrics import evaluate
    from fedledger.core.models import create_model

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
