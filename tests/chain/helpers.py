"""Building blocks for chain tests: a published, registered, staked and started task."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from fedledger.core.chain import (
    FedLedger,
    Mechanism,
    Phase,
    TaskSpec,
    devnet_account,
    encode_scores,
    model_commitment,
    score_commitment,
)

ETH = 10**18
CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
CLIENT_ACCOUNTS = range(1, 100)
MINER_ACCOUNTS = range(150, 200)


def digest(i: int) -> bytes:
    return hashlib.sha256(f"model {i}".encode()).digest()


def spec(**kw) -> TaskSpec:
    base = dict(
        model_spec="mlp",
        dataset_id="mnist",
        test_set_id="mnist:test",
        initial_weights_cid=CID,
        initial_digest=digest(0),
        rounds=2,
        min_clients=2,
        registration_duration=3600,
        train_duration=600,
        commit_duration=120,
        reveal_duration=120,
        aggregate_duration=600,
        reward_per_round=ETH,
    )
    base.update(kw)
    return TaskSpec(**base)


@dataclass
class Task:
    fl: FedLedger
    task_id: int
    clients: list[FedLedger]
    miners: list[FedLedger]
    salts: dict[int, bytes] = field(default_factory=dict)

    def model(self, i: int, round_: int) -> tuple[str, bytes, str, int, bytes]:
        """Client i's (weightsCID, digest, behaviourCID, nSamples, salt) in a round."""
        return CID, digest(i + 1), CID, 1000 + i, bytes([i + 1, round_]) * 16

    def commit_models(self, round_: int, who: list[int] | None = None) -> None:
        for i in who if who is not None else range(len(self.clients)):
            c = self.clients[i]
            commitment = model_commitment(self.task_id, round_, c.sender, *self.model(i, round_))
            c.commit_model(self.task_id, round_, commitment)

    def reveal_models(self, round_: int, who: list[int] | None = None) -> None:
        for i in who if who is not None else range(len(self.clients)):
            self.clients[i].submit_model(self.task_id, round_, *self.model(i, round_))

    def submit_all(self, round_: int, who: list[int] | None = None) -> None:
        """Commit to the models of `who`; once the train phase closed, reveal them."""
        self.commit_models(round_, who)
        if self.fl.round_info(self.task_id, round_).phase == Phase.SUBMIT:
            self.reveal_models(round_, who)

    def scores(self) -> bytes:
        return encode_scores([8000 + i for i in range(len(self.clients))])

    def commit_all(self, round_: int, who: list[int] | None = None) -> None:
        for i in who if who is not None else range(len(self.clients)):
            c = self.clients[i]
            self.salts[i] = bytes([i + 1]) * 32
            c.commit_scores(
                self.task_id, round_, score_commitment(self.task_id, round_, c.sender, self.scores(), self.salts[i])
            )

    def reveal_all(self, round_: int, who: list[int] | None = None) -> None:
        for i in who if who is not None else range(len(self.clients)):
            self.clients[i].reveal_scores(self.task_id, round_, self.scores(), self.salts[i])


def running_task(
    fl: FedLedger,
    *,
    n_clients: int = 3,
    n_miners: int = 1,
    committee: int = 1,
    start: bool = True,
    mech_kw=None,
    **spec_kw,
) -> Task:
    mech = Mechanism(defence="bvfb", committee_size=committee, **(mech_kw or {}))
    task_id, _ = fl.publish_task(spec(**spec_kw), mech)
    clients = [fl.as_account(devnet_account(CLIENT_ACCOUNTS[i])) for i in range(n_clients)]
    for i, c in enumerate(clients):
        c.register(task_id, [5000 + 100 * i, 6000, 7000], 1000 + i)
    miners = [fl.as_account(devnet_account(MINER_ACCOUNTS[i])) for i in range(n_miners)]
    for m in miners:
        m.stake(ETH)
    if start:
        fl.start_task(task_id)
    return Task(fl, task_id, clients, miners)


def increase_time(w3, seconds: int) -> None:
    """Move the devnet clock forward and mine a block (deadlines are block timestamps)."""
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])
