"""Typed bindings of the FedLedger contract: what agents, the CLI and the explorer call.

Agents never import web3: they call these methods, which sign locally (see `tx.Transactor`) and
raise `ContractRevert` naming the contract's custom error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import requests
from eth_abi import encode
from eth_utils import keccak
from web3 import Web3
from web3.types import RPCEndpoint

from fedledger.core.chain.binding import Binding
from fedledger.core.chain.transport import NodeUnavailable
from fedledger.core.chain.tx import Receipt
from fedledger.core.chain.types import Mechanism, Proposal, RoundInfo, Submission, TaskSpec, TaskStatus


def connect(rpc_url: str, timeout: float = 30) -> Web3:
    session = requests.Session()
    # Proxy settings are read from the environment on every request otherwise (a tenth of an
    # agent's time in profiles); honour them once, here.
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(rpc_url)
    # web3 asks the node for the chain id before every call and transaction otherwise
    provider = Web3.HTTPProvider(
        rpc_url,
        request_kwargs={"timeout": timeout},
        session=session,
        cache_allowed_requests=True,
        cacheable_requests={RPCEndpoint("eth_chainId")},
    )
    w3 = Web3(provider)
    if not w3.is_connected():
        raise NodeUnavailable(f"no Ethereum node answers at {rpc_url}")
    return w3


def encode_scores(scores: Sequence[int]) -> bytes:
    """Pack a score vector: one big-endian uint16 (basis points, 0..10000) per client index."""
    out = bytearray()
    for s in scores:
        if not 0 <= int(s) <= 10000:
            raise ValueError(f"score {s} outside 0..10000 bps")
        out += int(s).to_bytes(2, "big")
    return bytes(out)


def decode_scores(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def score_commitment(task_id: int, round_: int, client: str, scores: bytes, salt: bytes) -> bytes:
    """keccak256(abi.encodePacked(taskId, round, client, scores, salt)), as the contract computes it."""
    packed = task_id.to_bytes(32, "big") + round_.to_bytes(4, "big") + bytes.fromhex(client[2:]) + scores + salt
    return keccak(packed)


def model_commitment(
    task_id: int,
    round_: int,
    client: str,
    weights_cid: str,
    digest: bytes,
    behaviour_cid: str,
    n_samples: int,
    salt: bytes,
) -> bytes:
    """keccak256(abi.encode(taskId, round, client, weightsCID, digest, behaviourCID, nSamples, salt)),
    as the contract's `modelCommitment`."""
    return keccak(
        encode(
            ["uint256", "uint32", "address", "string", "bytes32", "string", "uint32", "bytes32"],
            [task_id, round_, client, weights_cid, digest, behaviour_cid, n_samples, salt],
        )
    )


def draw_committee(seed: bytes, miners: Sequence[str], stakes: Sequence[int], size: int) -> list[str]:
    """Off-chain replica of `MinerStaking.drawCommittee`: stake-weighted sampling without replacement."""
    size = min(size, len(miners))
    remaining = sum(stakes)
    taken = [False] * len(miners)
    committee = []
    for i in range(size):
        r = int.from_bytes(keccak(seed + i.to_bytes(32, "big")), "big") % remaining
        for j, stake in enumerate(stakes):
            if taken[j]:
                continue
            if r < stake:
                taken[j] = True
                committee.append(miners[j])
                remaining -= stake
                break
            r -= stake
    return committee


