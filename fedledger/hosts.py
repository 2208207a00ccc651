"""A federation spread over hosts: each party on a host of its own, on a virtual network.

Host `chain` runs the chain node (anvil, listening on its own address) and the requester with its
IPFS node (which keeps the task's initial model); every data owner and every miner gets a host of
its own with its own js-ipfs node, empty at the start; an optional `auditor` host has an empty node
and nothing else until `audit` runs there. An agent is started on its host with nothing but the
chain's RPC URL, the deployment manifest (addresses and ABI, copied into the host's directory)
and its own node's API on the host's loopback: the only ways between hosts are the chain's
JSON-RPC (network `rpc`) and IPFS's libp2p (network `ipfs`), so a miner gets an owner's weights
from that owner's node over bitswap. `fedledger.core.netns` builds and removes the network.

Nodes stay connected to every other node the way kubo's `Peering.Peers` does it: whoever holds
the federation calls `keep_peered()` now and then, which re-dials peers a cut link dropped.
With `one_host=True` the same parties all share one host and one node: the baseline a
multi-host run is compared with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from fedledger.core import netns
from fedledger.core.storage import RpcStore, daemon
from fedledger.core.storage.errors import StorageError
from fedledger.deploy import devnet as devnet_mod

RPC_PORT = 8545
API_PORT = 5001
SWARM_PORT = 4001
CHAIN = "chain"
AUDITOR = "auditor"
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def owner_host(k: int) -> str:
    return f"owner{k}"


def miner_host(m: int) -> str:
    return f"miner{m}"


@dataclass
class HostNode:
    """A host's IPFS node: its daemon record and its peer address on the `ipfs` network."""

    host: str
    daemon: daemon.Daemon
    peer_id: str
    multiaddr: str


