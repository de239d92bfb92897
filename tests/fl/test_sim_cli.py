"""`fedmarket sim` end to end, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FEDMARKET_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([FEDMARKET, "sim", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_sim_json_and_output_files(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run("--clients", "4", "--rounds", "2", "--partition", "pat:2", "--seed", "1", "--out", str(out), "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["config"]["partition"] == "pat:2" and len(data["rounds"]) == 3
    assert all(len(c["labels"]) == 2 for c in data["partition"]["clients"])
    assert json.loads((out / "metrics.json").read_text())["final"] == data["final"]
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # written as it went: one JSON line per round, the same rounds as the final metrics
    kept = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["global_cid"] for r in kept] == [r["global_cid"] for r in data["rounds"]]
    # not a terminal: one plain progress line per round on stderr
    assert [line.split(":")[0] for line in result.stderr.splitlines() if line.startswith("round ")] == ["round 0/2", "round 1/2", "round 2/2"]


@pytest.mark.slow
def test_sim_table_output(tmp_path: Path) -> None:
    result = run("--dataset", "diabetes", "--clients", "3", "--rounds", "1", "--partition", "iid", "--sequential", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "partition iid" in result.stdout and "mse" in result.stdout and "target bin" in result.stdout
    assert "round 1: Qm" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("--dataset", "nope"), "unknown dataset"),
        (("--partition", "dir:-1"), "bad partition"),
        (("--aggregation", "mode"), "unknown aggregation"),
    ],
)
def test_sim_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run(*args, "--rounds", "1", home=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_sim_runs_the_seed_authors_cnn_on_pm1_pixels(tmp_path: Path) -> None:
    # PFLlib's like-for-like settings from the command line; the holdout leaves 100 mnist images to train on.
    args = ("--dataset", "mnist", "--model", "fedavgcnn", "--input-scaling", "pm1", "--clients", "2", "--rounds", "1", "--holdout", "4900")
    result = run(*args, "--partition", "iid", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model_id"] == "fedavgcnn-v1:1x28x28:10" and data["config"]["input_scaling"] == "pm1"
    assert len(data["rounds"]) == 2 and data["final"]["metrics"]["num_samples"] == sum(c["test"] for c in data["partition"]["clients"])


@pytest.mark.slow
def test_sim_workers_and_fraction_flags(tmp_path: Path) -> None:
    result = run("--clients", "4", "--rounds", "1", "--partition", "iid", "--model", "mlp", "--workers", "2", "--fraction", "0.5", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["config"]["workers"] == 2 and data["config"]["clients_per_round"] == 2
    assert len(data["rounds"][1]["clients"]) == 2 and data["rounds"][0]["clients"] == []
    both = run("--clients", "4", "--rounds", "1", "--fraction", "0.5", "--clients-per-round", "2", home=tmp_path)
    assert both.returncode != 0 and "not both" in both.stderr and len(both.stderr.strip().splitlines()) == 1
