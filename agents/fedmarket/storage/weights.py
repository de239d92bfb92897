"""Model weights as bytes: safetensors with a small fedmarket header, never pickle.

A weights blob comes from other market participants, so it is untrusted input: decoding parses
only the safetensors format (a JSON header and raw little-endian arrays; nothing executes), then
checks names, shapes, dtypes, finiteness and the architecture id before anyone uses it.

Encoding is canonical, so the same state always gives the same bytes and the same CID:
tensor names sorted, data laid out in name order, floating tensors as contiguous little-endian
float32, the JSON header with sorted keys and no spaces, padded to 8 bytes as safetensors pads
it. The header is written here rather than by `safetensors.torch.save` because that writer
emits `__metadata__` in hash-map order, which changes from process to process.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fedmarket.errors import FedmarketError
from fedmarket.storage.cid import validate_cid

if TYPE_CHECKING:  # torch loads only when weights are actually encoded or decoded
    import torch

FORMAT_VERSION = "1"
_META_FORMAT, _META_ARCH, _META_ROUND, _META_PARENT = "fedmarket.format", "fedmarket.arch", "fedmarket.round", "fedmarket.parent"
_RESERVED_PREFIX = "fedmarket."
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own bound on the JSON header
_ALIGN = 8
_PICKLE_MAGICS = (b"PK\x03\x04", b"\x80")  # torch.save zip archive, raw pickle protocol >= 2


@dataclass(frozen=True)
class WeightsMeta:
    """What a weights file says about itself, beside its tensors.

    arch: the model architecture id from the task spec (e.g. "cnn-mnist").
    round: the training round these weights belong to (0 = the initial model).
    parent_cid: the global model they were trained from (None for the initial model).
    fields: free-form string fields; keys must not start with "fedmarket.".
    """

    arch: str
    round: int
    parent_cid: str | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def to_header(self) -> dict[str, str]:
        if not isinstance(self.arch, str) or not self.arch:
            raise FedmarketError(f"weights metadata: arch must be a non-empty string, not {self.arch!r}")
        if isinstance(self.round, bool) or not isinstance(self.round, int) or self.round < 0:
            raise FedmarketError(f"weights metadata: round must be an integer >= 0, not {self.round!r}")
        if self.parent_cid is not None:
            validate_cid(self.parent_cid)
        for key, value in self.fields.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise FedmarketError(f"weights metadata: free-form fields are str -> str, not {key!r}: {value!r}")
            if key.startswith(_RESERVED_PREFIX):
                raise FedmarketError(f"weights metadata: field {key!r} uses the reserved prefix {_RESERVED_PREFIX!r}")
        return {
            **self.fields,
            _META_FORMAT: FORMAT_VERSION,
            _META_ARCH: self.arch,
            _META_ROUND: str(self.round),
            _META_PARENT: self.parent_cid or "",
        }

    @classmethod
    def from_header(cls, header: Any) -> WeightsMeta:
        if not isinstance(header, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in header.items()):
            raise FedmarketError("weights blob has no fedmarket metadata (safetensors __metadata__ of strings)")
        missing = [key for key in (_META_FORMAT, _META_ARCH, _META_ROUND, _META_PARENT) if key not in header]
        if missing:
            raise FedmarketError(f"weights blob lacks metadata field(s) {', '.join(missing)}")
        if header[_META_FORMAT] != FORMAT_VERSION:
            raise FedmarketError(f"weights blob has format version {header[_META_FORMAT]!r}; this fedmarket reads {FORMAT_VERSION!r}")
        if not re.fullmatch(r"0|[1-9][0-9]{0,17}", header[_META_ROUND]):
            raise FedmarketError(f"weights blob has a malformed round {header[_META_ROUND]!r}")
        parent = header[_META_PARENT] or None
        if parent is not None:
            validate_cid(parent)
        fields = {k: v for k, v in header.items() if not k.startswith(_RESERVED_PREFIX)}
        return cls(arch=header[_META_ARCH], round=int(header[_META_ROUND]), parent_cid=parent, fields=fields)


def _dtype_names() -> dict[torch.dtype, str]:
    import torch

    return {
        torch.float32: "F32",
        torch.int64: "I64",
        torch.int32: "I32",
        torch.int16: "I16",
        torch.int8: "I8",
        torch.uint8: "U8",
        torch.bool: "BOOL",
    }


def encode_weights(state: dict[str, torch.Tensor], meta: WeightsMeta) -> bytes:
    """Canonical safetensors bytes of `state` plus `meta`: the same state always gives the same CID.

    Floating tensors are stored as float32 (the market's wire dtype); integer and bool tensors
    (e.g. a batch-norm counter) keep their dtype. Non-finite values are refused here already, since
    every receiver would refuse them.
    """
    import torch

    if not isinstance(meta, WeightsMeta):
        raise TypeError(f"meta must be a WeightsMeta, not {type(meta).__name__}")
    names = _dtype_names()
    header: dict[str, Any] = {"__metadata__": meta.to_header()}
    arrays: list[np.ndarray] = []
    offset = 0
    for name in sorted(state):
        tensor = state[name]
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise FedmarketError(f"cannot encode weights: bad tensor name {name!r}")
        if not isinstance(tensor, torch.Tensor):
            raise FedmarketError(f"cannot encode weights: {name!r} is a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().to("cpu")
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
            if not bool(torch.isfinite(tensor).all()):
                raise FedmarketError(f"cannot encode weights: tensor {name!r} has NaN or infinite values")
        if tensor.dtype not in names:
            raise FedmarketError(f"cannot encode weights: tensor {name!r} has unsupported dtype {tensor.dtype}")
        # explicit little-endian layout, so the bytes do not depend on the host
        array = tensor.contiguous().numpy()
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        header[name] = {"dtype": names[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + array.nbytes]}
        arrays.append(array)
        offset += array.nbytes
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    text += b" " * (-len(text) % _ALIGN)
    return b"".join([struct.pack("<Q", len(text)), text, *(a.tobytes() for a in arrays)])


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key in the safetensors header")
    return dict(pairs)


def _read_header(data: bytes) -> dict[str, Any]:
    """The safetensors JSON header, or a one-line refusal that says what the blob looks like."""
    if data.startswith(_PICKLE_MAGICS):
        raise FedmarketError("weights blob is a pickle / torch.save file, not safetensors; refusing to unpickle untrusted data")
    if len(data) < 8:
        raise FedmarketError(f"weights blob is not a safetensors file: {len(data)} bytes, shorter than its 8-byte header length")
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(_MAX_HEADER, len(data) - 8):
        raise FedmarketError(f"weights blob is not a safetensors file: header length {length} exceeds the {len(data)}-byte blob")
    try:
        header = json.loads(data[8 : 8 + length].decode("utf-8"), object_pairs_hook=_refuse_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FedmarketError(f"weights blob is not a safetensors file: unreadable JSON header ({exc})") from exc
    if not isinstance(header, dict):
        raise FedmarketError("weights blob is not a safetensors file: the header is not a JSON object")
    return header


def decode_weights(
    data: bytes,
    expected: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
    expected_arch: str | None = None,
) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """Parse an untrusted weights blob; refuse (FedmarketError, one line) anything unexpected.

    expected: name -> (shape, dtype) the caller's model needs; None accepts any names and shapes.
    expected_arch: the architecture id the task spec names; None accepts any.
    """
    import safetensors.torch
    import torch

    data = bytes(data)
    header = _read_header(data)
    try:
        state = safetensors.torch.load(data)
    except Exception as exc:  # the parser of untrusted bytes: any failure is a refusal
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FedmarketError(f"weights blob is not a valid safetensors file: {reason}") from exc
    meta = WeightsMeta.from_header(header.get("__metadata__"))
    if expected_arch is not None and meta.arch != expected_arch:
        raise FedmarketError(f"weights are for architecture {meta.arch!r}, expected {expected_arch!r}")
    if expected is not None:
        _check_layout(state, expected)
    for name in sorted(state):
        tensor = state[name]
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise FedmarketError(f"weights tensor {name!r} has NaN or infinite values")
    return state, meta


def _check_layout(state: dict[str, torch.Tensor], expected: dict[str, tuple[tuple[int, ...], torch.dtype]]) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)}")
        raise FedmarketError(f"weights do not fit the model: {'; '.join(parts)}")
    for name in sorted(expected):
        shape, dtype = expected[name]
        tensor = state[name]
        if tuple(tensor.shape) != tuple(shape):
            raise FedmarketError(f"weights tensor {name!r} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
        if tensor.dtype != dtype:
            raise FedmarketError(f"weights tensor {name!r} has dtype {tensor.dtype}, expected {dtype}")


def _few(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def expected_layout(state: dict[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The `expected` argument of decode_weights for a model whose state_dict is `state`.

    Floating tensors are expected as float32, the dtype encode_weights writes them in.
    """
    import torch

    return {name: (tuple(t.shape), torch.float32 if t.is_floating_point() else t.dtype) for name, t in state.items()}


_LONGEST_ROUND = 10**18 - 1  # WeightsMeta.from_header reads at most 18 digits
_A_CID = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"  # any CIDv0: every one spells 46 characters


def max_weights_size(state: dict[str, torch.Tensor], arch: str) -> int:
    """The largest weights file of a model shaped like `state` that encode_weights writes for
    `arch`: the exact safetensors size (the data bytes plus the header with the longest round
    number and a parent CID). A blob of a task's weights above it cannot be one; stores refuse it
    unread (BlobStore.get's max_size)."""
    import torch

    layout = expected_layout(state)
    zeros = {name: torch.zeros(shape, dtype=dtype) for name, (shape, dtype) in layout.items()}
    return len(encode_weights(zeros, WeightsMeta(arch=arch, round=_LONGEST_ROUND, parent_cid=_A_CID)))
