"""A Model Chain pool's test split as a task's common test set, end to end on anvil."""

import hashlib
from pathlib import Path

import pytest
import torch

from fedledger.core.chain import FedLedger, Phase, TaskStatus, devnet_account
from fedledger.core.chain.data_registry import DataRegistry, is_test_assignment, split_seed
from fedledger.core.data import load_dataset
from fedledger.core.pooldata import ExamplesError, pack, unpack
from fedledger.core.protocol.rounds import miner_test_set, task_config
from fedledger.core.storage import open_store
from tests.agents.harness import drive, small_task, start
from tests.chain.helpers import increase_time


def test_examples_round_trip_and_bad_files_are_refused():
    ds = load_dataset("mnist")
    x, y = unpack(pack(ds.x_test[:5], ds.y_test[:5]), input_shape=(1, 28, 28), num_classes=10)
    assert torch.equal(x, ds.x_test[:5]) and torch.equal(y, ds.y_test[:5])
    with pytest.raises(ExamplesError, match="shapes"):
        unpack(pack(torch.zeros(2, 3, 3), torch.zeros(2)), input_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(ExamplesError, match="labels"):
        unpack(pack(ds.x_test[:2], torch.tensor([3, 12])), input_shape=(1, 28, 28), num_classes=10)
    with pytest.raises(ExamplesError, match="pickle"):
        unpack(b"\x80\x04\x95" + b"\0" * 20, input_shape=(1, 28, 28), num_classes=10)


def _arm_a_two_sided_split(w3, registry: DataRegistry, pool: int, digests: list[bytes]) -> None:
    """Arm the split until its seed block puts shares on both sides. With four shares at 50 %, one
    seed in eight leaves a side empty (the block hash changes with the wall clock), so a one-sided
    seed is left to go stale (257 blocks) and the split re-armed, as the contract allows."""
    for _ in range(20):
        registry.start_split(pool)
        seed_block = registry.pool_info(pool).seed_block
        while w3.eth.block_number < seed_block:
            w3.provider.make_request("evm_mine", [])
        seed = split_seed(bytes(w3.eth.get_block(seed_block)["hash"]), registry.address, pool)
        if {is_test_assignment(seed, d, 50) for d in digests} == {True, False}:
            return
        w3.provider.make_request("anvil_mine", [257])
    raise AssertionError("20 seeds in a row put every share on one side")


def test_a_task_judges_models_on_the_pools_test_split(w3, tmp_path: Path):
    from fedledger.core.ringsig import KeyPair
    from fedledger.deploy.deployer import deploy

    deploy(w3, devnet_account(0), force=True, directory=tmp_path)
    manifest = tmp_path / "31337.json"
    fl = FedLedger.from_manifest(w3, manifest, devnet_account(0))
    registry = DataRegistry.from_manifest(w3, manifest, devnet_account(0))
    store = open_store(f"embedded:{tmp_path / 'store'}")

    # four data owners share 150 MNIST test examples each, anonymously (rings of 2)
    keys = [KeyPair.generate() for _ in range(4)]
    for k in keys:
        registry.register_key(k)
    now = int(w3.eth.get_block("latest")["timestamp"])
    pool, _ = registry.create_pool(now + 300, 50, 600)
    ds = load_dataset("mnist")
    relayer = registry.as_account(devnet_account(60))  # the sender is not tied to any ring key
    digests = []
    for i, key in enumerate(keys):
        data = pack(ds.x_test[150 * i : 150 * (i + 1)], ds.y_test[150 * i : 150 * (i + 1)])
        cid, digest = store.put(data), hashlib.sha256(data).digest()
        ring = sorted({i, (i + 1) % 4})
        relayer.share(pool, cid, digest, now, ring, registry.sign_share(key, pool, cid, digest, now, ring))
        digests.append(digest)
    increase_time(w3, 301)
    _arm_a_two_sided_split(w3, registry, pool, digests)
    registry.finalize_split(pool)
    split = registry.recompute_split(pool)
    assert split.test and split.train

    cfg = small_task(rounds=1, defence="model-chain", test_pool=pool, test_registry=registry.address)
    task_id, req, clients, miners = start(fl, store, cfg)
    assert task_config(fl, task_id).test_pool == pool  # written on chain, read back by every agent
    x, y = miner_test_set(fl, store, task_config(fl, task_id))
    expected = torch.cat([unpack(store.get(s.cid), input_shape=(1, 28, 28), num_classes=10)[1] for s in split.test])
    assert len(x) == 150 * len(split.test) and torch.equal(y, expected)
    drive([req, *clients.values(), *miners], lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED)
    assert fl.round_info(task_id, 1).phase == Phase.FINALISED


def test_data_pack_writes_shareable_examples(tmp_path: Path):
    import subprocess
    import sys

    out = tmp_path / "part.safetensors"
    result = subprocess.run(
        [sys.executable, "-m", "fedledger.cli", "data", "pack", str(out), "--start", "100", "--count", "25"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    x, y = unpack(out.read_bytes(), input_shape=(1, 28, 28), num_classes=10)
    assert torch.equal(y, load_dataset("mnist").y_test[100:125]) and len(x) == 25
