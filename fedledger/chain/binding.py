"""What every contract binding shares: the deployment, the signer, sends and reverting calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from eth_abi import decode, encode
from eth_abi.grammar import ABIType, TupleType, parse
from eth_account.signers.local import LocalAccount
from eth_utils import collapse_if_tuple, function_signature_to_4byte_selector, keccak, to_checksum_address
from web3 import Web3
from web3.contract import Contract

from fedledger.chain.errors import ErrorDecoder
from fedledger.chain.tx import Receipt, Transactor

B = TypeVar("B", bound="Binding")
MAX_LOG_RANGE = 10_000  # public nodes cap eth_getLogs ranges


class Binding:
    """One deployed contract seen from one account (or read-only without one)."""

    contract_name: ClassVar[str] = ""

    def __init__(self, w3: Web3, address: str, abi: list[dict[str, Any]], account: LocalAccount | None = None) -> None:
        self.w3 = w3
        self.abi = abi
        self.address = to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(address=self.address, abi=abi)
        self.decoder = ErrorDecoder(abi)
        self._codecs = {item["name"]: _Codec(item) for item in abi if item.get("type") == "function"}
        self._event_codecs = {item["name"]: _EventCodec(item) for item in abi if item.get("type") == "event"}
        self.account = account
        self._tx = Transactor(w3, account, self.decoder) if account is not None else None

    @classmethod
    def from_manifest(cls: type[B], w3: Web3, manifest: str | Path, account: LocalAccount | None = None) -> B:
        """Bind to the deployment recorded in a `deployments/<chainId>.json` manifest."""
        from deploy.compile import compile_contracts

        entry = json.loads(Path(manifest).read_text())["contracts"].get(cls.contract_name)
        if entry is None:
            raise ValueError(f"{manifest} has no {cls.contract_name}: run `fedledger deploy` again")
        return cls(w3, entry["address"], compile_contracts()[cls.contract_name]["abi"], account)

    def as_account(self: B, account: LocalAccount) -> B:
        """The same deployment seen from another account."""
        return type(self)(self.w3, self.address, self.abi, account)

    @property
    def sender(self) -> str:
        if self.account is None:
            raise ValueError("read-only binding: give an account to send transactions")
        return str(self.account.address)

    @property
    def transactor(self) -> Transactor:
        if self._tx is None:
            raise ValueError("read-only binding: give an account to send transactions")
        return self._tx

    def _send(self, fn: Any, value: int = 0, gas: int | None = None) -> Receipt:
        return self.transactor.transact(fn, value=value, gas=gas)

    def logs(self, name: str, *, from_block: int = 0, to_block: int | str = "latest", **filters: Any) -> list[Any]:
        """Decoded logs of event `name` (indexed-argument filters), in chain order, chunked."""
        event = getattr(self.contract.events, name)()
        last = self.w3.eth.block_number if to_block == "latest" else int(to_block)
        out: list[Any] = []
        start = from_block
        while start <= last:
            end = min(start + MAX_LOG_RANGE - 1, last)
            out += event.get_logs(from_block=start, to_block=end, argument_filters=filters or None)
            start = end + 1
        return out

    def decoded_events(
        self, name: str, *, from_block: int = 0, to_block: int | str = "latest", **filters: Any
    ) -> list[dict[str, Any]]:
        """Events `name` (indexed-argument filters) in chain order, as flat dicts of their arguments
        plus event, block_number, tx_hash and log_index: what `logs` gives, decoded ~5x faster."""
        codec = self._event_codecs[name]
        last = int(self.w3.provider.make_request("eth_blockNumber", [])["result"], 16) if to_block == "latest" else int(to_block)  # type: ignore[arg-type]
        topics = codec.topics(filters)
        out: list[dict[str, Any]] = []
        start = from_block
        while start <= last:
            end = min(start + MAX_LOG_RANGE - 1, last)
            query = {"address": self.address, "fromBlock": hex(start), "toBlock": hex(end), "topics": topics}
            answer = self.w3.provider.make_request("eth_getLogs", [query])  # type: ignore[arg-type]
            if "error" in answer:
                raise ContractCallFailed(f"eth_getLogs {name}: {answer['error'].get('message', answer['error'])}")
            out += [codec.decode(log) for log in answer["result"]]
            start = end + 1
        return out

    def _call(self, name: str, *args: Any, block: int | str = "latest") -> Any:
        """A view call, returned as web3 would (one output bare, several as a list, addresses
        checksummed), without web3's per-call ABI matching and middleware (~4x faster: agents poll)."""
        codec = self._codecs[name]
        tag = hex(block) if isinstance(block, int) else block
        answer = self.w3.provider.make_request("eth_call", [{"to": self.address, "data": codec.encode(args)}, tag])  # type: ignore[arg-type]
        if "error" in answer:
            data = answer["error"].get("data")
            if isinstance(data, dict):  # some nodes wrap it
                data = data.get("data")
            if isinstance(data, str) and data.startswith("0x"):
                raise self.decoder.decode(data, name) from None
            raise ContractCallFailed(f"{name}: {answer['error'].get('message', answer['error'])}")
        return codec.decode(bytes.fromhex(answer["result"].removeprefix("0x")))


