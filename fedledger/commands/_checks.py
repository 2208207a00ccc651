"""Checks of run options that the option parser cannot express (names of attacks, defences,
datasets, store specs): each stops the command with one line before anything starts."""

from __future__ import annotations

from pathlib import Path

from fedledger.commands.errors import fail

DATASETS = ("mnist", "fashion-mnist", "cifar10")
DP_NAMES = ("none", "laplace", "gaussian")


def check_attack(attack: str | None, option: str = "--attack") -> None:
    from fedledger.core.attacks import ATTACKS

    key = (attack or "none").lower().replace("_", "-")
    if key != "all-to-one" and key not in ATTACKS:
        fail(f"{option}: unknown attack {attack!r}; choose one of: all-to-one, {', '.join(ATTACKS)}")


def check_defence(defence: str, option: str = "--defence") -> None:
    from fedledger.core.defences import defence_class

    try:
        defence_class(defence.partition("?")[0])
    except ValueError as exc:
        fail(f"{option}: {exc}")


def check_dataset(dataset: str, data_path: str | None = None) -> None:
    key = dataset.lower().replace("_", "-")
    if key not in (*DATASETS, "cifar-10", "fmnist", "fashion"):
        fail(f"--dataset: unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    if data_path is not None and not Path(data_path).exists():
        fail(f"--data-path: {data_path} does not exist (give the directory of the dataset's files)")


def check_dp(dp: str | None) -> None:
    if dp is not None and dp.lower() not in DP_NAMES:
        fail(f"--dp: unknown mechanism {dp!r}; choose one of: {', '.join(DP_NAMES)}")


def check_store(spec: str, option: str = "--store", words: tuple[str, ...] = ()) -> None:
    """A store spec (`embedded:PATH`, a path, an IPFS API URL or multiaddr) or one of `words`."""
    if spec in words:
        return
    if "://" in spec and not spec.startswith(("http://", "https://")):
        choices = ", ".join((*words, "embedded:PATH", "http://HOST:PORT"))
        fail(f"{option}: unknown store {spec!r}; use one of: {choices}")
