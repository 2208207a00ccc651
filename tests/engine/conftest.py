"""Fixtures for the FL-engine tests (no chain, no IPFS)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

# Tests run side by side with other suites on a 2-core box: one thread avoids oversubscription.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST (md5-verified); never skipped."""
    from fedledger.core.data import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def byzfl_aggregators():
    """ByzFL's aggregators module, the independent implementation we check against.

    ``import byzfl`` runs ``byzfl/__init__.py``, which imports its benchmark code and with it
    torchvision, and torchvision does not import beside torch 2.13 ("torchvision::nms does not
    exist"). The aggregators themselves need only numpy/torch/scipy, so we register bare package
    objects for ``byzfl`` and ``byzfl.utils`` (without running their ``__init__``) and import the
    aggregator module normally.
    """
    spec = importlib.util.find_spec("byzfl")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("byzfl is not installed: pip install -e '.[test]'")
    root = Path(next(iter(spec.submodule_search_locations)))
    saved = {k: v for k, v in sys.modules.items() if k == "byzfl" or k.startswith("byzfl.")}
    for name, path in (("byzfl", root), ("byzfl.utils", root / "utils"), ("byzfl.aggregators", root / "aggregators")):
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(path)]
            sys.modules[name] = pkg
    try:
        yield importlib.import_module("byzfl.aggregators.aggregators")
    finally:
        for k in [k for k in sys.modules if k == "byzfl" or k.startswith("byzfl.")]:
            del sys.modules[k]
        sys.modules.update(saved)
