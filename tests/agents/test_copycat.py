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


def test_copycat_owners_on_anvil_are_never_credited_or_paid(devnet, w3, deployed, tmp_path):
    """Issue 23's goal end to end: two honest owners and two copycats (one re-submits a peer's
    revealed model exactly, salt and all, the other a copy plus 1 % noise under its own name), a
    FedAvg committee that accepts every usable model, two rounds. Each copycat commits to a peer's
    commitment (all it can see) and the contract refuses its reveal: it is never a submitter, never
    accepted, credited, made winner or paid; the honest owners are."""
    from fedledger.client.agent import ClientAgent
    from fedledger.core.chain import Phase, TaskStatus, devnet_account
    from fedledger.core.storage import open_store
    from tests.agents.harness import CLIENT0, drive, small_task, start

    fl, _ = deployed
    store = open_store(f"embedded:{tmp_path / 'store'}")
    cfg = small_task(clients=4, min_clients=4, rounds=2)
    task_id, req, clients, miners = start(fl, store, cfg, skip_clients=(2, 3))
    copycats = [
        ClientAgent(fl.as_account(devnet_account(CLIENT0 + k)), store, task_id, k, attack=attack)
        for k, attack in ((2, "copycat"), (3, "copycat?noise=0.01"))
    ]
    drive([*clients.values()], lambda: len(fl.clients(task_id)) == 2)  # the honest owners hold indexes 0 and 1
    for n, c in enumerate(copycats, start=3):
        drive([c], lambda n=n: len(fl.clients(task_id)) == n)
    steps: list[str] = []
    logged = [*clients.values(), *miners, req]
    for c in copycats:
        step = c.step
        c.step = lambda step=step: steps.append(out := step()) or out  # type: ignore[method-assign]
    drive(
        [*logged, *copycats],
        lambda: fl.task_info(task_id)["status"] == TaskStatus.FINISHED,
        w3=w3,
        jump=61,
        timeout=600,
    )
    honest = {a.address for a in clients.values()}
    cheats = {c.address for c in copycats}
    assert steps.count("copy refused r1") == 2 and steps.count("copy refused r2") == 2  # they tried, every round
    for r in (1, 2):
        ri = fl.round_info(task_id, r)
        assert ri.phase == Phase.FINALISED and ri.models_committed == 0b1111  # the copycats committed
        committed = {e["client"]: bytes(e["commitment"]) for e in fl.events("ModelCommitted", taskId=task_id, round=r)}
        assert {committed[a] for a in cheats} <= {committed[a] for a in honest}  # ... to a peer's commitment
        assert ri.submitted == 0b0011 and ri.accepted == 0b0011
        assert {s.client for s in fl.submissions(task_id, r)} == honest
    paid = {e["payee"] for e in fl.events("PaymentCredited", taskId=task_id)}
    assert honest <= paid and not paid & cheats
    assert all(fl.credit_of(a) == 0 for a in cheats)
    assert not {e["payee"] for e in fl.events("PaymentWithdrawn")} & cheats
