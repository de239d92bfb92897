"""The one refusal every store gives a blob over its size bound (BlobStore.get's max_size)."""

from __future__ import annotations

from fedmarket.errors import FedmarketError


def too_large(cid: str, max_size: int, where: str) -> FedmarketError:
    """A blob larger than `max_size` bytes: refused while it was read, never parsed."""
    return FedmarketError(f"{cid} in the {where} is larger than the {max_size} bytes allowed; refusing to read it")
