"""Stopping the background processes fedledger starts (devnet, IPFS daemon), one way."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def is_zombie(pid: int) -> bool:
    """Whether `pid` has exited but not been reaped (its slot still shows in /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def stop_process(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group `pid` leads (started with start_new_session), wait up to
    `grace` seconds, then SIGKILL. Reaps it when it is our child, so it leaves no zombie."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:  # not our child: watch /proc instead
            if not Path(f"/proc/{pid}").exists() or is_zombie(pid):
                return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
