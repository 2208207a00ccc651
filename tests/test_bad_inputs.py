"""A table of bad inputs across the commands, run through the installed console script: each must
end with exit code 2 and exactly one line on stderr that names what is wrong (and, where the
user has something to do, what), never a traceback.

The cases run as real subprocesses, several at a time (most of the cost is Python's start-up), in
a scratch directory with no recorded devnet; the ones that need a chain use the session's anvil and
a deployment with one running task.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from fedledger.core.chain import FedLedger, devnet_account
from fedledger.core.protocol.task import TaskConfig
from fedledger.core.storage import EmbeddedStore
from fedledger.requester import publish
from tests.chain.helpers import CLIENT_ACCOUNTS, MINER_ACCOUNTS

DEAD_RPC = "http://127.0.0.1:9"  # discard port: nothing listens there on loopback
GOOD_KEY = "0x" + "11" * 32  # a valid private key that is not on the devnet (no ether)


@dataclass(frozen=True)
class Case:
    """`fedledger ARGS` must print one line containing every string of `says` (case-insensitive)."""

    id: str
    args: tuple[str, ...]
    says: tuple[str, ...]


def _cases(rpc: str, manifest: str, task: int) -> list[Case]:
    chain = ("--rpc", rpc, "--manifest", manifest)
    c = Case
    return [
        # task publish: config files and values
        c("publish-missing-config", ("task", "publish", "--config", "missing.toml"), ("missing.toml", "no such file")),
        c("publish-bad-toml", ("task", "publish", "--config", "broken.toml"), ("broken.toml", "not valid toml")),
        c("publish-no-task-table", ("task", "publish", "--config", "empty.toml"), ("empty.toml", "[task]")),
        c("publish-zero-rounds", ("task", "publish", "--config", "rounds0.toml"), ("rounds must be at least 1",)),
        c("publish-unknown-defence", ("task", "publish", "--config", "defence.toml"), ("no-such-defence",)),
        c("publish-unknown-model", ("task", "publish", "--config", "model.toml"), ("model 'transformer'",)),
        c("publish-unknown-dataset", ("task", "publish", "--config", "dataset.toml"), ("dataset 'imagenet'",)),
        c("publish-node-away", ("task", "publish", "--config", "good.toml", "--rpc", DEAD_RPC), (DEAD_RPC,)),
        c(
            "publish-rpc-not-a-url",
            ("task", "publish", "--config", "good.toml", "--rpc", "localhost-8545"),
            ("localhost-8545",),
        ),
        c(
            "publish-bad-key",
            ("task", "publish", "--config", "good.toml", *chain, "--key", "0xnothex"),
            ("--key", "64 hex"),
        ),
        c(
            "publish-short-key",
            ("task", "publish", "--config", "good.toml", *chain, "--key", "0x1234"),
            ("--key", "64 hex"),
        ),
        c(
            "publish-missing-keystore",
            ("task", "publish", "--config", "good.toml", *chain, "--keystore", "nokeys.json"),
            ("nokeys.json",),
        ),
        c(
            "publish-missing-manifest",
            ("task", "publish", "--config", "good.toml", "--rpc", rpc, "--manifest", "nodeploy.json"),
            ("nodeploy.json", "fedledger deploy"),
        ),
        c(
            "publish-bad-store",
            ("task", "publish", "--config", "good.toml", *chain, "--store", "ftp://example"),
            ("ftp://example", "embedded:"),
        ),
        c(
            "publish-no-ether",
            ("task", "publish", "--config", "good.toml", *chain, "--key", GOOD_KEY),
            ("fund",),
        ),
        # task status / start
        c("status-unknown-task", ("task", "status", "--task", "99", *chain), ("no task 99",)),
        c("status-task-not-a-number", ("task", "status", "--task", "one"), ("--task", "integer")),
        c(
            "status-manifest-not-json",
            ("task", "status", "--task", "1", "--rpc", rpc, "--manifest", "broken.toml"),
            ("broken.toml",),
        ),
        # agents
        c("client-no-signer", ("client", "run", "--task", str(task), "--data-owner", "0", *chain), ("--key",)),
        c(
            "client-unknown-task",
            ("client", "run", "--task", "99", "--data-owner", "0", "--account", "1", *chain),
            ("no task 99",),
        ),
        c(
            "client-unknown-attack",
            (
                "client",
                "run",
                "--task",
                str(task),
                "--data-owner",
                "0",
                "--account",
                "1",
                "--attack",
                "teleport",
                *chain,
            ),
            ("teleport",),
        ),
        c(
            "client-bad-dp",
            ("client", "run", "--task", str(task), "--data-owner", "0", "--account", "1", "--dp", "maybe", *chain),
            ("maybe",),
        ),
        c(
            "client-owner-out-of-range",
            ("client", "run", "--task", str(task), "--data-owner", "500", "--account", "1", *chain),
            ("500",),
        ),
        c(
            "client-bad-accomplice",
            (
                "client",
                "run",
                "--task",
                str(task),
                "--data-owner",
                "0",
                "--account",
                "1",
                "--accomplices",
                "0x12",
                *chain,
            ),
            ("0x12",),
        ),
        c("miner-bad-key", ("miner", "run", "--task", str(task), "--key", "0xabc", *chain), ("--key", "64 hex")),
        c("miner-node-away", ("miner", "run", "--task", "1", "--account", "1", "--rpc", DEAD_RPC), (DEAD_RPC,)),
        c("miner-negative-account", ("miner", "run", "--task", "1", "--account", "-1", *chain), ("--account",)),
        # audit
        c("audit-unknown-task", ("audit", "--task", "99", "--round", "1", *chain), ("no task 99",)),
        c("audit-round-beyond-task", ("audit", "--task", str(task), "--round", "99", *chain), ("no round 99",)),
        c("audit-round-still-open", ("audit", "--task", str(task), "--round", "1", *chain), ("still open",)),
        c("audit-node-away", ("audit", "--task", "1", "--round", "1", "--rpc", DEAD_RPC), (DEAD_RPC,)),
        # simulate: checked before any devnet starts
        c("simulate-zero-clients", ("simulate", "--clients", "0"), ("clients",)),
        c("simulate-malicious-fraction", ("simulate", "--malicious", "1.5"), ("--malicious",)),
        c("simulate-unknown-attack", ("simulate", "--attack", "teleport"), ("teleport",)),
        c("simulate-unknown-defence", ("simulate", "--defence", "no-such-defence"), ("no-such-defence",)),
        c("simulate-unknown-model", ("simulate", "--model", "transformer"), ("transformer",)),
        c("simulate-zero-miners", ("simulate", "--miners", "0"), ("--miners",)),
        c("simulate-committee-above-miners", ("simulate", "--miners", "2", "--committee", "5"), ("committee",)),
        c("simulate-bad-storage", ("simulate", "--storage", "ftp://x"), ("ftp://x",)),
        c("simulate-missing-config", ("simulate", "--config", "missing.toml"), ("missing.toml",)),
        # experiment: checked before any data is loaded
        c("experiment-unknown-defence", ("experiment", "--defence", "no-such-defence"), ("no-such-defence",)),
        c("experiment-unknown-attack", ("experiment", "--attack", "teleport", "--malicious", "0.2"), ("teleport",)),
        c("experiment-unknown-dataset", ("experiment", "--dataset", "imagenet"), ("imagenet",)),
        c("experiment-zero-rounds", ("experiment", "--rounds", "0"), ("--rounds",)),
        c("experiment-negative-lr", ("experiment", "--lr", "-0.1"), ("lr",)),
        c("experiment-bad-kv", ("experiment", "--attack-arg", "novalue"), ("key=value",)),
        c(
            "experiment-cifar-missing",
            ("experiment", "--dataset", "cifar10", "--model", "cnn", "--data-path", "no-cifar"),
            ("no-cifar",),
        ),
        # devnet / deploy
        c("devnet-unknown-kind", ("devnet", "up", "--kind", "ganache"), ("ganache",)),
        c("devnet-port-out-of-range", ("devnet", "up", "--port", "70000"), ("--port", "65535")),
        c(
            "devnet-down-none",
            (
                "devnet",
                "down",
            ),
            ("no devnet recorded",),
        ),
        c(
            "devnet-status-none",
            (
                "devnet",
                "status",
            ),
            ("devnet up",),
        ),
        c("devnet-state-in-missing-dir", ("devnet", "up", "--state", "no/such/dir/state.json"), ("no/such/dir",)),
        c("deploy-node-away", ("deploy", "--rpc", DEAD_RPC), (DEAD_RPC,)),
        c("deploy-bad-key", ("deploy", "--rpc", rpc, "--key", "0xzz"), ("--key", "64 hex")),
        # explorer
        c("explorer-node-away", ("explorer", "--rpc", DEAD_RPC), (DEAD_RPC,)),
        c("explorer-missing-manifest", ("explorer", "--rpc", rpc, "--manifest", "nodeploy.json"), ("nodeploy.json",)),
        c("explorer-port-out-of-range", ("explorer", *chain, "--port", "99999"), ("--port", "65535")),
        c("explorer-missing-metrics", ("explorer", *chain, "--metrics", "nometrics"), ("nometrics",)),
        # data / ipfs / bench
        c("data-share-missing-file", ("data", "share", "nofile.bin", "--account", "3", *chain), ("nofile.bin",)),
        c("data-register-missing-key", ("data", "register-key", "--key-file", "nokey.json", *chain), ("keygen",)),
        c("data-keygen-exists", ("data", "keygen", "--out", "good.toml"), ("--force",)),
        c("data-pack-unknown-dataset", ("data", "pack", "out.st", "--dataset", "imagenet"), ("imagenet",)),
        c("data-pack-bad-split", ("data", "pack", "out.st", "--split", "validation"), ("validation",)),
        c("data-split-unknown-pool", ("data", "split", "--pool", "99", *chain), ("pool 99",)),
        c("data-create-pool-past-cutoff", ("data", "create-pool", "--cutoff-in", "-5", *chain), ("--cutoff-in",)),
        c("ipfs-get-bad-cid", ("ipfs", "get", "not-a-cid", "-o", "out.bin"), ("not-a-cid",)),
        c("ipfs-put-missing-file", ("ipfs", "put", "nofile.bin"), ("nofile.bin",)),
        c(
            "ipfs-push-cid-not-in-store",
            ("ipfs", "push", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "--to", DEAD_RPC),
            ("not in the embedded store",),
        ),
        c("bench-unknown", ("bench", "no-such-bench"), ("no-such-bench", "quick")),
        c("unknown-command", ("frobnicate",), ("frobnicate",)),
        c("unknown-option", ("task", "status", "--tsak", "1"), ("--tsak",)),
    ]


def _write_inputs(d: Path) -> None:
    good = (Path(__file__).resolve().parents[1] / "task.toml").read_text()
    (d / "good.toml").write_text(good)
    (d / "broken.toml").write_text("[task\nmodel = 'mlp'\n")
    (d / "empty.toml").write_text("title = 'no task table'\n")
    (d / "rounds0.toml").write_text(_set(good, "rounds", "0"))
    (d / "defence.toml").write_text(_set(good, "defence", '"no-such-defence"'))
    (d / "model.toml").write_text(_set(good, "model", '"transformer"'))
    (d / "dataset.toml").write_text(_set(good, "dataset", '"imagenet"'))


def _set(toml: str, key: str, value: str) -> str:
    """`toml` with the first `key = ...` line set to `value`."""
    lines = toml.splitlines()
    i = next(i for i, line in enumerate(lines) if line.split("=")[0].strip() == key)
    lines[i] = f"{key} = {value}"
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def chain(w3, devnet, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, int]:
    """The session's anvil, a deployment and one running task (its round 1 is still open)."""
    from fedledger.deploy.deployer import deploy

    d = tmp_path_factory.mktemp("deployment")
    deploy(w3, devnet_account(0), force=True, directory=d, min_stake=10**18, unstake_delay=3600)
    fl = FedLedger.from_manifest(w3, d / "31337.json", devnet_account(0))
    cfg = TaskConfig(clients=2, min_clients=2, rounds=2, committee_size=1)
    task_id = publish(fl, EmbeddedStore(d / "store"), cfg)  # a real task spec, as `task publish` writes it
    for i, account in enumerate(CLIENT_ACCOUNTS[:2]):
        fl.as_account(devnet_account(account)).register(task_id, [5000, 6000, 7000], 1000 + i)
    fl.as_account(devnet_account(MINER_ACCOUNTS[0])).stake(10**18)
    fl.start_task(task_id)
    return devnet.rpc_url, d / "31337.json", task_id


