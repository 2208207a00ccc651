"""BPCV-FL: mutual supervision through peer validation, proof of quality (the BPCV-FL paper's
mechanism; the rule: docs/design.md#bpcv-fl-mutual-supervision-proof-of-quality).

Each data node validates every other node's model on its own local data (scores in basis points,
recorded on chain). Node k's quality is the paper's sum of the scores the *other* participants gave
it, divided by how many it received: with every score in, the same ranking as the sum; when a
validator did not reveal, or each model is scored by k sampled peers, nobody gains or loses for
having been scored by fewer peers.
The worst node is eliminated and the most timely standby node joins the next round; the node of
best quality wins the round (and its reward). GD-DP is the clients' part (``fedledger.core.learning.privacy``).
"""

from __future__ import annotations

from collections.abc import Sequence

from fedledger.core.defences.base import ClientUpdate, Context, Decision, Defence, apply_delta, stack_deltas
from fedledger.core.defences.fedavg import fedavg_decision

__all__ = ["BPCVFL", "peer_quality"]


def peer_quality(peer_scores: dict[int, dict[int, int]], ids: Sequence[int]) -> dict[int, float]:
    """Each of ``ids``' quality: the mean score the *other* participants among ``ids`` gave it
    (``peer_scores[validator][target]``, bps; only the scores each validator was assigned), 0.0
    when nobody scored it. The miners and the explorer both call this."""
    received = {k: [s[k] for v, s in peer_scores.items() if v in ids and v != k and k in s] for k in ids}
    return {k: sum(got) / len(got) if got else 0.0 for k, got in received.items()}


class BPCVFL(Defence):
    """Proof of quality. ``global_model="fedavg"`` averages everyone but the eliminated;
    ``"winner"`` adopts the winner's model as the global model."""

    name = "bpcv-fl"
    needs = frozenset({"peer_scores"})

    def __init__(self, *, eliminate: int = 1, global_model: str = "fedavg") -> None:
        if global_model not in ("fedavg", "winner"):
            raise ValueError("global_model must be 'fedavg' or 'winner'")
        self.eliminate, self.global_model = eliminate, global_model

    def aggregate(self, updates: Sequence[ClientUpdate], context: Context) -> Decision:
        """Peer scores into quality; eliminate the worst, pick the winner, aggregate."""
        ids, X, n = stack_deltas(updates, context.global_weights)
        if not ids:
            return Decision([], {}, {}, None)
        if not context.peer_scores:
            raise ValueError("BPCV-FL needs the peer scores (context.peer_scores)")
        quality = peer_quality(context.peer_scores, ids)
        # Worst first; on equal quality the later-registered (higher id) node goes.
        eliminated = sorted(sorted(ids, key=lambda k: (quality[k], -k))[: self.eliminate])
        winner = min(ids, key=lambda k: (-quality[k], k))
        accepted = [k for k in ids if k not in eliminated]
        joining = [s for s in context.standby if s not in ids][: len(eliminated)]
        nxt = sorted(accepted + joining)
        metrics = {"score": "quality (mean peer score received, bps)", "winner": winner}
        if self.global_model == "winner":
            row = ids.index(winner)
            adopted = apply_delta(context.global_weights, X[row].copy())
            return Decision(
                accepted,
                {winner: 1.0},
                quality,
                adopted,
                metrics,
                winner=winner,
                eliminated=eliminated,
                next_selection=nxt,
            )
        return fedavg_decision(
            ids, X, n, accepted, quality, context, metrics, winner=winner, eliminated=eliminated, next_selection=nxt
        )
