"""LL-BCFL: reputation-based selection with miner-side validation (the LL-BCFL paper's
mechanism; the rule: docs/design.md#ll-bcfl-reputation-and-selection).

Miners validate every update's accuracy on their validation data before it may be aggregated;
reputation is updated as ``rep = w4 * eval + w5 * rep_prev`` (eval = the update's validation
accuracy if accepted, 0 if rejected) and the top-N clients by reputation are selected for the next
round. Local DP (Laplace / Gaussian noise) is the clients' part (``fedledger.core.learning.privacy``).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from fedledger.core.defences.base import (
    ClientUpdate,
    Context,
    Decision,
    Defence,
    TaskTerms,
    sorted_updates,
    stack_deltas,
)
from fedledger.core.defences.fedavg import fedavg_decision

__all__ = ["LLBCFL"]


class LLBCFL(Defence):
    """Accuracy-threshold validation + reputation + top-N selection.

    An update is accepted when its validation accuracy is at least
    ``max(acc_threshold, min(acc(global), median of the round's accuracies) - margin)``: never
    below an absolute floor, and not much worse than both the model it started from and its
    peers. ``initial_reputation`` stands in for a client without a reputation yet (normally its
    self-assessment). ``top_n`` None selects everyone.

    Why the median: with local DP every honest update carries its own noise and scores below the
    global model, while their average (the aggregate) does not. Measured against the global
    model alone, every honest update was rejected once noise dominated and the federation froze
    (IID, Gaussian: 0.393 from round 10 to 500). Beside the round's median an honest update is
    judged against peers carrying the same noise, and a poisoned one still falls below them as
    long as most selected updates are honest. Without DP honest updates score about as well as
    the global model, so there the global model usually sets the threshold, as it did before.
    """

    name = "ll-bcfl"

    def __init__(
        self,
        *,
        acc_threshold: float = 0.0,
        margin: float = 0.05,
        w4: float = 0.5,
        w5: float = 0.5,
        top_n: int | None = None,
        initial_reputation: float = 0.5,
    ) -> None:
        self.acc_threshold, self.margin = acc_threshold, margin
        self.w4, self.w5, self.top_n, self.initial_reputation = w4, w5, top_n, initial_reputation

    @classmethod
    def from_task(cls, task: TaskTerms, n_submitted: int) -> Defence:
        """w4, w5: the task's reputation weights; top_n: its top-N selection (None: everyone)."""
        return cls(**{"w4": task.rep_eval, "w5": task.rep_prev, "top_n": task.top_n, **task.params})

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Validate, FedAvg the accepted, update reputation, select the next round's top-N."""
        ups = sorted_updates(updates, context.global_weights)
        ids, X, n = stack_deltas(ups, context.global_weights)
        global_acc = context.evaluate(context.global_weights)[0]
        accs = {u.client_id: context.evaluate(u.weights, client_id=u.client_id)[0] for u in ups}
        reference = min(global_acc, statistics.median(accs.values())) if accs else global_acc
        threshold = max(self.acc_threshold, reference - self.margin)
        accepted = [i for i in ids if accs[i] >= threshold]
        reputation = dict(context.reputation)
        for i in ids:
            prev = reputation.get(i, self.initial_reputation)
            reputation[i] = self.w4 * (accs[i] if i in accepted else 0.0) + self.w5 * prev
        # Candidates are all known clients: a standby client without a reputation yet competes
        # with ``initial_reputation`` (else only the first round's selection could ever be chosen).
        candidates = {i: reputation.get(i, self.initial_reputation) for i in (*reputation, *context.standby)}
        ranked = sorted(candidates, key=lambda i: (-candidates[i], i))
        selection = sorted(ranked if self.top_n is None else ranked[: self.top_n])
        return fedavg_decision(
            ids,
            X,
            n,
            accepted,
            accs,
            context,
            metrics={"score": "validation accuracy", "threshold": threshold},
            reputation=reputation,
            next_selection=selection,
        )
