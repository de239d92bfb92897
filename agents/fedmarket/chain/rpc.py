"""Reaching a chain: `connect` (the embedded chain or a JSON-RPC node) and `rpc_errors`, which turns
a node that does not answer into one `ChainUnreachable` line.

Low in chain/: it needs only the exceptions (`reverts`) and the embedded chain, so the event
cursor, time control, the transaction sender and the client all use it without importing each
other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from web3 import HTTPProvider, Web3

from fedmarket.chain.embedded import new_embedded_web3
from fedmarket.chain.reverts import ChainUnreachable, exception_chain
from fedmarket.errors import FedmarketError

DEFAULT_RPC_URL = "http://127.0.0.1:8545"
"""Where `fedmarket chain start` serves anvil, and what --rpc means when given without a value."""

EMBEDDED = "embedded"
"""`connect(EMBEDDED)` (or None): a fresh in-process chain."""


def is_connection_error(exc: BaseException) -> bool:
    """Whether `exc` (or anything it was raised from) is a refused / timed-out connection."""
    return any(isinstance(e, (requests.ConnectionError, requests.Timeout, ConnectionError)) for e in exception_chain(exc))


def endpoint(w3: Web3) -> str:
    """The node's URL for messages ("the embedded chain" for an in-process one)."""
    return str(getattr(w3.provider, "endpoint_uri", None) or "the embedded chain")


def unreachable(w3: Web3, exc: BaseException) -> ChainUnreachable:
    """The one-line ChainUnreachable for a connection failure `exc`."""
    return ChainUnreachable(f"cannot reach the Ethereum node at {endpoint(w3)}: {_reason(exc)}")


@contextmanager
def rpc_errors(w3: Web3) -> Iterator[None]:
    """Turn a refused / timed-out connection to the node into one ChainUnreachable line."""
    try:
        yield
    except FedmarketError:
        raise
    except Exception as exc:
        if is_connection_error(exc):
            raise unreachable(w3, exc) from exc
        raise


def _reason(exc: BaseException) -> str:
    text = " ".join(str(e) for e in exception_chain(exc))
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused (is it running? `fedmarket chain start` starts one)"
    if "timed out" in text.lower():
        return "timed out"
    return type(exc).__name__


def connect(rpc: str | None = None, *, timeout: float = 30.0) -> Web3:
    """A Web3 for `rpc`: None or "embedded" -> a fresh embedded chain; http(s)://... -> that node.

    The node is asked for its chain id once, so an unreachable URL fails here with one clear line.
    """
    if rpc is None or rpc == EMBEDDED:
        return new_embedded_web3()
    if not rpc.startswith(("http://", "https://")):
        raise FedmarketError(f"unsupported RPC URL {rpc!r}: give http(s)://host:port (e.g. {DEFAULT_RPC_URL}) or 'embedded'")
    w3 = Web3(HTTPProvider(rpc, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))
    try:
        with rpc_errors(w3):
            _ = w3.eth.chain_id  # one round trip: does the node answer?
    except ChainUnreachable:
        raise
    except Exception as exc:
        raise ChainUnreachable(f"the node at {rpc} does not answer eth_chainId: {type(exc).__name__}: {exc}") from exc
    return w3
