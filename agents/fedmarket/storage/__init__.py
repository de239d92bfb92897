"""Content-addressed storage of weights and specs: CIDs, weights files, blob stores.

The public face (everything else in this package is internal):

    cid_of(data) / cid_of_file(path) -> "Qm..."     the CID Kubo's default `ipfs add` gives
    cid_to_digest(cid) / digest_to_cid(digest)      CIDv0 <-> the bytes32 stored on chain
    validate_cid(text)                              "Qm..." or FedmarketError("malformed CID ...")
    encode_weights(state, meta) / decode_weights(data, expected, expected_arch), WeightsMeta
    max_weights_size(state, arch)                   the exact size bound of a model's weights file
    BlobStore.get(cid, max_size)                    every read bounded while streaming, before parsing
    BlobStore, open_store(url, root)                embedded store, or Kubo for an http(s) URL

Nothing here imports torch until weights are encoded or decoded, so `fedmarket store` starts fast.
"""

from __future__ import annotations

from fedmarket.storage.cid import (
    cid_of,
    cid_of_file,
    cid_to_digest,
    digest_to_cid,
    validate_cid,
)
from fedmarket.storage.store import DEFAULT_KUBO_URL, BlobStore, open_store
from fedmarket.storage.weights import (
    WeightsMeta,
    decode_weights,
    encode_weights,
    expected_layout,
    max_weights_size,
)

__all__ = [
    "DEFAULT_KUBO_URL",
    "BlobStore",
    "WeightsMeta",
    "cid_of",
    "cid_of_file",
    "cid_to_digest",
    "decode_weights",
    "digest_to_cid",
    "encode_weights",
    "expected_layout",
    "max_weights_size",
    "open_store",
    "validate_cid",
]
