"""LL-BCFL: reputation-based selection with miner-side validation (the LL-BCFL paper's
mechanism, as specified in ARCHITECTURE.md).

Miners validate every update's accuracy on their validation data before it may be aggregated;
reputation is updated as ``rep = w4 * eval + w5 * rep_prev`` (eval = the update's validation
accuracy if accepted, 0 if rejected) and the top-N clients by reputation are selected for the next
round. Local DP (Laplace / Gaussian noise) is the clients' part (``client.dp``).
"""

from __future__ import annotations

from collections.abc import Sequence

from miner.defences.base import ClientUpdate, Context, Decision, Defence, sorted_updates, stack_deltas
from miner.defences.fedavg import fedavg_decision

__all__ = ["LLBCFL"]


class LLBCFL(Defence):
    """Accuracy-threshold validation + reputation + top-N selection.

    An update is accepted when its validation accuracy is at least
    ``max(acc_threshold, acc(global) - margin)``: never below an absolute floor, and never much
    worse than the model it started from. ``initial_reputation`` stands in for a client without
    a reputation yet (normally its self-assessment). ``top_n`` None selects everyone.
    """

    name = "ll-bcfl"
    needs = frozenset({"test_set", "reputation"})

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

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Validate, FedAvg the accepted, update reputation, select the next round's top-N."""
        ups = sorted_updates(updates, context.global_weights)
        ids, X, n = stack_deltas(ups, context.global_weights)
        global_acc = context.evaluate(context.global_weights)[0]
        threshold = max(self.acc_threshold, global_acc - self.margin)
        accs = {u.client_id: context.evaluate(u.weights, client_id=u.client_id)[0] for u in ups}
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
            ids, X, n, accepted, accs, context,
            metrics={"score": "validation accuracy", "threshold": threshold},
            state={"reputation": reputation, "next_selection": selection},
        )
