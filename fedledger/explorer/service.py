"""The explorer's read model: blocks, transactions, addresses and search, as plain JSON-ready dicts.

Both the HTML pages and the `/api/` routes render these dicts, so the page and the API can never
disagree.
"""

from __future__ import annotations

import re
from typing import Any

from eth_utils import to_checksum_address

from fedledger.core.storage import InvalidCID, Store, parse_cid
from fedledger.explorer.ledger import BadRequest, Ledger, NotFoundError, parse_address, parse_tx_hash, plain, wei
from fedledger.explorer.rpc import ChainReader, hex_int

TASK_QUERY = re.compile(r"^(?:task\s*[:#]?\s*|t[:#]|#)(\d+)$", re.IGNORECASE)


MAX_BLOCK = 2**63 - 1  # the largest block number a node answers for (64-bit quantities)


class Explorer:
    """Reads for the pages and the API over one node and one FedLedger deployment."""

    def __init__(self, reader: ChainReader, ledger: Ledger, store: Store | None = None) -> None:
        self.reader = reader
        self.ledger = ledger
        self.store = store

    # ---- chain ---------------------------------------------------------------------------
    def head(self) -> dict[str, Any]:
        n = self.reader.block_number()
        b = self.reader.blocks([n])[0] or {}
        return {
            "chain_id": self.reader.chain_id,
            "block_number": n,
            "timestamp": hex_int(b.get("timestamp")),
            "block_hash": b.get("hash"),
            "ots_api_level": self.reader.ots_level,
            "contract": self.ledger.address,
            "deploy_block": self.ledger.deploy_block,
            "tasks": self.ledger.task_count(),
        }

    def recent_blocks(self, limit: int = 20, before: int | None = None) -> list[dict[str, Any]]:
        """Headers of the newest `limit` blocks at or below `before` (default the head)."""
        top = self.reader.block_number() if before is None else min(before, self.reader.block_number())
        numbers = list(range(top, max(-1, top - limit), -1))
        return [self._header(b) for b in self.reader.blocks(numbers) if b]

    def _header(self, b: dict[str, Any]) -> dict[str, Any]:
        return {
            "number": hex_int(b["number"]),
            "hash": b["hash"],
            "parent_hash": b.get("parentHash"),
            "timestamp": hex_int(b["timestamp"]),
            "tx_count": int(b.get("transactionCount", len(b.get("transactions", [])))),
            "gas_used": hex_int(b.get("gasUsed")),
            "gas_limit": hex_int(b.get("gasLimit")),
            "base_fee_wei": wei(hex_int(b.get("baseFeePerGas"))),
            "miner": b.get("miner"),
        }

    def block(self, number: int) -> dict[str, Any]:
        if number < 0:
            raise BadRequest("block numbers start at 0")
        if number > MAX_BLOCK:  # nodes keep block numbers in 64 bits: no such block can exist
            raise NotFoundError(f"no block {number} (the chain head is {self.reader.block_number()})")
        b = self.reader.block(number)
        if b is None:
            raise NotFoundError(f"no block {number} (the chain head is {self.reader.block_number()})")
        out = self._header(b)
        out["total_fees_wei"] = wei(int(b.get("totalFees", 0)))
        out["transactions"] = [self._tx_summary(tx, r) for tx, r in self.reader.block_transactions(number)]
        return out

    def block_by_hash(self, block_hash: str) -> int | None:
        b = self.reader.call("eth_getBlockByHash", block_hash, False)
        return hex_int(b["number"]) if b else None

    def _tx_summary(self, tx: dict[str, Any], receipt: dict[str, Any] | None) -> dict[str, Any]:
        name = self.ledger.method_name(tx.get("to"), tx.get("input"))
        created = receipt.get("contractAddress") if receipt else None
        return {
            "hash": tx["hash"],
            "block": hex_int(tx.get("blockNumber")) if tx.get("blockNumber") else None,
            "from": to_checksum_address(tx["from"]),
            "to": to_checksum_address(tx["to"]) if tx.get("to") else None,
            "created": to_checksum_address(created) if created else None,
            "value_wei": wei(hex_int(tx.get("value"))),
            "status": _status(receipt),
            "gas_used": hex_int(receipt["gasUsed"]) if receipt else None,
            "method": name
            if name
            else (
                "create" if not tx.get("to") else ("transfer" if tx.get("input") in (None, "0x") else tx["input"][:10])
            ),
        }

    def tx(self, tx_hash: str) -> dict[str, Any]:
        """One transaction: decoded call, status, gas, fee, decoded events, revert reason."""
        tx_hash = parse_tx_hash(tx_hash)
        found = self.reader.transaction(tx_hash)
        if found is None:
            raise NotFoundError(f"no transaction {tx_hash} on this chain")
        tx, receipt = found
        out = self._tx_summary(tx, receipt)
        call = self.ledger.decode_input(tx.get("to"), tx.get("input"))
        out.update(
            {
                "nonce": hex_int(tx.get("nonce")),
                "gas_limit": hex_int(tx.get("gas")),
                "effective_gas_price_wei": wei(hex_int(receipt.get("effectiveGasPrice"))) if receipt else None,
                "fee_wei": wei(hex_int(receipt["gasUsed"]) * hex_int(receipt.get("effectiveGasPrice")))
                if receipt
                else None,
                "input": tx.get("input"),
                "call": plain(call) if call else None,
                "events": [],
                "revert": None,
                "revert_data": None,
            }
        )
        if receipt is not None:
            b = self.reader.blocks([hex_int(receipt["blockNumber"])])[0]
            out["timestamp"] = hex_int(b["timestamp"]) if b else None
            out["events"] = [plain(self.ledger.decode_log(log)) for log in receipt.get("logs", [])]
            if out["status"] == "failed":
                data = self.reader.revert_data(tx, receipt)
                out["revert_data"] = data
                out["revert"] = self.ledger.decode_revert(data) if data else "reverted without data (out of gas?)"
        return out

    def address(self, text: str, before: int = 0, page_size: int = 25) -> dict[str, Any]:
        """Balance, nonce, fedledger roles and transactions (newest first) of an address."""
        address = parse_address(text)
        hist = self.reader.address_transactions(address, page_size=page_size, before=before)
        txs = [self._tx_summary(t, r) for t, r in hist["txs"]]
        return {
            "address": address,
            "balance_wei": wei(self.reader.balance(address)),
            "nonce": self.reader.nonce(address),
            "is_contract": self.reader.has_code(address),
            **self.ledger.roles(address),
            "transactions": txs,
            "history_complete": hist["complete"],
            "history_scanned_from": hist["scanned_from"],
            "more": not hist["last_page"] and bool(txs),
            "next_before": txs[-1]["block"] if txs and not hist["last_page"] else None,
        }

    def cid(self, text: str) -> dict[str, Any]:
        try:
            cid = str(parse_cid(text))
        except (InvalidCID, ValueError) as exc:
            raise BadRequest(f"{text!r} is not a CID: {exc}") from None
        uses = self.ledger.cid_uses(text) or self.ledger.cid_uses(cid)
        available = None
        if self.store is not None:
            try:
                available = self.store.has(text)
            except Exception:  # a daemon that went away: the page still shows the chain's record
                available = None
        return {"cid": text, "uses": uses, "in_storage": available}

    # ---- search ---------------------------------------------------------------------------
    def search(self, q: str) -> dict[str, Any]:
        """Where a query leads: {"target": url} or {"choices": [{label, url}]}; BadRequest or
        NotFoundError otherwise. Accepts a block number, `task N`, a tx or block hash, an
        address or a CID."""
        q = q.strip()
        if not q:
            raise BadRequest("empty search: give a block number, task N, tx hash, address or CID")
        m = TASK_QUERY.match(q)
        if m:
            return {"target": f"/task/{int(m.group(1))}"}
        if q.isdigit():
            n = int(q)
            choices = []
            if n <= self.reader.block_number():
                choices.append({"label": f"Block {n}", "url": f"/block/{n}"})
            if 1 <= n <= self.ledger.task_count():
                choices.append({"label": f"Task {n}", "url": f"/task/{n}"})
            if not choices:
                raise NotFoundError(f"no block or task {n}")
            return {"target": choices[0]["url"]} if len(choices) == 1 else {"choices": choices}
        low = q.lower()
        if low.startswith("0x") and len(low) == 66:
            h = parse_tx_hash(low)
            if self.reader.transaction(h) is not None:
                return {"target": f"/tx/{h}"}
            found = self.block_by_hash(h)
            if found is not None:
                return {"target": f"/block/{found}"}
            raise NotFoundError(f"no transaction or block {h}")
        if low.startswith("0x"):
            return {"target": f"/address/{parse_address(q)}"}
        try:
            parse_cid(q)
        except (InvalidCID, ValueError):
            raise BadRequest(f"{q!r} is not a block number, task, hash, address or CID") from None
        return {"target": f"/cid/{q}"}


def _status(receipt: dict[str, Any] | None) -> str:
    if receipt is None:
        return "pending"
    return "success" if hex_int(receipt.get("status")) == 1 else "failed"
