"""`fedmarket store add | get | cid` as a user runs it: the installed console script, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubo_rpc_server import KuboRpcServer

HELLO_WORLD = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
FEDMARKET = Path(sys.executable).parent / "fedmarket"


def run(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, FEDMARKET_HOME=str(home), COLUMNS="200")
    env.pop("FEDMARKET_IPFS", None)
    result = subprocess.run([str(FEDMARKET), "store", *args], capture_output=True, env=env, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0].removeprefix("error: ")


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello world\n")
    return path


def test_cid_only_hashes(tmp_path: Path, hello: Path) -> None:
    assert run(tmp_path, "cid", str(hello)).stdout.decode().strip() == HELLO_WORLD
    facts = json.loads(run(tmp_path, "cid", str(hello), "--json").stdout)
    assert facts == {
        "cid": HELLO_WORLD,
        "digest": "0x46d44814b9c5af141c3aaab7c05dc5e844ead5f91f12858b021eba45768b4c0e",
        "size": 12,
        "file": str(hello),
    }
    assert not (tmp_path / "blobs").exists() or not any((tmp_path / "blobs").rglob("Qm*"))


def test_add_then_get_through_the_embedded_store(tmp_path: Path, hello: Path) -> None:
    added = run(tmp_path, "add", str(hello)).stdout.decode()
    assert added.startswith(f"added {HELLO_WORLD} {hello} (12 bytes, embedded store {tmp_path / 'blobs'})")
    assert (tmp_path / "blobs" / "f5" / HELLO_WORLD).read_bytes() == b"hello world\n"
    assert run(tmp_path, "get", HELLO_WORLD).stdout == b"hello world\n"  # raw bytes on stdout
    out = tmp_path / "copy.txt"
    facts = json.loads(run(tmp_path, "get", HELLO_WORLD, "-o", str(out), "--json").stdout)
    assert out.read_bytes() == b"hello world\n"
    assert facts["cid"] == HELLO_WORLD and facts["size"] == 12 and facts["file"] == str(out)


def test_add_json_and_store_dir(tmp_path: Path, hello: Path) -> None:
    store_dir = tmp_path / "elsewhere"
    facts = json.loads(run(tmp_path, "add", str(hello), "--store-dir", str(store_dir), "--json").stdout)
    assert facts["cid"] == HELLO_WORLD and facts["store"] == f"embedded store {store_dir}"
    assert (store_dir / "f5" / HELLO_WORLD).is_file()


def test_errors_are_one_line(tmp_path: Path, hello: Path) -> None:
    assert one_line_error(run(tmp_path, "get", "Qmnope", check=False)).startswith("malformed CID 'Qmnope'")
    assert one_line_error(run(tmp_path, "get", HELLO_WORLD, check=False)) == f"{HELLO_WORLD} is not in the embedded store {tmp_path / 'blobs'}"
    assert "No such file or directory" in one_line_error(run(tmp_path, "add", str(tmp_path / "missing"), check=False))
    assert "No such file or directory" in one_line_error(run(tmp_path, "cid", str(tmp_path / "missing"), check=False))
    assert one_line_error(run(tmp_path, "get", HELLO_WORLD, "--json", check=False)).startswith("--json needs -o FILE")
    run(tmp_path, "add", str(hello))
    (tmp_path / "blobs" / "f5" / HELLO_WORLD).write_bytes(b"hello w0rld\n")
    message = one_line_error(run(tmp_path, "get", HELLO_WORLD, "-o", str(tmp_path / "out"), check=False))
    assert message.endswith(f"is corrupted: content does not match CID {HELLO_WORLD}")
    assert not (tmp_path / "out").exists()  # nothing written from a corrupted blob


def test_add_and_get_through_kubo(tmp_path: Path, hello: Path, stand_in_server: KuboRpcServer) -> None:
    url = stand_in_server.url
    facts = json.loads(run(tmp_path, "add", str(hello), "--ipfs", url, "--json").stdout)
    assert facts["cid"] == HELLO_WORLD and facts["store"] == f"Kubo {url}"
    assert not (tmp_path / "blobs").exists() or not any((tmp_path / "blobs").rglob("Qm*"))  # nothing embedded
    assert run(tmp_path, "get", HELLO_WORLD, "--ipfs", url).stdout == b"hello world\n"
    stand_in_server.misbehaviour.tamper_cat = True
    assert one_line_error(run(tmp_path, "get", HELLO_WORLD, "--ipfs", url, check=False)).endswith("content does not match CID")


def test_unreachable_kubo(tmp_path: Path, hello: Path) -> None:
    message = one_line_error(run(tmp_path, "add", str(hello), "--ipfs", "http://127.0.0.1:9", check=False))
    assert message == "cannot reach Kubo at http://127.0.0.1:9: connection refused (is `ipfs daemon` running?)"
