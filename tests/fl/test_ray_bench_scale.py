"""`fedmarket bench scale`: the tiled pool, and the command end to end on a tiny run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fedmarket.bench.scale import copies_needed, tiled
from fedmarket.fl.datasets import load_dataset
from fedmarket.fl.partition import MIN_CLIENT_SAMPLES, partition

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))


def test_the_pool_is_tiled_just_enough_for_every_client_to_get_its_minimum() -> None:
    assert copies_needed(1797, 1000) == 5 and copies_needed(5000, 1000) == 2 and copies_needed(5000, 100) == 1
    digits = load_dataset("digits")
    pool = tiled(digits, copies_needed(len(digits), 1000))
    assert len(pool) == 5 * len(digits) and pool.x.shape[1:] == digits.x.shape[1:] and (pool.name, pool.scaling) == (digits.name, digits.scaling)
    assert np.array_equal(pool.x[len(digits) : 2 * len(digits)], digits.x) and np.array_equal(pool.y[-len(digits) :], digits.y)
    assert tiled(digits, 1) is digits
    parts = partition(pool.y, 1000, "dir:0.1", 0)  # what the untiled pool is refused
    assert min(len(c.all) for c in parts.clients) >= MIN_CLIENT_SAMPLES


@pytest.mark.slow
def test_bench_scale_writes_both_modes_and_they_agree(tmp_path: Path) -> None:
    # 200 clients on digits (1,797 samples are enough for 200 x 8: not tiled), 4 trained per round.
    args = ["--datasets", "digits", "--clients", "200", "--fraction", "0.02", "--rounds", "1", "--model", "mlp", "--modes", "sequential,workers",
            "--cpus", "1", "--threads", "1", "--out", str(tmp_path), "--json"]  # fmt: skip
    done = subprocess.run([FEDMARKET, "bench", "scale", *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert json.loads((tmp_path / "scale.json").read_text()) == report
    (entry,) = report["results"]
    assert entry["copies"] == 1 and entry["pool"] == 1797
    for mode in ("sequential", "workers"):
        assert entry[mode]["clients_trained_per_round"] == [4, 4] and entry[mode]["seconds_per_round"] > 0
    # One torch thread in this process too: the sequential loop and the worker equal bit for bit.
    assert entry["sequential"]["final_digest"] == entry["workers"]["final_digest"]
    assert len(report["machine"]["load_average_before"]) == 3
    page = (tmp_path / "scale.md").read_text()
    assert "| digits | 1797 x 1 | workers | 1 |" in page and "200 clients, C = 0.02" in page
