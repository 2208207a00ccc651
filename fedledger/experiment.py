"""In-process federation runner: the engine without a chain.

The same client code (``fedledger.core.learning.training``, ``fedledger.core.attacks``, ``fedledger.core.protocol.validation``) and the
same defences (``fedledger.core.defences``) the agents use, driven round by round in one process. It is
the fast path for paper sweeps and the baseline against which the ledger's overhead is measured.

Data split: clients get IID / Dirichlet / shard partitions of the training set
(``fedledger.core.data.client_data``). The test set is split once (seeded) into a *miner part*
(``miner_test_size`` samples: the miner's test / validation set for BVFB's reference choice,
LL-BCFL validation, BCS-FL losses, Model Chain's benchmark, and the first ``root_size`` of it as
FLTrust's root dataset) and a disjoint *evaluation part* on which the reported accuracy is measured.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from fedledger.core.attacks import Attack, create_attack
from fedledger.core.learning.behaviour import behaviour_model
from fedledger.core.learning.privacy import DPConfig, create_accountant
from fedledger.core.learning.training import TrainConfig, train_local
from fedledger.core.protocol.validation import score_vector, validation_targets
from fedledger.core.data import ClientData, client_data, load_dataset
from fedledger.core.metrics import attack_success_rate, detection, evaluate
from fedledger.core.models import StateDict, create_model, get_weights
from fedledger.core.defences import Context, Decision, create_defence
from fedledger.core.defences.base import ClientUpdate

__all__ = ["ExperimentConfig", "ExperimentResult", "RoundResult", "run_experiment"]


@dataclass(frozen=True)
class ExperimentConfig:
    """One federation. Defaults are BVFB's MNIST setup (MLP, lr 0.1, batch 32, 5 local epochs)."""

    dataset: str = "mnist"
    model: str = "mlp"
    clients: int = 20
    malicious: float = 0.0
    attack: str = "none"
    attack_kwargs: dict[str, Any] = field(default_factory=dict)
    defence: str = "fedavg"
    defence_kwargs: dict[str, Any] = field(default_factory=dict)
    rounds: int = 10
    lr: float = 0.1
    batch_size: int = 32
    local_epochs: int = 5
    local_steps: int | None = None
    prune_ratio: float = 0.0
    partition: str = "iid"
    alpha: float = 0.5
    shards_per_client: int = 2
    val_fraction: float = 0.1
    dp: str | None = None
    epsilon: float = 10.0
    noise_multiplier: float = 1.0
    max_grad_norm: float = 1.0
    delta: float = 1e-5
    select: int | None = None
    peer_validators: int = 0  # mutual validation: each model scored by this many sampled peers (0: all)
    miner_test_size: int = 2000
    root_size: int = 100
    seed: int = 0
    data_path: str | None = None


@dataclass
class RoundResult:
    """What happened in one round (JSON-friendly)."""

    round: int
    accuracy: float
    loss: float
    participants: list[int]
    accepted: list[int]
    malicious_participants: list[int]
    precision: float | None
    recall: float | None
    asr: float | None
    adopted: bool
    scores: dict[int, float]
    metrics: dict[str, Any]
    digest: str | None
    epsilon: float | None
    seconds: float


@dataclass
class ExperimentResult:
    """All rounds of a run, plus the setup needed to read them."""

    config: ExperimentConfig
    malicious: list[int]
    initial_accuracy: float
    rounds: list[RoundResult]
    seconds: float

    @property
    def final_accuracy(self) -> float:
        """Evaluation accuracy after the last round."""
        return self.rounds[-1].accuracy if self.rounds else self.initial_accuracy

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        d = asdict(self)
        d["final_accuracy"] = self.final_accuracy
        return _jsonable(d)

    def to_json(self, **kw: Any) -> str:
        """JSON text."""
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentResult:
        """The inverse of `to_dict` (a stored run read back; extra keys are ignored)."""
        rounds = [RoundResult(**{**r, "scores": {int(k): v for k, v in r["scores"].items()}}) for r in d["rounds"]]
        return cls(ExperimentConfig(**d["config"]), list(d["malicious"]), d["initial_accuracy"], rounds, d["seconds"])


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def malicious_ids(n_clients: int, fraction: float, seed: int) -> list[int]:
    """The seeded set of malicious client ids (``round(fraction * n)`` of them)."""
    m = int(round(fraction * n_clients))
    rng = np.random.default_rng([seed, 0xBAD])
    return sorted(int(i) for i in rng.choice(n_clients, size=m, replace=False))


