"""`fedledger data keygen | register-key | create-pool | share | split` end to end on real anvil
with the embedded (kubo-CID-exact) store."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer.testing import CliRunner

from fedledger.commands.data import data_app, load_key
from fedledger.core.storage import open_store
from tests.chain.helpers import increase_time

runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(data_app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_share_and_split(w3, devnet, tmp_path: Path, cli) -> None:
    from fedledger.core.chain import devnet_account
    from fedledger.deploy.deployer import deploy

    deploy(w3, devnet_account(0), force=True, directory=tmp_path)
    chain = ["--rpc", devnet.rpc_url, "--manifest", str(tmp_path / "31337.json")]
    store = f"embedded:{tmp_path / 'store'}"
    outputs: list[str] = []

    key_files = [tmp_path / f"key{i}.json" for i in range(3)]
    for kf in key_files:
        outputs.append(_ok(["keygen", "--out", str(kf)]))
        assert stat.S_IMODE(kf.stat().st_mode) == 0o600
        outputs.append(_ok(["register-key", "--key-file", str(kf), *chain]))
    assert "already registered as key 0" in _ok(["register-key", "--key-file", str(key_files[0]), *chain])
    assert cli("data", "keygen", "--out", key_files[0])[0] == 2  # no silent overwrite
    outputs.append(_ok(["create-pool", "--cutoff-in", "600", "--test-percent", "50", *chain]))

    files = []
    for i in range(2):
        f = tmp_path / f"data{i}.csv"
        f.write_text(f"x,y\n{i},{i * 2}\n")
        files.append(f)
        out = _ok(
            [
                "share",
                str(f),
                "--pool",
                "0",
                "--ring-size",
                "3",
                "--key-file",
                str(key_files[i]),
                "--store",
                store,
                "--account",
                str(20 + i),
                "--json",
                *chain,
            ]
        )
        outputs.append(out)
        shared = json.loads(out)
        assert shared["share"] == i and shared["ring"] == [0, 1, 2]
        assert open_store(store).get(shared["cid"]) == f.read_bytes()

    # no default sender for a share: the sender's address is public
    code, out = cli("data", "share", files[0], "--key-file", key_files[2], "--store", store, *chain)
    assert code == 2 and "sender" in out
    # a ring larger than the registered keys
    code, out = cli(
        "data",
        "share",
        files[0],
        "--ring-size",
        "5",
        "--key-file",
        key_files[2],
        "--store",
        store,
        "--account",
        "22",
        *chain,
    )
    assert code == 2 and "registered" in out
    code, out = cli("data", "split", "--pool", "0", *chain)
    assert code == 2 and "cut-off" in out

    increase_time(w3, 601)
    first = json.loads(_ok(["split", "--pool", "0", "--mine", "--json", *chain]))
    again = json.loads(_ok(["split", "--pool", "0", "--json", *chain]))  # read-only recomputation
    assert first == again
    cids = {open_store(store).put(f.read_bytes()) for f in files}
    assert set(first["train"]) | set(first["test"]) == cids
    text = _ok(["split", "--pool", "0", *chain])
    assert all(f"{side} {cid}" in text for side in ("train", "test") for cid in first[side])

    secrets = [hex(load_key(kf).secret) for kf in key_files]
    assert not any(s in out or s[2:] in out for s in secrets for out in outputs + [text])


def test_every_command_has_help() -> None:
    for cmd in ("keygen", "register-key", "create-pool", "share", "split"):
        result = runner.invoke(data_app, [cmd, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
