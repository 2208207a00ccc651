"""Compile the Solidity contracts with py-solc-x over the npm WASM solc, cached by source hash."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import solcx

from fedledger.core.chain.binding import ABI_DIR
from fedledger.core.paths import node_modules, project_root

SOLC_WRAPPER = Path(__file__).with_name("solc-wrapper.cjs")
EVM_VERSION = "prague"
_IMPORT = re.compile(r'^\s*import\s+[^"]*"([^"]+)"', re.MULTILINE)


def contracts_dir() -> Path:
    return project_root() / "contracts"


def _sources() -> dict[str, str]:
    """Our sources plus everything they import (OpenZeppelin from node_modules), by import path."""
    root, modules = contracts_dir(), node_modules()
    sources: dict[str, str] = {}
    todo = [f"contracts/{p.name}" for p in sorted(root.glob("*.sol"))]
    while todo:
        name = todo.pop()
        if name in sources:
            continue
        base = project_root() if name.startswith("contracts/") else modules
        text = (base / name).read_text()
        sources[name] = text
        for imp in _IMPORT.findall(text):
            todo.append(str(Path(name).parent / imp) if imp.startswith(".") else imp)
    # normalise "a/./b" and "a/../b" paths the way solc does
    return {_norm(k): v for k, v in sources.items()}


def _norm(name: str) -> str:
    parts: list[str] = []
    for part in name.split("/"):
        if part == "..":
            parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return "/".join(parts)


def compile_contracts(*, force: bool = False) -> dict[str, dict[str, Any]]:
    """Return {contract name: {"abi": [...], "bytecode": "0x..."}} for contracts/*.sol."""
    sources = _sources()
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "viaIR": True,  # the round functions take many calldata arguments (stack too deep otherwise)
            "evmVersion": EVM_VERSION,
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
        },
    }
    digest = hashlib.sha256(json.dumps(standard_input, sort_keys=True).encode()).hexdigest()[:16]
    cache = project_root() / "build" / "contracts" / f"{digest}.json"
    if cache.exists() and not force:
        return json.loads(cache.read_text())
    try:
        out = solcx.compile_standard(standard_input, solc_binary=SOLC_WRAPPER)
    except solcx.exceptions.SolcError as exc:  # its message embeds the whole JSON output
        out = json.loads(exc.stdout_data or "{}")
    errors = [e for e in out.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise RuntimeError("solc: " + "\n".join(e["formattedMessage"] for e in errors))
    artifacts: dict[str, dict[str, Any]] = {}
    for file_name, file_contracts in out["contracts"].items():
        if not file_name.startswith("contracts/"):
            continue
        for name, c in file_contracts.items():
            code = c["evm"]["bytecode"]["object"]
            if code:  # skip abstract contracts and interfaces
                artifacts[name] = {"abi": c["abi"], "bytecode": "0x" + code}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(artifacts))
    return artifacts


def write_abis(directory: Path = ABI_DIR) -> list[Path]:
    """Write each contract's ABI as package data (`fedledger/core/chain/abi/<Name>.json`), the
    ABIs the agents load at run time; `tests/chain/test_bindings.py` checks they are current."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, artifact in sorted(compile_contracts().items()):
        path = directory / f"{name}.json"
        path.write_text(json.dumps(artifact["abi"], indent=1, sort_keys=True) + "\n")
        out.append(path)
    return out


if __name__ == "__main__":
    for written in write_abis():
        print(written)
