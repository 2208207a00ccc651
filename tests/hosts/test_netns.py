"""The virtual network itself: hosts reach each other only over their two links, a cut link cuts,
and teardown removes every namespace and process, on an exception, on Ctrl-C, and (through
`sweep`) after the process that built it was killed outright."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fedledger.core import netns


def _serve(net: netns.VirtualNetwork, host: str, address: str) -> socket.socket:
    with netns.inside(net[host].ns):
        s = socket.socket()
        s.bind((address, 0))
        s.listen()
    return s


def _connects(net: netns.VirtualNetwork, host: str, address: str, port: int) -> bool:
    with netns.inside(net[host].ns):
        try:
            socket.create_connection((address, port), timeout=1).close()
        except OSError:
            return False
    return True


def _reach(net: netns.VirtualNetwork, host: str, address: str, port: int, within: float = 10.0) -> bool:
    """Whether `host` connects to `address:port`, retried for up to `within` seconds: a link set
    up a moment ago (or a box under load) may refuse the first attempt. An unreachable address
    therefore costs `within` seconds; that is the price of not failing on a slow kernel."""
    deadline = time.monotonic() + within
    while True:
        if _connects(net, host, address, port):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def test_links_counters_and_cut() -> None:
    with netns.VirtualNetwork(["a", "b"]) as net:
        srv = _serve(net, "b", net["b"].address("ipfs"))
        port = srv.getsockname()[1]
        rx0, _ = net.counters("b", "ipfs")
        assert _reach(net, "a", net["b"].address("ipfs"), port)
        assert net.counters("b", "ipfs")[0] > rx0  # the kernel counted the handshake on b's link
        assert not _connects(net, "a", "127.0.0.1", port)  # b's loopback is b's alone
        net.set_link("a", up=False)
        assert not _connects(net, "a", net["b"].address("ipfs"), port)
        net.set_link("a", up=True)
        assert _reach(net, "a", net["b"].address("ipfs"), port)
        srv.close()
    assert not [ns for ns in netns.namespaces() if ns.startswith(net.prefix)]


def test_teardown_on_exception_kills_what_runs_inside() -> None:
    with pytest.raises(RuntimeError), netns.VirtualNetwork(["a"]) as net:
        sleeper = subprocess.Popen([*net.exec_prefix("a"), "sleep", "600"])
        time.sleep(0.2)
        assert netns.pids(net["a"].ns) == [sleeper.pid]
        raise RuntimeError("a test fails")
    assert sleeper.wait(timeout=10) is not None
    assert not [ns for ns in netns.namespaces() if ns.startswith(net.prefix)]


_BUILDER = textwrap.dedent(
    """
    import subprocess, sys, time
    from fedledger.core import netns
    with netns.VirtualNetwork(["a", "b"]) as net:
        p = subprocess.Popen([*net.exec_prefix("a"), "sleep", "600"])
        print(net.prefix, p.pid, flush=True)
        time.sleep(600)
    """
)


def _builder(tmp_path: Path) -> tuple[subprocess.Popen, str, int]:
    proc = subprocess.Popen([sys.executable, "-c", _BUILDER], stdout=subprocess.PIPE, text=True)
    prefix, pid = proc.stdout.readline().split()
    return proc, prefix, int(pid)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def test_ctrl_c_tears_down(tmp_path: Path) -> None:
    proc, prefix, sleeper = _builder(tmp_path)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)  # teardown is quick; a loaded CI box may take long to run it
    assert not [ns for ns in netns.namespaces() if ns.startswith(prefix)]
    assert _gone(sleeper)


def test_sweep_after_sigkill(tmp_path: Path) -> None:
    proc, prefix, sleeper = _builder(tmp_path)
    proc.kill()  # no chance to clean up
    proc.wait(timeout=30)
    assert [ns for ns in netns.namespaces() if ns.startswith(prefix)]  # left behind...
    assert prefix + "-0" in netns.sweep()  # ...until the next run sweeps them
    assert not [ns for ns in netns.namespaces() if ns.startswith(prefix)]
    assert _gone(sleeper)
