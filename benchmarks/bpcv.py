"""BPCV-FL: accuracy per round with and without GD-DP, and mutual supervision against poisoning.

Paper setup: MNIST (and CIFAR-10), 30 and 50 data nodes, GD-DP (per-sample clipping, Laplace noise) with a
local privacy budget of 10 per node; 5 of 50 nodes malicious (the paper does not say what they do). Its
Figure 4 (30 nodes): 0.72 with DP / 0.75 without at round 20, 0.80 / 0.82 at round 40, 0.95 / 0.97
converged; Figure 5 (50 nodes): DP less than 4 points below no DP at the same round (`PAPER_FIG4`,
`PAPER_FIG5`). The goal here is <= 2 points at convergence.

GD-DP with a real guarantee: DP-SGD (`fedledger.core.learning.privacy`, mechanism "gaussian"): every per-sample gradient
clipped to L2 norm C, Gaussian noise of std sigma * C on the clipped sum. `DPConfig.epsilon` is
only the Laplace mechanism's *per-step* epsilon; the Gaussian mechanism takes sigma, so sigma is
calibrated here (`noise_multiplier_for`): Opacus' `get_noise_multiplier` for the planned number of
local steps, then checked (and raised if needed) with an Opacus RDP accountant fed exactly the
steps `fedledger.core.learning.training` will take, so that each client's TOTAL privacy loss over all rounds and
local steps is epsilon = 10 at delta = 1e-5. The accountant's own epsilon after the last round is
what the results report. Same model / batch / local epochs / rounds for the no-DP run of each pair;
each runs at its own learning rate (clipped DP steps and raw gradients want different step sizes).

Default settings: the `tanh-cnn` model (Papernot et al.'s DP-SGD network, 26k parameters), batch
450 (4 steps per epoch on a 30-node share of 1,800 samples), 1 local epoch per round, C = 1, lr 4
with GD-DP and 1 without. Why: with per-node DP the noise on each step is sigma * C / B per
coordinate, and the MNIST share of a node is small, so large batches buy far more than they cost
in sigma (sigma * C / B = 0.0035 at B = 450 vs 0.013 at B = 64 for the same total epsilon 10 over
25 rounds), and a small model with bounded activations keeps the noise norm down
(`probe_note` has the probes). The BVFB MLP (`--model mlp --lr 2 --batch-size 64 --clip 2`, the
earlier default) loses 11.2 points to DP (`bpcv-full-mlp.md`). Quick set: 2 rounds (a smoke test,
not converged); full set: 25 rounds.

Mutual supervision = the `bpcv-fl` defence (peer validation scores, worst node eliminated, best
node wins). The attack rows put 5 attackers among 50 nodes (no DP), label flippers and
Gaussian-noise models (the paper never names its attack), against FedAvg, the paper's one elimination
a round, and five. In-process engine. `--mechanism laplace` runs the paper's GD-DP mechanism instead
(per-sample L1 clipping, Laplace noise of scale sensitivity / epsilon) with its budget of 10 read *per
step* (the paper does not say per step or in total): pure epsilon-DP per step, basic composition over
all steps, so the total epsilon is in the thousands.

Run: `python -m benchmarks.bpcv [--full] [--rounds N] [--tag NAME] ...`;
writes docs/results/bpcv-<tag>.md/.png/.json.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks._common import (
    CELLS,
    RESULTS,
    Run,
    box,
    command_line,
    curve_table,
    fmt,
    plot_curves,
    run_grid,
    still_running,
    summary,
    timing,
    write_json,
    write_markdown,
)
from fedledger.experiment import ExperimentConfig, ExperimentResult

PAPER_DP_COST = "less than 4 (Fig 5, 50 nodes)"  # points, the paper's words for 50 nodes
# The paper's Figure 4 (30 nodes, MNIST, budget 10): round -> (with DP, without DP); None = "when the model
# converges" (about 80 rounds for 30 nodes, its Figure 2). It gives no other per-round number.
PAPER_FIG4: dict[int | None, tuple[float, float]] = {20: (0.72, 0.75), 40: (0.80, 0.82), None: (0.95, 0.97)}
PAPER_FIG5 = "DP less than 4 points below no DP at the same round (no per-round numbers)"
GOAL_DP_COST = 2.0  # points
FLAT_POINTS = 1.0  # a curve that moved at most this much over its last 5 rounds counts as flattened
NODES = (30, 50)
# The attack rows (50 nodes, 5 attackers, no DP). Label flipping is the paper's attack; a
# Gaussian-noise model (global + N(0, 1) per weight, no training) is one FedAvg cannot absorb.
# The paper does not say what its 5 malicious nodes do: both attacks are ours.
ATTACKS = {"label-flip": ("label flippers", "y -> 9 - y"), "gaussian": ("Gaussian-noise models", "global + N(0, 1)")}
# The paper eliminates one node per round; "eliminate 5" is told the true number of attackers (as
# Krum's f and Trimmed Mean's trim are in the BVFB benchmark) to show what that one-a-round rule costs.
DEFENCES = {"fedavg": ("fedavg", {}), "bpcv-fl": ("bpcv-fl", {}), "bpcv-fl-e5": ("bpcv-fl", {"eliminate": 5})}
DEFENCE_TEXT = {
    "fedavg": "FedAvg",
    "bpcv-fl": "mutual supervision (bpcv-fl)",
    "bpcv-fl-e5": "mutual supervision, eliminate 5",
}
VAL_FRACTION = 0.1  # ExperimentConfig's default: each node keeps 10 % of its data for peer validation


@dataclass(frozen=True)
class Settings:
    """The knobs shared by every run of a set (DP and no-DP alike)."""

    rounds: int
    lr: float = 4.0  # the GD-DP runs' learning rate
    nodp_lr: float | None = 1.0  # the runs without DP (None: the same lr); clipping changes the best lr
    model: str = "tanh-cnn"
    batch_size: int = 450
    local_epochs: int = 1
    clip: float = 1.0  # C (L2 for Gaussian, L1 for Laplace)
    epsilon: float = 10.0  # Gaussian: total per client over all rounds; Laplace: per step
    delta: float = 1e-5
    mechanism: str = "gaussian"

    @property
    def plain_lr(self) -> float:
        """The learning rate of the runs without DP."""
        return self.lr if self.nodp_lr is None else self.nodp_lr


QUICK_ROUNDS, FULL_ROUNDS = 2, 25
MODEL_TEXT = {
    "mlp": "MLP 784-256-128-10 (sigmoid)",
    "cnn": "LeNet-5-like CNN (ReLU)",
    "tanh-cnn": "tanh CNN (Papernot et al. 2021, 26k parameters)",
}


def train_sizes(clients: int, seed: int) -> list[int]:
    """Every node's local training-set size, as `fedledger.core.data.client_data` splits it (IID)."""
    from fedledger.core.data import load_dataset, partition_indices

    ds = load_dataset("mnist")
    parts = partition_indices(ds.y_train.numpy(), clients, scheme="iid", seed=seed)
    return [len(p) - int(round(VAL_FRACTION * len(p))) for p in parts]


