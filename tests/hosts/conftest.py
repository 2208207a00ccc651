"""Multi-host tests: network namespaces need root (CI runs as root); nothing may be left behind."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from fedledger.core import netns

if netns.available() is not None:
    pytest.skip(f"skipped: {netns.available()}", allow_module_level=True)


@pytest.fixture(autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    """After each test (passed or failed), no namespace of this process and no child remains."""
    torch.set_num_threads(1)
    yield
    mine = [ns for ns in netns.namespaces() if ns.startswith(f"fl{os.getpid()}x")]
    assert mine == [], f"namespaces left behind: {mine}"
