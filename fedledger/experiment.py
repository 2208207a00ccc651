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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from fedledger.core.attacks import backdoor_target, create_attack
from fedledger.core.data import ClientData, client_data, load_dataset
from fedledger.core.defences import Context, Decision, defence_class
from fedledger.core.defences.base import ClientUpdate, TaskTerms
from fedledger.core.learning.behaviour import behaviour_model
from fedledger.core.learning.privacy import DPConfig, create_accountant
from fedledger.core.learning.training import TrainConfig, train_local
from fedledger.core.metrics import attack_success_rate, detection, evaluate
from fedledger.core.models import StateDict, create_model, get_weights
from fedledger.core.protocol import rules
from fedledger.core.protocol.validation import score_vector, validation_targets

__all__ = ["ExperimentConfig", "ExperimentResult", "RoundResult", "run_experiment", "task_terms"]


@dataclass(frozen=True)
class ExperimentConfig:
    """One federation. Defaults are BVFB's MNIST setup (MLP, lr 0.1, batch 32, 5 local epochs)."""

    dataset: str = "mnist"
    model: str = "mlp"
    clients: int = 20
    malicious: float = 0.0
    attack: str = "none"
    attack_kwargs: dict[str, Any] = field(default_factory=dict)
    defence: str = "root-guard"
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
    dp: str | None = None  # gaussian | laplace (GD-DP), gaussian-upload | laplace-upload (LL-BCFL)
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
    winner: int | None = None
    reputations: list[int] = field(default_factory=list)  # after the round, fixed point (REP_SCALE = 1.0)
    copies: list[int] = field(default_factory=list)  # rejected: a copy of an earlier committer's model


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


def task_terms(cfg: ExperimentConfig, malicious: Sequence[int]) -> tuple[str, TaskTerms]:
    """The defence and what the experiment states for it, as a task states it on chain
    (`fedledger.core.protocol.rules`): ``defence_kwargs`` (a name may also carry them:
    ``krum?num_malicious=2``), plus the experiment's own attacker count where the defence takes
    one (Krum's f, Trimmed Mean's trim) and it is not stated, and the attackers themselves to a
    benchmark-only defence (the oracle); top-N selection from ``select``.
    Task fields an ExperimentConfig does not have take the task's defaults (theta 0.6, w4 = w5 = 0.5)."""
    name, params = rules.parse_defence(cfg.defence)
    params = rules.state_attackers(name, {**params, **cfg.defence_kwargs}, len(malicious))
    if not getattr(defence_class(name), "publishable", True):  # the oracle is told who they are
        params.setdefault("malicious", list(malicious))
    return name, TaskTerms(params=params, top_n=cfg.select)


def _dp_mechanism(name: str) -> tuple[Literal["gaussian", "laplace"], Literal["gradients", "upload"]]:
    """``dp`` names the mechanism, and with ``-upload`` puts its noise on the uploaded parameters
    (LL-BCFL) instead of every step's gradients (GD-DP)."""
    mechanism, _, where = name.partition("-")
    if mechanism not in ("gaussian", "laplace") or where not in ("", "upload"):
        raise ValueError(f"unknown DP mechanism {name!r} (gaussian, laplace, gaussian-upload, laplace-upload)")
    return ("gaussian" if mechanism == "gaussian" else "laplace"), ("upload" if where else "gradients")


