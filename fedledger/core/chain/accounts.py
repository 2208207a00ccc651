"""Loading signing keys: a hex key, an encrypted keystore, or a devnet account index.

Keys are never logged: `LocalAccount` objects are passed around, never their key material.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

# anvil's and Hardhat's public test mnemonic (devnet accounts only, never real funds)
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"

Account.enable_unaudited_hdwallet_features()


def owner_secret(account: LocalAccount, purpose: str, task_id: int, round_: int) -> bytes:
    """A 32-byte secret only `account`'s key yields, recomputable after a restart: the hash of a
    deterministic (RFC 6979) signature over (purpose, task, round). Used for the score commitment's
    salt and the seed of a data owner's DP noise; nothing on chain or in storage reveals it."""
    msg = encode_defunct(text=f"fedledger {purpose}: task {task_id} round {round_}")
    return bytes(keccak(account.sign_message(msg).signature))


def devnet_account(index: int) -> LocalAccount:
    """Devnet account `index` (m/44'/60'/0'/0/index of the public test mnemonic)."""
    return Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def load_account(
    *, key: str | None = None, keystore: str | Path | None = None, password: str | None = None, index: int | None = None
) -> LocalAccount:
    """One of: a hex private key, an eth-account keystore file (password from the argument or env
    FEDLEDGER_KEYSTORE_PASSWORD), or a devnet account index."""
    if key:
        try:
            return Account.from_key(key)
        except (ValueError, TypeError):  # the message may quote the key: never repeat it
            raise ValueError("--key is not a private key: give 0x and 64 hex digits (or use --keystore)") from None
    if keystore:
        if not Path(keystore).is_file():
            raise ValueError(f"no keystore file at {keystore} (--keystore)")
        password = password if password is not None else os.environ.get("FEDLEDGER_KEYSTORE_PASSWORD")
        if password is None:
            raise ValueError("keystore needs a password (--password or FEDLEDGER_KEYSTORE_PASSWORD)")
        data = json.loads(Path(keystore).read_text())
        return Account.from_key(Account.decrypt(data, password))
    if index is not None:
        if index < 0:
            raise ValueError(f"--account {index}: devnet account indexes start at 0")
        return devnet_account(index)
    raise ValueError("give a key: --key HEX, --keystore FILE or --account INDEX (devnet)")
