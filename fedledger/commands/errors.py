"""User mistakes, turned into one line and exit code 2 in one place (`fedledger.cli.main`).

A command raises `UserError` (or lets one of `USER_ERRORS` through) for anything the user can fix:
a bad option or config value, a missing file, no node at the RPC URL, no deployment, an unknown
task. `main` prints `fedledger: <what is wrong>` and exits 2; `--debug` shows the traceback too.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn

__all__ = ["UserError", "fail", "user_errors"]


class UserError(Exception):
    """A mistake the user can fix; its message says what is wrong and what to do."""


def fail(message: str) -> NoReturn:
    """Stop the command: `message` is printed as one line, exit code 2."""
    raise UserError(message)


def user_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message is already a clear line for the user (raised by the core on bad input).

    A class is only looked up once its module has been imported (an error of a class never
    imported cannot have been raised): the task module pulls in torch and the chain modules
    web3, seconds of start-up that `--help`, a typo or a missing file should not pay."""
    errors: list[type[BaseException]] = [
        UserError,
        FileNotFoundError,
        IsADirectoryError,
        NotADirectoryError,
        PermissionError,
        ConnectionError,
    ]
    for module, name in _LAZY_USER_ERRORS:
        loaded = sys.modules.get(module)
        if loaded is not None:
            errors.append(getattr(loaded, name))
    return tuple(errors)


_LAZY_USER_ERRORS = (
    ("fedledger.core.chain.transport", "NodeUnavailable"),
    ("fedledger.core.chain.errors", "ContractRevert"),
    ("fedledger.core.chain.transport", "RpcError"),  # the node refused a call (its message says why)
    ("fedledger.core.protocol.task", "TaskConfigError"),
    ("fedledger.core.storage.errors", "StorageError"),  # unknown store spec, daemon away, bad CID
)