def _defence_kwargs(cfg: ExperimentConfig, n_mal: int, client_steps: int) -> dict[str, Any]:
    """Defaults a defence cannot know by itself: Krum's f and Trimmed Mean's trim come from the
    (known) number of attackers, clamped to what the rule tolerates."""
    kw = dict(cfg.defence_kwargs)
    name = cfg.defence.lower().replace("_", "-")
    if name in ("krum", "multi-krum"):
        kw.setdefault("num_malicious", max(0, min(n_mal, (cfg.clients - 3) // 2)))
    if name == "trimmed-mean" and "trim_ratio" not in kw:
        kw.setdefault("num_trim", max(0, min(n_mal, (cfg.clients - 1) // 2)))
    if name == "ll-bcfl" and cfg.select is not None:
        kw.setdefault("top_n", cfg.select)
    if name == "fltrust":
        kw.setdefault("root_steps", client_steps)
    return kw


def _dp_mechanism(name: str) -> Literal["gaussian", "laplace"]:
    if name not in ("gaussian", "laplace"):
        raise ValueError(f"unknown DP mechanism {name!r} (gaussian, laplace)")
    return "gaussian" if name == "gaussian" else "laplace"


def _backdoor_target(attack: Attack) -> int | None:
    for a in (attack, getattr(attack, "inner", None)):
        if a is not None and a.name == "backdoor":
            return int(getattr(a, "target"))  # noqa: B009 - only the backdoor attack has a target
    return None


def run_experiment(
    cfg: ExperimentConfig,
    *,
    progress: Callable[[RoundResult], None] | None = None,
) -> ExperimentResult:
    """Run the federation ``cfg`` in this process and return every round's result.

    Deterministic given ``cfg`` (same config -> same global model bytes each round).
    ``progress`` is called after every round.
    """
    t_start = time.perf_counter()
    ds = load_dataset(cfg.dataset, cfg.data_path)
    n = cfg.clients
    mal = malicious_ids(n, cfg.malicious, cfg.seed)
    mal_set = set(mal)
    attack = create_attack(cfg.attack, **cfg.attack_kwargs)
    attack.setup(n_clients=n, n_malicious=len(mal))
    train_cfg = TrainConfig(
        lr=cfg.lr, batch_size=cfg.batch_size, local_epochs=cfg.local_epochs,
        local_steps=cfg.local_steps, prune_ratio=cfg.prune_ratio,
    )
    dp = (
        DPConfig(mechanism=_dp_mechanism(cfg.dp), max_grad_norm=cfg.max_grad_norm, noise_multiplier=cfg.noise_multiplier,
                 epsilon=cfg.epsilon, delta=cfg.delta)
        if cfg.dp else None
    )
    accountants = {k: create_accountant(dp.mechanism) for k in range(n)} if dp else {}

    # Client data (and the attackers' poisoned copies), derived exactly as an agent would.
    data: dict[int, ClientData] = {
        k: client_data(ds, cfg.partition, cfg.seed, n, k, alpha=cfg.alpha,
                       shards_per_client=cfg.shards_per_client, val_fraction=cfg.val_fraction)
        for k in range(n)
    }
    train_xy: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for k in range(n):
        x, y = data[k].x_train, data[k].y_train
        if k in mal_set:
            x, y = attack.poison_data(x, y, torch.Generator().manual_seed(cfg.seed * 7919 + k))
        train_xy[k] = (x, y)
    typical = int(np.median([len(train_xy[k][0]) for k in range(n)]))
    client_steps = cfg.local_steps or cfg.local_epochs * math.ceil(typical / cfg.batch_size)
    defence = create_defence(cfg.defence, **_defence_kwargs(cfg, len(mal), client_steps))

    # Test set: seeded split into the miner's part and the evaluation part.
    perm = torch.from_numpy(np.random.default_rng([cfg.seed, 0x7E57]).permutation(len(ds.y_test)))
    miner_idx, eval_idx = perm[: cfg.miner_test_size], perm[cfg.miner_test_size :]
    miner_x, miner_y = ds.x_test[miner_idx], ds.y_test[miner_idx]
    eval_x, eval_y = ds.x_test[eval_idx], ds.y_test[eval_idx]
    root_x, root_y = miner_x[: cfg.root_size], miner_y[: cfg.root_size]

    model = create_model(cfg.model, seed=cfg.seed, in_shape=ds.input_shape, num_classes=ds.num_classes)
    global_w: StateDict = get_weights(model)
    initial_acc, _ = evaluate(model, eval_x, eval_y, weights=global_w)
    bd_target = _backdoor_target(attack)
    needs_peer = "peer_scores" in defence.needs or attack.name == "collusive"

    selection = list(range(n)) if cfg.select is None else list(range(cfg.select))
    reputation: dict[int, float] = {}
    best_acc: float | None = None
    results: list[RoundResult] = []
    for r in range(1, cfg.rounds + 1):
        t0 = time.perf_counter()
        participants = sorted(selection)
        honest = [k for k in participants if k not in mal_set]
        bad = [k for k in participants if k in mal_set]
        weights: dict[int, StateDict] = {}
        steps: dict[int, int] = {}
        losses: dict[int, float] = {}
        eps: list[float] = []

        def train(k: int) -> None:
            res = train_local(model, global_w, *train_xy[k], train_cfg, seed=cfg.seed * 1_000_003 + r * 1009 + k,
                              dp=dp, accountant=accountants.get(k))
            weights[k], steps[k], losses[k] = res.weights, res.local_steps, res.loss
            if res.epsilon is not None:
                eps.append(res.epsilon)

        for k in honest:
            train(k)
        honest_updates = (
            [OrderedDict((key, weights[k][key] - global_w[key]) for key in global_w) for k in honest]
            if attack.needs_honest_updates else None
        )
        for k in bad:
            if attack.trains:
                train(k)
            else:
                weights[k] = OrderedDict((key, v.clone()) for key, v in global_w.items())
                steps[k] = train_cfg.local_steps or train_cfg.local_epochs * math.ceil(
                    len(train_xy[k][0]) / train_cfg.batch_size)
            weights[k] = attack.poison_weights(
                global_w, weights[k], honest_updates=honest_updates,
                gen=torch.Generator().manual_seed(cfg.seed * 104_729 + r * 31 + k),
            )
        updates = []
        for k in participants:
            pace = behaviour_model(global_w, weights[k], cfg.lr, steps[k]).pace
            updates.append(ClientUpdate(k, weights[k], len(train_xy[k][0]), pace=pace, loss=losses.get(k)))

        peer_scores: dict[int, dict[int, int]] = {}
        if needs_peer:
            round_seed = hashlib.sha256(f"experiment {cfg.seed} round {r}".encode()).digest()
            targets = validation_targets(participants, cfg.peer_validators, round_seed)
            for v in participants:
                s = score_vector(model, {t: weights[t] for t in targets[v]}, data[v].x_val, data[v].y_val, self_id=v)
                if v in mal_set:
                    s = attack.poison_scores(s, self_id=v, accomplices=mal_set)
                peer_scores[v] = s

        standby_pool = [k for k in range(n) if k not in participants]
        order = np.random.default_rng([cfg.seed, r, 0x71]).permutation(len(standby_pool))
        ctx = Context(
            round=r, global_weights=global_w, model_spec=cfg.model, in_shape=ds.input_shape,
            num_classes=ds.num_classes, test_x=miner_x, test_y=miner_y, root_x=root_x, root_y=root_y,
            train_config=train_cfg, seed=cfg.seed, peer_scores=peer_scores, reputation=reputation,
            best_accuracy=best_acc, standby=[standby_pool[i] for i in order],
        )
        dec: Decision = defence.aggregate(updates, ctx)
        adopted = dec.global_update is not None
        if adopted:
            global_w = dec.global_update  # type: ignore[assignment]
        reputation = dec.state.get("reputation", reputation)
        selection = dec.state.get("next_selection", selection)
        best_acc = dec.state.get("best_accuracy", best_acc)

        acc, loss = evaluate(model, eval_x, eval_y, weights=global_w)
        det = detection(participants, dec.accepted, mal_set)
        asr = attack_success_rate(model, eval_x, eval_y, target=bd_target, weights=global_w) if bd_target is not None else None
        metrics = {k: v for k, v in dec.metrics.items() if k in ("score", "reference", "winner", "threshold", "adopted", "trim", "bph", "bdh")}
        rr = RoundResult(
            round=r, accuracy=acc, loss=loss, participants=participants, accepted=dec.accepted,
            malicious_participants=bad, precision=det.precision, recall=det.recall, asr=asr,
            adopted=adopted, scores=dec.scores, metrics=metrics, digest=dec.digest() if adopted else None,
            epsilon=max(eps) if eps else None, seconds=time.perf_counter() - t0,
        )
        results.append(rr)
        if progress is not None:
            progress(rr)
    return ExperimentResult(cfg, mal, initial_acc, results, time.perf_counter() - t_start)