# Cheap to start (no torch, no web3 before the mistake is found): these also run as real
# subprocesses of the installed console script, to check what a user's shell sees.
SUBPROCESS = {
    "status-task-not-a-number",
    "devnet-port-out-of-range",
    "devnet-status-none",
    "unknown-command",
    "unknown-option",
    "bench-unknown",
    "data-share-missing-file",
    "data-keygen-exists",
    "ipfs-put-missing-file",
    "explorer-port-out-of-range",
    "miner-negative-account",
}


def _console_script() -> str:
    script = Path(sys.executable).with_name("fedledger")
    return str(script) if script.exists() else shutil.which("fedledger") or "fedledger"


def _judge(case: Case, code: int | str, stderr: str) -> str | None:
    """What is wrong with how `case` was answered, or None."""
    lines = stderr.strip().splitlines()
    wrong = []
    if code != 2:
        wrong.append(f"exit {code}")
    if len(lines) != 1:
        wrong.append(f"{len(lines)} lines on stderr")
    if "Traceback" in stderr:
        wrong.append("traceback")
    missing = [s for s in case.says if s.lower() not in stderr.lower()]
    if missing:
        wrong.append(f"does not say {missing}")
    return f"{case.id}: {', '.join(wrong)}\n    stderr: {stderr.strip()[-600:]!r}" if wrong else None


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with the input files, no recorded devnet and no FEDLEDGER_* variables."""
    _write_inputs(tmp_path)
    for k in [k for k in os.environ if k.startswith("FEDLEDGER_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_bad_input_is_one_line_and_exit_code_2(chain, scratch: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every case through the real entry point (`fedledger.cli.main`), in this process."""
    from fedledger.cli import main

    rpc, manifest, task = chain
    cases = _cases(rpc, str(manifest), task)
    assert len(cases) >= 30 and len({c.id for c in cases}) == len(cases)
    problems = []
    for case in cases:
        try:
            code: int | str = main(list(case.args))
        except BaseException as exc:  # noqa: BLE001 - an escaped exception is a traceback for the user
            code = f"raised {type(exc).__name__}: {exc}"
        captured = capsys.readouterr()
        problem = _judge(case, code, captured.err)
        if problem is None and captured.out.strip():
            problem = f"{case.id}: printed on stdout too: {captured.out.strip()[:200]!r}"
        if problem:
            problems.append(problem)
    assert not problems, f"{len(problems)} of {len(cases)} bad inputs mishandled:\n" + "\n".join(problems)
    # nothing was started or written by a command that refused to run
    assert not (scratch / ".fedledger" / "devnet.json").exists()
    assert not any((scratch / name).exists() for name in ("out.bin", "out.st", "no"))


def test_the_console_script_answers_the_same(chain, scratch: Path) -> None:
    """The cheap cases again as real subprocesses: what a shell sees is one line and exit code 2."""
    rpc, manifest, task = chain
    cases = [c for c in _cases(rpc, str(manifest), task) if c.id in SUBPROCESS]
    assert len(cases) == len(SUBPROCESS)
    exe = _console_script()

    def run(case: Case) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *case.args], cwd=scratch, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, cases))
    problems = [p for c, r in zip(cases, results, strict=True) if (p := _judge(c, r.returncode, r.stderr))]
    assert not problems, "\n".join(problems)


def test_deploy_defaults_match_the_deployer() -> None:
    """The deploy command repeats the deployer's defaults (so the CLI starts without web3)."""
    from fedledger.commands import deploy as command
    from fedledger.deploy import deployer

    assert (command.DEFAULT_MIN_STAKE, command.DEFAULT_UNSTAKE_DELAY) == (
        deployer.DEFAULT_MIN_STAKE,
        deployer.DEFAULT_UNSTAKE_DELAY,
    )
