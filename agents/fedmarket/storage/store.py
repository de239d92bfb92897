"""What every blob store offers, and how a URL picks one.

Two stores keep blobs under the same CIDs: the embedded store (a directory on this machine, no
setup) and a Kubo daemon's RPC API (`--ipfs http://127.0.0.1:5001`). Both verify content against
its CID before returning it, so a caller never has to.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from fedmarket.errors import FedmarketError

DEFAULT_KUBO_URL = "http://127.0.0.1:5001"


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed blobs, keyed by the CIDv0 `ipfs add` gives them."""

    @property
    def location(self) -> str:
        """Where the blobs live, for messages ("embedded store /path", "Kubo http://...")."""
        ...

    def add(self, data: bytes) -> str:
        """Store `data`; return its CID."""
        ...

    def add_file(self, path: str | os.PathLike[str]) -> str:
        """Store a file's content; return its CID (equal to `ipfs add FILE`'s)."""
        ...

    def get(self, cid: str, max_size: int | None = None) -> bytes:
        """The content of `cid`, verified against it (FedmarketError "content does not match CID").

        `max_size`: refuse (FedmarketError "larger than") a blob of more bytes, while reading it:
        no more than max_size + 1 bytes are ever held.
        """
        ...

    def has(self, cid: str) -> bool:
        """Whether the store holds all of `cid`'s content without fetching it from elsewhere."""
        ...

    def pin(self, cid: str) -> None:
        """Keep `cid` from being garbage-collected."""
        ...


def open_store(url: str | None = None, root: Path | None = None, timeout: float | None = None) -> BlobStore:
    """The embedded store (under `root`, default data dir / "blobs") when url is None, else Kubo at url.

    url "kubo" (or "") means Kubo at its default RPC address, DEFAULT_KUBO_URL.
    """
    if url is None:
        from fedmarket.storage.embedded import EmbeddedStore

        return EmbeddedStore(root)
    if url in ("", "kubo"):
        url = DEFAULT_KUBO_URL
    if not url.startswith(("http://", "https://")):
        raise FedmarketError(f"IPFS URL must be http(s)://host:port of a Kubo RPC API, not {url!r}")
    from fedmarket.storage.kubo import KuboStore

    return KuboStore(url) if timeout is None else KuboStore(url, timeout=timeout)
