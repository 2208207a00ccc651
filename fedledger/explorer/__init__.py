"""fedledger's block explorer: web pages and a JSON read API over the chain and the contract's events.

`fedledger explorer` serves it; `create_app` builds the FastAPI app for tests and embedding.
"""

from fedledger.explorer.app import create_app
from fedledger.explorer.rpc import ChainReader

__all__ = ["ChainReader", "create_app"]
