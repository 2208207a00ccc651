"""User mistakes, turned into one line and exit code 2 in one place (`fedledger.cli.main`).

A command raises `UserError` (or lets one of `USER_ERRORS` through) for anything the user can fix:
a bad option or config value, a missing file, no node at the RPC URL, no deployment, an unknown
task. `main` prints `fedledger: <what is wrong>` and exits 2; `--debug` shows the traceback too.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import NoReturn

from fedledger.core.chain.errors import ContractRevert
from fedledger.core.chain.transport import NodeUnavailable
from fedledger.core.protocol.task import TaskConfigError

__all__ = ["USER_ERRORS", "UserError", "fail"]


class UserError(Exception):
    """A mistake the user can fix; its message says what is wrong and what to do."""


def fail(message: str) -> NoReturn:
    """Stop the command: `message` is printed as one line, exit code 2."""
    raise UserError(message)


# Errors whose message is already a clear line for the user (raised by the core on bad input).
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    NodeUnavailable,
    ContractRevert,
    ConnectionError,
    TaskConfigError,
)
