"""A task's full configuration, and how it is written on chain.

Everything an agent needs lives on chain (agents keep no state): the contract's typed fields hold
the schedule, reward, committee and DP parameters; the three identity strings carry the rest as
URL-style query strings, so anyone can rebuild the exact data split and training settings:

    modelSpec  "mlp?lr=0.1&batch_size=32&local_epochs=5"
    datasetId  "mnist?partition=iid&clients=20&seed=0&alpha=0.5&val_fraction=0.1"
    testSetId  "mnist:test?size=2000&root=100&seed=0"
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import numpy as np
import torch

from fedledger.core.chain.types import DPMechanism, Mechanism, TaskSpec
from fedledger.core.data import ClientData, Dataset, client_data, load_dataset
from fedledger.core.learning.privacy import DPConfig
from fedledger.core.learning.training import TrainConfig

ETH = 10**18
_DP_NAMES = {"none": DPMechanism.NONE, "laplace": DPMechanism.LAPLACE, "gaussian": DPMechanism.GAUSSIAN}
_DATASETS = ("mnist", "fashion-mnist", "cifar10")
_PARTITIONS = ("iid", "dirichlet", "shards")
_REQUIRED = ("model", "dataset", "rounds")  # a task file must say what to learn, on what, how long


class TaskConfigError(ValueError):
    """A task setting that is missing, of the wrong type or out of range (the message says which)."""


@dataclass(frozen=True)
class TaskConfig:
    """One federated-learning task (see task.toml for the documented example)."""

    model: str = "mlp"
    dataset: str = "mnist"
    clients: int = 20  # the data is partitioned for this many owners
    partition: str = "iid"
    alpha: float = 0.5
    shards_per_client: int = 2
    val_fraction: float = 0.1
    seed: int = 0
    rounds: int = 10
    min_clients: int = 20
    reward_per_round_eth: float = 1.0
    lr: float = 0.1
    batch_size: int = 32
    local_epochs: int = 5
    local_steps: int = 0  # 0: use local_epochs
    prune_ratio: float = 0.0
    registration_s: int = 3600
    train_s: int = 600
    commit_s: int = 120
    reveal_s: int = 120
    aggregate_s: int = 600
    defence: str = "root-guard"
    theta: float = 0.6
    selection: str = "all"  # or "top-n"
    selection_n: int = 0
    committee_size: int = 3
    quorum: float = 0.6667
    rep_eval: float = 0.5
    rep_prev: float = 0.5
    self_weights: tuple[int, int, int] = (1, 1, 1)
    client_share: float = 0.6
    winner_share: float = 0.2
    committee_share: float = 0.2
    peer_validation: bool = True  # owners score each other's models (commit, reveal); BPCV-FL needs it
    peer_validators: int = 0  # each model scored by this many sampled peers (0: by every peer)
    dp: str = "none"  # none | laplace | gaussian
    epsilon: float = 10.0
    clip: float = 1.0
    noise_multiplier: float = 1.0
    test_size: int = 2000
    root_size: int = 100
    test_pool: int = -1  # >= 0: the miners' test set is this Model Chain pool's test split
    test_registry: str = ""  # the DataRegistry holding that pool

    # ---- files -------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | Path) -> TaskConfig:
        """Read and check a task.toml (sections flattened into one set of fields): every setting
        is validated here, before anything is uploaded or sent (`TaskConfigError` says what)."""
        path = Path(path)
        if not path.is_file():
            raise TaskConfigError(f"{path}: no such file (the documented example is task.toml)")
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise TaskConfigError(f"{path}: not valid TOML: {exc}") from None
        if any(k == "defence_kwargs" or (isinstance(v, dict) and "defence_kwargs" in v) for k, v in data.items()):
            raise TaskConfigError(
                f"{path}: defence_kwargs is not recorded on chain, so miners would never see it; "
                f'write the parameters into the defence name instead: defence = "krum?num_malicious=4"'
            )
        if not isinstance(data.get("task"), dict):
            raise TaskConfigError(f"{path}: no [task] table (model, dataset, rounds ...): see task.toml")
        missing = [k for k in _REQUIRED if k not in data["task"]]
        if missing:
            raise TaskConfigError(f"{path}: [task] must set {', '.join(missing)} (no silent defaults for these)")
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        unknown = set(flat) - set(cls.__dataclass_fields__)
        if unknown:
            raise TaskConfigError(f"{path}: unknown task settings {sorted(unknown)}")
        for key, value in flat.items():
            _check_type(key, value, cls.__dataclass_fields__[key].type, path)
        if "self_weights" in flat:
            flat["self_weights"] = tuple(flat["self_weights"])
        cfg = cls(**flat)
        try:
            cfg.validate()
        except TaskConfigError as exc:
            raise TaskConfigError(f"{path}: {exc}") from None
        return cfg

    def validate(self) -> None:
        """Check every setting's range (and the defence and model names); raise `TaskConfigError`."""
        from fedledger.core.defences import defence_class
        from fedledger.core.models import MODELS

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise TaskConfigError(message)

        need(self.model in MODELS, f"model {self.model!r} is not one of {', '.join(MODELS)}")
        need(self.dataset.lower() in _DATASETS, f"dataset {self.dataset!r} is not one of {', '.join(_DATASETS)}")
        need(self.partition in _PARTITIONS, f"partition {self.partition!r} is not one of {', '.join(_PARTITIONS)}")
        need(self.rounds >= 1, f"rounds must be at least 1, not {self.rounds}")
        need(
            1 <= self.min_clients <= self.clients,
            f"need 1 <= min_clients ({self.min_clients}) <= clients ({self.clients})",
        )
        need(self.reward_per_round_eth > 0, f"reward_per_round_eth must be positive, not {self.reward_per_round_eth}")
        need(
            self.alpha > 0 and 0 <= self.val_fraction < 1 and self.shards_per_client >= 1,
            "need alpha > 0, 0 <= val_fraction < 1 and shards_per_client >= 1",
        )
        need(
            self.lr > 0 and self.batch_size >= 1 and self.local_epochs >= 1 and self.local_steps >= 0,
            "need lr > 0, batch_size >= 1, local_epochs >= 1 and local_steps >= 0",
        )
        need(0 <= self.prune_ratio < 1, f"prune_ratio must be in [0, 1), not {self.prune_ratio}")
        durations = (self.registration_s, self.train_s, self.commit_s, self.reveal_s, self.aggregate_s)
        need(all(d > 0 for d in durations), "every phase duration (registration_s ... aggregate_s) must be positive")
        try:
            cls_ = defence_class(self.defence.partition("?")[0])
        except ValueError as exc:
            raise TaskConfigError(str(exc)) from None
        need(
            getattr(cls_, "publishable", True),
            f"defence {self.defence!r} is for benchmarks only: it cannot be published",
        )
        need(-1 <= self.theta <= 1, f"theta must be in [-1, 1], not {self.theta}")
        need(self.selection in ("all", "top-n"), f"selection {self.selection!r} is not 'all' or 'top-n'")
        need(
            self.selection != "top-n" or 1 <= self.selection_n <= self.clients,
            f"selection 'top-n' needs 1 <= selection_n <= clients, not {self.selection_n}",
        )
        need(self.committee_size >= 1, f"committee_size must be at least 1, not {self.committee_size}")
        need(0.5 < self.quorum <= 1, f"quorum must be in (0.5, 1], not {self.quorum}")
        need(0 <= self.rep_eval <= 1 and 0 <= self.rep_prev <= 1, "rep_eval and rep_prev must be in [0, 1]")
        need(
            len(self.self_weights) == 3 and all(w >= 0 for w in self.self_weights),
            "self_weights must be three non-negative integers",
        )
        shares = (self.client_share, self.winner_share, self.committee_share)
        need(
            all(x >= 0 for x in shares) and abs(sum(shares) - 1) < 1e-9,
            f"client_share + winner_share + committee_share must be 1, not {sum(shares):g}",
        )
        need(self.peer_validators >= 0, "peer_validators must be >= 0")
        need(self.dp in _DP_NAMES, f"dp {self.dp!r} is not one of {', '.join(_DP_NAMES)}")
        need(
            self.epsilon > 0 and self.clip > 0 and self.noise_multiplier >= 0,
            "need epsilon > 0, clip > 0 and noise_multiplier >= 0",
        )
        need(
            self.test_size >= 1 and 0 <= self.root_size <= self.test_size,
            "need test_size >= 1 and 0 <= root_size <= test_size",
        )

    # ---- on chain ----------------------------------------------------------------------------
    def model_spec(self) -> str:
        q = {"lr": self.lr, "batch_size": self.batch_size, "local_epochs": self.local_epochs}
        if self.local_steps:
            q["local_steps"] = self.local_steps
        if self.prune_ratio:
            q["prune_ratio"] = self.prune_ratio
        return f"{self.model}?{urlencode(q)}"

    def dataset_id(self) -> str:
        q = {
            "partition": self.partition,
            "clients": self.clients,
            "seed": self.seed,
            "alpha": self.alpha,
            "shards_per_client": self.shards_per_client,
            "val_fraction": self.val_fraction,
        }
        return f"{self.dataset}?{urlencode(q)}"

    def test_set_id(self) -> str:
        if self.test_pool >= 0:
            q = {"registry": self.test_registry, "size": self.test_size, "root": self.root_size, "seed": self.seed}
            return f"pool:{self.test_pool}?{urlencode(q)}"
        return f"{self.dataset}:test?{urlencode({'size': self.test_size, 'root': self.root_size, 'seed': self.seed})}"

    def to_chain(self, initial_cid: str, initial_digest: bytes) -> tuple[TaskSpec, Mechanism]:
        spec = TaskSpec(
            model_spec=self.model_spec(),
            dataset_id=self.dataset_id(),
            test_set_id=self.test_set_id(),
            initial_weights_cid=initial_cid,
            initial_digest=initial_digest,
            rounds=self.rounds,
            min_clients=self.min_clients,
            registration_duration=self.registration_s,
            train_duration=self.train_s,
            commit_duration=self.commit_s,
            reveal_duration=self.reveal_s,
            aggregate_duration=self.aggregate_s,
            reward_per_round=int(round(self.reward_per_round_eth * ETH)),
        )
        mech = Mechanism(
            defence=self.defence,
            theta_bps=_bps(self.theta),
            dp_mechanism=_DP_NAMES[self.dp],
            dp_epsilon_milli=_milli(self.epsilon),
            dp_clip_milli=_milli(self.clip),
            dp_noise_milli=_milli(self.noise_multiplier),
            selection_rule=1 if self.selection == "top-n" else 0,
            selection_n=self.selection_n,
            committee_size=self.committee_size,
            quorum_bps=_bps(self.quorum),
            rep_eval_bps=_bps(self.rep_eval),
            rep_prev_bps=_bps(self.rep_prev),
            self_weights=self.self_weights,
            client_share_bps=_bps(self.client_share),
            winner_share_bps=_bps(self.winner_share),
            committee_share_bps=_bps(self.committee_share),
            peer_validation=self.peer_validation,
            peer_validators=self.peer_validators,
        )
        return spec, mech

    @classmethod
    def from_chain(cls, spec: TaskSpec, mech: Mechanism) -> TaskConfig:
        """Rebuild the configuration from what the chain records."""
        model, mq = _split(spec.model_spec)
        dataset, dq = _split(spec.dataset_id)
        test_name, tq = _split(spec.test_set_id)
        pool = int(test_name.removeprefix("pool:")) if test_name.startswith("pool:") else -1
        dp_name = {v: k for k, v in _DP_NAMES.items()}[DPMechanism(mech.dp_mechanism)]
        return cls(
            model=model,
            dataset=dataset,
            clients=int(dq["clients"]),
            partition=dq["partition"],
            alpha=float(dq["alpha"]),
            shards_per_client=int(dq["shards_per_client"]),
            val_fraction=float(dq["val_fraction"]),
            seed=int(dq["seed"]),
            rounds=spec.rounds,
            min_clients=spec.min_clients,
            reward_per_round_eth=spec.reward_per_round / ETH,
            lr=float(mq["lr"]),
            batch_size=int(mq["batch_size"]),
            local_epochs=int(mq["local_epochs"]),
            local_steps=int(mq.get("local_steps", 0)),
            prune_ratio=float(mq.get("prune_ratio", 0.0)),
            registration_s=spec.registration_duration,
            train_s=spec.train_duration,
            commit_s=spec.commit_duration,
            reveal_s=spec.reveal_duration,
            aggregate_s=spec.aggregate_duration,
            defence=mech.defence,
            theta=mech.theta_bps / 10000,
            selection="top-n" if mech.selection_rule == 1 else "all",
            selection_n=mech.selection_n,
            committee_size=mech.committee_size,
            quorum=mech.quorum_bps / 10000,
            rep_eval=mech.rep_eval_bps / 10000,
            rep_prev=mech.rep_prev_bps / 10000,
            self_weights=(int(mech.self_weights[0]), int(mech.self_weights[1]), int(mech.self_weights[2])),
            client_share=mech.client_share_bps / 10000,
            winner_share=mech.winner_share_bps / 10000,
            committee_share=mech.committee_share_bps / 10000,
            peer_validation=bool(mech.peer_validation),
            peer_validators=mech.peer_validators,
            dp=dp_name,
            epsilon=mech.dp_epsilon_milli / 1000,
            clip=mech.dp_clip_milli / 1000,
            noise_multiplier=mech.dp_noise_milli / 1000,
            test_size=int(tq.get("size", 0)),
            root_size=int(tq["root"]),
            test_pool=pool,
            test_registry=tq.get("registry", ""),
        )

    # ---- what agents derive from it ----------------------------------------------------------
    def train_config(self) -> TrainConfig:
        return TrainConfig(
            lr=self.lr,
            batch_size=self.batch_size,
            local_epochs=self.local_epochs,
            local_steps=self.local_steps or None,
            prune_ratio=self.prune_ratio,
        )

    def dp_config(self) -> DPConfig | None:
        if self.dp == "none":
            return None
        return DPConfig(
            mechanism=self.dp,  # type: ignore[arg-type]  # validate() allows only gaussian / laplace
            max_grad_norm=self.clip,
            noise_multiplier=self.noise_multiplier,
            epsilon=self.epsilon,
        )

    def data(self) -> Dataset:
        return _dataset(self.dataset)

    def client_data(self, k: int) -> ClientData:
        """Data owner k's local train and validation split (its private data)."""
        return client_data(
            self.data(),
            self.partition,
            self.seed,
            self.clients,
            k,
            alpha=self.alpha,
            shards_per_client=self.shards_per_client,
            val_fraction=self.val_fraction,
        )

    def test_split(self) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """((miner test x, y), (evaluation x, y)): the same seeded split as `fedledger experiment`."""
        ds = self.data()
        perm = torch.from_numpy(np.random.default_rng([self.seed, 0x7E57]).permutation(len(ds.y_test)))
        miner_idx, eval_idx = perm[: self.test_size], perm[self.test_size :]
        return (ds.x_test[miner_idx], ds.y_test[miner_idx]), (ds.x_test[eval_idx], ds.y_test[eval_idx])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=4)
def _dataset(name: str) -> Dataset:
    return load_dataset(name)


def _split(text: str) -> tuple[str, dict[str, str]]:
    name, _, query = text.partition("?")
    return name, dict(parse_qsl(query))


def _bps(x: float) -> int:
    return int(round(x * 10000))


def _milli(x: float) -> int:
    return int(round(x * 1000))


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _check_type(key: str, value: Any, annotation: Any, path: Path) -> None:
    """One line naming the setting when a TOML value has the wrong type ("ten" for rounds)."""
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if name.startswith("tuple"):
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    else:
        types = _TYPES.get(name)
        ok = types is None or (isinstance(value, types) and (name == "bool" or not isinstance(value, bool)))
    if not ok:
        raise TaskConfigError(
            f"{path}: {key} must be {name.replace('tuple[int, int, int]', 'a list of 3 integers')}, not {value!r}"
        )
