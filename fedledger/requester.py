"""The requester: publishes a task (initial model to storage, reward escrowed on chain), starts
it once enough data owners and miners are in, and reclaims unspent escrow at the end."""

from __future__ import annotations

from fedledger.core.chain import ContractRevert, FedLedger, TaskStatus
from fedledger.core.models import create_model, get_weights
from fedledger.core.protocol.rules import defence_for
from fedledger.core.protocol.task import TaskConfig, TaskConfigError
from fedledger.core.storage import Store
from fedledger.core.weights import WeightsMeta, dumps, sha256_hex


def publish(ledger: FedLedger, store: Store, cfg: TaskConfig) -> int:
    """Check the task (`TaskConfigError` before anything is uploaded or escrowed), upload the
    seeded initial model and publish the task; returns the task id."""
    cfg.validate()
    if not 0 <= cfg.peer_validators <= 0xFFFF:
        raise TaskConfigError(f"peer_validators must be 0 (every peer) or a number of peers, not {cfg.peer_validators}")
    if not cfg.peer_validation and "peer_scores" in defence_for(cfg, cfg.clients).needs:
        raise TaskConfigError(f"defence {cfg.defence!r} reads the peer-validation scores: set peer_validation = true")
    ds = cfg.data()
    model = create_model(cfg.model, seed=cfg.seed, in_shape=tuple(ds.input_shape), num_classes=ds.num_classes)
    meta = WeightsMeta(model_spec=cfg.model_spec(), task="initial", round=0, producer=ledger.sender)
    data = dumps(get_weights(model), meta)
    cid = store.put(data)
    spec, mech = cfg.to_chain(cid, bytes.fromhex(sha256_hex(data)))
    task_id, _ = ledger.publish_task(spec, mech)
    return task_id


class RequesterAgent:
    """Starts the task when it can, and reclaims and withdraws what is left at the end."""

    def __init__(self, ledger: FedLedger, task_id: int) -> None:
        self.ledger, self.task_id = ledger, task_id

    def step(self) -> str:
        info = self.ledger.task_info(self.task_id)
        if info["status"] == TaskStatus.OPEN:
            spec, mech = self.ledger.task_spec(self.task_id), self.ledger.task_mechanism(self.task_id)
            enough_clients = len(self.ledger.clients(self.task_id)) >= spec.min_clients
            enough_miners = len(self.ledger.active_miners()[0]) >= mech.committee_size
            if enough_clients and enough_miners:
                try:
                    self.ledger.start_task(self.task_id)
                except ContractRevert as exc:  # e.g. a miner left between the read and the call
                    return f"idle ({exc.name})"
                return "started"
            return "idle"
        if info["status"] == TaskStatus.FINISHED:
            if info["escrow"] > 0:
                self.ledger.reclaim_escrow(self.task_id)
                return "reclaimed"
            if self.ledger.credit_of(self.ledger.sender) > 0:
                self.ledger.withdraw()
                return "withdrew"
            return "done"
        return "done" if info["status"] == TaskStatus.CANCELLED else "idle"
