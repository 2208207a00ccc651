"""Pure numpy maths behind the defences (Flower's ``strategy/aggregate.py`` pattern).

Inputs are float64 matrices ``X`` of shape (n_clients, n_params), one row per client in
ascending client-id order. Every function is deterministic: fixed-order float64 accumulation, no
threads, no randomness, so committee members computing the same round get the same bytes.
"""

from __future__ import annotations

import numpy as np


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # Not np.dot: BLAS may split a long dot product over threads, and the split (hence the
    # rounding) depends on the machine; numpy's own pairwise sum has one fixed order everywhere.
    return float(np.sum(a * b))


__all__ = [
    "coordinate_median",
    "cosine",
    "krum_scores",
    "pairwise_sq_distances",
    "pearson",
    "trimmed_mean",
    "weighted_average",
]


def weighted_average(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_i w_i x_i / sum_i w_i``, accumulated row by row in order (not BLAS)."""
    w = np.asarray(weights, dtype=np.float64)
    if X.shape[0] == 0 or w.sum() <= 0:
        raise ValueError("nothing to average")
    acc = np.zeros(X.shape[1], dtype=np.float64)
    for i in range(X.shape[0]):
        acc += w[i] * X[i]
    return acc / w.sum()


def pairwise_sq_distances(X: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, computed as ||x_i - x_j||^2 (exact, symmetric, zero diagonal)."""
    n = X.shape[0]
    D = np.zeros((n, n), dtype=np.float64)
    for i in range(n):
        for j in range(i + 1, n):
            d = X[i] - X[j]
            D[i, j] = D[j, i] = _dot(d, d)
    return D


def krum_scores(X: np.ndarray, num_malicious: int) -> np.ndarray:
    """Krum score of each row: sum of squared distances to its n - f - 2 nearest other rows.

    Blanchard et al., "Machine Learning with Adversaries: Byzantine Tolerant Gradient Descent",
    NeurIPS 2017.
    """
    n = X.shape[0]
    k = n - num_malicious - 2
    if n < 2 * num_malicious + 3:  # the paper's assumption (Flower raises the same way)
        raise ValueError(f"Krum needs n >= 2f + 3 (n={n}, f={num_malicious})")
    D = pairwise_sq_distances(X)
    # Drop the zero self-distance (column 0 after sorting), keep the k nearest others.
    return np.sort(D, axis=1)[:, 1 : k + 1].sum(axis=1)


def coordinate_median(X: np.ndarray) -> np.ndarray:
    """Coordinate-wise median (mean of the two middle values for an even count).

    Yin et al., "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates", ICML 2018.
    """
    return np.median(X, axis=0)


def trimmed_mean(X: np.ndarray, trim: int) -> np.ndarray:
    """Coordinate-wise mean after dropping the ``trim`` largest and ``trim`` smallest values."""
    n = X.shape[0]
    if 2 * trim >= n:
        raise ValueError(f"cannot trim {trim} from each side of {n} values")
    S = np.sort(X, axis=0)[trim : n - trim]
    acc = np.zeros(X.shape[1], dtype=np.float64)
    for row in S:  # fixed-order sum
        acc += row
    return acc / S.shape[0]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two vectors; 0.0 when either is constant (no linear relation)."""
    a = a - a.mean()
    b = b - b.mean()
    na, nb = _dot(a, a), _dot(b, b)
    if na == 0.0 or nb == 0.0:
        return 0.0
    return _dot(a, b) / float(np.sqrt(na * nb))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity; 0.0 when either vector is zero."""
    na, nb = _dot(a, a), _dot(b, b)
    if na == 0.0 or nb == 0.0:
        return 0.0
    return _dot(a, b) / float(np.sqrt(na * nb))
