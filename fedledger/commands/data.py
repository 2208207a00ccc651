"""`fedledger data ...`: Model Chain's anonymous data sharing from the command line.

    fedledger data keygen                       # ring key in .fedledger/ringkey.json (mode 0600)
    fedledger data register-key                 # publish the public key (with a possession proof)
    fedledger data create-pool --cutoff-in 3600 # open a pool (cut-off, test %, L)
    fedledger data share FILE --pool 0 --ring-size 8 --account 7   # upload, ring-sign, submit
    fedledger data split --pool 0               # seed from a block hash after the cut-off; train/test CIDs

Secret keys never reach the terminal or a log: only public keys, ids, CIDs and hashes are printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from fedledger.commands.errors import fail

if TYPE_CHECKING:  # imported where used: the CLI starts without web3 and py_ecc
    from fedledger.core.ringsig import KeyPair

data_app = typer.Typer(
    help="Anonymous data sharing with linkable ring signatures (Model Chain) and the seeded train/test split.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secret keys
)

DEFAULT_KEY_FILE = Path(".fedledger") / "ringkey.json"
KEY_SCHEME = "lsag-bn254-v1"

KeyFile = Annotated[Path, typer.Option("--key-file", help="Ring key file written by `fedledger data keygen`.")]
Rpc = Annotated[str | None, typer.Option(help="RPC URL (default: the recorded devnet).")]
Manifest = Annotated[Path | None, typer.Option(help="Deployment manifest (default: deployments/<chainId>.json).")]
EthKey = Annotated[
    str | None, typer.Option("--key", help="Sender's Ethereum private key, hex.", envvar="FEDLEDGER_KEY")
]
Keystore = Annotated[Path | None, typer.Option(help="Sender's encrypted keystore (eth-account).")]
AccountIdx = Annotated[int | None, typer.Option("--account", help="Sender: devnet account index (test mnemonic).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(msg: str) -> NoReturn:
    fail(msg)


# ---- key files --------------------------------------------------------------------------------


def save_key(key: KeyPair, path: Path) -> None:
    """Write a ring key readable by its owner only (created 0600, never world-readable in between)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"scheme": KEY_SCHEME, "secret": hex(key.secret), "public": [hex(c) for c in key.public]})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body + "\n")


def load_key(path: Path) -> KeyPair:
    """Read a ring key file and check that its public key matches its secret."""
    from fedledger.core.ringsig import KeyPair

    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no key file at {path}: run `fedledger data keygen` first") from None
    if data.get("scheme") != KEY_SCHEME:
        raise ValueError(f"{path}: not a {KEY_SCHEME} key")
    key = KeyPair.from_secret(int(data["secret"], 16))
    if list(key.public) != [int(c, 16) for c in data["public"]]:
        raise ValueError(f"{path}: public key does not match the secret key (corrupt file)")
    return key


# ---- chain plumbing -------------------------------------------------------------------------------


def _registry(
    rpc: str | None,
    manifest: Path | None,
    *,
    key: str | None = None,
    keystore: Path | None = None,
    account: int | None = None,
    need_sender: bool = True,
    default_account: int | None = 0,
) -> Any:
    from fedledger.core.chain import connect, load_account
    from fedledger.core.chain.data_registry import DataRegistry
    from fedledger.core.chain.manifest import default_rpc, manifest_path

    w3 = connect(rpc or default_rpc())
    path = manifest or manifest_path(w3.eth.chain_id)
    if not path.exists():
        raise ValueError(f"no deployment manifest at {path}: run `fedledger deploy`")
    signer = None
    if need_sender:
        if key is None and keystore is None and account is None:
            if default_account is None:
                raise ValueError("give the sender: --key HEX, --keystore FILE or --account INDEX")
            account = default_account
        signer = load_account(key=key, keystore=keystore, index=account)
    return DataRegistry.from_manifest(w3, path, signer)


def _run(fn: Any) -> Any:
    """Domain errors -> one line on stderr and exit code 2 (never a traceback with locals)."""
    from web3.exceptions import Web3Exception

    from fedledger.core.chain import ChainError
    from fedledger.core.storage import StorageError

    try:
        return fn()
    except (ValueError, ConnectionError, ChainError, StorageError, Web3Exception) as exc:
        _fail(str(exc))


# ---- commands -------------------------------------------------------------------------------------