class FedLedger(Binding):
    """The FedLedger deployment, seen from one account (or read-only without one)."""

    contract_name = "FedLedger"

    # ---- requester -------------------------------------------------------------------------
    def publish_task(self, spec: TaskSpec, mech: Mechanism) -> tuple[int, Receipt]:
        """Publish a task escrowing reward_per_round * rounds; returns (task id, receipt)."""
        value = spec.reward_per_round * spec.rounds
        receipt = self._send("publishTask", spec.to_abi(), mech.to_abi(), value=value)
        return int(self.receipt_events(receipt, "TaskPublished")[0]["taskId"]), receipt

    def cancel_task(self, task_id: int) -> Receipt:
        return self._send("cancelTask", task_id)

    def reclaim_escrow(self, task_id: int) -> Receipt:
        return self._send("reclaimEscrow", task_id)

    def start_task(self, task_id: int) -> Receipt:
        return self._send("startTask", task_id)

    # ---- data owner --------------------------------------------------------------------------
    def register(self, task_id: int, self_assessment: Sequence[int], n_samples: int) -> Receipt:
        return self._send("register", task_id, list(self_assessment), n_samples)

    def commit_model(self, task_id: int, round_: int, commitment: bytes) -> Receipt:
        """Train phase: commit to this round's model (see `model_commitment`)."""
        return self._send("commitModel", task_id, round_, commitment)

    def submit_model(
        self,
        task_id: int,
        round_: int,
        weights_cid: str,
        digest: bytes,
        behaviour_cid: str,
        n_samples: int,
        salt: bytes,
    ) -> Receipt:
        """Submit phase: reveal the committed model."""
        return self._send("submitModel", task_id, round_, weights_cid, digest, behaviour_cid, n_samples, salt)

    def commit_scores(self, task_id: int, round_: int, commitment: bytes) -> Receipt:
        return self._send("commitScores", task_id, round_, commitment)

    def reveal_scores(self, task_id: int, round_: int, scores: bytes, salt: bytes) -> Receipt:
        return self._send("revealScores", task_id, round_, scores, salt)

    def withdraw(self) -> Receipt:
        return self._send("withdraw")

    # ---- miner -------------------------------------------------------------------------------
    def stake(self, value: int) -> Receipt:
        return self._send("stake", value=value)

    def request_unstake(self) -> Receipt:
        return self._send("requestUnstake")

    def withdraw_stake(self) -> Receipt:
        return self._send("withdrawStake")

    def propose(self, task_id: int, round_: int, proposal: Proposal) -> Receipt:
        return self._send("propose", task_id, round_, proposal.to_abi())

    # ---- anyone ------------------------------------------------------------------------------
    def advance(self, task_id: int) -> Receipt:
        return self._send("advance", task_id)

    # ---- reads -------------------------------------------------------------------------------
    def task_count(self) -> int:
        return int(self._call("taskCount"))

    def task_info(self, task_id: int) -> dict[str, Any]:
        requester, status, current_round, published_at, escrow = self._call("taskInfo", task_id)
        return {
            "requester": requester,
            "status": TaskStatus(status),
            "current_round": current_round,
            "published_at": published_at,
            "escrow": escrow,
        }

    def task_spec(self, task_id: int) -> TaskSpec:
        return TaskSpec.from_abi(self._call("taskSpec", task_id))

    def task_mechanism(self, task_id: int) -> Mechanism:
        return Mechanism.from_abi(self._call("taskMechanism", task_id))

    def global_model(self, task_id: int) -> tuple[str, bytes]:
        cid, digest = self._call("globalModel", task_id)
        return cid, bytes(digest)

    def clients(self, task_id: int) -> list[str]:
        return list(self._call("clientsOf", task_id))

    def client_info(self, task_id: int, client: str) -> dict[str, int]:
        index1, reputation, n_samples, self_score, registered_at = self._call("clientInfo", task_id, client)
        return {
            "index": index1 - 1,
            "registered": index1 > 0,
            "reputation": reputation,
            "n_samples": n_samples,
            "self_score_bps": self_score,
            "registered_at": registered_at,
        }

    def reputations(self, task_id: int, block: int | str = "latest") -> list[int]:
        return list(self._call("reputationsOf", task_id, block=block))

    def round_info(self, task_id: int, round_: int) -> RoundInfo:
        return RoundInfo.from_abi(self._call("roundInfo", task_id, round_))

    def vote_of(self, task_id: int, round_: int, miner: str) -> bytes:
        return bytes(self._call("voteOf", task_id, round_, miner))

    def votes_for(self, task_id: int, round_: int, proposal_hash: bytes) -> int:
        return int(self._call("votesFor", task_id, round_, proposal_hash))

    def credit_of(self, who: str) -> int:
        return int(self._call("creditOf", who))

    def stake_of(self, miner: str) -> dict[str, int]:
        amount, unlock_at, index1, duty_until = self._call("stakeOf", miner)
        return {"amount": amount, "unlock_at": unlock_at, "active": index1 > 0, "duty_until": duty_until}

    def active_miners(self, block: int | str = "latest") -> tuple[list[str], list[int]]:
        miners, stakes = self._call("activeMiners", block=block)
        return list(miners), [int(s) for s in stakes]

    def accounting(self) -> dict[str, int]:
        credits, escrow = self._call("accounting")
        return {"credits": credits, "escrow": escrow, "stakes": int(self._call("totalStaked"))}

    def balance(self) -> int:
        return int(self.w3.eth.get_balance(self.address))

    def min_stake(self) -> int:
        return int(self._call("minStake"))

    # ---- events ------------------------------------------------------------------------------
    def events(
        self, name: str, *, from_block: int = 0, to_block: int | str = "latest", **filters: Any
    ) -> list[dict[str, Any]]:
        """Decoded events `name` with indexed-argument filters, in chain order, as flat dicts."""
        return self.decoded_events(name, from_block=from_block, to_block=to_block, **filters)

    def submissions(self, task_id: int, round_: int, *, from_block: int = 0) -> list[Submission]:
        """Every model submitted in a round, from its `ModelSubmitted` events."""
        clients = {c: i for i, c in enumerate(self.clients(task_id))}
        out = []
        for e in self.events("ModelSubmitted", from_block=from_block, taskId=task_id, round=round_):
            out.append(
                Submission(
                    client=e["client"],
                    index=clients[e["client"]],
                    weights_cid=e["weightsCID"],
                    digest=bytes(e["digest"]),
                    behaviour_cid=e["behaviourCID"],
                    n_samples=int(e["nSamples"]),
                    block_number=e["block_number"],
                    tx_hash=e["tx_hash"],
                )
            )
        return out

    def commit_order(self, task_id: int, round_: int, *, from_block: int = 0) -> dict[str, tuple[int, int]]:
        """Client address -> (block, log index) of its model commitment in a round: who committed first."""
        return {
            e["client"]: (int(e["block_number"]), int(e["log_index"]))
            for e in self.events("ModelCommitted", from_block=from_block, taskId=task_id, round=round_)
        }

    def revealed_scores(self, task_id: int, round_: int, *, from_block: int = 0) -> dict[int, list[int]]:
        """Client index -> revealed score vector (bps per client index) for a round."""
        clients = {c: i for i, c in enumerate(self.clients(task_id))}
        return {
            clients[e["client"]]: decode_scores(bytes(e["scores"]))
            for e in self.events("ScoresRevealed", from_block=from_block, taskId=task_id, round=round_)
        }

    def proposals(self, task_id: int, round_: int, *, from_block: int = 0) -> dict[bytes, Proposal]:
        return {
            bytes(e["proposalHash"]): Proposal.from_abi(e["proposal"])
            for e in self.events("ProposalSubmitted", from_block=from_block, taskId=task_id, round=round_)
        }