class ContractCallFailed(RuntimeError):
    """A view call the node refused without revert data (wrong address, node error)."""


class _Codec:
    """Selector and eth_abi types of one ABI function."""

    def __init__(self, item: dict[str, Any]) -> None:
        inputs = [collapse_if_tuple(i) for i in item["inputs"]]
        self.selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(inputs)})")
        self.inputs = inputs
        self.outputs = [collapse_if_tuple(o) for o in item.get("outputs", [])]
        self._parsed = [parse(t) for t in self.outputs]

    def encode(self, args: tuple[Any, ...]) -> str:
        return "0x" + (self.selector + encode(self.inputs, list(args))).hex()

    def decode(self, data: bytes) -> Any:
        values = [_checksummed(t, v) for t, v in zip(self._parsed, decode(self.outputs, data), strict=True)]
        return values[0] if len(values) == 1 else values


class _EventCodec:
    """Topic and eth_abi types of one ABI event (every indexed argument here is a static type)."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.name = item["name"]
        types = [collapse_if_tuple(i) for i in item["inputs"]]
        self.topic0 = "0x" + keccak(text=f"{self.name}({','.join(types)})").hex()
        self.indexed = [i for i in item["inputs"] if i["indexed"]]
        self.data = [i for i in item["inputs"] if not i["indexed"]]
        self.order = [i["name"] for i in item["inputs"]]

    def topics(self, filters: dict[str, Any]) -> list[str | None]:
        unknown = set(filters) - {i["name"] for i in self.indexed}
        if unknown:
            raise ValueError(f"{self.name}: {sorted(unknown)} are not indexed arguments")
        topics: list[str | None] = [self.topic0]
        for i in self.indexed:
            value = filters.get(i["name"])
            topics.append(None if value is None else "0x" + encode([i["type"]], [value]).hex())
        while topics[-1] is None:
            topics.pop()
        return topics

    def decode(self, log: dict[str, Any]) -> dict[str, Any]:
        args: dict[str, Any] = {}
        for i, topic in zip(self.indexed, log["topics"][1:], strict=True):
            args[i["name"]] = _named(i, decode([i["type"]], bytes.fromhex(topic[2:]))[0])
        values = decode([collapse_if_tuple(i) for i in self.data], bytes.fromhex(log["data"][2:]))
        args |= {i["name"]: _named(i, v) for i, v in zip(self.data, values, strict=True)}
        return {
            **{k: args[k] for k in self.order}, "event": self.name, "block_number": int(log["blockNumber"], 16),
            "tx_hash": log["transactionHash"], "log_index": int(log["logIndex"], 16),
        }  # fmt: skip


def _named(item: dict[str, Any], value: Any) -> Any:
    """An event argument as web3 decodes it: structs as name -> value mappings, checksummed addresses."""
    t = item["type"]
    if t.endswith("]"):
        inner = {**item, "type": t[: t.rindex("[")]}
        return [_named(inner, v) for v in value]
    if t == "tuple":
        return {c["name"]: _named(c, v) for c, v in zip(item["components"], value, strict=True)}
    return to_checksum_address(value) if t == "address" else value


def _checksummed(t: ABIType, value: Any) -> Any:
    """eth_abi gives lower-case addresses; web3 (and our callers) use checksummed ones."""
    if t.is_array:
        return tuple(_checksummed(t.item_type, v) for v in value)
    if isinstance(t, TupleType):
        return tuple(_checksummed(c, v) for c, v in zip(t.components, value, strict=True))
    return to_checksum_address(value) if t.base == "address" else value