@data_app.command()
def keygen(
    out: Annotated[Path, typer.Option(help="Where to write the key (mode 0600).")] = DEFAULT_KEY_FILE,
    force: Annotated[bool, typer.Option(help="Overwrite an existing key file.")] = False,
) -> None:
    """Create a ring-signature key (BN254) and print its public key (never the secret)."""
    from fedledger.core.ringsig import KeyPair

    if out.exists() and not force:
        _fail(f"{out} exists; pass --force to replace it (the old key is lost)")
    key = KeyPair.generate()
    save_key(key, out)
    typer.echo(f"ring key written to {out}")
    typer.echo(f"public key: x={hex(key.public[0])} y={hex(key.public[1])}")


@data_app.command("register-key")
def register_key(
    key_file: KeyFile = DEFAULT_KEY_FILE,
    rpc: Rpc = None,
    manifest: Manifest = None,
    key: EthKey = None,
    keystore: Keystore = None,
    account: AccountIdx = None,
) -> None:
    """Register the ring key on chain (with a proof of possession); print its key id.

    The registering address is public and linked to the key: that is expected, anonymity comes
    from the ring when sharing. Default sender: devnet account 0.
    """

    def go() -> None:
        ring_key = load_key(key_file)
        reg = _registry(rpc, manifest, key=key, keystore=keystore, account=account)
        existing = reg.key_id_of(ring_key.public)
        if existing is not None:
            typer.echo(f"already registered as key {existing}")
            return
        key_id, receipt = reg.register_key(ring_key)
        typer.echo(f"registered key {key_id} (tx {receipt.tx_hash}, {receipt.gas_used} gas)")

    _run(go)


@data_app.command("create-pool")
def create_pool(
    cutoff_in: Annotated[int, typer.Option(help="Cut-off, seconds after the latest block.", min=1)] = 3600,
    test_percent: Annotated[int, typer.Option(min=1, max=99, help="Share of the pool in the common test set, %.")] = 20,
    max_future_skew: Annotated[int, typer.Option(min=1, help="L: how far (s) a timestamp may be ahead of now.")] = 300,
    rpc: Rpc = None,
    manifest: Manifest = None,
    key: EthKey = None,
    keystore: Keystore = None,
    account: AccountIdx = None,
) -> None:
    """Open a data pool; print its id. Default sender: devnet account 0."""

    def go() -> None:
        reg = _registry(rpc, manifest, key=key, keystore=keystore, account=account)
        now = int(reg.w3.eth.get_block("latest")["timestamp"])
        pool_id, receipt = reg.create_pool(now + cutoff_in, test_percent, max_future_skew)
        typer.echo(
            f"pool {pool_id}: cut-off {now + cutoff_in}, test {test_percent} %, L {max_future_skew} s (tx {receipt.tx_hash})"
        )

    _run(go)


@data_app.command()
def share(
    file: Annotated[Path, typer.Argument(help="Data file to share.", exists=True, dir_okay=False)],
    pool: Annotated[int, typer.Option(help="Pool id.")] = 0,
    ring_size: Annotated[
        int, typer.Option(min=2, help="Ring size N: you plus N-1 registered keys drawn at random.")
    ] = 4,
    key_file: KeyFile = DEFAULT_KEY_FILE,
    store: Annotated[
        str, typer.Option(help="embedded:PATH or http://HOST:PORT (IPFS RPC).")
    ] = "embedded:.fedledger/store",
    timestamp: Annotated[int | None, typer.Option(help="Data timestamp (default: latest block time).")] = None,
    rpc: Rpc = None,
    manifest: Manifest = None,
    key: EthKey = None,
    keystore: Keystore = None,
    account: AccountIdx = None,
    as_json: AsJson = False,
) -> None:
    """Upload FILE to storage, ring-sign (CID, digest, timestamp) and submit the data transaction.

    The sender is public: pass an address NOT linked to your ring key (a relayer or a fresh
    account), or the ring hides nothing. There is no default sender for this reason.
    """
    from fedledger.core.chain.data_registry import pick_ring
    from fedledger.core.storage import open_store

    def go() -> None:
        ring_key = load_key(key_file)
        reg = _registry(rpc, manifest, key=key, keystore=keystore, account=account, default_account=None)
        my_id = reg.key_id_of(ring_key.public)
        if my_id is None:
            raise ValueError("this ring key is not registered: run `fedledger data register-key`")
        ring_ids = pick_ring(my_id, reg.key_count(), ring_size)
        data = file.read_bytes()
        cid = open_store(store).put(data)
        digest = hashlib.sha256(data).digest()
        ts = timestamp if timestamp is not None else int(reg.w3.eth.get_block("latest")["timestamp"])
        sig = reg.sign_share(ring_key, pool, cid, digest, ts, ring_ids)
        share_id, receipt = reg.share(pool, cid, digest, ts, ring_ids, sig)
        out = {
            "pool": pool,
            "share": share_id,
            "cid": cid,
            "sha256": digest.hex(),
            "timestamp": ts,
            "ring": ring_ids,
            "tx": receipt.tx_hash,
            "gas": receipt.gas_used,
        }
        typer.echo(
            json.dumps(out)
            if as_json
            else f"share {share_id} in pool {pool}: {cid} (ring of {len(ring_ids)}: {ring_ids}, tx {receipt.tx_hash})"
        )

    _run(go)


