"""Miners bind a model to its producer (issue 23, hole 2): the weights' metadata must name the
submitter, and a copy of an earlier committer's model (re-serialised, or plus small noise) is
rejected, the earlier committer keeping it."""

import hashlib
from collections import OrderedDict

import torch

from fedledger.core.chain.types import Submission
from fedledger.core.protocol.rounds import load_updates
from fedledger.core.storage import EmbeddedStore
from fedledger.core.weights import WeightsMeta, dumps

OWNERS = [f"0x{i:040x}" for i in range(1, 7)]


class _Ledger:
    """The two reads `load_updates` makes, from a list of (owner, weights bytes, behaviour bytes)."""

    def __init__(self, store, models):
        self.subs, self.order = [], {}
        for k, (owner, data, behaviour) in enumerate(models):
            self.subs.append(
                Submission(
                    owner,
                    OWNERS.index(owner),
                    store.put(data),
                    hashlib.sha256(data).digest(),
                    store.put(behaviour),
                    100,
                    10 + k,
                    "0x",
                )
            )
            self.order[owner] = (10 + k, 0)  # committed in this order

    def submissions(self, task_id, round_):
        return list(reversed(self.subs))  # revealed in another order than committed

    def commit_order(self, task_id, round_):
        return self.order


def _meta(owner):
    return WeightsMeta(model_spec="mlp", task="1", round=1, producer=owner)


def test_copies_and_foreign_metadata_are_rejected_and_the_first_committer_keeps_its_model(tmp_path):
    store = EmbeddedStore(tmp_path)
    gen = torch.Generator().manual_seed(0)
    global_w = OrderedDict(w=torch.zeros(50, 20), b=torch.zeros(20))

    def update(scale=1.0):
        return OrderedDict((k, torch.randn(v.shape, generator=gen) * scale) for k, v in global_w.items())

    a, b = update(), update()
    noisy = OrderedDict((k, v + 1e-3 * torch.randn(v.shape, generator=gen)) for k, v in a.items())
    models = [
        (OWNERS[0], dumps(a, _meta(OWNERS[0])), dumps(a, _meta(OWNERS[0]))),  # honest, committed first
        (OWNERS[1], dumps(b, _meta(OWNERS[1])), dumps(b, _meta(OWNERS[1]))),  # honest
        (OWNERS[2], dumps(a, _meta(OWNERS[2])), dumps(update(), _meta(OWNERS[2]))),  # a's weights re-serialised
        (OWNERS[3], dumps(noisy, _meta(OWNERS[3])), dumps(noisy, _meta(OWNERS[3]))),  # a's plus small noise
        (OWNERS[4], dumps(a, _meta(OWNERS[0])), dumps(a, _meta(OWNERS[0]))),  # a's very file: names its producer
        (OWNERS[5], dumps(update(), _meta(OWNERS[5])), dumps(b, _meta(OWNERS[5]))),  # b's behaviour model
    ]
    updates, rejected = load_updates(_Ledger(store, models), store, 1, 1, global_w)
    assert [u.client_id for u in updates] == [0, 1]
    assert set(rejected) == {2, 3, 4, 5}
    assert "duplicates client 0" in rejected[2] and "duplicates client 0" in rejected[3]
    assert "produced by" in rejected[4]
    assert "duplicates client 1" in rejected[5]