def spent_epsilon(sigma: float, n: int, s: Settings, rounds: int) -> float:
    """Epsilon (at s.delta) an Opacus RDP accountant reports for a node that trained in `rounds`
    rounds on `n` samples: the same steps and sample rates `fedledger.core.learning.training.train_local` records."""
    from fedledger.core.learning.privacy import DPConfig, create_accountant
    from fedledger.core.learning.training import TrainConfig, account_past_rounds

    acc = create_accountant("gaussian")  # what the engine's nodes use
    account_past_rounds(
        acc,
        DPConfig(noise_multiplier=sigma, max_grad_norm=s.clip, delta=s.delta),
        n,
        TrainConfig(lr=s.lr, batch_size=s.batch_size, local_epochs=s.local_epochs),
        rounds,
    )
    return float(acc.get_epsilon(s.delta))


def noise_multiplier_for(n: int, s: Settings) -> tuple[float, float]:
    """(sigma, epsilon spent): the smallest sigma (to 0.5 %) with which `s.rounds` local runs on `n`
    samples spend at most `s.epsilon` in total at `s.delta` (`privacy.calibrate_noise` over the exact
    step schedule, which also sees the smaller last batch of each epoch: Opacus' one-rate estimate
    alone gives 2.09 instead of 1.82 for 50 nodes at B = 450, i.e. epsilon 8.3 instead of 10)."""
    from fedledger.core.learning.privacy import calibrate_noise
    from fedledger.core.learning.training import TrainConfig, step_sample_rates

    rates = step_sample_rates(n, TrainConfig(lr=s.lr, batch_size=s.batch_size, local_epochs=s.local_epochs))
    return calibrate_noise(s.epsilon, s.delta, rates * s.rounds)


