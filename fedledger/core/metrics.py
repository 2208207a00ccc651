"""Evaluation metrics: test accuracy and loss, backdoor attack success rate
(Bagdasaryan et al., "How To Backdoor Federated Learning", AISTATS 2020) and per-round
malicious-detection precision / recall (a rejected client counts as "detected")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fedledger.core.models import StateDict

__all__ = [
    "Detection",
    "attack_success_rate",
    "detection",
    "evaluate",
    "predict",
]


@torch.no_grad()
def predict(
    model: nn.Module, x: torch.Tensor, *, weights: StateDict | None = None, batch_size: int = 2048
) -> torch.Tensor:
    """Predicted labels (argmax of the logits) for ``x``."""
    if weights is not None:
        model.load_state_dict(weights, strict=True)
    model.eval()
    preds = [model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    weights: StateDict | None = None,
    batch_size: int = 2048,
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy loss) of ``model`` (optionally loaded with ``weights``)."""
    if weights is not None:
        model.load_state_dict(weights, strict=True)
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch_size):
        out = model(x[i : i + batch_size])
        yb = y[i : i + batch_size]
        correct += int((out.argmax(1) == yb).sum())
        loss += float(F.cross_entropy(out, yb, reduction="sum"))
    n = max(len(x), 1)
    return correct / n, loss / n


def attack_success_rate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    target: int,
    trigger_size: int = 3,
    weights: StateDict | None = None,
) -> float:
    """Backdoor ASR: among test samples whose true label is not ``target``, the fraction that the
    model labels ``target`` once the trigger is stamped on them."""
    from fedledger.core.attacks import apply_trigger  # the one definition of the trigger

    keep = y != target
    if not keep.any():
        return 0.0
    xt = apply_trigger(x[keep], size=trigger_size, value=float(x.max()))
    pred = predict(model, xt, weights=weights)
    return float((pred == target).float().mean())


@dataclass(frozen=True)
class Detection:
    """Malicious-detection quality of one round (None where the ratio is undefined: 0/0)."""

    precision: float | None
    recall: float | None
    true_positives: int
    false_positives: int
    false_negatives: int


def detection(participants: Iterable[int], accepted: Iterable[int], malicious: Iterable[int]) -> Detection:
    """Precision and recall of "rejected" as a malicious-client detector over ``participants``."""
    parts = set(participants)
    rejected = parts - set(accepted)
    bad = parts & set(malicious)
    tp = len(rejected & bad)
    fp = len(rejected - bad)
    fn = len(bad - rejected)
    return Detection(
        precision=tp / (tp + fp) if tp + fp else None,
        recall=tp / (tp + fn) if tp + fn else None,
        true_positives=tp,
        false_positives=fp,
        false_negatives=fn,
    )
