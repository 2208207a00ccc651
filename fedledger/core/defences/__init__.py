"""Miner-side defences: one module per defence, one interface
(``aggregate(updates, context) -> Decision``), and a registry (``create_defence(name, **kw)``).

Pure maths in ``_aggregate.py``; types in ``base.py``.
"""

from __future__ import annotations

from typing import Any

from fedledger.core.defences.base import ClientUpdate as ClientUpdate
from fedledger.core.defences.base import Context as Context
from fedledger.core.defences.base import Decision as Decision
from fedledger.core.defences.base import Defence as Defence
from fedledger.core.defences.bcs_fl import BCSFL as BCSFL
from fedledger.core.defences.bpcv_fl import BPCVFL as BPCVFL
from fedledger.core.defences.bvfb import BVFB as BVFB
from fedledger.core.defences.fedavg import FedAvg as FedAvg
from fedledger.core.defences.fltrust import FLTrust as FLTrust
from fedledger.core.defences.krum import Krum as Krum
from fedledger.core.defences.ll_bcfl import LLBCFL as LLBCFL
from fedledger.core.defences.median import Median as Median
from fedledger.core.defences.model_chain import ModelChain as ModelChain
from fedledger.core.defences.multi_krum import MultiKrum as MultiKrum
from fedledger.core.defences.oracle import Oracle as Oracle
from fedledger.core.defences.root_guard import RootGuard as RootGuard
from fedledger.core.defences.trimmed_mean import TrimmedMean as TrimmedMean
from fedledger.core.defences.trust_root import TrustRoot as TrustRoot

DEFENCES: dict[str, type[Defence]] = {
    cls.name: cls
    for cls in (
        FedAvg,
        Krum,
        MultiKrum,
        Median,
        TrimmedMean,
        BVFB,
        LLBCFL,
        BPCVFL,
        BCSFL,
        ModelChain,
        FLTrust,
        TrustRoot,
        RootGuard,
        Oracle,
    )
}


def defence_class(name: str) -> type[Defence]:
    """The class registered under `name` (any case, ``_`` or ``-``)."""
    try:
        return DEFENCES[name.lower().replace("_", "-")]
    except KeyError:
        raise ValueError(f"unknown defence {name!r} ({', '.join(DEFENCES)})") from None


def create_defence(name: str, **kwargs: Any) -> Defence:
    """Defence registry: ``create_defence("krum", num_malicious=4)``.

    Names: fedavg, krum, multi-krum, median, trimmed-mean, bvfb, ll-bcfl, bpcv-fl, bcs-fl,
    model-chain, fltrust, trust-root, root-guard (the default), oracle (benchmarks only: told who
    is malicious).
    """
    return defence_class(name)(**kwargs)


__all__ = [
    "BCSFL",
    "BPCVFL",
    "BVFB",
    "DEFENCES",
    "LLBCFL",
    "ClientUpdate",
    "Context",
    "Decision",
    "Defence",
    "FLTrust",
    "FedAvg",
    "Krum",
    "Median",
    "ModelChain",
    "MultiKrum",
    "Oracle",
    "RootGuard",
    "TrimmedMean",
    "TrustRoot",
    "create_defence",
    "defence_class",
]
