"""Chain errors: reverts are translated once, here, into exceptions naming the custom error."""

from __future__ import annotations

from typing import Any

from eth_abi import decode
from eth_utils import function_abi_to_4byte_selector, function_signature_to_4byte_selector, get_abi_input_types


class ChainError(RuntimeError):
    """Base class of fedledger's chain errors."""


class ContractRevert(ChainError):
    """A transaction or call reverted; `name` is the decoded custom error (or Error/Panic)."""

    def __init__(self, name: str, args: dict[str, Any], function: str = "") -> None:
        self.name = name
        self.args_ = args
        self.function = function
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        where = f"{function}: " if function else ""
        super().__init__(f"{where}reverted with {name}({shown})")


class TransactionFailed(ChainError):
    """A mined transaction has status 0 and the revert could not be decoded."""


def _show(v: Any) -> str:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    return str(v)


class ErrorDecoder:
    """Maps 4-byte selectors of an ABI's custom errors to their names and argument types; enum
    arguments (typed codes instead of strings, e.g. `FedLedgerInvalidProposal(ProposalField)`)
    decode to the Python mirror of the Solidity enum."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str], list[Any]]] = {}
        for item in abi:
            if item.get("type") != "error":
                continue
            self._errors[function_abi_to_4byte_selector(item)] = (  # type: ignore[arg-type]
                item["name"],
                [i["name"] for i in item["inputs"]],
                list(get_abi_input_types(item)),  # type: ignore[arg-type]
                [_enum(i) for i in item["inputs"]],
            )
        self._errors[function_signature_to_4byte_selector("Error(string)")] = ("Error", ["message"], ["string"], [None])
        self._errors[function_signature_to_4byte_selector("Panic(uint256)")] = ("Panic", ["code"], ["uint256"], [None])

    def decode(self, data: bytes | str | None, function: str = "") -> ContractRevert:
        if isinstance(data, str):
            data = bytes.fromhex(data.removeprefix("0x"))
        if not data or len(data) < 4:
            return ContractRevert("UnknownRevert", {}, function)
        entry = self._errors.get(data[:4])
        if entry is None:
            return ContractRevert("UnknownRevert", {"data": data}, function)
        name, names, types, enums = entry
        values = [v if e is None else _as_enum(e, v) for v, e in zip(decode(types, data[4:]), enums, strict=True)]
        return ContractRevert(name, dict(zip(names, values, strict=True)), function)


def _enum(item: dict[str, Any]) -> Any:
    from fedledger.core.chain.types import ENUMS

    internal = str(item.get("internalType", ""))
    return ENUMS.get(internal.rsplit(".", 1)[-1]) if internal.startswith("enum ") else None


def _as_enum(enum: Any, value: int) -> Any:
    try:
        return enum(value)
    except ValueError:
        return value
