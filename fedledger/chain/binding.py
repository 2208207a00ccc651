"""What every contract binding shares: the deployment, the signer, sends and reverting calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
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

    def _call(self, name: str, *args: Any, block: int | str = "latest") -> Any:
        fn = getattr(self.contract.functions, name)(*args)
        try:
            return fn.call(block_identifier=block)
        except Exception as exc:
            data = getattr(exc, "data", None)
            if isinstance(data, str) and data.startswith("0x"):
                raise self.decoder.decode(data, name) from None
            raise
