"""The papers beside ours: the paper numbers the benchmark reports print, BVFB's literal reading of
its local iterations, Figure 3's honesty split, Model Chain's changing-data blocks, BCS-FL with its
mechanisms on, and the throughput beside BCS-FL's. Real engine, real MNIST, real anvil."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fedledger.core.learning.privacy import DPConfig, create_accountant, perturb_upload
from fedledger.core.learning.training import TrainConfig, account_past_rounds, train_local
from fedledger.core.models import create_model, get_weights
from fedledger.core.paths import project_root
from fedledger.experiment import ExperimentConfig, ExperimentResult, RoundResult, run_experiment

sys.path.insert(0, str(project_root()))  # benchmarks/ is a directory of the checkout, not the package
from benchmarks import bcsfl, bpcv, llbcfl, modelchain, throughput  # noqa: E402
from benchmarks._common import Run, cell_id, engine_fingerprint  # noqa: E402
from benchmarks.bvfb import PAPER_TABLES, grid, paper_accuracy, report  # noqa: E402
from benchmarks.bvfb_readings import honesty, passed  # noqa: E402


def test_bvfb_paper_tables_as_the_paper_prints_them() -> None:
    for attack in ("label-flip", "backdoor"):
        for d, column in PAPER_TABLES[attack].items():
            assert len(column) == 10, (attack, d)
        # Trimmed Mean is blank from 50 %, every other cell is a number
        assert PAPER_TABLES[attack]["trimmed-mean"][5:] == [None] * 5
        assert all(v is not None for d, c in PAPER_TABLES[attack].items() if d != "trimmed-mean" for v in c)
    assert paper_accuracy("label-flip", 0.9, "bvfb") == "0.8594"
    assert paper_accuracy("backdoor", 0.7, "median") == "0.6171"
    assert paper_accuracy("label-flip", 0.0, "krum") == "0.8674"
    assert paper_accuracy("backdoor", 0.5, "trimmed-mean") == "blank"
    assert paper_accuracy("label-flip", 0.3, "fedavg") == "not given"  # not in the paper
    assert paper_accuracy("label-flip", 0.35, "bvfb") == "not given"  # no such rate
    assert paper_accuracy("noise", 0.3, "bvfb") == "not given"  # no such attack


def test_bvfb_literal_reading_is_five_sgd_steps_and_a_cell_of_its_own() -> None:
    epochs = grid(["mlp"], 20, [0.0, 0.7], ["label-flip"], ["bvfb"], seed=0)
    steps = grid(["mlp"], 20, [0.0, 0.7], ["label-flip"], ["bvfb"], seed=0, reading="steps")
    assert [r.cfg.local_steps for r in epochs] == [None, None]
    assert [r.cfg.local_steps for r in steps] == [5, 5]
    assert [r.key for r in epochs] == [r.key for r in steps]
    fp = engine_fingerprint("bvfb")
    assert {cell_id(r.cfg, fp) for r in epochs}.isdisjoint(cell_id(r.cfg, fp) for r in steps)


def test_bvfb_tables_print_the_paper_beside_ours_and_figure_3_splits_honest_from_malicious() -> None:
    # a real (small) federation in the literal reading: 6 clients, half of them label flippers, 2 rounds
    run = grid(["mlp"], 2, [0.5], ["label-flip"], ["bvfb"], seed=0, reading="steps")[0]
    run.cfg = replace(run.cfg, clients=6)
    run.result = run_experiment(run.cfg)
    bad = set(run.result.malicious)
    assert len(bad) == 3
    rows = honesty(run)
    assert [r[0] for r in rows] == [1, 2]
    for (_, hon, mal), rr in zip(rows, run.result.rounds, strict=True):
        ref = rr.metrics["reference"]
        assert len(hon) + len(mal) == 5  # everyone but the reference, once
        assert len(mal) == 3 - (ref in bad)
        assert sorted(mal) == sorted(v for k, v in rr.scores.items() if int(k) in bad and int(k) != ref)
    hon_share, mal_share = passed(run)
    assert hon_share is not None and mal_share is not None and 0 <= hon_share <= 1 and 0 <= mal_share <= 1
    lines = report(
        [run],
        models=["mlp"],
        rates=[0.5],
        attacks=["label-flip"],
        defences=["bvfb"],
        rounds=2,
        seed=0,
        wall="-",
        cmd="test",
        tag="test",
        reading="steps",
    )
    text = "\n".join(lines)
    assert "| malicious | BVFB | paper BVFB | perfect-defence limit (20 r) |" in text
    assert f"| 50% | {run.result.final_accuracy:.4f} | 0.8654 | not given |" in text
    assert "5 mini-batch SGD steps" in text
    assert "n/a" not in text


def test_model_chain_blocks_replace_users_and_adopt_only_a_candidate_that_beats_the_benchmark() -> None:
    s = modelchain.Setup(model="cnn", nodes=3, blocks=3, users=4, per_user=200, local_epochs=2)
    blocks_users = modelchain.users_of_block(s)
    for before, after in zip(blocks_users, blocks_users[1:], strict=False):
        assert len(set(before) & set(after)) == 2 and len(after) == 4  # half of the users replaced
    rows = modelchain.blocks(s)
    assert [r["block"] for r in rows] == [1, 2, 3]
    for r in rows:
        accs = [c[0] for c in r["candidates"]]
        assert r["best"][0] == max(accs) == accs[r["best_node"]]
        assert r["adopted"] == (r["benchmark"] is None or r["best"][0] > r["benchmark"])
        assert r["benchmark"] >= r["previous"][0]  # the benchmark counts the last adopted model too
        assert r["train"] == 4 * 170 and r["test"] == 4 * 30  # 85 % / 15 % of each user's images
    assert rows[0]["adopted"]  # any training beats the untrained model


def test_macro_precision_and_f1() -> None:
    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    acc, precision, f1 = modelchain.macro_scores(y, pred, 3)
    assert acc == pytest.approx(3 / 5)
    # class 0: p 1/2 r 1/2; class 1: p 2/3 r 1; class 2: never predicted, p 0 r 0
    assert precision == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert f1 == pytest.approx((1 / 2 + 0.8 + 0) / 3)


def test_bcsfl_with_its_mechanisms_on_runs_non_iid_pruned_and_private() -> None:
    plain = bcsfl.grid(2, 0)
    full = bcsfl.grid(2, 0, mechanisms=True)
    extra = [r for r in full if len(r.key) == 4]
    assert len(full) == len(plain) + 4 and {r.key[2] for r in extra} == {"fedavg", "bcs-fl"}
    for r in extra:
        assert (r.cfg.partition, r.cfg.prune_ratio, r.cfg.dp) == ("dirichlet", bcsfl.PRUNE, "gaussian")
    cfg = next(r.cfg for r in extra if r.key[:3] == ("gaussian", 0.3, "bcs-fl"))
    res = run_experiment(replace(cfg, clients=5, rounds=1, local_steps=2))
    last = res.rounds[-1]
    assert last.epsilon is not None and last.epsilon > 0  # DP-SGD ran and was accounted
    assert set(last.accepted) <= set(last.participants)


def test_llbcfl_reports_what_the_paper_says_at_its_rounds() -> None:
    names = {"none": "no DP", "laplace": "Laplace", "gaussian": "Gaussian"}
    lines = llbcfl.paper_lines({("iid", "laplace"): [0.5] * 99 + [0.61] + [0.7] * 100}, names)
    text = "\n".join(lines)
    assert "| IID | Laplace | 100 | 0.6100 | Fig 3: final accuracy reaches 90 % |" in text
    assert "| IID | Laplace | 200 | 0.7000 | Fig 5: final between 80 % and 90 % |" in text
    assert "| 500 |" not in text  # the run is shorter
    assert "gives no epsilon" in "\n".join(llbcfl.paper_lines({("iid", "none"): [0.5] * 5}, names))
    assert set(llbcfl.PAPER_SAYS) == {(p, d, r) for p in llbcfl.PARTITIONS for d in llbcfl.DPS for r in (100, 200, 500)}


def _curve(accuracy: list[float], clients: int) -> ExperimentResult:
    cfg = ExperimentConfig(clients=clients)
    rounds = [
        RoundResult(i + 1, a, 0.1, [], [], [], None, None, None, True, {}, {}, None, None, 1.0)
        for i, a in enumerate(accuracy)
    ]
    return ExperimentResult(cfg, [], 0.1, rounds, 1.0)


def test_bpcv_prints_the_papers_figure_4_beside_ours() -> None:
    s = bpcv.Settings(rounds=25)
    runs = [
        Run((30, "none"), ExperimentConfig(clients=30), _curve([0.9] * 19 + [0.95] + [0.97] * 5, 30)),
        Run((30, "gaussian"), ExperimentConfig(clients=30), _curve([0.8] * 19 + [0.93] + [0.96] * 5, 30)),
    ]
    text = "\n".join(bpcv.paper_lines(runs, s))
    assert "| 20 | 0.72 | 0.75 | 3 | 0.9300 | 0.9500 | 2.0 |" in text
    assert "| 40 | 0.80 | 0.82 | 2 | not run | not run | not run |" in text  # ours stopped at 25
    assert "| converged (ours: round 25) | 0.95 | 0.97 | 2 | 0.9600 | 0.9700 | 1.0 |" in text
    assert "less than 4 points" in text


def test_throughput_reports_latency_and_the_papers_numbers(tmp_path: Path) -> None:
    out = tmp_path / "throughput.md"
    throughput.main(["--n", "5", "--out", str(out)])
    text = out.read_text()
    assert "| BCS-FL (paper, Fig 5) | 470 | not ours | not given | not given |" in text
    assert "| PBFT (paper, Fig 5) | 330 |" in text
    rows = [line for line in text.splitlines() if line.startswith("| Transactor.transact (local")]
    assert len(rows) == 1 and float(rows[0].split("|")[4]) > 0  # a measured median latency
    assert out.with_suffix(".png").stat().st_size > 0


# ---- LL-BCFL's noise on the uploaded parameters (fedledger.core.learning.privacy.perturb_upload) ----


def _mnist_slice(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from fedledger.core.data import load_dataset

    ds = load_dataset("mnist")
    return ds.x_train[:n], ds.y_train[:n]


def test_upload_noise_clips_the_whole_update_and_adds_noise_once() -> None:
    before = {"w": torch.zeros(4), "n": torch.tensor([3])}
    after = {"w": torch.tensor([3.0, 4.0, 0.0, 0.0]), "n": torch.tensor([5])}  # L2 norm 5, L1 norm 7
    silent = DPConfig(mechanism="gaussian", noise_multiplier=0.0, max_grad_norm=1.0, where="upload")
    out = perturb_upload(before, after, silent, torch.Generator().manual_seed(0))
    assert torch.allclose(out["w"], torch.tensor([0.6, 0.8, 0.0, 0.0]))  # clipped to L2 norm 1
    assert out["n"].item() == 5  # not a float: passed as is
    small = {"w": torch.tensor([0.1, 0.0, 0.0, 0.0]), "n": torch.tensor([5])}
    assert torch.equal(perturb_upload(before, small, silent, torch.Generator())["w"], small["w"])
    big = {"w": torch.zeros(200_000)}
    lap = DPConfig(mechanism="laplace", epsilon=4.0, max_grad_norm=2.0, where="upload")
    noise = perturb_upload(big, big, lap, torch.Generator().manual_seed(1))["w"]
    assert float(noise.abs().mean()) == pytest.approx(2.0 / 4.0, rel=0.02)  # Laplace scale C / epsilon
    with pytest.raises(ValueError, match="gradients' or 'upload'"):
        DPConfig(where="weights")  # type: ignore[arg-type]


def test_train_local_with_upload_noise_is_plain_training_plus_one_accounted_release() -> None:
    x, y = _mnist_slice(256)
    model = create_model("mlp", seed=0)
    start = get_weights(model)
    cfg = TrainConfig(lr=0.1, batch_size=32, local_epochs=1)
    dp = DPConfig(mechanism="gaussian", noise_multiplier=0.5, max_grad_norm=1.0, where="upload")
    plain = train_local(model, start, x, y, cfg, seed=3)
    noisy = train_local(model, start, x, y, cfg, seed=3, dp=dp)
    assert noisy.local_steps == plain.local_steps == 8  # the same plain SGD steps
    update = torch.cat([(plain.weights[k] - start[k]).flatten() for k in start])
    factor = min(1.0, 1.0 / float(update.norm()))
    noise = torch.cat([(noisy.weights[k] - start[k] - factor * (plain.weights[k] - start[k])).flatten() for k in start])
    assert float(noise.std()) == pytest.approx(0.5 * 1.0, rel=0.02)  # sigma * C on every coordinate
    one = create_accountant("gaussian")
    one.step(noise_multiplier=0.5, sample_rate=1.0)
    assert noisy.epsilon == pytest.approx(one.get_epsilon(dp.delta))  # one release of sample rate 1
    again = create_accountant("gaussian")
    account_past_rounds(again, dp, 256, cfg, rounds=1)
    assert again.get_epsilon(dp.delta) == pytest.approx(noisy.epsilon)  # a restarted agent recovers the same spend


def test_the_engine_takes_upload_noise_by_name() -> None:
    cfg = ExperimentConfig(
        clients=4, rounds=1, local_steps=2, defence="ll-bcfl", select=2, dp="laplace-upload", epsilon=5.0
    )
    res = run_experiment(cfg)
    assert res.rounds[0].epsilon == pytest.approx(5.0)  # one Laplace release at epsilon 5
    with pytest.raises(ValueError, match="unknown DP mechanism"):
        run_experiment(replace(cfg, dp="laplace-weights"))


def test_bpcv_laplace_rows_sit_beside_the_stored_gaussian_runs() -> None:
    import json

    stored = json.loads((project_root() / "docs" / "results" / "bpcv-full.json").read_text())
    gauss30 = next(r["accuracy"] for r in stored["runs"] if r["key"] == [30, "gaussian"])
    s = bpcv.Settings(rounds=2, mechanism="laplace")
    runs = [Run((30, "laplace"), ExperimentConfig(clients=30), _curve([0.11, 0.12], 30))]
    text = "\n".join(bpcv.gaussian_lines(runs, s))
    assert f"| 1 | - | 0.1100 | {gauss30[0]:.4f} |" in text
    assert f"| 2 | - | 0.1200 | {gauss30[1]:.4f} |" in text
    other = bpcv.Settings(rounds=2, mechanism="laplace", lr=2.0)
    assert "has other settings" in "\n".join(bpcv.gaussian_lines(runs, other))
    dp_runs, attack_runs, _ = bpcv.grid(bpcv.Settings(rounds=2, mechanism="laplace"), 0, attacks=False)
    assert attack_runs == [] and [r.key for r in dp_runs] == [
        (30, "none"),
        (30, "laplace"),
        (50, "none"),
        (50, "laplace"),
    ]
