"""`fedmarket bench cid`: every figure measured and written, embedded and Kubo alike (tiny sizes)."""

from __future__ import annotations

import json
from pathlib import Path

from kubo_rpc_server import KuboRpcServer

from fedmarket.bench import write_results
from fedmarket.bench.cid import measure, to_markdown


def test_measure_and_write(tmp_path: Path, stand_in_server: KuboRpcServer) -> None:
    report = measure([1], repeats=1, ipfs=stand_in_server.url)
    (row,) = report["results"]
    assert row["size_mb"] == 1 and row["cid"].startswith("Qm")
    operations = {"sha256", "cid_of", "cid_of_file", "embedded_put", "embedded_get", "kubo_put", "kubo_get"}
    assert set(row["mb_per_s"]) == operations and all(v > 0 for v in row["mb_per_s"].values())
    assert report["kubo"]["version"].startswith("0.22.0") and report["machine"]["cpu_count"] >= 1
    json_path, md_path = write_results("cid", report, to_markdown(report), tmp_path)
    assert json.loads(json_path.read_text())["results"][0]["cid"] == row["cid"]
    table_header = "| size (MB) | sha256 | cid_of | cid_of_file | embedded_put | embedded_get | kubo_put | kubo_get |"
    assert table_header in md_path.read_text()
