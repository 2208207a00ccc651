"""BVFB benchmark grid: the trust root on the CNN is read from BVFB's federations, which is only
right while the two defences give the very same federation there."""

from __future__ import annotations

import sys
from dataclasses import replace

from fedledger.experiment import ExperimentConfig, run_experiment
from fedledger.paths import project_root

sys.path.insert(0, str(project_root()))  # benchmarks/ is a directory of the checkout, not the package
from benchmarks.bvfb import _cell, grid, trust_root_is_bvfb  # noqa: E402


def test_trust_root_on_the_cnn_is_bvfb_exactly() -> None:
    cfg = ExperimentConfig(model="cnn", clients=4, rounds=2, malicious=0.25, attack="backdoor",
                           defence="bvfb", local_steps=3)  # fmt: skip
    bvfb = run_experiment(cfg).to_dict()
    ours = run_experiment(replace(cfg, defence="trust-root")).to_dict()
    assert trust_root_is_bvfb("cnn")
    for a, b in zip(bvfb["rounds"], ours["rounds"], strict=True):
        assert a["digest"] is not None  # a global model was adopted: the digests compare weights
        assert (a["digest"], a["accuracy"], a["accepted"], a["asr"]) == (b["digest"], b["accuracy"], b["accepted"], b["asr"])


def test_the_grid_runs_the_trust_root_only_where_it_differs() -> None:
    assert not trust_root_is_bvfb("mlp")  # the MLP's dense input layer is confined
    runs = grid(["mlp", "cnn"], 20, [0.0, 0.5], ["label-flip"], ["bvfb", "trust-root"], seed=0)
    assert sorted(r.key for r in runs if r.key[3] == "trust-root") == [("mlp", "label-flip", "50%", "trust-root"),
                                                                        ("mlp", "none", "0%", "trust-root")]  # fmt: skip
    for rate in (0.0, 0.5):
        assert _cell(runs, "cnn", "label-flip", rate, "trust-root") is _cell(runs, "cnn", "label-flip", rate, "bvfb")
        assert _cell(runs, "mlp", "label-flip", rate, "trust-root") is not _cell(runs, "mlp", "label-flip", rate, "bvfb")
    # asked for alone, the trust root is run on the CNN too (there is no BVFB cell to read)
    assert [r.key[3] for r in grid(["cnn"], 20, [0.5], ["label-flip"], ["trust-root"], seed=0)] == ["trust-root"]
