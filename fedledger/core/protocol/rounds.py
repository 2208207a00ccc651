"""A round's inputs as the chain and storage hold them, read the same way by every role and by
`audit`: the task's configuration, the model a round starts from, reputations before it, every
submission (fetched, digest-checked, parsed without unpickling), the miners' test set, and the
task's defence with its parameters (built by `fedledger.core.protocol.rules`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import torch
from cachetools import LRUCache

from fedledger.core.chain import FedLedger
from fedledger.core.chain.binding import load_abi
from fedledger.core.defences import ClientUpdate
from fedledger.core.models import StateDict
from fedledger.core.protocol import rules
from fedledger.core.protocol.task import TaskConfig
from fedledger.core.storage import StorageError, Store
from fedledger.core.storage.errors import DaemonUnavailable
from fedledger.core.weights import WeightsError, WeightsMeta, check, loads, sha256_hex, spec_of

log = logging.getLogger(__name__)


class BadInput(ValueError):
    """A submission that cannot be used (digest mismatch, unreadable or malformed weights)."""


def task_config(ledger: FedLedger, task_id: int) -> TaskConfig:
    return TaskConfig.from_chain(ledger.task_spec(task_id), ledger.task_mechanism(task_id))


class _ParsedWeights:
    """Weights already fetched, digest-checked and parsed in this process, keyed by (CID, digest).

    Content-addressed, so the parse of a CID never changes: agents sharing a process
    (`fedledger simulate`: 20 owners each validating 19 peers, 3 miners) parse each file once,
    as they share one verified-bytes cache (`CachingStore`). Callers get their own copies."""

    def __init__(self, max_bytes: int = 128 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        # entries are (weights, meta, size in bytes); cachetools caches are not thread-safe
        self._lru: LRUCache[tuple[str, bytes], tuple[StateDict, WeightsMeta, int]] = LRUCache(
            max_bytes, getsizeof=lambda entry: entry[2]
        )
        self._lock = threading.Lock()

    def get(self, cid: str, digest: bytes) -> tuple[StateDict, WeightsMeta] | None:
        with self._lock:
            hit = self._lru.get((cid, digest))
        if hit is None:
            return None
        weights, meta, _ = hit
        return OrderedDict((k, v.clone()) for k, v in weights.items()), meta

    def put(self, cid: str, digest: bytes, weights: StateDict, meta: WeightsMeta) -> None:
        size = sum(v.numel() * v.element_size() for v in weights.values())
        if size > self.max_bytes:  # LRUCache refuses a value larger than the whole cache
            return
        entry = (OrderedDict((k, v.clone()) for k, v in weights.items()), meta, size)
        with self._lock:
            self._lru[(cid, digest)] = entry


_parsed = _ParsedWeights()


def fetch_weights(
    store: Store, cid: str, digest: bytes, expected: dict[str, Any] | None
) -> tuple[StateDict, WeightsMeta]:
    """Bytes from storage (checked against the CID), the on-chain digest, then the safetensors
    checks (names, shapes, dtypes, finite values). Never unpickles."""
    hit = _parsed.get(cid, digest)
    if hit is None:
        hit = _fetch_weights(store, cid, digest)
        _parsed.put(cid, digest, *hit)
    try:
        check(hit[0], expected)
    except WeightsError as exc:
        raise BadInput(f"weights {cid}: {exc}") from None
    return hit


def _fetch_weights(store: Store, cid: str, digest: bytes) -> tuple[StateDict, WeightsMeta]:
    try:
        data = store.get(cid)
    except DaemonUnavailable:
        raise  # the node is away, not the submission bad: the caller waits and retries
    except StorageError as exc:
        raise BadInput(f"weights {cid}: {exc}") from None
    if sha256_hex(data) != digest.hex():
        raise BadInput(
            f"weights {cid}: sha256 {sha256_hex(data)[:16]}.. does not match the on-chain digest {digest.hex()[:16]}.."
        )
    try:
        weights, meta = loads(data)
        return OrderedDict(weights), meta
    except WeightsError as exc:
        raise BadInput(f"weights {cid}: {exc}") from None


def in_model_order(weights: StateDict, cfg: TaskConfig) -> StateDict:
    """``weights`` in the key order of the task's model (`loads` returns a file's tensors in any
    order): the defences' flat vectors, and so every sum over them, follow the order the in-process
    engine uses."""
    from fedledger.core.models import create_model

    model = create_model(cfg.model, in_shape=tuple(cfg.data().input_shape), num_classes=cfg.data().num_classes)
    keys = list(model.state_dict())
    if sorted(keys) != sorted(weights):
        return weights  # not this model's weights: the checks that follow say what is wrong
    return OrderedDict((k, weights[k]) for k in keys)


def miner_test_set(ledger: FedLedger, store: Store, cfg: TaskConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The miners' common test set: the dataset's seeded test part, or the test split of a Model
    Chain data pool (shares recomputed from the chain, bytes checked against their digests)."""
    if cfg.test_pool < 0:
        return cfg.test_split()[0]
    from fedledger.core.chain.data_registry import DataRegistry
    from fedledger.core.pooldata import ExamplesError, unpack

    registry = DataRegistry(ledger.w3, cfg.test_registry, load_abi("DataRegistry"))
    xs, ys = [], []
    for share in registry.recompute_split(cfg.test_pool).test:
        try:
            data = store.get(share.cid)
            if sha256_hex(data) != share.digest.hex():
                raise BadInput(f"share {share.share_id}: bytes do not match the digest on chain")
            x, y = unpack(data, input_shape=tuple(cfg.data().input_shape), num_classes=cfg.data().num_classes)
        except DaemonUnavailable:
            raise  # an outage is not bad data: skipping would make this miner's test set differ
        except (BadInput, StorageError, ExamplesError) as exc:  # every miner skips the same shares
            log.warning("pool %d: share %d unusable as test data: %s", cfg.test_pool, share.share_id, exc)
            continue
        xs.append(x)
        ys.append(y)
    if not xs:
        raise ValueError(f"pool {cfg.test_pool} has no usable test data")
    return torch.cat(xs), torch.cat(ys)


