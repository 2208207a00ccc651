"""Datasets (real MNIST, Fashion-MNIST, CIFAR-10 pickles) and partitions."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fedledger.core import data as D


def test_mnist_is_real_and_verified(mnist):
    assert mnist.x_train.shape == (60_000, 1, 28, 28) and mnist.x_test.shape == (10_000, 1, 28, 28)
    assert mnist.y_train.dtype == torch.int64
    assert np.bincount(mnist.y_test.numpy()).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(float(mnist.x_train.mean())) < 1e-3 and abs(float(mnist.x_train.std()) - 1) < 1e-3


def test_missing_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("FEDLEDGER_DATA_DIR", raising=False)
    with pytest.raises(D.DatasetMissingError, match="make setup"):
        D.find_mnist_dir(search_from=[tmp_path])


def test_corrupt_mnist_is_rejected(tmp_path, monkeypatch):
    src = D.find_mnist_dir()
    for f in D.MNIST_MD5:
        shutil.copy(src / f, tmp_path / f)
    raw = bytearray((tmp_path / "t10k-labels-idx1-ubyte").read_bytes())
    raw[-1] ^= 1
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw))
    monkeypatch.setenv("FEDLEDGER_DATA_DIR", str(tmp_path))
    assert D.find_mnist_dir() == tmp_path
    with pytest.raises(ValueError, match="md5"):
        D._load_idx_set(tmp_path, D.MNIST_MD5, "", "mnist")


def test_fashion_mnist():
    if not all((D.FASHION_DEFAULT_DIR / (f + ".gz")).is_file() for f in D.FASHION_MD5):
        pytest.skip(f"Fashion-MNIST absent: `{D.FASHION_APT}` provides it")
    ds = D.load_fashion_mnist()
    assert ds.x_train.shape == (60_000, 1, 28, 28)
    assert np.bincount(ds.y_train.numpy()).tolist() == [6000] * 10


def test_missing_fashion_mnist_names_the_package(tmp_path):
    with pytest.raises(D.DatasetMissingError, match="dataset-fashion-mnist"):
        D.load_fashion_mnist(str(tmp_path))


def _write_cifar(directory: Path, n_per_batch: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, size=n_per_batch).tolist()
        with (directory / name).open("wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"data": x, b"labels": y, b"filenames": []}, fh)
        written[name] = x
    return written


def test_cifar10_reads_python_batches(tmp_path):
    written = _write_cifar(tmp_path)
    ds = D.load_cifar10(str(tmp_path))
    assert ds.x_train.shape == (35, 3, 32, 32) and ds.x_test.shape == (7, 3, 32, 32)
    # Channel-major layout: the first 1024 bytes are the red plane of the first image.
    mean, std = D._NORM["cifar10"]
    red = written["data_batch_1"][0, :1024].reshape(32, 32) / 255.0
    torch.testing.assert_close(ds.x_train[0, 0], torch.tensor((red - mean[0]) / std[0], dtype=torch.float32))


def test_cifar10_missing(tmp_path):
    with pytest.raises(D.DatasetMissingError, match="CIFAR-10"):
        D.load_cifar10(str(tmp_path))


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "shards"])
def test_partitions_cover_disjoint_and_reproducible(mnist, scheme):
    y = mnist.y_train.numpy()
    a = D.partition_indices(y, 20, scheme=scheme, seed=3, alpha=0.5)
    b = D.partition_indices(y, 20, scheme=scheme, seed=3, alpha=0.5)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    allidx = np.concatenate(a)
    assert len(allidx) == len(y) and len(np.unique(allidx)) == len(y)
    c = D.partition_indices(y, 20, scheme=scheme, seed=4, alpha=0.5)
    assert not all(np.array_equal(p, q) for p, q in zip(a, c, strict=True))


def test_partition_shapes(mnist):
    y = mnist.y_train.numpy()
    iid = D.partition_indices(y, 20, scheme="iid", seed=0)
    assert {len(p) for p in iid} == {3000}
    shards = D.partition_indices(y, 20, scheme="shards", seed=0, shards_per_client=2)
    assert max(len(np.unique(y[p])) for p in shards) <= 4  # two label-sorted shards: few labels each
    dirich = D.partition_indices(y, 20, scheme="dirichlet", seed=0, alpha=0.1)
    # Strong skew: most clients are dominated by one or two labels.
    top = [np.bincount(y[p], minlength=10).max() / len(p) for p in dirich]
    assert np.median(top) > 0.4
    iid_top = [np.bincount(y[p], minlength=10).max() / len(p) for p in iid]
    assert max(iid_top) < 0.15


def test_client_data_is_a_pure_function(mnist):
    a = D.client_data("mnist", "dirichlet", 7, 10, 3, alpha=0.3)
    b = D.client_data(mnist, "dirichlet", 7, 10, 3, alpha=0.3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert len(a.x_val) == round(0.1 * len(a.indices))
    assert not set(a.indices[: len(a.x_train)]) & set(a.indices[len(a.x_train) :])
    other = D.client_data(mnist, "dirichlet", 7, 10, 4, alpha=0.3)
    assert not set(a.indices) & set(other.indices)
    with pytest.raises(ValueError):
        D.client_data(mnist, "iid", 0, 10, 10)


def test_cifar10_batches_cannot_run_code(tmp_path):
    _write_cifar(tmp_path)

    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with (tmp_path / "test_batch").open("wb") as fh:
        pickle.dump({b"data": Boom(), b"labels": []}, fh)
    D.load_cifar10.cache_clear()
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        D.load_cifar10(str(tmp_path))
    assert not (tmp_path / "pwned").exists()
