"""Property test: random call sequences against a real anvil never break the money invariant.

balance == unpaid credits + unspent escrow + stakes, and nobody withdraws more than was credited.
"""

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from fedledger.core.chain import (
    ContractRevert,
    FedLedger,
    Mechanism,
    Phase,
    Proposal,
    devnet_account,
    encode_scores,
    model_commitment,
    score_commitment,
)
from fedledger.deploy.deployer import deploy
from tests.chain.helpers import CID, ETH, digest, increase_time, spec

CLIENTS = [1, 2, 3, 4]
MINERS = [150, 151, 152, 153]
EVERYONE = [0, *CLIENTS, *MINERS]


def test_random_call_sequences_keep_the_escrow_invariant(w3, tmp_path: Path):
    accounts = {i: devnet_account(i) for i in EVERYONE}
    finalised, slashed = [], []

    class Ledger(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            deploy(w3, accounts[0], force=True, directory=tmp_path, min_stake=ETH, unstake_delay=100)
            base = FedLedger.from_manifest(w3, tmp_path / "31337.json", accounts[0])
            self.as_ = {i: base.as_account(a) for i, a in accounts.items()}
            self.fl = self.as_[0]
            self.start_block = w3.eth.block_number

        def _try(self, fn, *args, **kw):
            with contextlib.suppress(ContractRevert):  # rejected calls must leave state intact: the invariants check it
                fn(*args, **kw)

        def _task(self, k: int) -> int:
            return 1 + k % max(self.fl.task_count(), 1)

        @rule(rounds=st.integers(1, 3), reward=st.integers(0, 3), committee=st.sampled_from([1, 1, 4]))
        def publish(self, rounds, reward, committee=1):
            s = spec(
                rounds=rounds,
                min_clients=1,
                reward_per_round=reward * ETH // 3,
                train_duration=50,
                commit_duration=50,
                reveal_duration=50,
                aggregate_duration=50,
            )
            self.fl.publish_task(
                s,
                Mechanism(
                    committee_size=committee, client_share_bps=5000, winner_share_bps=1000, committee_share_bps=3000
                ),
            )

        @initialize()
        def a_running_task(self):
            """Start every run with one running task so that rounds, rewards and withdrawals happen."""
            self.publish(rounds=3, reward=3)
            for c in CLIENTS[:2]:
                self.register(0, c)
            self.stake(MINERS[0], 1)
            self.fl.start_task(1)
            # and one with a committee of 4, where a dissenting member is slashed (3 of 4 finalise)
            self.publish(rounds=2, reward=3, committee=4)
            for c in CLIENTS[:3]:
                self.register(1, c)
            for m in MINERS[1:]:
                self.stake(m, 1)
            self.fl.start_task(2)
            before = len(slashed)
            self.play_round(k=1, vote="dissent")  # every run finalises 3 of 4 votes and slashes the dissenter
            assert len(slashed) == before + 1

        @rule(k=st.integers(0, 5), who=st.sampled_from(EVERYONE))
        def cancel(self, k, who):
            self._try(self.as_[who].cancel_task, self._task(k))

        @rule(k=st.integers(0, 5), who=st.sampled_from(EVERYONE))
        def reclaim(self, k, who):
            self._try(self.as_[who].reclaim_escrow, self._task(k))

        @rule(k=st.integers(0, 5), who=st.sampled_from(CLIENTS))
        def register(self, k, who):
            self._try(self.as_[who].register, self._task(k), [5000, 5000, 5000], 100)

        @rule(who=st.sampled_from(MINERS), amount=st.integers(0, 2))
        def stake(self, who, amount):
            self._try(self.as_[who].stake, amount * ETH)

        @rule(who=st.sampled_from(MINERS))
        def unstake(self, who):
            self._try(self.as_[who].request_unstake)

        @rule(who=st.sampled_from(MINERS))
        def withdraw_stake(self, who):
            self._try(self.as_[who].withdraw_stake)

        @rule(k=st.integers(0, 5), who=st.sampled_from(EVERYONE))
        def start(self, k, who):
            self._try(self.as_[who].start_task, self._task(k))

        @rule(
            k=st.integers(0, 5),
            vote=st.sampled_from(["all", "all", "dissent", "silent"]),
            copycat=st.booleans(),
        )
        def play_round(self, k, vote="all", copycat=False):
            """Every client submits, commits, reveals; the committee proposes the full set. A
            copycat commits to the first client's commitment and tries to reveal its model (the
            contract refuses it); a dissenting member votes for another result first; a silent
            committee lets the round fail at its deadline."""
            if self.fl.task_count() == 0:
                return
            t = self._task(k)
            info = self.fl.task_info(t)
            r = info["current_round"]
            if r == 0:
                return
            clients = self.fl.clients(t)
            idx = {self.as_[c].sender: c for c in CLIENTS}
            model = (CID, digest(1), CID, 10, b"\2" * 32)
            for k, a in enumerate(clients):
                c = self.as_[idx[a]]
                first = self.as_[idx[clients[0]]].sender if copycat and k > 0 else c.sender
                self._try(c.commit_model, t, r, model_commitment(t, r, first, *model))
            for a in clients:
                self._try(self.as_[idx[a]].submit_model, t, r, *model)
            rinfo = self.fl.round_info(t, r)
            n = rinfo.n_clients
            scores = encode_scores([5000] * n)
            for a in clients:
                c = self.as_[idx[a]]
                self._try(c.commit_scores, t, r, score_commitment(t, r, c.sender, scores, b"\1" * 32))
            for a in clients:
                self._try(self.as_[idx[a]].reveal_scores, t, r, scores, b"\1" * 32)
            rinfo = self.fl.round_info(t, r)
            if rinfo.phase != Phase.AGGREGATE:
                return
            p = Proposal(
                CID,
                digest(2),
                rinfo.submitted,
                tuple([500_000] * n),
                1 if rinfo.submitted & 1 else 0,
                rinfo.selected or 1,
            )
            miners = {self.as_[m].sender: m for m in MINERS}
            if vote == "silent":  # failing the round at its deadline slashes the committee
                return
            committee = list(rinfo.committee)
            dissenter = committee.pop() if vote == "dissent" and len(committee) > 1 else None
            if dissenter is not None:
                other = Proposal(CID, digest(3), p.accepted, p.reputations, p.winner, p.next_selection)
                self._try(self.as_[miners[dissenter]].propose, t, r, other)
            for member in committee:
                self._try(self.as_[miners[member]].propose, t, r, p)
            if self.fl.round_info(t, r).phase == Phase.FINALISED:
                finalised.append((t, r))
                cut = self.fl.events("MinerSlashed", from_block=self.start_block, taskId=t, round=r)
                assert [e["miner"] for e in cut] == ([dissenter] if dissenter else [])
                slashed.extend(cut)

        @rule(k=st.integers(0, 5), seconds=st.sampled_from([10, 60, 200, 8 * 86400]))
        def wait_and_advance(self, k, seconds):
            increase_time(w3, seconds)
            self._try(self.fl.advance, self._task(k))

        def teardown(self):
            slashed.extend(self.fl.events("MinerSlashed", from_block=self.start_block))

        @rule(who=st.sampled_from(EVERYONE))
        def withdraw(self, who):
            self._try(self.as_[who].withdraw)

        @invariant()
        def balance_is_credits_plus_escrow_plus_stakes(self):
            acc = self.fl.accounting()
            assert self.fl.balance() == acc["credits"] + acc["escrow"] + acc["stakes"]
            escrows = sum(self.fl.task_info(t)["escrow"] for t in range(1, self.fl.task_count() + 1))
            assert escrows == acc["escrow"]
            assert sum(self.fl.credit_of(a.sender) for a in self.as_.values()) == acc["credits"]

        @invariant()
        def nobody_withdraws_more_than_credited(self):
            credited: dict[str, int] = {}
            for e in self.fl.events("PaymentCredited", from_block=self.start_block):
                credited[e["payee"]] = credited.get(e["payee"], 0) + e["amount"]
            for e in self.fl.events("PaymentWithdrawn", from_block=self.start_block):
                credited[e["payee"]] = credited.get(e["payee"], 0) - e["amount"]
                assert credited[e["payee"]] >= 0

    run_state_machine_as_test(
        Ledger,
        settings=settings(
            max_examples=12, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )
    assert finalised, "no run reached a finalised round: the payout paths were not exercised"
    assert slashed, "no run slashed a committee member: the slashing path was not exercised"
