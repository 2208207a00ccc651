"""The one interface every defence implements: ``aggregate(updates, context) -> Decision``.

Flower's ``Strategy.aggregate_fit`` reduced to what a blockchain miner needs: the inputs are
what is on chain / IPFS for a round (client updates keyed by integer client index, peer scores,
reputations), the output is what a miner records on chain and what anyone can recompute
(accepted set, per-client scores, aggregation weights, the new global model).

Types are plain on purpose:

- weights, behaviour paces and the global model are **state dicts** (``OrderedDict[str,
  torch.Tensor]``, CPU float32, in the model's key order), the format stored on IPFS;
- the maths runs on **flat float64 numpy vectors** (:func:`flatten`), one row per client in
  ascending client-id order, so the result does not depend on the order updates arrived in.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from fedledger.core.learning.training import TrainConfig
from fedledger.core.metrics import evaluate
from fedledger.core.models import StateDict, create_model

__all__ = [
    "ClientUpdate",
    "Context",
    "Decision",
    "Defence",
    "TaskTerms",
    "flatten",
    "stack_deltas",
    "unflatten",
    "weights_digest",
]


@dataclass(frozen=True)
class ClientUpdate:
    """One client's submission for a round.

    Attributes:
        client_id: the client's integer index in the task.
        weights: its full local model after training (state dict, not a delta).
        n_samples: the sample count it declared (FedAvg weight).
        pace: BVFB behaviour model ``(w_after - w_before) / (lr * steps)`` (state dict of the
            floating tensors) or None; direction is ``sign(pace)``.
        loss: the training loss it reported, or None.
    """

    client_id: int
    weights: StateDict
    n_samples: int
    pace: StateDict | None = None
    loss: float | None = None


@dataclass
class Context:
    """Everything besides the updates that a defence may use for one round.

    Attributes:
        round: round number (1-based).
        global_weights: the round's starting global model.
        model_spec, in_shape, num_classes: to rebuild the model for evaluation.
        test_x, test_y: the miner's test / validation set (BVFB reference choice, LL-BCFL
            validation, BCS-FL loss, Model Chain benchmark).
        root_x, root_y: the trust root's small clean dataset (FLTrust).
        train_config, seed: how the trust root trains its server update.
        peer_scores: ``peer_scores[validator][target]`` in basis points (BPCV-FL).
        reputation: reputation before this round (LL-BCFL).
        best_accuracy: best test accuracy adopted so far (Model Chain's benchmark rule).
        standby: non-selected clients, most timely first (BPCV-FL replacement).
    """

    round: int
    global_weights: StateDict
    model_spec: str = "mlp"
    in_shape: tuple[int, ...] = (1, 28, 28)
    num_classes: int = 10
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    root_x: torch.Tensor | None = None
    root_y: torch.Tensor | None = None
    train_config: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    peer_scores: dict[int, dict[int, int]] = field(default_factory=dict)
    reputation: dict[int, float] = field(default_factory=dict)
    best_accuracy: float | None = None
    standby: list[int] = field(default_factory=list)
    _model: nn.Module | None = field(default=None, repr=False)
    _evals: dict[int, tuple[float, float]] = field(default_factory=dict, repr=False)

    def model(self) -> nn.Module:
        """A scratch model of the task's architecture (built once)."""
        if self._model is None:
            self._model = create_model(self.model_spec, in_shape=self.in_shape, num_classes=self.num_classes)
        return self._model

    def evaluate(self, weights: StateDict, *, client_id: int | None = None) -> tuple[float, float]:
        """(accuracy, loss) on the test set; cached per client id when one is given."""
        if self.test_x is None or self.test_y is None:
            raise ValueError("this defence needs the miner's test set (context.test_x/test_y)")
        if client_id is not None and client_id in self._evals:
            return self._evals[client_id]
        res = evaluate(self.model(), self.test_x, self.test_y, weights=weights)
        if client_id is not None:
            self._evals[client_id] = res
        return res


@dataclass
class Decision:
    """A defence's verdict for one round.

    Attributes:
        accepted: accepted client ids, ascending.
        weights: aggregation weight of each accepted client (sums to 1).
        scores: the defence's per-client score for every participant (BH for BVFB, Krum score,
            trust score, quality ...; ``metrics["score"]`` names it).
        global_update: the new global model (state dict), or None when nothing was aggregated
            (the previous global model stays).
        metrics: extra numbers for logs and the chain (e.g. the BVFB reference id).

    What a mechanism decides for the next round; None leaves it to the protocol's common rule
    (``fedledger.core.protocol.rules``):
        reputation: client id -> new reputation (LL-BCFL's rule).
        next_selection: who trains in the next round (LL-BCFL's top-N, BPCV-FL's replacement).
        winner: the round's winner (BPCV-FL's best quality).
        eliminated: clients a mechanism eliminated this round (BPCV-FL).
        best_accuracy: Model Chain's benchmark after this round.
    """

    accepted: list[int]
    weights: dict[int, float]
    scores: dict[int, float]
    global_update: StateDict | None
    metrics: dict[str, Any] = field(default_factory=dict)
    reputation: dict[int, float] | None = None
    next_selection: list[int] | None = None
    winner: int | None = None
    eliminated: list[int] = field(default_factory=list)
    best_accuracy: float | None = None

    def digest(self) -> str | None:
        """sha256 of the global model's bytes (keys, dtypes, shapes and values in key order)."""
        return None if self.global_update is None else weights_digest(self.global_update)


@dataclass(frozen=True)
class TaskTerms:
    """What a task states that a defence may take; each defence's ``from_task`` says which fields
    it reads and how (as a Flower strategy owns its parameters).

    Attributes:
        params: the parameters stated with the defence's name (``krum?num_malicious=4`` on chain,
            ``defence_kwargs`` in process), booleans and numbers already parsed.
        theta: the task's BH threshold (BVFB, trust-root).
        rep_eval, rep_prev: reputation weights (LL-BCFL's w4, w5).
        top_n: the task's top-N selection size, None when every owner trains every round.
    """

    params: dict[str, Any] = field(default_factory=dict)
    theta: float = 0.6
    rep_eval: float = 0.5
    rep_prev: float = 0.5
    top_n: int | None = None


class Defence(ABC):
    """A defence: configuration in a keyword-only constructor, one ``aggregate`` per round."""

    name: ClassVar[str] = ""
    #: Round inputs beyond the updates that this defence reads. The one tag anybody checks is
    #: ``"peer_scores"``: the requester refuses such a defence on a task without peer validation,
    #: and the in-process engine computes peer scores only for it.
    needs: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_task(cls, task: TaskTerms, n_submitted: int) -> Defence:
        """This defence as the task states it, for a round with ``n_submitted`` usable updates.
        By default only the stated parameters; a defence that reads task fields overrides this."""
        return cls(**task.params)

    @classmethod
    def state_attackers(cls, params: dict[str, Any], n_malicious: int) -> dict[str, Any]:
        """``params`` with the attacker count a simulation states for this defence (Krum's f,
        Trimmed Mean's trim), unless already stated; most defences take none."""
        return dict(params)

    @abstractmethod
    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Decide and aggregate one round."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


# --------------------------------------------------------------------------------------------
# Conversions shared by the defences
# --------------------------------------------------------------------------------------------
def float_keys(template: StateDict) -> list[str]:
    """Keys of the floating tensors (the ones that are aggregated)."""
    return [k for k, v in template.items() if v.is_floating_point()]


def flatten(state: StateDict, keys: Sequence[str]) -> np.ndarray:
    """Concatenate ``state[k]`` for ``k in keys`` into one float64 vector."""
    return np.concatenate([state[k].detach().cpu().double().reshape(-1).numpy() for k in keys])


def tensor_slices(template: StateDict, keys: Sequence[str]) -> list[slice]:
    """Where each tensor of ``keys`` lives in a flattened vector."""
    out, start = [], 0
    for k in keys:
        n = template[k].numel()
        out.append(slice(start, start + n))
        start += n
    return out


def unflatten(vec: np.ndarray, template: StateDict, keys: Sequence[str]) -> StateDict:
    """Inverse of :func:`flatten`: float tensors from ``vec`` (cast to the template's dtype),
    non-float tensors (e.g. ``num_batches_tracked``) copied from ``template``."""
    out: StateDict = OrderedDict()
    pos = dict(zip(keys, tensor_slices(template, keys), strict=True))
    for k, t in template.items():
        if k in pos:
            out[k] = torch.from_numpy(np.ascontiguousarray(vec[pos[k]])).reshape(t.shape).to(t.dtype)
        else:
            out[k] = t.clone()
    return out


def sorted_updates(updates: Sequence[ClientUpdate], global_weights: StateDict) -> list[ClientUpdate]:
    """Updates in ascending client id, after checking ids are unique and shapes match."""
    ups = sorted(updates, key=lambda u: u.client_id)
    ids = [u.client_id for u in ups]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate client ids in {ids}")
    for u in ups:
        if list(u.weights) != list(global_weights) or any(
            u.weights[k].shape != global_weights[k].shape for k in global_weights
        ):
            raise ValueError(f"client {u.client_id}: weights do not match the model")
    return ups


def stack_deltas(
    updates: Sequence[ClientUpdate], global_weights: StateDict
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(ids ascending, deltas (n, d) float64 = weights - global, sample counts float64)."""
    ups = sorted_updates(updates, global_weights)
    keys = float_keys(global_weights)
    g = flatten(global_weights, keys)
    X = np.stack([flatten(u.weights, keys) - g for u in ups]) if ups else np.zeros((0, g.size))
    return [u.client_id for u in ups], X, np.array([u.n_samples for u in ups], dtype=np.float64)


def apply_delta(global_weights: StateDict, delta: np.ndarray) -> StateDict:
    """New global model ``global + delta`` (float64 sum, then cast)."""
    keys = float_keys(global_weights)
    return unflatten(flatten(global_weights, keys) + delta, global_weights, keys)


def weights_digest(weights: StateDict) -> str:
    """sha256 over (key, dtype, shape, raw bytes) of every tensor in order."""
    h = hashlib.sha256()
    for k, v in weights.items():
        t = v.detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()