def grid(s: Settings, seed: int, attacks: bool = True) -> tuple[list[Run], list[Run], dict[int, tuple[float, float]]]:
    """(DP runs: 30/50 nodes x no DP / GD-DP, all with mutual supervision; attack runs: 5 of 50
    label flippers, FedAvg vs mutual supervision, no DP; {nodes: (sigma, planned epsilon)})."""
    base = dict(
        model=s.model,
        rounds=s.rounds,
        batch_size=s.batch_size,
        local_epochs=s.local_epochs,
        seed=seed,
        max_grad_norm=s.clip,
        delta=s.delta,
        val_fraction=VAL_FRACTION,
    )
    calib: dict[int, tuple[float, float]] = {}
    dp_runs: list[Run] = []
    for n in NODES:
        if s.mechanism == "gaussian":
            # the smallest local data set needs the largest sigma (IID: all equal)
            calib[n] = max(noise_multiplier_for(size, s) for size in set(train_sizes(n, seed)))
            dp_kw = dict(dp="gaussian", noise_multiplier=calib[n][0])
        else:
            dp_kw = dict(dp="laplace", epsilon=s.epsilon)
        dp_runs.append(Run((n, "none"), ExperimentConfig(clients=n, defence="bpcv-fl", lr=s.plain_lr, **base)))  # type: ignore[arg-type]
        dp_runs.append(Run((n, s.mechanism), ExperimentConfig(clients=n, defence="bpcv-fl", lr=s.lr, **dp_kw, **base)))  # type: ignore[arg-type]
    attack_runs = [
        Run(
            (50, attack, d),
            ExperimentConfig(
                clients=50,
                malicious=0.1,
                attack=attack,
                defence=DEFENCES[d][0],
                defence_kwargs=dict(DEFENCES[d][1]),
                lr=s.plain_lr,
                **base,  # type: ignore[arg-type]
            ),
        )
        for attack in (ATTACKS if attacks else ())
        for d in DEFENCES
    ]
    return dp_runs, attack_runs, calib


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def run(
    *,
    full: bool = False,
    rounds: int | None = None,
    seed: int = 0,
    lr: float = 4.0,
    batch_size: int = 450,
    local_epochs: int = 1,
    clip: float = 1.0,
    mechanism: str = "gaussian",
    model: str = "tanh-cnn",
    nodp_lr: float | None = 1.0,
    tag: str | None = None,
    attacks: bool = True,
    argv: Sequence[str] | None = None,
) -> list[str]:
    """Quick: 2 rounds; full: 25 rounds (the converged study). Returns the markdown lines."""
    s = Settings(
        rounds=rounds or (FULL_ROUNDS if full else QUICK_ROUNDS),
        lr=lr,
        batch_size=batch_size,
        local_epochs=local_epochs,
        clip=clip,
        mechanism=mechanism,
        model=model,
        nodp_lr=nodp_lr,
    )
    tag = tag or ("full" if full else "quick")
    dp_runs, attack_runs, calib = grid(s, seed, attacks)
    # the full set is an hour: it keeps each finished federation and resumes (two processes can share it)
    wall = run_grid(f"bpcv ({tag})", dp_runs + attack_runs, cells=CELLS / "bpcv" if full else None)
    if waiting := still_running(dp_runs + attack_runs):
        return waiting
    cmd = (
        command_line("benchmarks.bpcv", argv)
        if argv is not None
        else f"fedledger bench bpcv{' --full' if full else ''}"
    )
    gauss = s.mechanism == "gaussian"
    dp_name = f"GD-DP Gaussian, eps {s.epsilon:g} total" if gauss else f"GD-DP Laplace, eps {s.epsilon:g} per step"
    label = {
        r.key: f"{r.key[0]} nodes, {'no DP' if r.key[1] == 'none' else dp_name}, mutual supervision" for r in dp_runs
    }
    label |= {r.key: f"50 nodes, 5 {ATTACKS[r.key[1]][0]}, {DEFENCE_TEXT[r.key[2]]}" for r in attack_runs}
    short = {r.key: f"{r.key[0]} {'no DP' if r.key[1] == 'none' else 'GD-DP'}" for r in dp_runs}
    short |= {r.key: f"50+5 {'flip' if r.key[1] == 'label-flip' else 'noise'} {r.key[2]}" for r in attack_runs}
    runs = dp_runs + attack_runs
    last = min(5, s.rounds)  # "at convergence": the last rounds of each curve

    if gauss:
        dp_text = (
            f"GD-DP = DP-SGD: per-sample L2 clipping to C = {s.clip:g}, Gaussian noise of std sigma * C on the clipped "
            f"sum (std sigma * C / B on the batch mean), sigma calibrated per node count so that each node's **total** "
            f"privacy loss over all {s.rounds} rounds x {s.local_epochs} local epoch(s) is epsilon <= {s.epsilon:g} at "
            f"delta = {s.delta:g} (Opacus RDP accountant; sample rate B / n per step). "
            + "; ".join(
                f"{n} nodes: n = {min(train_sizes(n, seed))} samples per node, sigma = {calib[n][0]:.4f}, "
                f"planned epsilon {calib[n][1]:.3f}"
                for n in NODES
            )
            + ". Caveat: the RDP accountant assumes Poisson sampling; the engine draws shuffled fixed-size batches "
            "(the usual approximation, as in most DP-SGD papers)."
        )
    else:
        dp_text = (
            f"GD-DP = the paper's mechanism: per-sample L1 clipping to C = {s.clip:g}, Laplace noise of scale "
            f"(2C / B) / epsilon per coordinate with the paper's budget epsilon = {s.epsilon:g} read **per step** (the "
            "paper does not say per step or in total; pure epsilon-DP per step); "
            "the eps column is the basic-composition total over all steps (no sampling amplification claimed)."
        )
    lines = [
        f"# BPCV-FL: GD-DP and mutual supervision ({tag} set)",
        "",
        f"Command: `{cmd}`; seed {seed}; {timing(dp_runs + attack_runs, wall, full)} ({box()}).",
        "",
        f"Ran: MNIST, IID, {MODEL_TEXT.get(s.model, s.model)}, SGD, batch {s.batch_size}, {s.local_epochs} local "
        f"epoch(s) per round, **{s.rounds} rounds**, the same for every run; lr {s.lr:g} with GD-DP"
        + (
            f", {s.plain_lr:g} without (clipping changes the best step size, so each uses its own)"
            if s.plain_lr != s.lr
            else " and without"
        )
        + ". 30 and 50 nodes with and without GD-DP, all "
        "with mutual supervision (each node scores every other node's model on its own validation split (10 % of its "
        "data); the worst node is eliminated each round and the engine's standby pool is every non-participant, so "
        "the node eliminated in round r sits out one round and rejoins: N - 1 nodes train from round 2 on); then 50 "
        "nodes of which 5 are attackers, no DP, FedAvg vs mutual supervision (the paper's one elimination a round, "
        "and five, the true number of attackers), under two attacks of ours (the paper does not name its attack): "
        + "; ".join(f"{n} ({how})" for n, how in ATTACKS.values())
        + ". "
        f"In-process engine (no chain). {dp_text}",
        "",
        "eps (last) is the largest per-node epsilon the nodes' own accountants report after the last round (a node "
        "that sat out rounds has spent less).",
        "",
        *probe_note(s),
        "## Accuracy per round (test accuracy of the global model, 8,000 held-out MNIST test images)",
        "",
        "| round | " + " | ".join(short[r.key] for r in runs) + " |",
        "|---:|" + "---:|" * len(runs),
    ]
    for i in range(s.rounds):
        lines.append(
            f"| {i + 1} | " + " | ".join(fmt(r.result.rounds[i].accuracy) if r.result else "-" for r in runs) + " |"
        )
    lines += ["", "## Summary", "", *curve_table(runs, label, s.rounds), ""]

    lines += [
        "## DP cost (accuracy without DP minus with GD-DP; points; same model, batch, epochs, rounds)",
        "",
        f"Cost after the last round and averaged over the last {last} rounds; 'change' is how much each curve still "
        f"moved over its last {last} rounds (round {s.rounds - last} -> {s.rounds}) to judge convergence.",
        "",
        f"| nodes | eps spent (accountant) | no DP final | GD-DP final | cost final | no DP mean last {last} | "
        f"GD-DP mean last {last} | cost (mean last {last}) | change no DP | change GD-DP | paper | goal <= {GOAL_DP_COST:g} |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    costs: dict[int, tuple[float, float]] = {}
    moved: dict[tuple[int, str], float] = {}
    for n in NODES:
        a = next(r for r in dp_runs if r.key == (n, "none")).result
        b = next(r for r in dp_runs if r.key == (n, s.mechanism)).result
        assert a and b
        acc_a, acc_b = [r.accuracy for r in a.rounds], [r.accuracy for r in b.rounds]
        cost = 100 * (acc_a[-1] - acc_b[-1])
        cost_mean = 100 * (_mean(acc_a[-last:]) - _mean(acc_b[-last:]))
        costs[n] = (cost, cost_mean)
        base_i = s.rounds - last - 1  # round (s.rounds - last), 0-based; -1 = before round 1
        ref_a = acc_a[base_i] if base_i >= 0 else a.initial_accuracy
        ref_b = acc_b[base_i] if base_i >= 0 else b.initial_accuracy
        eps = b.rounds[-1].epsilon
        moved[(n, "none")], moved[(n, s.mechanism)] = 100 * (acc_a[-1] - ref_a), 100 * (acc_b[-1] - ref_b)
        met = "met" if max(cost, cost_mean) <= GOAL_DP_COST else "**not met**"
        met = met if s.rounds >= FULL_ROUNDS else "n/a (not converged)"
        lines.append(
            f"| {n} | {fmt(eps, 3)} | {fmt(acc_a[-1])} | {fmt(acc_b[-1])} | {cost:.1f} | {fmt(_mean(acc_a[-last:]))} | "
            f"{fmt(_mean(acc_b[-last:]))} | {cost_mean:.1f} | {100 * (acc_a[-1] - ref_a):+.1f} | "
            f"{100 * (acc_b[-1] - ref_b):+.1f} | {PAPER_DP_COST} | {met} |"
        )
    clean = next(r for r in dp_runs if r.key == (50, "none")).result
    lines += ["", verdict(s, costs, moved, last), ""]
    for attack in ATTACKS if attack_runs else ():
        results = {r.key[2]: r.result for r in attack_runs if r.key[1] == attack and r.result}
        lines += [*attack_lines(attack, results, clean.rounds[-1].accuracy if clean else None), ""]
    lines += [
        *paper_lines(dp_runs, s),
        *(gaussian_lines(dp_runs, s) if not gauss else []),
        "",
        f"Plot: `bpcv-{tag}.png`.",
    ]
    write_markdown(f"bpcv-{tag}", lines)
    write_json(
        f"bpcv-{tag}",
        {
            "command": cmd,
            "seed": seed,
            "wall_seconds": wall,
            "settings": s.__dict__,
            "noise_multiplier": {str(n): {"sigma": c[0], "planned_epsilon": c[1]} for n, c in calib.items()},
            "dp_cost_points": {str(n): {"last_round": c[0], f"mean_last_{last}": c[1]} for n, c in costs.items()},
            "runs": [{"key": r.key, "label": label[r.key], **summary(r.result)} for r in runs if r.result],
        },
    )
    panels = [(f"{n} nodes: {dp_name} vs none", [r for r in dp_runs if r.key[0] == n]) for n in NODES]
    panels += [
        (f"50 nodes, 5 {ATTACKS[a][0]}", [r for r in attack_runs if r.key[1] == a]) for a in ATTACKS if attack_runs
    ]
    plot_curves(RESULTS / f"bpcv-{tag}.png", panels, label)
    return lines


def gaussian_lines(dp_runs: Sequence[Run], s: Settings, stored: str = "bpcv-full.json") -> list[str]:
    """The Laplace runs beside the stored Gaussian (DP-SGD, total eps 10) runs of the same settings, round by round."""
    import json

    path = RESULTS / stored
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return [f"Gaussian runs to compare with: `{stored}` not found.", ""]
    same = {k: data["settings"].get(k) for k in ("lr", "nodp_lr", "model", "batch_size", "local_epochs", "clip")}
    if same != {k: getattr(s, k) for k in same}:
        return [f"Gaussian runs to compare with: `{stored}` has other settings ({same}).", ""]
    gauss = {r["key"][0]: r["accuracy"] for r in data["runs"] if len(r["key"]) == 2 and r["key"][1] == "gaussian"}
    ours = {r.key: r.result for r in dp_runs if r.result}
    out = [
        f"## Beside the Gaussian runs (`{stored}`: DP-SGD, total eps 10 per node, same model, batch, lr and clip)",
        "",
        "| round | " + " | ".join(f"{n} no DP | {n} Laplace (this run) | {n} Gaussian (stored)" for n in NODES) + " |",
        "|---:|" + "---:|" * (3 * len(NODES)),
    ]
    for i in range(s.rounds):
        row = []
        for n in NODES:
            for res in (ours.get((n, "none")), ours.get((n, "laplace"))):
                row.append(fmt(res.rounds[i].accuracy) if res and i < len(res.rounds) else "-")
            row.append(fmt(gauss[n][i]) if n in gauss and i < len(gauss[n]) else "-")
        out.append(f"| {i + 1} | " + " | ".join(row) + " |")
    return [*out, ""]


def paper_lines(dp_runs: Sequence[Run], s: Settings) -> list[str]:
    """The paper's Figure 4 numbers (30 nodes) beside ours at the same rounds, and what it says of Figure 5."""
    by_key = {r.key: r.result for r in dp_runs if r.result}
    dp_b, plain_b = by_key.get((30, s.mechanism)), by_key.get((30, "none"))
    out = [
        "## Beside the paper (Figure 4: 30 nodes, MNIST, local budget 10; Figure 5: 50 nodes)",
        "",
        "The paper's model, batch, learning rate and clipping norm are not given; it needs about 80 rounds to converge "
        "at 30 nodes (its Figure 2) where ours converge in about 20, so a round of ours is not a round of the paper's.",
        "",
        "| round | paper with DP | paper without DP | paper cost | ours with GD-DP (30 nodes) "
        "| ours without (30 nodes) | our cost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for rnd, (p_dp, p_plain) in PAPER_FIG4.items():
        i = (rnd if rnd is not None else s.rounds) - 1
        ours = [b.rounds[i].accuracy if b and i < len(b.rounds) else None for b in (dp_b, plain_b)]
        with_dp, without = ours
        cost = f"{100 * (without - with_dp):.1f}" if with_dp is not None and without is not None else "not run"
        name = str(rnd) if rnd is not None else f"converged (ours: round {s.rounds})"
        out.append(
            f"| {name} | {p_dp:.2f} | {p_plain:.2f} | {100 * (p_plain - p_dp):.0f} | "
            + " | ".join(fmt(x) if x is not None else "not run" for x in ours)
            + f" | {cost} |"
        )
    out += ["", f"Figure 5 (50 nodes): {PAPER_FIG5}. Ours: the DP-cost table above.", ""]
    return out


def probe_note(s: Settings) -> list[str]:
    """How the knobs were picked (short probes, not re-run by this script)."""
    knobs = (s.lr, s.plain_lr, s.batch_size, s.local_epochs, s.clip, s.mechanism, s.model)
    if knobs == (4.0, 1.0, 450, 1, 1.0, "gaussian", "tanh-cnn"):
        return [
            "How the knobs were picked (25-round probes run by hand before this run, 30 nodes, FedAvg, sigma "
            "recalibrated to a total epsilon 10 for each batch size; not repeated here): tanh-cnn without DP at batch "
            "450 and lr 1 ended at 0.9780 and led lr 0.5 (0.9607 vs 0.9691 at round 16, where that probe was stopped) and "
            "lr 2 (0.9585 vs 0.9704 at round 17); lr 4 did not learn (0.25 at round 8), so lr 1; with GD-DP, batch 450 / C = 1 at lr 4 ended at 0.9603 "
            "(sigma 1.558), at lr 8 it was behind all the way (0.892 vs 0.908 at round 8), and batch 64 / lr 2 "
            "(sigma 0.841) ended at 0.9096, batch 128 / lr 4 (sigma 1.027) at 0.7528.",
            "",
        ]
    if knobs != (2.0, 2.0, 64, 1, 2.0, "gaussian", "mlp"):
        return []
    return [
        "How the knobs were picked (short probes run by hand before this run, 30 nodes, mutual supervision, not "
        "repeated here): without DP, the project's default lr 0.1 reached only 0.844 after 20 rounds (batch 64); "
        "lr 2.0 / batch 64 reached 0.953 (lr 1.0 / batch 32: 0.963, but batch 32 is ~1.5x dearer per sample under "
        "DP, which the budget could not afford). Under DP at lr 2.0 / "
        "batch 64 with sigma for a 30-round plan, clip C = 0.5 / 2 / 5 gave 0.594 / 0.758 / 0.573 after 5 rounds, "
        "so C = 2. The no-DP runs here use the same lr, batch and epochs, so the cost below is DP alone.",
        "",
    ]


def verdict(s: Settings, costs: dict[int, tuple[float, float]], moved: dict[tuple[int, str], float], last: int) -> str:
    """The goal line under the DP-cost table (from the measured costs and each curve's change over
    its last `last` rounds)."""
    if s.rounds < FULL_ROUNDS:
        return (
            f"**No verdict**: {s.rounds} rounds is a smoke test, far from convergence (early on, lr {s.plain_lr:g} "
            "without clipping can sit on the model's initial plateau longer than the clipped DP steps, "
            "so the 'cost' can even be negative); the converged study is `bpcv-full.md` (`fedledger bench bpcv --full`)."
        )
    worst = max(max(c) for c in costs.values())
    flat = all(abs(m) <= FLAT_POINTS for m in moved.values())
    name = {k: f"{k[0]} nodes {'no DP' if k[1] == 'none' else 'GD-DP'}" for k in moved}
    drift = max(moved, key=lambda k: abs(moved[k]))
    out = (
        ("**Goal met**" if worst <= GOAL_DP_COST else "**Goal not met**")
        + f" at round {s.rounds}: DP cost "
        + ", ".join(f"{n} nodes {c[0]:.1f} (last round) / {c[1]:.1f} (mean of last {last})" for n, c in costs.items())
        + f" points, against the goal of <= {GOAL_DP_COST:g} and the paper's 'less than 4' (50 nodes). "
        + f"Change over the last {last} rounds: "
        + ", ".join(f"{name[k]} {m:+.1f}" for k, m in moved.items())
        + " points"
    )
    if flat:
        return out + (
            f" (each within {FLAT_POINTS:g} point, the flatness criterion used here; the largest remaining "
            f"drift is {name[drift]} at {moved[drift] / last:+.2f} points a round)."
        )
    return out + (
        f": not every curve is flat (within {FLAT_POINTS:g} point), so this is the cost at round {s.rounds}, "
        "not a fully converged cost; more rounds do not fit the 2-core budget (and GD-DP's rounds must be "
        "planned in advance: the total epsilon is fixed, so more rounds mean more noise per step)."
    )


def attack_lines(attack: str, results: dict[str, ExperimentResult], clean: float | None) -> list[str]:
    """One attack's paragraph: 5 of 50 attackers, FedAvg vs mutual supervision (no DP)."""
    out = [f"## Mutual supervision against 5 of 50 {ATTACKS[attack][0]} ({ATTACKS[attack][1]}; no DP)", ""]
    if "fedavg" not in results:
        return out + ["Not run."]
    fedavg = results["fedavg"].rounds[-1].accuracy
    rounds = len(results["fedavg"].rounds)
    text = f"After round {rounds}: FedAvg {fmt(fedavg)}"
    for d in ("bpcv-fl", "bpcv-fl-e5"):
        if d in results:
            acc = results[d].rounds[-1].accuracy
            text += f", {DEFENCE_TEXT[d]} {fmt(acc)} ({100 * (acc - fedavg):+.1f} points)"
    text += (
        f"; the clean 50-node federation (mutual supervision, no attacker) reaches {fmt(clean)}" if clean else ""
    ) + "."
    for d in ("bpcv-fl", "bpcv-fl-e5"):
        if d not in results:
            continue
        rs = results[d].rounds
        # precision > 0: at least one eliminated node was an attacker; recall: share of the attackers taking part
        caught = sum(1 for r in rs if r.precision is not None and r.precision > 0)
        present = [r for r in rs if r.recall is not None]  # rounds in which an attacker took part
        all_out = sum(1 for r in present if r.recall is not None and r.recall >= 1)
        text += (
            f" {DEFENCE_TEXT[d][0].upper() + DEFENCE_TEXT[d][1:]}: an attacker was among the eliminated in {caught} of "
            f"{len(rs)} rounds; attackers took part in {len(present)} rounds, and in {all_out} of them every one "
            "was kept out of the aggregate."
        )
    text += (
        " With one elimination a round, the node eliminated in round r sits out round r + 1 and rejoins, so at "
        "most two of the five attackers are kept out of any round's aggregate."
    )
    return out + [text]


def main(argv: Sequence[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--full",
        action="store_true",
        help=f"the converged study: {FULL_ROUNDS} rounds (10 federations, ~2 h of compute)",
    )
    p.add_argument(
        "--rounds", type=int, help=f"rounds (default {QUICK_ROUNDS}, --full {FULL_ROUNDS}); sigma is recalibrated"
    )
    p.add_argument("--lr", type=float, default=4.0, help="learning rate of the GD-DP runs")
    p.add_argument("--nodp-lr", type=float, default=1.0, help="learning rate of the runs without DP")
    p.add_argument("--model", default="tanh-cnn", help="tanh-cnn, mlp (BVFB's) or cnn")
    p.add_argument("--batch-size", type=int, default=450)
    p.add_argument("--local-epochs", type=int, default=1)
    p.add_argument("--clip", type=float, default=1.0, help="per-sample clipping bound C")
    p.add_argument(
        "--mechanism",
        choices=("gaussian", "laplace"),
        default="gaussian",
        help="gaussian: eps 10 total per node (RDP); laplace: the paper's eps 10 per step",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag")
    p.add_argument("--no-attacks", action="store_true", help="only the 30/50-node DP study, no attack rows")
    a = p.parse_args(argv)
    print(
        "\n".join(
            run(
                full=a.full,
                rounds=a.rounds,
                seed=a.seed,
                lr=a.lr,
                batch_size=a.batch_size,
                local_epochs=a.local_epochs,
                clip=a.clip,
                mechanism=a.mechanism,
                model=a.model,
                nodp_lr=a.nodp_lr,
                tag=a.tag,
                attacks=not a.no_attacks,
                argv=sys.argv[1:] if argv is None else argv,
            )
        )
    )


if __name__ == "__main__":
    main()