@data_app.command()
def split(
    pool: Annotated[int, typer.Option(help="Pool id.")],
    wait: Annotated[float, typer.Option(help="Seconds to wait for the seed block.")] = 120.0,
    mine: Annotated[
        bool, typer.Option(help="Devnet only: mine the seed block with evm_mine instead of waiting.")
    ] = False,
    rpc: Rpc = None,
    manifest: Manifest = None,
    key: EthKey = None,
    keystore: Keystore = None,
    account: AccountIdx = None,
    as_json: AsJson = False,
) -> None:
    """Split a pool into training data and the common test set; print the train and test CIDs.

    After the cut-off: arms the split (seed = hash of the next block), waits for that block, fixes
    the seed, then recomputes the assignment from public data only (block hash + events), so anyone
    running this later gets the same sets. Default sender: devnet account 0 (only if a transaction
    is needed).
    """
    from fedledger.core.chain import ContractRevert
    from fedledger.core.chain.transport import request

    def go() -> None:
        reg = _registry(rpc, manifest, need_sender=False)
        try:
            info = reg.pool_info(pool)
        except ContractRevert as exc:
            if exc.name != "UnknownPool":
                raise
            raise ValueError(f"no pool {pool} on this deployment: `fedledger data create-pool` opens one") from None
        if not info.finalized:
            reg = _registry(rpc, manifest, key=key, keystore=keystore, account=account)
            now = int(reg.w3.eth.get_block("latest")["timestamp"])
            if now <= info.cutoff:
                raise ValueError(f"pool {pool}: cut-off {info.cutoff} not reached (chain time {now})")
            if info.seed_block == 0 or reg.w3.eth.block_number > info.seed_block + 256:
                reg.start_split(pool)
                info = reg.pool_info(pool)
            deadline = time.monotonic() + wait
            while reg.w3.eth.block_number <= info.seed_block:
                if mine:
                    request(reg.w3, "evm_mine", [])
                elif time.monotonic() > deadline:
                    raise ValueError(f"seed block {info.seed_block} not mined after {wait} s (devnet: --mine)")
                else:
                    time.sleep(0.5)
            try:
                reg.finalize_split(pool)
            except ContractRevert as exc:
                if exc.name != "SplitAlreadyFinalized":  # someone else finalized first: fine
                    raise
        result = reg.recompute_split(pool)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "pool": pool,
                        "seed": "0x" + result.seed.hex(),
                        "seedBlock": result.seed_block,
                        "train": [s.cid for s in result.train],
                        "test": [s.cid for s in result.test],
                    },
                    indent=2,
                )
            )
            return
        typer.echo(
            f"pool {pool}: seed 0x{result.seed.hex()} (block {result.seed_block}); "
            f"{len(result.train)} train, {len(result.test)} test"
        )
        for s in result.train:
            typer.echo(f"train {s.cid}")
        for s in result.test:
            typer.echo(f"test {s.cid}")

    _run(go)


@data_app.command()
def pack(
    out: Annotated[Path, typer.Argument(help="File to write (safetensors with x and y).")],
    dataset: Annotated[str, typer.Option(help="mnist or fashion-mnist.")] = "mnist",
    part: Annotated[str, typer.Option("--split", help="train or test part of the dataset.")] = "test",
    start: Annotated[int, typer.Option(help="First example.")] = 0,
    count: Annotated[int, typer.Option(min=1, help="Number of examples.")] = 500,
) -> None:
    """Write labelled examples as a shareable file: a pool's test split of such files can be a
    task's common test set (task.toml `test_pool`)."""
    from fedledger.core.data import load_dataset
    from fedledger.core.pooldata import pack as pack_examples

    def go() -> None:
        if part not in ("train", "test"):
            raise ValueError(f"--split {part!r}: choose train or test")
        ds = load_dataset(dataset)
        x, y = (ds.x_test, ds.y_test) if part == "test" else (ds.x_train, ds.y_train)
        if not 0 <= start < len(y):
            raise ValueError(f"--start {start} outside 0..{len(y) - 1}")
        data = pack_examples(x[start : start + count], y[start : start + count])
        out.write_bytes(data)
        typer.echo(
            f"{out}: {min(count, len(y) - start)} examples of {dataset} {part}, sha256 {hashlib.sha256(data).hexdigest()}"
        )

    _run(go)
