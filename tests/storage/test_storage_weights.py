"""Weights files: canonical safetensors bytes in, and every kind of bad blob refused on the way out."""

from __future__ import annotations

import io
import json
import pickle
import random
import struct
import subprocess
import sys

import pytest
import safetensors.torch
import torch

from fedmarket.errors import FedmarketError
from fedmarket.storage.cid import cid_of
from fedmarket.storage.weights import WeightsMeta, decode_weights, encode_weights, expected_layout

PARENT = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
META = WeightsMeta(arch="cnn-digits", round=3, parent_cid=PARENT, fields={"trainer": "0xabc", "samples": "120"})


def small_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10))
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def refused(data: bytes, match: str, **kwargs) -> FedmarketError:
    with pytest.raises(FedmarketError, match=match) as info:
        decode_weights(data, **kwargs)
    assert "\n" not in str(info.value), "refusals are one line"
    return info.value


# ----------------------------------------------------------------------------- the happy path


def test_round_trip() -> None:
    state = small_state()
    data = encode_weights(state, META)
    decoded, meta = decode_weights(data, expected_layout(state), "cnn-digits")
    assert meta == META
    assert sorted(decoded) == sorted(state)
    for name in state:
        assert torch.equal(decoded[name], state[name])


def test_no_parent_and_no_fields() -> None:
    meta = WeightsMeta(arch="mlp", round=0)
    _, decoded = decode_weights(encode_weights(small_state(), meta))
    assert decoded == meta and decoded.parent_cid is None and decoded.fields == {}


def test_the_library_reads_it_as_safetensors(tmp_path) -> None:
    data = encode_weights(small_state(), META)
    path = tmp_path / "w.safetensors"
    path.write_bytes(data)
    with safetensors.safe_open(str(path), framework="pt") as handle:
        assert handle.metadata()["fedmarket.arch"] == "cnn-digits"
        assert handle.metadata()["trainer"] == "0xabc"
        assert sorted(handle.keys()) == sorted(small_state())
    header_length = struct.unpack("<Q", data[:8])[0]
    assert (8 + header_length) % 8 == 0  # padded as safetensors pads it


def test_same_state_same_bytes_whatever_the_order_or_layout() -> None:
    state = small_state()
    reordered = dict(reversed(list(state.items())))
    strided = {name: t.t().contiguous().t() if t.dim() == 2 else t for name, t in state.items()}  # non-contiguous views
    as_double = {name: t.double().requires_grad_(True) for name, t in state.items()}  # float64, grad: stored float32
    fields_reordered = WeightsMeta(META.arch, META.round, META.parent_cid, dict(reversed(list(META.fields.items()))))
    reference = encode_weights(state, META)
    assert encode_weights(reordered, META) == reference
    assert encode_weights(strided, META) == reference
    assert encode_weights(as_double, META) == reference
    assert encode_weights(state, fields_reordered) == reference
    assert encode_weights(small_state(seed=1), META) != reference


