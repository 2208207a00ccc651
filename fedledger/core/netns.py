"""Several hosts on one machine: Linux network namespaces joined by veth pairs and bridges.

Each host is a namespace with its own loopback and two links: `ipfs0` on the content network
(IPFS's libp2p) and `rpc0` on the chain network (JSON-RPC to the chain node). The two bridges live
in a namespace of their own (the switch), so nothing is added to the machine's own network and no
host has a route anywhere but to its peers: the only ways between hosts are these two links.
Two networks rather than one so that each link's counters measure one thing: `ipfs0`'s received
bytes are exactly what a host fetched from its IPFS peers.

Everything is named `fl<pid>x<n>-...` after the process that made it: `destroy()` (also run on
exit and by the context manager) kills whatever runs in the namespaces and deletes them, and
`sweep()` removes what a process killed with SIGKILL left behind. Needs root (CAP_SYS_ADMIN).
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
NETS = {"ipfs": "10.77.0", "rpc": "10.78.0"}  # /24 per network; host i is .(i + 1)
LINKS = {"ipfs": "ipfs0", "rpc": "rpc0"}
_NAME = re.compile(r"^fl(\d+)x(\d+)-")
_counter = itertools.count()


class NetnsError(RuntimeError):
    """A namespace, link or address could not be made or removed."""


def available() -> str | None:
    """None when this process can build namespaces, else why not (one line)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN): run as root, as CI does"
    if subprocess.run(["ip", "-V"], capture_output=True).returncode != 0:  # noqa: S607 - iproute2 on PATH
        return "the `ip` command (iproute2) is missing"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)  # noqa: S607
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def namespaces() -> list[str]:
    """Every network namespace `ip netns` knows."""
    out = _ip("-j", "netns", "list", check=False).stdout.strip()
    return [n["name"] for n in json.loads(out)] if out else []


def pids(ns: str) -> list[int]:
    """The processes running in namespace `ns`."""
    return [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split()]


def _kill_all(ns: str, grace: float = 5.0) -> None:
    """SIGTERM everything in `ns`, then SIGKILL what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        left = pids(ns)
        for pid in left:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            _reap()
            left = [p for p in pids(ns) if not _zombie(p)]
            time.sleep(0.05)
        if not left:
            return


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _reap() -> None:
    """Collect our exited children so they do not linger as zombies."""
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def delete(ns: str) -> None:
    """Kill everything in `ns` and delete it (its veth ends go with it)."""
    _kill_all(ns)
    _ip("netns", "del", ns, check=False)


def sweep() -> list[str]:
    """Delete the namespaces of fedledger processes that no longer run (left by a SIGKILL)."""
    gone = []
    for ns in namespaces():
        m = _NAME.match(ns)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            delete(ns)
            gone.append(ns)
    return gone


_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns: {os.strerror(err)}")


@contextmanager
def inside(ns: str) -> Iterator[None]:
    """Run the block with this thread in namespace `ns`: sockets it opens, and processes it
    starts, belong to that host. Back in the original namespace afterwards."""
    home = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


@dataclass(frozen=True)
class Host:
    """One namespace and its addresses on the two networks."""

    name: str  # the role given by the caller, e.g. "chain", "owner0"
    ns: str
    index: int

    def address(self, net: str) -> str:
        return f"{NETS[net]}.{self.index + 1}"


class VirtualNetwork:
    """Hosts (namespaces) joined by an IPFS bridge and an RPC bridge in a switch namespace.

    `with VirtualNetwork(["chain", "owner0", "miner0"]) as net:` builds it and always tears it
    down; so do `atexit` and, in `fedledger simulate`, SIGTERM/SIGINT.
    """

    def __init__(self, names: list[str]) -> None:
        if len(names) > 250:
            raise ValueError("at most 250 hosts per virtual network (one /24 per network)")
        if len(set(names)) != len(names):
            raise ValueError(f"host names must differ: {names}")
        self.prefix = f"fl{os.getpid()}x{next(_counter)}"
        self.switch = f"{self.prefix}-switch"
        self.hosts = {name: Host(name, f"{self.prefix}-{i}", i) for i, name in enumerate(names)}
        self._up = False

    def __enter__(self) -> VirtualNetwork:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def create(self) -> None:
        """Make the namespaces, bridges, links and addresses; all or nothing."""
        problem = available()
        if problem:
            raise NetnsError(problem)
        sweep()
        atexit.register(self.destroy)
        self._up = True
        try:
            _ip("netns", "add", self.switch)
            _ip("-n", self.switch, "link", "set", "lo", "up")
            for net in NETS:
                _ip("-n", self.switch, "link", "add", f"br-{net}", "type", "bridge")
                _ip("-n", self.switch, "link", "set", f"br-{net}", "up")
            for h in self.hosts.values():
                _ip("netns", "add", h.ns)
                _ip("-n", h.ns, "link", "set", "lo", "up")
                for net, link in LINKS.items():
                    port = f"{net[0]}{h.index}"  # switch side: i3 / r3
                    _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", link, "netns", h.ns)
                    _ip("-n", self.switch, "link", "set", port, "master", f"br-{net}")
                    _ip("-n", self.switch, "link", "set", port, "up")
                    _ip("-n", h.ns, "addr", "add", f"{h.address(net)}/24", "dev", link)
                    _ip("-n", h.ns, "link", "set", link, "up")
        except BaseException:
            self.destroy()
            raise

    def destroy(self) -> None:
        """Kill every process in the hosts and delete every namespace (idempotent)."""
        if not self._up:
            return
        for ns in [*(h.ns for h in self.hosts.values()), self.switch]:
            if ns in namespaces():
                delete(ns)
        self._up = False
        atexit.unregister(self.destroy)

    def set_link(self, name: str, up: bool) -> None:
        """Plug host `name` in or out of both networks (its switch ports go up or down)."""
        i = self.hosts[name].index
        for net in NETS:
            _ip("-n", self.switch, "link", "set", f"{net[0]}{i}", "up" if up else "down")

    def counters(self, name: str, net: str = "ipfs") -> tuple[int, int]:
        """(bytes received, bytes sent) on host `name`'s link to network `net`, from the kernel."""
        out = _ip("-n", self.hosts[name].ns, "-s", "-j", "link", "show", LINKS[net]).stdout
        stats = json.loads(out)[0]["stats64"]
        return int(stats["rx"]["bytes"]), int(stats["tx"]["bytes"])

    def exec_prefix(self, name: str) -> list[str]:
        """Prepend to a command line to run it on host `name`."""
        return ["ip", "netns", "exec", self.hosts[name].ns]