def round_start(ledger: FedLedger, task_id: int, round_: int) -> tuple[str, bytes, int]:
    """(global CID, digest, block) the round started from: the last finalised round before it,
    else the task's initial model; block is where round `round_` opened."""
    opened = ledger.events("RoundOpened", taskId=task_id, round=round_)
    if not opened:
        raise ValueError(f"task {task_id} round {round_} has not opened")
    block = opened[0]["block_number"]
    finalised = [e for e in ledger.events("RoundFinalised", taskId=task_id, to_block=block) if e["round"] < round_]
    if finalised:
        last = finalised[-1]
        return last["globalCID"], bytes(last["globalDigest"]), block
    spec = ledger.task_spec(task_id)
    return spec.initial_weights_cid, spec.initial_digest, block


def reputations_before(ledger: FedLedger, task_id: int, round_: int, opened_block: int) -> dict[int, int]:
    """Client index -> on-chain reputation when `round_` opened, from events alone (a node
    without archive state serves them too): the registration values, overwritten by the last
    proposal finalised before the round."""
    reps = {
        int(e["index"]): int(e["reputation"])
        for e in ledger.events("ClientRegistered", taskId=task_id, to_block=opened_block)
    }
    finalised = [
        e for e in ledger.events("RoundFinalised", taskId=task_id, to_block=opened_block) if e["round"] < round_
    ]
    if finalised:
        last = finalised[-1]
        proposal = ledger.proposals(task_id, int(last["round"]))[bytes(last["proposalHash"])]
        reps.update(enumerate(proposal.reputations))
    return reps


def load_updates(
    ledger: FedLedger, store: Store, task_id: int, round_: int, global_w: StateDict
) -> tuple[list[ClientUpdate], dict[int, str]]:
    """Every submission of the round as a ClientUpdate; bad ones go to `rejected` with the reason.

    A model is bound to its producer: its weights' (and behaviour model's) metadata must name the
    submitting address, and a model that duplicates, exactly or nearly (`rules.copied_from`), the
    model of an owner that committed earlier is rejected: the earlier committer keeps it. The
    commitment order is on chain (`ModelCommitted`), and nobody can commit to a model before its
    owner reveals it, so the first committer of a model is its producer."""
    expected = spec_of(global_w)
    pace_spec = {k: v for k, v in expected.items() if v[1].is_floating_point}
    updates, rejected = [], {}
    order = {a.lower(): pos for a, pos in ledger.commit_order(task_id, round_).items()}
    last = (1 << 62, 0)
    subs = sorted(ledger.submissions(task_id, round_), key=lambda s: (order.get(s.client.lower(), last), s.index))
    kept: list[tuple[int, StateDict, StateDict | None]] = []  # (index, update, pace) of accepted inputs
    for s in subs:
        try:
            weights, meta = fetch_weights(store, s.weights_cid, s.digest, expected)
            _check_producer(meta, s.client, "weights")
            pace = None
            if s.behaviour_cid:
                data = store.get(s.behaviour_cid)
                loaded, pace_meta = loads(data, expected=pace_spec)
                pace = OrderedDict(loaded)
                _check_producer(pace_meta, s.client, "behaviour model")
            delta = OrderedDict(
                (k, weights[k].double() - global_w[k].double()) for k in global_w if weights[k].is_floating_point()
            )
            original = rules.copied_from(delta, pace, kept)
            if original is not None:
                raise BadInput(f"model duplicates client {original}'s, committed earlier")
            kept.append((s.index, delta, pace))
            model = OrderedDict((k, weights[k]) for k in global_w)
            updates.append(ClientUpdate(s.index, model, s.n_samples, pace=pace))
        except DaemonUnavailable:
            raise  # an outage must not turn every submission into a rejected one
        except (BadInput, StorageError, WeightsError) as exc:
            rejected[s.index] = str(exc)
            log.warning("round %d: rejected client %d: %s", round_, s.index, exc)
    updates.sort(key=lambda u: u.client_id)
    return updates, rejected


def _check_producer(meta: WeightsMeta, client: str, what: str) -> None:
    if meta.producer.lower() != client.lower():
        raise BadInput(f"{what} produced by {meta.producer}, submitted by {client}")
