"""Simulated malicious data owners, selectable by name through a registry.

The published attacks live in ``standard`` (label flipping, backdoor, Gaussian noise, sign
flipping, scaling, free riding, ALIE, IPM, copycat, collusive scores); ``adaptive`` knows
root-guard's rule and scales a label-flipping step to sit just inside it (its own module, so a
change to it, or to the rule it targets, re-runs only the benchmark cells that use it).

Every attack is one class with three hooks (identity by default), so the runner and the agents
apply any of them the same way::

    attack = create_attack("label-flip", mode="pairwise")
    x, y = attack.poison_data(x, y, gen)          # before training
    w = attack.poison_weights(global_w, w, honest_updates=..., gen=gen)   # before upload
    scores = attack.poison_scores(scores, self_id=k, accomplices=mal)    # before submitting scores
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fedledger.core.attacks.adaptive import Adaptive
from fedledger.core.attacks.standard import (
    IPM,
    Attack,
    Backdoor,
    Collusive,
    Copycat,
    FreeRider,
    GaussianNoise,
    LabelFlip,
    LittleIsEnough,
    NoAttack,
    Scaling,
    SignFlip,
    apply_trigger,
)

__all__ = [
    "ATTACKS",
    "Adaptive",
    "Attack",
    "Backdoor",
    "Collusive",
    "Copycat",
    "FreeRider",
    "GaussianNoise",
    "IPM",
    "LabelFlip",
    "LittleIsEnough",
    "NoAttack",
    "Scaling",
    "SignFlip",
    "apply_trigger",
    "backdoor_target",
    "create_attack",
]

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls
    for cls in (
        NoAttack,
        LabelFlip,
        Backdoor,
        GaussianNoise,
        SignFlip,
        Scaling,
        FreeRider,
        LittleIsEnough,
        IPM,
        Copycat,
        Collusive,
        Adaptive,
    )
}


def create_attack(name: str | None, **kwargs: Any) -> Attack:
    """Attack registry: ``create_attack("backdoor", target=0, poison_fraction=0.5)``.

    Names: none, label-flip, backdoor, gaussian, sign-flip, scaling, free-rider, alie, ipm,
    copycat, collusive, adaptive. ``"all-to-one"`` is a shortcut for ``label-flip`` with ``mode="all-to-one"``.
    """
    name, _, query = (name or "none").partition("?")
    for k, v in parse_qsl(query):  # "copycat?noise=0.01": what a command line or an agent passes
        kwargs.setdefault(k, _number(v))
    key = name.lower().replace("_", "-")
    if key == "all-to-one":
        return LabelFlip(mode="all-to-one", **kwargs)
    try:
        cls = ATTACKS[key]
    except KeyError:
        raise ValueError(f"unknown attack {name!r} ({', '.join(ATTACKS)})") from None
    return cls(**kwargs)


def _number(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def backdoor_target(attack: Attack) -> int | None:
    """The label a backdoor attack (itself, or inside a collusive or scaling attack) plants, else
    None: what the attack success rate is measured against."""
    for a in (attack, getattr(attack, "inner", None)):
        if a is not None and a.name == "backdoor":
            return int(getattr(a, "target"))  # noqa: B009 - only the backdoor attack has a target
    return None
