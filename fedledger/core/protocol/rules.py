"""The round rules, in one place: what every party that runs or checks a round computes.

The miner (`fedledger.miner.round.compute_round`), `fedledger audit` (which calls the miner's
code), the in-process engine (`fedledger.experiment`) and the explorer all call these functions,
so a federation run in process and the same federation run through the chain decide the same
way round by round (`tests/agents/test_engine_equals_chain.py` checks it).

- **The defence** a task states: its name with parameters (`krum?num_malicious=4` on chain,
  `defence_kwargs` in process), built by the defence's own `from_task` from the stated
  parameters and the task fields it reads (BVFB's theta, LL-BCFL's w4/w5/top-N, Krum's f ...).
  Nobody can know the true number of attackers: a task states f (Krum) or the trim (Trimmed
  Mean), or the documented defaults apply (f = 0, trim ratio 0.1); an experiment or a
  simulation states its own attacker count (`state_attackers`).
- **Reputation**: registration sets it from the self-assessment (the contract's arithmetic);
  after a round the defence's own rule (LL-BCFL) or the common one, ``rep = rep_eval * eval +
  rep_prev * rep`` for the selected owners (eval 1 if accepted, else 0); recorded in fixed point
  (`REP_SCALE`), and the next round reads back exactly what was recorded.
- **Selection**: round 1 is the top N by reputation (ties to the earlier registrant) or everyone;
  afterwards the defence's choice, else the same top-N rule on the new reputations, else everyone.
- **Standby order**: the owners not selected, in registration order (most timely first).
- **Winner**: the defence's (BPCV-FL), else the accepted owner with the best score (ties: lower index).
- **Seeds**: of local training, of data poisoning and of weight poisoning, from (task seed,
  round, data owner).
- **BPCV-FL quality** (`peer_quality`) over the scores each validator was assigned.
- **Model Chain's benchmark**: the best accuracy on the miners' test set of the initial model and
  of every model adopted since.
- **Copies** (`copied_from`): a model whose update or behaviour model (nearly) duplicates that of
  an owner that committed earlier is not its submitter's: it is rejected, the earlier committer
  keeping it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fedledger.core.chain.types import REP_SCALE
from fedledger.core.defences import Decision, Defence, defence_class
from fedledger.core.defences.base import TaskTerms
from fedledger.core.defences.bpcv_fl import peer_quality
from fedledger.core.models import StateDict
from fedledger.core.protocol.task import TaskConfig
from fedledger.core.protocol.validation import validation_targets

__all__ = [
    "REP_SCALE",
    "RoundClose",
    "TaskTerms",
    "benchmark",
    "build_defence",
    "close_round",
    "copied_from",
    "data_poison_seed",
    "defence_for",
    "defence_string",
    "first_selection",
    "parse_defence",
    "near_duplicate",
    "peer_quality",
    "registration_reputation",
    "reputations",
    "round_peer_scores",
    "self_assessment",
    "standby",
    "state_attackers",
    "task_terms",
    "top_n_by_reputation",
    "training_seed",
    "uses_benchmark",
    "weights_poison_seed",
    "winner",
]


# ---- the defence ---------------------------------------------------------------------------
def parse_defence(text: str) -> tuple[str, dict[str, Any]]:
    """``"krum?num_malicious=4"`` -> ``("krum", {"num_malicious": 4})``: the registry name
    (lower case, ``-``) and the stated parameters, numbers and booleans parsed."""
    name, _, query = text.partition("?")
    return name.lower().replace("_", "-"), {k: _value(v) for k, v in parse_qsl(query)}


def defence_string(name: str, params: Mapping[str, Any]) -> str:
    """The inverse of `parse_defence`: what a task records on chain."""
    if not params:
        return name
    q = {k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in params.items()}
    return f"{name}?{urlencode(q)}"


def _value(v: str) -> Any:
    """A query value: ``true``/``false`` (any case) as booleans, then int, float, else the text."""
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def build_defence(defence: str, task: TaskTerms, n_submitted: int) -> Defence:
    """The defence named ``defence`` as ``task`` states it, for ``n_submitted`` updates (the
    defence's ``from_task`` decides which task fields it takes)."""
    return defence_class(defence).from_task(task, n_submitted)


def task_terms(cfg: TaskConfig) -> tuple[str, TaskTerms]:
    """A published task's defence name and what it states for the defence."""
    name, params = parse_defence(cfg.defence)
    top_n = cfg.selection_n if cfg.selection == "top-n" else None
    return name, TaskTerms(params=params, theta=cfg.theta, rep_eval=cfg.rep_eval, rep_prev=cfg.rep_prev, top_n=top_n)


def defence_for(cfg: TaskConfig, n_submitted: int) -> Defence:
    """The task's defence for a round with ``n_submitted`` usable updates."""
    return build_defence(*task_terms(cfg), n_submitted)


def state_attackers(defence: str, params: Mapping[str, Any], n_malicious: int) -> dict[str, Any]:
    """The parameters an experiment or a simulation states for its defence: its attacker count
    where the defence takes one (Krum's and Multi-Krum's f, Trimmed Mean's trim per side), unless
    the parameters already state it."""
    return defence_class(defence).state_attackers(dict(params), n_malicious)


# ---- seeds ---------------------------------------------------------------------------------
def training_seed(seed: int, round_: int, owner: int) -> int:
    """Data owner ``owner``'s local training in ``round_``."""
    return seed * 1_000_003 + round_ * 1009 + owner


def data_poison_seed(seed: int, owner: int) -> int:
    """An attacker's poisoned copy of its data (once per task)."""
    return seed * 7919 + owner


def weights_poison_seed(seed: int, round_: int, owner: int) -> int:
    """An attacker's poisoning of its weights in ``round_``."""
    return seed * 104_729 + round_ * 31 + owner


# ---- reputation and selection --------------------------------------------------------------
def self_assessment(n_samples: int, n_train: int, clients: int) -> tuple[int, int, int]:
    """A data owner's self-assessment at registration (bps): data size relative to an even share
    of the dataset's ``n_train`` training samples among ``clients``, quality, category."""
    share = n_train / max(clients, 1)
    return min(10_000, int(10_000 * n_samples / share)), 10_000, 10_000


def registration_reputation(assessment: Sequence[int], weights: Sequence[int] = (1, 1, 1)) -> int:
    """The reputation (fixed point) the contract gives at registration: the weighted
    self-assessment (integer division; equal weights when they sum to 0), scaled to REP_SCALE."""
    total = sum(weights)
    weighted = sum(w * a for w, a in zip(weights, assessment, strict=True))
    score = sum(assessment) // 3 if total == 0 else weighted // total
    return score * (REP_SCALE // 10_000)


def reputations(fixed: Sequence[int]) -> dict[int, float]:
    """Recorded fixed-point reputations as the next round reads them."""
    return {i: r / REP_SCALE for i, r in enumerate(fixed)}


def top_n_by_reputation(fixed: Sequence[int], n: int) -> list[int]:
    """The ``n`` highest recorded reputations, ties to the lower index (the contract's `_topN`)."""
    return sorted(sorted(range(len(fixed)), key=lambda i: (-fixed[i], i))[:n])


def first_selection(fixed: Sequence[int], top_n: int | None) -> list[int]:
    """Round 1's selection: top N by registration reputation, or everyone."""
    return top_n_by_reputation(fixed, top_n) if top_n is not None else list(range(len(fixed)))


def standby(selected: Collection[int], n_clients: int) -> list[int]:
    """Owners not selected, most timely (earliest registered) first."""
    return [i for i in range(n_clients) if i not in selected]


def winner(decision: Decision | None) -> int | None:
    """The defence's winner, else the accepted owner with the best score (ties: lower index)."""
    if decision is None:
        return None
    if decision.winner is not None:
        return decision.winner
    if not decision.accepted:
        return None
    return min(decision.accepted, key=lambda k: (-float(decision.scores.get(k, 0.0)), k))


@dataclass(frozen=True)
class RoundClose:
    """What a round leaves for the next: reputations (fixed point, one per owner), the next
    selection and the winner."""

    reputations: tuple[int, ...]
    next_selection: list[int]
    winner: int | None


def close_round(
    task: TaskTerms, decision: Decision | None, before: Sequence[int], selected: Collection[int]
) -> RoundClose:
    """Reputations, next selection and winner after a round (``decision`` None: no usable update)."""
    n = len(before)
    rep = reputations(before)
    if decision is not None and decision.reputation is not None:
        new = {i: decision.reputation.get(i, rep[i]) for i in range(n)}
    else:
        accepted = set(decision.accepted) if decision is not None else set()
        new = {
            i: task.rep_eval * (1.0 if i in accepted else 0.0) + task.rep_prev * rep[i] if i in selected else rep[i]
            for i in range(n)
        }
    fixed = tuple(max(0, min(2**32 - 1, int(round(new[i] * REP_SCALE)))) for i in range(n))
    if decision is not None and decision.next_selection is not None:
        nxt = sorted(decision.next_selection)
    elif task.top_n is not None:
        nxt = top_n_by_reputation(fixed, task.top_n)
    else:
        nxt = list(range(n))
    return RoundClose(fixed, nxt or sorted(selected), winner(decision))


# ---- copies -------------------------------------------------------------------------------
#: A model whose update (weights minus the round's global model), or behaviour model, lies within
#: this relative L2 distance of an earlier committer's is a copy (re-serialised, or plus small
#: noise); honest owners training on their own data are far apart (> 0.2).
NEAR_DUPLICATE = 0.05


def near_duplicate(a: StateDict, b: StateDict) -> bool:
    """Whether two updates are (nearly) the same: ||a - b|| <= NEAR_DUPLICATE * max(||a||, ||b||)."""
    diff = sum(float(((a[k].double() - b[k].double()) ** 2).sum()) for k in a) ** 0.5
    norm = (
        max(sum(float((a[k].double() ** 2).sum()) for k in a), sum(float((b[k].double() ** 2).sum()) for k in b)) ** 0.5
    )
    return diff <= NEAR_DUPLICATE * norm


def copied_from(
    update: StateDict, pace: StateDict | None, earlier: Iterable[tuple[int, StateDict, StateDict | None]]
) -> int | None:
    """The first of ``earlier`` (owner index, update, behaviour model: the kept models of owners
    that committed before, in commitment order) whose update or behaviour model ``update`` /
    ``pace`` (nearly) duplicates, else None."""
    for index, other_update, other_pace in earlier:
        same_pace = pace is not None and other_pace is not None and near_duplicate(pace, other_pace)
        if same_pace or near_duplicate(update, other_update):
            return index
    return None


# ---- peer validation (BPCV-FL) ---------------------------------------------------------------
def round_peer_scores(
    revealed: Mapping[int, Sequence[int]],
    submitted: Iterable[int],
    per_model: int,
    seed: bytes,
    usable: Iterable[int] | None = None,
) -> dict[int, dict[int, int]]:
    """``revealed[validator]`` (a score per owner index) reduced to what counts: only the targets
    each validator was assigned among the submitters (every peer, or those the round seed drew),
    and validators and targets whose update is ``usable`` (default: every submitter)."""
    subs = sorted(set(submitted))
    ok = set(subs if usable is None else usable)
    targets = validation_targets(subs, per_model, seed)
    return {v: {t: s[t] for t in targets.get(v, []) if t in ok and t < len(s)} for v, s in revealed.items() if v in ok}


# ---- Model Chain -----------------------------------------------------------------------------
def uses_benchmark(defence: str) -> bool:
    """Whether the defence reads Model Chain's benchmark (`Context.best_accuracy`)."""
    return parse_defence(defence)[0] == "model-chain"


def benchmark(accuracies: Iterable[float]) -> float | None:
    """Model Chain's benchmark: the best test accuracy of the initial model and of each model
    adopted since (each evaluated on the miners' test set)."""
    return max(accuracies, default=None)
