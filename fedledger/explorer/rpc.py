"""Raw chain reads for the explorer: Otterscan `ots_*` when the node has them, plain `eth_*` otherwise.

anvil answers the Otterscan namespace (API level 8): a block with its fee totals in one call, a
block's transactions with their receipts in one call, an address's history without scanning, and
a failed transaction's revert data without replaying it. Hardhat and most public nodes do not, so
every method here has an `eth_*` fallback (batched JSON-RPC, bounded scans) that gives the same
answer shape. `use_ots=False` forces the fallback (tests and nodes that answer `ots_` wrongly).
"""

from __future__ import annotations

from typing import Any

from fedledger.core.chain.transport import NodeUnavailable, RpcError, hex_int, provider_for, request, request_batch

__all__ = ["ChainReader", "NodeUnavailable", "RpcError", "hex_int"]

ADDRESS_SCAN_BLOCKS = 5_000  # fallback address history: how far back to scan without ots_


class ChainReader:
    """Thin JSON-RPC client with Otterscan detection and `eth_*` fallbacks; thread-safe."""

    def __init__(self, rpc_url: str, *, use_ots: bool | None = None, timeout: float = 10.0) -> None:
        self.rpc_url = rpc_url
        self.timeout = timeout
        self._provider = provider_for(rpc_url, timeout)  # the shared transport (core.chain.transport)
        self._ots_level: int | None = None
        self._forced = use_ots
        self._chain_id: int | None = None

    # ---- transport ------------------------------------------------------------------------
    def call(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call; raises `RpcError` with the node's code, message and data."""
        return request(self._provider, method, list(params))

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Many calls in one round trip; results in call order (an error gives None)."""
        return [a.get("result") for a in request_batch(self._provider, calls)]

    def _try(self, method: str, *params: Any) -> Any:
        try:
            return self.call(method, *params)
        except RpcError:
            return None

    # ---- capabilities ---------------------------------------------------------------------
    @property
    def ots_level(self) -> int:
        """Otterscan API level of the node (0 when it has none, or when forced off)."""
        if self._forced is False:
            return 0
        if self._ots_level is None:
            try:
                self._ots_level = int(self.call("ots_getApiLevel") or 0)
            except NodeUnavailable:
                raise
            except RpcError:
                self._ots_level = 0
        return self._ots_level

    @property
    def has_ots(self) -> bool:
        return self.ots_level >= 8

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = hex_int(self.call("eth_chainId"))
        return self._chain_id

    # ---- reads ----------------------------------------------------------------------------
    def block_number(self) -> int:
        return hex_int(self.call("eth_blockNumber"))

    def block(self, number: int) -> dict[str, Any] | None:
        """A block header plus `transactionCount` and `totalFees` (wei), or None."""
        if self.has_ots:
            details = self._try("ots_getBlockDetails", number)
            if details:
                b = dict(details["block"])
                b["totalFees"] = hex_int(details.get("totalFees"))
                return b
        b = self.call("eth_getBlockByNumber", hex(number), False)
        if b is None:
            return None
        b = dict(b)
        b["transactionCount"] = len(b.get("transactions", []))
        receipts = self.batch([("eth_getTransactionReceipt", [h]) for h in b.get("transactions", [])])
        b["totalFees"] = sum(hex_int(r["gasUsed"]) * hex_int(r.get("effectiveGasPrice")) for r in receipts if r)
        return b

    def blocks(self, numbers: list[int]) -> list[dict[str, Any] | None]:
        """Headers of many blocks in one batch (no fee totals)."""
        return self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])

    def block_transactions(self, number: int, page: int = 0, size: int = 100) -> list[tuple[dict, dict]]:
        """(transaction, receipt) pairs of a block, one page."""
        if self.has_ots:
            res = self._try("ots_getBlockTransactions", number, page, size)
            if res is not None:
                return list(zip(res["fullblock"]["transactions"], res["receipts"], strict=False))
        b = self.call("eth_getBlockByNumber", hex(number), True)
        if b is None:
            return []
        txs = b["transactions"][page * size : (page + 1) * size]
        receipts = self.batch([("eth_getTransactionReceipt", [t["hash"]]) for t in txs])
        return list(zip(txs, receipts, strict=True))

    def transaction(self, tx_hash: str) -> tuple[dict, dict | None] | None:
        """(transaction, receipt or None while pending), or None if the node does not know it."""
        tx, receipt = self.batch([("eth_getTransactionByHash", [tx_hash]), ("eth_getTransactionReceipt", [tx_hash])])
        if tx is None:
            return None
        return tx, receipt

    def revert_data(self, tx: dict, receipt: dict) -> str | None:
        """Revert data (0x...) of a failed transaction: `ots_getTransactionError`, else a replay
        of the call on the state of the block before."""
        if hex_int(receipt.get("status")) == 1:
            return None
        if self.has_ots:
            data = self._try("ots_getTransactionError", tx["hash"])
            if data not in (None, "0x"):
                return str(data)
        call = {
            "from": tx["from"],
            "to": tx.get("to"),
            "data": tx.get("input"),
            "value": tx.get("value", "0x0"),
            "gas": tx.get("gas"),
        }
        try:
            self.call("eth_call", call, hex(hex_int(receipt["blockNumber"]) - 1))
        except RpcError as exc:
            data = exc.data.get("data") if isinstance(exc.data, dict) else exc.data
            return data if isinstance(data, str) and data.startswith("0x") else None
        return None

    def balance(self, address: str, block: int | str = "latest") -> int:
        return hex_int(self.call("eth_getBalance", address, block if isinstance(block, str) else hex(block)))

    def nonce(self, address: str) -> int:
        return hex_int(self.call("eth_getTransactionCount", address, "latest"))

    def has_code(self, address: str) -> bool:
        return (self.call("eth_getCode", address, "latest") or "0x") not in ("0x", "0x0")

    def address_transactions(self, address: str, page_size: int = 25, before: int = 0) -> dict[str, Any]:
        """Transactions from or to `address`, newest first: {txs: [(tx, receipt)], complete, scanned_from}.

        `before` is a block number (0 = from the head). Otterscan searches the node's index;
        the fallback scans the last ADDRESS_SCAN_BLOCKS blocks and says so (`complete` False).
        """
        if before > self.block_number():  # beyond the head is "from the head": anvil would otherwise
            before = 0  # walk every block up to `before` and stop answering (found by schemathesis)
        if self.has_ots:
            res = self._try("ots_searchTransactionsBefore", address, before, page_size)
            if res is not None:
                pairs = list(zip(res["txs"], res["receipts"], strict=False))
                return {"txs": pairs, "complete": True, "last_page": bool(res.get("lastPage")), "scanned_from": 0}
        head = self.block_number() if before == 0 else before - 1
        low = max(0, head - ADDRESS_SCAN_BLOCKS + 1)
        want = address.lower()
        found: list[dict] = []
        top = head
        while top >= low and len(found) < page_size:  # newest first, in batches of 100 blocks
            numbers = list(range(top, max(low, top - 99) - 1, -1))
            for b in self.batch([("eth_getBlockByNumber", [hex(n), True]) for n in numbers]):
                for t in reversed((b or {}).get("transactions", [])):
                    if t["from"].lower() == want or (t.get("to") or "").lower() == want:
                        found.append(t)
            top = numbers[-1] - 1
        found = found[:page_size]
        receipts = self.batch([("eth_getTransactionReceipt", [t["hash"]]) for t in found])
        return {
            "txs": list(zip(found, receipts, strict=True)),
            "complete": low == 0,
            "last_page": len(found) < page_size,
            "scanned_from": low,
        }

    def logs(self, address: str, topics: list[Any], from_block: int = 0, to_block: int | None = None) -> list[dict]:
        """eth_getLogs in chunks of 10,000 blocks (public nodes cap the range)."""
        last = self.block_number() if to_block is None else to_block
        out: list[dict] = []
        start = from_block
        while start <= last:
            end = min(start + 9_999, last)
            out += (
                self.call(
                    "eth_getLogs", {"address": address, "topics": topics, "fromBlock": hex(start), "toBlock": hex(end)}
                )
                or []
            )
            start = end + 1
        return out
