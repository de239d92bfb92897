"""`fedmarket sim --mode ...` end to end, as a user runs it, on tiny digits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
TINY = ("--clients", "4", "--rounds", "2", "--model", "mlp", "--lr", "0.05", "--partition", "dir:0.5", "--threads", "1")


def sim(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEDMARKET_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([FEDMARKET, "sim", *TINY, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["semi", "fedasync", "local"])
def test_async_modes_json_has_the_metrics(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "run"
    result = sim("--mode", mode, "--stragglers", "0.5", "--slowdown", "2", "--trust", "kregular:2", "--out", str(out), "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["mode"] == mode and data["config"]["stragglers"] == 0.5
    for which in ("client_models", "average_model"):
        assert 0 <= data["final"][which]["accuracy"] <= 1 and 0 <= data["final"][which]["auc"] <= 1
    assert data["clock"]["compute_time_ratio"] == 1.0 and len(data["clock"]["stragglers"]) == 2
    assert len(data["curve"]) == 3 and len(data["client_digests"]) == 4
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "metrics.json").read_text())["client_digests"] == data["client_digests"]
    if mode == "semi":
        assert data["records"]["verified"] and data["records"]["counts"]["upload"] == 8
        assert len((out / "records.jsonl").read_text().splitlines()) == sum(data["records"]["counts"].values())
        assert data["trust"]["name"] == "kregular:2"


@pytest.mark.slow
def test_sync_mode_reports_the_waiting_on_the_same_clock(tmp_path: Path) -> None:
    result = sim("--stragglers", "0.5", "--slowdown", "2", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["rounds"]) == 3  # today's output, unchanged
    clock = data["clock"]
    assert clock["compute_time_ratio"] == pytest.approx(sum(clock["busy"]) / (4 * clock["makespan"]))
    assert clock["compute_time_ratio"] < 1 and clock["makespan"] == 2 * max(clock["round_costs"])


@pytest.mark.parametrize(
    "args, message",
    [
        (("--mode", "gossip"), "unknown mode"),
        (("--mode", "local", "--holdout", "5"), "--mode sync only"),
    ],
)
def test_async_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = sim(*args, home=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_sync_clock_counts_only_the_clients_that_trained(tmp_path: Path) -> None:
    """With client sampling a round lasts as long as its slowest sampled client, and an unsampled
    client computes nothing in it."""
    result = sim("--clients-per-round", "2", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    trained = [r["clients"] for r in data["rounds"] if r["round"] > 0]
    costs, clock = data["clock"]["round_costs"], data["clock"]
    assert all(len(t) == 2 for t in trained)
    assert clock["busy"] == pytest.approx([sum(costs[c] for t in trained if c in t) for c in range(4)])
    assert clock["round_end_times"] == pytest.approx([sum(max(costs[c] for c in t) for t in trained[: i + 1]) for i in range(2)])
