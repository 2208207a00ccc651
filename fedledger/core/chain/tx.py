"""Build -> sign locally -> send raw -> wait: fast transactions with a local nonce.

web3's default path asks the node for the nonce, chain id and fees on every transaction (~61 tx/s
to anvil); keeping the nonce here and the fees cached triples that, and `transact_many` sends one
JSON-RPC batch of signed transactions (web3 v8's batch_requests refuses raw sends). Estimate,
send, receipt and replay go through `transport` as plain JSON-RPC. A transaction is a `Call`
(target, calldata, function name) that a `Binding` encodes from its ABI: no web3 contract objects.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from fedledger.core.chain.errors import ErrorDecoder, TransactionFailed
from fedledger.core.chain.transport import RpcError, answer_error, hex_int, request, request_batch

log = logging.getLogger(__name__)

BLOCK_GAS_TARGET = 15_000_000  # half of a 30M block: above it the base fee rises
GAS_MARGIN = 1.25  # estimates can be short when storage was warmed by an earlier tx in a block
FEE_REFRESH_S = 15.0


def rpc(w3: Web3, method: str, params: list[Any], decoder: ErrorDecoder | None = None, function: str = "") -> Any:
    """One plain JSON-RPC request; with a `decoder`, a revert raises `ContractRevert` naming the
    custom error, any other error `RpcError`."""
    try:
        return request(w3, method, params)
    except RpcError as exc:
        data = exc.data.get("data") if isinstance(exc.data, dict) else exc.data  # some nodes wrap it
        if decoder is not None and (isinstance(data, str) or "revert" in str(exc).lower()):
            raise decoder.decode(data if isinstance(data, str) else None, function) from None
        raise


@dataclass(frozen=True)
class Call:
    """A contract function call ready to send: target address, calldata and the function's name."""

    to: str
    data: str
    name: str


@dataclass(frozen=True)
class Receipt:
    """The parts of a receipt fedledger uses; `raw` is the node's JSON receipt (hex quantities)."""

    tx_hash: str
    block_number: int
    gas_used: int
    function: str
    raw: dict[str, Any]