def test_same_cid_in_another_process() -> None:
    # safetensors.torch.save orders __metadata__ by a per-process hash seed (6 keys here: 720
    # orders); our encoder must not depend on it.
    script = (
        "import torch, sys; sys.path[:0] = " + repr(sys.path) + "\n"
        "from test_storage_weights import small_state, META\n"
        "from fedmarket.storage.weights import encode_weights\n"
        "from fedmarket.storage.cid import cid_of\n"
        "print(cid_of(encode_weights(small_state(), META)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == cid_of(encode_weights(small_state(), META))


def test_integer_and_bool_tensors_keep_their_dtype() -> None:
    model = torch.nn.BatchNorm1d(3)
    state = dict(model.state_dict()) | {"mask": torch.tensor([True, False])}
    decoded, _ = decode_weights(encode_weights(state, META), expected_layout(state))
    assert decoded["num_batches_tracked"].dtype == torch.int64
    assert decoded["mask"].dtype == torch.bool and decoded["mask"].tolist() == [True, False]


def test_scalars_and_empty_tensors() -> None:
    state = {"scalar": torch.tensor(1.5), "empty": torch.zeros(0, 3)}
    decoded, _ = decode_weights(encode_weights(state, META), {"scalar": ((), torch.float32), "empty": ((0, 3), torch.float32)})
    assert decoded["scalar"].item() == 1.5 and decoded["empty"].shape == (0, 3)


# ----------------------------------------------------------------------------- refusing bad blobs


def test_real_torch_save_pickle_is_refused() -> None:
    state = small_state()
    for legacy in (False, True):
        buffer = io.BytesIO()
        torch.save(state, buffer, _use_new_zipfile_serialization=not legacy)
        refused(buffer.getvalue(), r"^weights blob is a pickle / torch.save file, not safetensors; refusing to unpickle")


def test_plain_pickle_is_refused() -> None:
    refused(pickle.dumps({"weight": [1.0, 2.0]}), r"^weights blob is a pickle")


def test_random_bytes_are_refused() -> None:
    rng = random.Random(7)
    for size in (0, 3, 8, 100, 10_000):
        blob = bytes(rng.getrandbits(8) for _ in range(size))
        if blob.startswith((b"PK\x03\x04", b"\x80")):
            continue
        refused(blob, r"^weights blob is not a (valid )?safetensors file")


def test_truncated_blobs_are_refused() -> None:
    data = encode_weights(small_state(), META)
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    for cut in (4, 8, 20, header_end - 1, header_end, header_end + 5, len(data) - 1):
        refused(data[:cut], r"^weights blob is not a (valid )?safetensors file")


def test_trailing_garbage_is_refused() -> None:
    refused(encode_weights(small_state(), META) + b"\x00" * 4, r"^weights blob is not a valid safetensors file")


def test_bad_json_header_is_refused() -> None:
    for header in (b"not json", b"[1, 2]", b'{"a": 1, "a": 2}', b"\xff\xfe"):
        refused(struct.pack("<Q", len(header)) + header, r"^weights blob is not a safetensors file")


def _library_blob(state: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> bytes:
    """A well-formed safetensors file written by the library itself, bypassing encode_weights' checks."""
    return safetensors.torch.save(state, metadata=metadata)


def test_safetensors_without_fedmarket_metadata_is_refused() -> None:
    refused(_library_blob(small_state(), None), r"^weights blob has no fedmarket metadata")
    refused(_library_blob(small_state(), {"format": "pt"}), r"^weights blob lacks metadata field\(s\) fedmarket.format")


def test_bad_metadata_is_refused() -> None:
    header = META.to_header()
    refused(_library_blob(small_state(), header | {"fedmarket.format": "2"}), r"format version '2'")
    refused(_library_blob(small_state(), header | {"fedmarket.round": "-1"}), r"malformed round '-1'")
    refused(_library_blob(small_state(), header | {"fedmarket.round": "01"}), r"malformed round '01'")
    refused(_library_blob(small_state(), header | {"fedmarket.parent": "QmNotACid"}), r"^malformed CID 'QmNotACid'")


def test_wrong_architecture_is_refused() -> None:
    data = encode_weights(small_state(), META)
    refused(data, r"^weights are for architecture 'cnn-digits', expected 'mlp-digits'$", expected_arch="mlp-digits")


def test_wrong_names_are_refused() -> None:
    state = small_state()
    layout = expected_layout(state)
    missing = dict(state)
    del missing["2.bias"]
    refused(encode_weights(missing, META), r"^weights do not fit the model: missing '2.bias'$", expected=layout)
    extra = state | {"backdoor": torch.zeros(1)}
    refused(encode_weights(extra, META), r"^weights do not fit the model: unexpected 'backdoor'$", expected=layout)
    renamed = {("x." + k if k.startswith("0.") else k): v for k, v in state.items()}
    refused(encode_weights(renamed, META), r"missing '0.bias', '0.weight'; unexpected 'x.0.bias', 'x.0.weight'", expected=layout)


def test_wrong_shape_is_refused() -> None:
    state = small_state()
    layout = expected_layout(state)
    state["2.weight"] = torch.zeros(10, 143)
    refused(encode_weights(state, META), r"^weights tensor '2.weight' has shape \(10, 143\), expected \(10, 144\)$", expected=layout)


def test_wrong_dtype_is_refused() -> None:
    state = small_state()
    layout = expected_layout(state)
    half = dict(state) | {"0.bias": state["0.bias"].half()}
    refused(_library_blob(half, META.to_header()), r"^weights tensor '0.bias' has dtype torch.float16, expected torch.float32$", expected=layout)
    ints = dict(state) | {"0.bias": torch.zeros(4, dtype=torch.int32)}
    refused(encode_weights(ints, META), r"has dtype torch.int32, expected torch.float32", expected=layout)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_refused(bad: float) -> None:
    state = small_state()
    state["2.weight"][3, 7] = bad
    refused(_library_blob(state, META.to_header()), r"^weights tensor '2.weight' has NaN or infinite values$")
    with pytest.raises(FedmarketError, match=r"^cannot encode weights: tensor '2.weight' has NaN or infinite values$"):
        encode_weights(state, META)


def test_non_finite_half_precision_is_refused() -> None:
    state = {"w": torch.tensor([1.0, float("nan")], dtype=torch.bfloat16)}
    refused(_library_blob(state, META.to_header()), r"^weights tensor 'w' has NaN or infinite values$")


# ----------------------------------------------------------------------------- refusing bad input to encode


def test_encode_refuses_bad_input() -> None:
    with pytest.raises(FedmarketError, match=r"'w' is a list, not a tensor"):
        encode_weights({"w": [1.0]}, META)  # type: ignore[dict-item]
    with pytest.raises(FedmarketError, match=r"unsupported dtype torch.complex64"):
        encode_weights({"w": torch.zeros(2, dtype=torch.complex64)}, META)
    with pytest.raises(FedmarketError, match=r"bad tensor name '__metadata__'"):
        encode_weights({"__metadata__": torch.zeros(1)}, META)
    with pytest.raises(FedmarketError, match=r"reserved prefix"):
        encode_weights(small_state(), WeightsMeta("cnn", 1, fields={"fedmarket.arch": "other"}))
    with pytest.raises(FedmarketError, match=r"round must be an integer >= 0"):
        encode_weights(small_state(), WeightsMeta("cnn", -1))
    with pytest.raises(FedmarketError, match=r"arch must be a non-empty string"):
        encode_weights(small_state(), WeightsMeta("", 1))
    with pytest.raises(FedmarketError, match=r"^malformed CID"):
        encode_weights(small_state(), WeightsMeta("cnn", 1, parent_cid="not-a-cid"))
    with pytest.raises(TypeError, match=r"meta must be a WeightsMeta"):
        encode_weights(small_state(), {"arch": "cnn", "round": "1"})  # type: ignore[arg-type]


def test_header_is_canonical_json() -> None:
    data = encode_weights(small_state(), META)
    header = data[8 : 8 + struct.unpack("<Q", data[:8])[0]].rstrip(b" ")
    parsed = json.loads(header)
    assert header == json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    offsets = [parsed[name]["data_offsets"] for name in sorted(k for k in parsed if k != "__metadata__")]
    assert offsets[0][0] == 0 and all(a[1] == b[0] for a, b in zip(offsets, offsets[1:]))  # name order, no gaps
