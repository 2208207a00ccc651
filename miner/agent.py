"""The miner agent: stake, and in every round where it sits on the committee, verify, defend,
aggregate, upload the global model and vote; call `advance` on stalled phases.

Stateless like the client agent: whether it staked or voted is read from the chain, so a miner
killed and restarted mid-round recomputes the same proposal and never votes twice.
"""

from __future__ import annotations

import logging
import time

from fedledger.core.chain import ContractRevert, FedLedger, Phase, TaskStatus, TransactionFailed
from fedledger.core.storage import Store
from fedledger.miner.round import RoundOutcome, compute_round

log = logging.getLogger(__name__)


class MinerAgent:
    """A committee miner for task `task_id`, acting through `ledger` (its own account)."""

    def __init__(self, ledger: FedLedger, store: Store, task_id: int, *, stake_wei: int | None = None) -> None:
        self.ledger, self.store, self.task_id = ledger, store, task_id
        self.address = ledger.sender
        self.stake_wei = stake_wei
        self.outcomes: dict[int, RoundOutcome] = {}  # round -> what this miner computed (a cache)
        self._last_phase: tuple[int, Phase] | None = None
        self._phase_seen_at = time.monotonic()

    def step(self) -> str:
        """Do what is due now; returns what was done ("idle" when waiting, "done" at the end)."""
        stake = self.ledger.stake_of(self.address)
        if not stake["active"] and stake["unlock_at"] == 0:
            self.ledger.stake(self.stake_wei or self.ledger.min_stake())
            return "staked"
        info = self.ledger.task_info(self.task_id)
        if info["status"] in (TaskStatus.FINISHED, TaskStatus.CANCELLED):
            return "done"
        if info["status"] != TaskStatus.RUNNING:
            return "idle"
        r = info["current_round"]
        ri = self.ledger.round_info(self.task_id, r)
        on_duty = ri.phase == Phase.AGGREGATE and self.address in ri.committee
        if on_duty and self.ledger.vote_of(self.task_id, r, self.address) == b"\0" * 32:
            return self.vote(r)
        return self._advance_if_stalled(r, ri.phase)

    def vote(self, r: int) -> str:
        """Recompute the round, upload the global model, vote for the resulting proposal."""
        outcome = self.outcomes.get(r) or compute_round(self.ledger, self.store, self.task_id, r)
        self.outcomes[r] = outcome
        if outcome.global_bytes is not None:
            cid = self.store.put(outcome.global_bytes)
            if cid != outcome.proposal.global_cid:
                raise RuntimeError(f"storage returned CID {cid}, expected {outcome.proposal.global_cid}")
        try:
            self.ledger.propose(self.task_id, r, outcome.proposal)
        except ContractRevert as exc:
            if exc.name in (
                "FedLedgerWrongPhase",
                "FedLedgerAlreadyVoted",
                "FedLedgerDeadlinePassed",
            ):  # raced with others / the clock
                return "idle"
            raise
        except TransactionFailed as exc:  # mined after the deadline: the next step sees the new phase
            log.warning("miner %s: %s", self.address, exc)
            return "idle"
        return f"voted r{r}"

    def _advance_if_stalled(self, r: int, phase: Phase) -> str:
        """Past a phase's deadline anyone may close it: try (a dry run costs no gas) after the
        phase has stood still for a second."""
        if self._last_phase != (r, phase):
            self._last_phase, self._phase_seen_at = (r, phase), time.monotonic()
            return "idle"
        if time.monotonic() - self._phase_seen_at < 1.0:
            return "idle"
        try:
            self.ledger.estimate("advance", self.task_id)
        except ContractRevert:
            return "idle"  # deadline not reached
        try:
            self.ledger.advance(self.task_id)
        except ContractRevert:
            return "idle"  # another party advanced first
        return f"advanced r{r}"