class HostFederation:
    """The hosts of a federation with `owners` data owners and `miners` miners, under `out`.

    Use as a context manager: everything it started (namespaces, links, chain node, IPFS nodes,
    agents) is gone when the block ends, however it ends.
    """

    def __init__(self, owners: int, miners: int, out: Path, *, one_host: bool = False, auditor: bool = True) -> None:
        self.owners, self.miners, self.one_host = owners, miners, one_host
        self.out = Path(out).resolve()
        parties = [owner_host(k) for k in range(owners)] + [miner_host(m) for m in range(miners)]
        self.parties = parties
        names = [CHAIN] if one_host else [CHAIN, *parties]
        if auditor and not one_host:
            names.append(AUDITOR)
        self.net = netns.VirtualNetwork(names)
        self.nodes: dict[str, HostNode] = {}
        self.devnet: devnet_mod.Devnet | None = None
        self.procs: list[subprocess.Popen] = []
        self.start_seconds = 0.0  # building the network and starting every node

    # -- where things are ---------------------------------------------------------------------

    def host_of(self, party: str) -> str:
        """The host a party (`owner3`, `miner0`, `chain`, `auditor`) runs on."""
        return CHAIN if self.one_host and party != AUDITOR else party

    @property
    def hosts(self) -> list[str]:
        return list(self.net.hosts)

    @property
    def rpc_url(self) -> str:
        return f"http://{self.net[CHAIN].address('rpc')}:{RPC_PORT}"

    def api(self, party: str) -> str:
        """The RPC API URL of the IPFS node on `party`'s host (reachable from that host only)."""
        return self.nodes[self.host_of(party)].daemon.api

    def host_dir(self, host: str) -> Path:
        return self.out / "hosts" / host

    @contextmanager
    def on(self, party: str) -> Iterator[None]:
        """Run the block on `party`'s host (sockets and processes opened in it belong there)."""
        with netns.inside(self.net[self.host_of(party)].ns):
            yield

    def store(self, party: str) -> RpcStore:
        """A client for the node on `party`'s host; call it only inside `on(party)`."""
        return RpcStore(self.api(party), timeout=5.0)

    # -- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> HostFederation:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Build the network, start the chain node and one empty IPFS node per host, peer them."""
        t0 = time.perf_counter()
        self.net.create()
        for host in self.hosts:
            self.host_dir(host).mkdir(parents=True, exist_ok=True)
        with netns.inside(self.net[CHAIN].ns):
            self.devnet = devnet_mod.start(
                "anvil", port=RPC_PORT, log_dir=self.host_dir(CHAIN), host=self.net[CHAIN].address("rpc")
            )
        # js-ipfs takes seconds to start (mostly node's start-up and key generation): all at once
        with ThreadPoolExecutor(max_workers=len(self.hosts)) as pool:
            futures = [pool.submit(self._start_node, host) for host in self.hosts]
        failed = []
        for future in futures:  # record every node that did start, so that stop() stops it
            try:
                node = future.result()
            except Exception as exc:  # noqa: BLE001 - re-raised below once all are recorded
                failed.append(exc)
            else:
                self.nodes[node.host] = node
        if failed:
            raise failed[0]
        self.keep_peered()
        self.start_seconds = time.perf_counter() - t0

    def _start_node(self, host: str) -> HostNode:
        swarm = f"/ip4/{self.net[host].address('ipfs')}/tcp/{SWARM_PORT}"
        with netns.inside(self.net[host].ns):  # this thread only: each node starts in its host
            d = daemon.start(self.host_dir(host) / "ipfs", port=API_PORT, swarm=swarm)
            store = RpcStore(d.api, timeout=5.0)
            try:
                if store.local_blocks():
                    raise StorageError(f"the IPFS node of host {host} did not start empty")
                peer = store.peer_id()
            except BaseException:
                daemon.stop(self.host_dir(host) / "ipfs")
                raise
            finally:
                store.close()
        return HostNode(host, d, peer, f"{swarm}/p2p/{peer}")

    def keep_peered(self) -> int:
        """Connect every node to every other node it is not connected to (a cut link drops
        connections; libp2p does not re-dial them by itself). Returns the connections made."""
        made = 0
        for host, node in self.nodes.items():
            with netns.inside(self.net[host].ns):
                store = RpcStore(node.daemon.api, timeout=2.0)
                try:
                    have = store.peers()
                    for other, peer in self.nodes.items():
                        if other != host and peer.peer_id not in have and other > host:
                            store.connect(peer.multiaddr)
                            made += 1
                except StorageError:
                    continue  # that host is cut off now: try again next time
                finally:
                    store.close()
        return made

    def spawn(self, party: str, args: list[str], log_name: str) -> subprocess.Popen:
        """Run `fedledger ARGS` on `party`'s host as its own process, in the host's directory,
        with the chain's RPC URL, a copy of the manifest and its own node's API and nothing else."""
        host = self.host_of(party)
        env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
        env["OMP_NUM_THREADS"] = "1"
        log = open(self.host_dir(host) / f"{log_name}.log", "wb")  # noqa: SIM115 - closed with the process
        with netns.inside(self.net[host].ns):
            proc = subprocess.Popen(
                [sys.executable, "-m", "fedledger.cli", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.host_dir(host),
                env=env,
                start_new_session=True,
            )
        log.close()
        self.procs.append(proc)
        return proc

    def give_manifest(self, manifest: Path) -> dict[str, Path]:
        """Copy the deployment manifest into every host's directory (as one would scp it)."""
        copies = {}
        for host in self.hosts:
            copies[host] = shutil.copy(manifest, self.host_dir(host) / "deployment.json")
        return {h: Path(p) for h, p in copies.items()}

    def cut(self, party: str) -> None:
        """Unplug `party`'s host from both networks."""
        self.net.set_link(self.host_of(party), up=False)

    def plug(self, party: str) -> None:
        """Plug `party`'s host back in."""
        self.net.set_link(self.host_of(party), up=True)

    def traffic(self) -> dict[str, dict[str, int]]:
        """Per host, bytes received and sent on each network, read from the kernel's counters."""
        out = {}
        for host in self.hosts:
            rx, tx = self.net.counters(host, "ipfs")
            rrx, rtx = self.net.counters(host, "rpc")
            out[host] = {"ipfs_rx": rx, "ipfs_tx": tx, "rpc_rx": rrx, "rpc_tx": rtx}
        return out

    def stop(self) -> None:
        """Stop agents, IPFS nodes and the chain node, then remove the network (kills leftovers)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            with suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        if self.nodes:  # each waits for its node to shut down: all at once
            with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
                list(pool.map(lambda host: daemon.stop(self.host_dir(host) / "ipfs"), list(self.nodes)))
        self.nodes.clear()
        if self.devnet is not None:
            self.devnet.stop()
            self.devnet = None
        self.net.destroy()