class Transactor:
    """Sends transactions from one local account with a local nonce; thread-safe."""

    def __init__(self, w3: Web3, account: LocalAccount, decoder: ErrorDecoder) -> None:
        self.w3 = w3
        self.account = account
        self.address = account.address
        self._decoder = decoder
        self._lock = threading.Lock()
        self._chain_id = w3.eth.chain_id
        self._nonce = int(w3.eth.get_transaction_count(account.address, "pending"))
        self._fees: tuple[float, dict[str, int]] = (0.0, {})

    def _fee_fields(self) -> dict[str, int]:
        stamp, fees = self._fees
        if time.monotonic() - stamp > FEE_REFRESH_S or not fees:
            base = self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0
            tip = 10**9
            fees = {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}
            self._fees = (time.monotonic(), fees)
        return fees

    def _rpc(self, method: str, params: list[Any], fn: Call | None = None) -> Any:
        return rpc(self.w3, method, params, self._decoder if fn is not None else None, fn.name if fn else "")

    def _call_params(self, fn: Call, value: int) -> dict[str, Any]:
        return {"from": self.address, "to": fn.to, "data": fn.data, "value": hex(value)}

    def estimate(self, fn: Call, value: int = 0) -> int:
        """Gas estimate; a revert raises `ContractRevert` naming the custom error."""
        return int(self._rpc("eth_estimateGas", [self._call_params(fn, value)], fn), 16)

    def fee_fields(self, full_blocks: int = 0) -> dict[str, int]:
        """EIP-1559 fees; `full_blocks` raises the cap by the base fee's worst-case growth (12.5 %
        per full block) so a large batch does not price its own tail out of the pool."""
        fees = dict(self._fee_fields())
        if full_blocks:
            tip = fees["maxPriorityFeePerGas"]
            fees["maxFeePerGas"] = int((fees["maxFeePerGas"] - tip) * 1.125**full_blocks) + tip
        return fees

    def _build(
        self, fn: Call, value: int, gas: int | None, fees: dict[str, int] | None = None
    ) -> tuple[dict[str, Any], bytes]:
        if gas is None:
            gas = int(self.estimate(fn, value) * GAS_MARGIN) + 10_000
        with self._lock:
            nonce = self._nonce
            self._nonce += 1
        tx: dict[str, Any] = {
            "to": fn.to,
            "data": fn.data,
            "value": value,
            "gas": gas,
            "nonce": nonce,
            "chainId": self._chain_id,
            **(fees or self._fee_fields()),
        }
        signed = self.account.sign_transaction(tx)
        return tx, bytes(signed.raw_transaction)

    def transact(self, fn: Call, *, value: int = 0, gas: int | None = None, timeout: float = 120) -> Receipt:
        """Send one transaction and wait for its receipt; reverts raise `ContractRevert`."""
        try:
            _, raw = self._build(fn, value, gas)
            tx_hash = self._rpc("eth_sendRawTransaction", ["0x" + raw.hex()])
        except RpcError as exc:
            if "nonce" in str(exc).lower():  # another process used this key: resync and retry once
                self.resync_nonce()
                _, raw = self._build(fn, value, gas)
                tx_hash = self._rpc("eth_sendRawTransaction", ["0x" + raw.hex()])
            else:
                raise
        deadline = time.monotonic() + timeout
        while (receipt := self._rpc("eth_getTransactionReceipt", [tx_hash])) is None:
            if time.monotonic() > deadline:
                raise TransactionFailed(f"{fn.name}: transaction {tx_hash} not mined after {timeout:.0f} s")
            time.sleep(0.02)
        return self._check(fn, receipt, value)

    def transact_many(self, calls: list[tuple[Call, int, int]], timeout: float = 300) -> list[Receipt]:
        """Send (fn, value, gas) calls as one JSON-RPC batch of signed transactions, then wait for all."""
        full_blocks = math.ceil(sum(gas for _, _, gas in calls) / BLOCK_GAS_TARGET)
        fees = self.fee_fields(full_blocks)
        raws = [self._build(fn, value, gas, fees)[1] for fn, value, gas in calls]
        answers = request_batch(self.w3, [("eth_sendRawTransaction", ["0x" + raw.hex()]) for raw in raws])
        errors = [e for a in answers if (e := answer_error("eth_sendRawTransaction", a)) is not None]
        if errors:
            self.resync_nonce()
            raise TransactionFailed(f"{len(errors)} of {len(raws)} batched transactions rejected: {errors[0]}")
        hashes = [answer["result"] for answer in answers]
        mined = self._wait_all(hashes, timeout)
        return [self._check(fn, r, value) for (fn, value, _), r in zip(calls, mined, strict=True)]

    def _wait_all(self, hashes: list[str], timeout: float) -> list[Any]:
        """Receipts of `hashes`. anvil's instant mining can leave the tail of a burst in its pool
        until the next transaction arrives; on a dev node a stalled wait is flushed with evm_mine."""
        receipts: dict[str, Any] = {}
        deadline, stalled_since = time.monotonic() + timeout, time.monotonic()
        dev = None
        while len(receipts) < len(hashes):
            before = len(receipts)
            todo = [h for h in hashes if h not in receipts]
            for h, answer in zip(
                todo, request_batch(self.w3, [("eth_getTransactionReceipt", [h]) for h in todo]), strict=True
            ):
                if answer.get("result"):
                    receipts[h] = answer["result"]
            if len(receipts) > before:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > 2.0:
                if dev is None:
                    version = str(self.w3.client_version).lower()
                    dev = "anvil" in version or "hardhat" in version
                if dev:
                    request(self.w3, "evm_mine", [])
                stalled_since = time.monotonic()
            if time.monotonic() > deadline:
                raise TransactionFailed(
                    f"{len(hashes) - len(receipts)} of {len(hashes)} transactions not mined after {timeout:.0f} s"
                )
            if len(receipts) < len(hashes):
                time.sleep(0.02)
        return [receipts[h] for h in hashes]

    def resync_nonce(self) -> None:
        with self._lock:
            self._nonce = int(self.w3.eth.get_transaction_count(self.address, "pending"))

    def _check(self, fn: Call, receipt: dict[str, Any], value: int) -> Receipt:
        if hex_int(receipt["status"]) != 1:
            # Recover the revert reason by replaying the call: on the state it was mined on, and
            # then now (a revert that only happens when mined, e.g. a deadline that passed
            # between the estimate and the block, shows up in the second replay).
            for block in (hex(hex_int(receipt["blockNumber"]) - 1), "latest"):
                self._rpc("eth_call", [self._call_params(fn, value), block], fn)
            gas = hex_int(receipt["gasUsed"])
            raise TransactionFailed(
                f"{fn.name}: transaction {receipt['transactionHash']} reverted when mined "
                f"(gas used {gas:,}); replaying it succeeds, so the block's own conditions (its timestamp "
                "against a deadline, or a transaction ordered before it) made it fail"
            )
        return Receipt(
            tx_hash=str(receipt["transactionHash"]),
            block_number=hex_int(receipt["blockNumber"]),
            gas_used=hex_int(receipt["gasUsed"]),
            function=fn.name,
            raw=receipt,
        )