def _copies(updates: list[ClientUpdate], commit_order: list[int], global_w: StateDict) -> set[int]:
    """The owners whose model copies an earlier committer's (`rules.copied_from`), as the miners
    reject them. Commitment order: the honest owners, then the attackers (an attacker that copies
    or needs the honest updates commits after them, as it must on chain)."""
    by_id = {u.client_id: u for u in updates}
    kept: list[tuple[int, StateDict, StateDict | None]] = []
    copies = set()
    for k in commit_order:
        u = by_id[k]
        delta = OrderedDict(
            (key, u.weights[key].double() - global_w[key].double())
            for key in global_w
            if u.weights[key].is_floating_point()
        )
        if rules.copied_from(delta, u.pace, kept) is None:
            kept.append((k, delta, u.pace))
        else:
            copies.add(k)
    return copies


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
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        local_epochs=cfg.local_epochs,
        local_steps=cfg.local_steps,
        prune_ratio=cfg.prune_ratio,
    )
    dp = (
        DPConfig(
            mechanism=_dp_mechanism(cfg.dp)[0],
            where=_dp_mechanism(cfg.dp)[1],
            max_grad_norm=cfg.max_grad_norm,
            noise_multiplier=cfg.noise_multiplier,
            epsilon=cfg.epsilon,
            delta=cfg.delta,
        )
        if cfg.dp
        else None
    )
    accountants = {k: create_accountant(dp.mechanism) for k in range(n)} if dp else {}

    # Client data (and the attackers' poisoned copies), derived exactly as an agent would.
    data: dict[int, ClientData] = {
        k: client_data(
            ds,
            cfg.partition,
            cfg.seed,
            n,
            k,
            alpha=cfg.alpha,
            shards_per_client=cfg.shards_per_client,
            val_fraction=cfg.val_fraction,
        )
        for k in range(n)
    }
    train_xy: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for k in range(n):
        x, y = data[k].x_train, data[k].y_train
        if k in mal_set:
            x, y = attack.poison_data(x, y, torch.Generator().manual_seed(rules.data_poison_seed(cfg.seed, k)))
        train_xy[k] = (x, y)
    defence_name, terms = task_terms(cfg, mal)

    # Test set: seeded split into the miner's part and the evaluation part.
    perm = torch.from_numpy(np.random.default_rng([cfg.seed, 0x7E57]).permutation(len(ds.y_test)))
    miner_idx, eval_idx = perm[: cfg.miner_test_size], perm[cfg.miner_test_size :]
    miner_x, miner_y = ds.x_test[miner_idx], ds.y_test[miner_idx]
    eval_x, eval_y = ds.x_test[eval_idx], ds.y_test[eval_idx]
    root_x, root_y = miner_x[: cfg.root_size], miner_y[: cfg.root_size]

    model = create_model(cfg.model, seed=cfg.seed, in_shape=ds.input_shape, num_classes=ds.num_classes)
    global_w: StateDict = get_weights(model)
    initial_acc, _ = evaluate(model, eval_x, eval_y, weights=global_w)
    bd_target = backdoor_target(attack)
    needs_peer = "peer_scores" in rules.build_defence(defence_name, terms, n).needs or attack.name == "collusive"

    # Registration: reputation from each owner's self-assessment, round 1's selection from it.
    reps = tuple(
        rules.registration_reputation(rules.self_assessment(len(train_xy[k][0]), len(ds.y_train), n)) for k in range(n)
    )
    selection = rules.first_selection(reps, terms.top_n)
    adopted_acc = [evaluate(model, miner_x, miner_y, weights=global_w)[0]] if rules.uses_benchmark(defence_name) else []
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
            res = train_local(
                model,
                global_w,
                *train_xy[k],
                train_cfg,
                seed=rules.training_seed(cfg.seed, r, k),
                dp=dp,
                accountant=accountants.get(k),
            )
            weights[k], steps[k], losses[k] = res.weights, res.local_steps, res.loss
            if res.epsilon is not None:
                eps.append(res.epsilon)

        for k in honest:
            train(k)
        honest_updates = (
            [OrderedDict((key, weights[k][key] - global_w[key]) for key in global_w) for k in honest]
            if attack.needs_honest_updates
            else None
        )
        for k in bad:
            if attack.trains:
                train(k)
            else:
                weights[k] = OrderedDict((key, v.clone()) for key, v in global_w.items())
                steps[k] = train_cfg.local_steps or train_cfg.local_epochs * math.ceil(
                    len(train_xy[k][0]) / train_cfg.batch_size
                )
            weights[k] = attack.poison_weights(
                global_w,
                weights[k],
                honest_updates=honest_updates,
                gen=torch.Generator().manual_seed(rules.weights_poison_seed(cfg.seed, r, k)),
            )
        updates = []
        for k in participants:
            pace = behaviour_model(global_w, weights[k], cfg.lr, steps[k]).pace
            updates.append(ClientUpdate(k, weights[k], len(train_xy[k][0]), pace=pace, loss=losses.get(k)))
        copies = _copies(updates, honest + bad, global_w)
        updates = [u for u in updates if u.client_id not in copies]

        peer_scores: dict[int, dict[int, int]] = {}
        if needs_peer:
            round_seed = hashlib.sha256(f"experiment {cfg.seed} round {r}".encode()).digest()
            targets = validation_targets(participants, cfg.peer_validators, round_seed)
            for v in participants:
                s = score_vector(model, {t: weights[t] for t in targets[v]}, data[v].x_val, data[v].y_val, self_id=v)
                if v in mal_set:
                    s = attack.poison_scores(s, self_id=v, accomplices=mal_set)
                peer_scores[v] = s
            # as the miners count them: neither from nor for a rejected copy
            peer_scores = {
                v: {t: x for t, x in s.items() if t not in copies} for v, s in peer_scores.items() if v not in copies
            }

        ctx = Context(
            round=r,
            global_weights=global_w,
            model_spec=cfg.model,
            in_shape=ds.input_shape,
            num_classes=ds.num_classes,
            test_x=miner_x,
            test_y=miner_y,
            root_x=root_x,
            root_y=root_y,
            train_config=train_cfg,
            seed=cfg.seed,
            peer_scores=peer_scores,
            reputation=rules.reputations(reps),
            best_accuracy=rules.benchmark(adopted_acc),
            standby=rules.standby(participants, n),
        )
        dec: Decision = rules.build_defence(defence_name, terms, len(updates)).aggregate(updates, ctx)
        adopted = dec.global_update is not None
        if adopted:
            global_w = dec.global_update  # type: ignore[assignment]
            if dec.best_accuracy is not None:
                adopted_acc.append(dec.best_accuracy)
        close = rules.close_round(terms, dec, reps, participants)
        reps, selection = close.reputations, close.next_selection

        acc, loss = evaluate(model, eval_x, eval_y, weights=global_w)
        det = detection(participants, dec.accepted, mal_set)
        asr = (
            attack_success_rate(model, eval_x, eval_y, target=bd_target, weights=global_w)
            if bd_target is not None
            else None
        )
        metrics = {
            k: v
            for k, v in dec.metrics.items()
            if k in ("score", "reference", "winner", "threshold", "adopted", "trim", "bph", "bdh")
        }
        rr = RoundResult(
            round=r,
            accuracy=acc,
            loss=loss,
            participants=participants,
            accepted=dec.accepted,
            malicious_participants=bad,
            precision=det.precision,
            recall=det.recall,
            asr=asr,
            adopted=adopted,
            scores=dec.scores,
            metrics=metrics,
            digest=dec.digest() if adopted else None,
            epsilon=max(eps) if eps else None,
            seconds=time.perf_counter() - t0,
            winner=close.winner,
            reputations=list(reps),
            copies=sorted(copies),
        )
        results.append(rr)
        if progress is not None:
            progress(rr)
    return ExperimentResult(cfg, mal, initial_acc, results, time.perf_counter() - t_start)
