"""The one JSON-RPC transport: every chain read and write in fedledger goes through web3's HTTP
provider (its public `make_request` / `make_batch_request`), and every node error comes back as
one family, `RpcError` (and `NodeUnavailable` when nothing answers at the URL).

Requests go to the provider directly, without web3's middleware and result formatters: on a local
devnet those cost more than the node's own work, and agents poll every few milliseconds.
"""

from __future__ import annotations

from typing import Any

import requests
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint

__all__ = ["NodeUnavailable", "RpcError", "hex_int", "provider_for", "request", "request_batch"]


class RpcError(RuntimeError):
    """The node answered a JSON-RPC error (code, message, data as the node gave them)."""

    def __init__(self, message: str, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class NodeUnavailable(RpcError, ConnectionError):
    """No node answers at the RPC URL (also a `ConnectionError`)."""


def hex_int(value: Any) -> int:
    """A JSON-RPC quantity ("0x1a") or an int, as an int; None as 0."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    return int(value, 16)


def provider_for(target: Web3 | HTTPProvider | str, timeout: float = 60.0) -> HTTPProvider:
    """The HTTP provider behind a Web3 object, or a new one for an RPC URL."""
    if isinstance(target, str):
        return HTTPProvider(target, request_kwargs={"timeout": timeout})
    provider = target.provider if isinstance(target, Web3) else target
    if not isinstance(provider, HTTPProvider):
        raise TypeError(f"fedledger talks to nodes over HTTP JSON-RPC, not {type(provider).__name__}")
    return provider


def _url(provider: HTTPProvider) -> str:
    return str(provider.endpoint_uri)


def _raw(provider: HTTPProvider, method: str, params: list[Any]) -> dict[str, Any]:
    try:
        return dict(provider.make_request(RPCEndpoint(method), params))
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise NodeUnavailable(f"no Ethereum node answers at {_url(provider)}: {type(exc).__name__}") from None
    except (requests.HTTPError, ValueError) as exc:
        raise RpcError(f"bad answer from {_url(provider)}: {exc}") from None


def answer_error(method: str, answer: dict[str, Any]) -> RpcError | None:
    """The error in one JSON-RPC answer, or None."""
    error = answer.get("error")
    if error is None:
        return None
    if not isinstance(error, dict):
        return RpcError(f"{method}: {error}")
    return RpcError(f"{method}: {error.get('message', error)}", error.get("code"), error.get("data"))


def request(target: Web3 | HTTPProvider, method: str, params: list[Any]) -> Any:
    """One JSON-RPC request; its result, or `RpcError`."""
    answer = _raw(provider_for(target), method, params)
    if (error := answer_error(method, answer)) is not None:
        raise error
    return answer.get("result")


def request_batch(target: Web3 | HTTPProvider, calls: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Many requests in one round trip; the raw answers (`result` or `error`) in call order. A node
    without batch support answers one error object: then each request is sent on its own."""
    if not calls:
        return []
    provider = provider_for(target)
    try:
        answers = provider.make_batch_request([(RPCEndpoint(m), p) for m, p in calls])
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise NodeUnavailable(f"no Ethereum node answers at {_url(provider)}: {type(exc).__name__}") from None
    except (requests.HTTPError, ValueError) as exc:
        raise RpcError(f"bad answer from {_url(provider)}: {exc}") from None
    if not isinstance(answers, list):
        return [_raw(provider, m, p) for m, p in calls]
    if len(answers) != len(calls):
        raise RpcError(f"{_url(provider)} answered {len(answers)} of {len(calls)} batched requests")
    return [dict(a) for a in answers]  # web3 numbers the batch in call order and sorts answers by id
