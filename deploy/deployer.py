"""Deploy the contracts to any RPC URL and record the deployment in deployments/<chainId>.json."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from fedledger.core.chain.errors import ErrorDecoder
from fedledger.core.chain.manifest import manifest_path
from fedledger.core.chain.tx import Transactor
from fedledger.deploy.compile import compile_contracts

DEFAULT_MIN_STAKE = 10**18  # 1 ETH
DEFAULT_UNSTAKE_DELAY = 7 * 24 * 3600


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def deploy(
    w3: Web3,
    account: LocalAccount,
    *,
    force: bool = False,
    directory: Path | None = None,
    min_stake: int = DEFAULT_MIN_STAKE,
    unstake_delay: int = DEFAULT_UNSTAKE_DELAY,
) -> tuple[dict[str, Any], bool]:
    """Deploy FedLedger unless the manifest's deployment is live on this chain with the same
    ABI and bytecode. Returns (manifest, deployed_now)."""
    artifact = compile_contracts()["FedLedger"]
    chain_id = w3.eth.chain_id
    path = manifest_path(chain_id, directory)
    abi_digest, code_digest = _digest(artifact["abi"]), hashlib.sha256(artifact["bytecode"].encode()).hexdigest()
    if path.exists() and not force:
        manifest = json.loads(path.read_text())
        entry = manifest["contracts"]["FedLedger"]
        live = len(w3.eth.get_code(entry["address"])) > 0
        if live and entry["abiSha256"] == abi_digest and entry["bytecodeSha256"] == code_digest:
            if _is_current(w3, manifest["contracts"].get("DataRegistry"), "DataRegistry"):
                return manifest, False
            manifest["contracts"]["DataRegistry"] = deploy_data_registry(w3, account)  # added beside FedLedger
            path.write_text(json.dumps(manifest, indent=2) + "\n")
            return manifest, True

    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = Transactor(w3, account, ErrorDecoder(artifact["abi"]))
    gas = int(
        w3.eth.estimate_gas(
            {"from": account.address, "data": factory.constructor(min_stake, unstake_delay).data_in_transaction}
        )
        * 1.2
    )
    raw_tx = factory.constructor(min_stake, unstake_delay).build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "gas": gas,
            "chainId": chain_id,
            **tx.fee_fields(),
        }
    )
    signed = account.sign_transaction(raw_tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), timeout=120)
    if receipt["status"] != 1:
        raise RuntimeError("FedLedger deployment failed")
    manifest = {
        "chainId": chain_id,
        "deployer": account.address,
        "deployedAt": int(time.time()),
        "contracts": {
            "FedLedger": {
                "address": receipt["contractAddress"],
                "block": int(receipt["blockNumber"]),
                "tx": "0x" + bytes(receipt["transactionHash"]).hex(),
                "gasUsed": int(receipt["gasUsed"]),
                "abiSha256": abi_digest,
                "bytecodeSha256": code_digest,
                "minStake": min_stake,
                "unstakeDelay": unstake_delay,
            }
        },
    }
    manifest["contracts"]["DataRegistry"] = deploy_data_registry(w3, account)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest, True


def _is_current(w3: Web3, entry: dict[str, Any] | None, name: str) -> bool:
    """Whether a manifest entry is live on this chain with the ABI and bytecode compiled now."""
    if entry is None:
        return False
    artifact = compile_contracts()[name]
    return (
        len(w3.eth.get_code(entry["address"])) > 0
        and entry["abiSha256"] == _digest(artifact["abi"])
        and entry["bytecodeSha256"] == hashlib.sha256(artifact["bytecode"].encode()).hexdigest()
    )


def deploy_data_registry(w3: Web3, account: LocalAccount) -> dict[str, Any]:
    """Deploy DataRegistry (Model Chain's anonymous data sharing; no constructor arguments)."""
    artifact = compile_contracts()["DataRegistry"]
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    fees = Transactor(w3, account, ErrorDecoder(artifact["abi"]))._fee_fields()
    data = factory.constructor().data_in_transaction
    gas = int(w3.eth.estimate_gas({"from": account.address, "data": data}) * 1.2)
    raw_tx = factory.constructor().build_transaction(
        {
            "from": account.address,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "gas": gas,
            "chainId": w3.eth.chain_id,
            **fees,
        }
    )
    signed = account.sign_transaction(raw_tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), timeout=120)
    if receipt["status"] != 1:
        raise RuntimeError("DataRegistry deployment failed")
    return {
        "address": receipt["contractAddress"],
        "block": int(receipt["blockNumber"]),
        "tx": "0x" + bytes(receipt["transactionHash"]).hex(),
        "gasUsed": int(receipt["gasUsed"]),
        "abiSha256": _digest(artifact["abi"]),
        "bytecodeSha256": hashlib.sha256(artifact["bytecode"].encode()).hexdigest(),
    }
