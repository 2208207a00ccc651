"""LL-BCFL's top-N selection ranks every client, not only those that already have a reputation."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from fedledger.core.defences import ClientUpdate, Context, create_defence

GLOBAL = OrderedDict(w=torch.zeros(3, 2), b=torch.zeros(2))


class TableContext(Context):
    """The miner's 'test set' answers from a table: accuracy keyed by client id."""

    def __init__(self, accs, global_acc, **kw):
        super().__init__(round=1, global_weights=GLOBAL, **kw)
        self.accs, self.global_acc = accs, global_acc

    def evaluate(self, weights, *, client_id=None):
        return (self.global_acc if client_id is None else self.accs[client_id], 1.0)


def _updates(ids):
    return [ClientUpdate(i, OrderedDict((k, v + 0.01 * (i + 1)) for k, v in GLOBAL.items()), 100) for i in ids]


def test_standby_clients_without_reputation_compete_with_the_initial_reputation():
    # Round 1 of an in-process run: nobody has a reputation yet; clients 0-2 trained, 3-5 wait.
    ctx = TableContext({0: 0.3, 1: 0.2, 2: 0.1}, global_acc=0.11, standby=[3, 4, 5])
    dec = create_defence("ll-bcfl", top_n=3).aggregate(_updates([0, 1, 2]), ctx)
    rep = dec.reputation
    assert rep[0] == pytest.approx(0.5 * 0.3 + 0.5 * 0.5)  # 0.4 < the initial 0.5
    # the three untried clients (0.5) outrank the three that trained (0.40, 0.35, 0.30)
    assert dec.next_selection == [3, 4, 5]


def test_known_reputations_still_rank_above_untried_clients_when_higher():
    ctx = TableContext({0: 0.9, 1: 0.9, 2: 0.1}, global_acc=0.5, standby=[3, 4], reputation={0: 0.9, 1: 0.2, 4: 0.6})
    dec = create_defence("ll-bcfl", top_n=3).aggregate(_updates([0, 1, 2]), ctx)
    # 0: 0.9, 1: 0.55, 2: rejected -> 0.25, 3: untried 0.5, 4: kept 0.6
    assert dec.accepted == [0, 1]
    assert dec.next_selection == [0, 1, 4]


def test_in_process_federation_selects_beyond_the_first_round():
    from fedledger.experiment import ExperimentConfig, run_experiment

    torch.set_num_threads(1)
    cfg = ExperimentConfig(
        clients=12, select=3, defence="ll-bcfl", rounds=3, local_epochs=1, local_steps=2, miner_test_size=500, seed=0
    )
    res = run_experiment(cfg)
    trained = {k for r in res.rounds for k in r.participants}
    assert res.rounds[0].participants == [0, 1, 2]
    assert len(trained) > 3  # before the fix: always clients 0, 1, 2
