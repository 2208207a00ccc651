"""`fedledger simulate --hosts`: options that cannot go with it are refused in one line, exit 2,
before any namespace, chain node or IPFS node is started."""

from __future__ import annotations

import pytest

from fedledger.core import netns


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--hosts", "1"], "no host for a data owner"),
        (["--hosts", "3", "--miners", "3"], "no host for a data owner"),
        (["--hosts", "3", "--clients", "5"], "one party per host: 2 owners beside 1 miner(s), not 5"),
        (["--hosts", "3", "--rpc", "http://127.0.0.1:8545"], "--rpc cannot go with --hosts"),
        (["--hosts", "3", "--storage", "ipfs"], "--storage cannot go with --hosts"),
        (["--hosts", "3", "--keep"], "--keep cannot go with --hosts"),
    ],
)
def test_contradictions_are_one_line(cli, args: list[str], says: str) -> None:
    before = netns.namespaces()
    code, out = cli("simulate", *args)
    assert code == 2
    assert says in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1, out
    assert netns.namespaces() == before


def test_without_root_says_so(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a normal user (here: the root check answering as it would for one) the command stops
    with the reason, in one line."""
    monkeypatch.setattr(netns, "available", lambda: "network namespaces need root (CAP_SYS_ADMIN): run as root")
    code, out = cli("simulate", "--hosts", "3")
    assert code == 2 and "need root" in out and "Traceback" not in out
