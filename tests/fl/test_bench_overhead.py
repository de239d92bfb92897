"""`bench overhead` on tiny markets: the figures hold together (no claim of speed is tested here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from fedmarket.bench import overhead, write_results

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
TINY = overhead.Settings(trainers=3, validators=2, rounds=2, dataset="digits", model="mlp", partition="iid", lr=0.05)
TOLERANCE, SLACK_S = 0.10, 0.1  # agents' timers may carry a little polling across a round boundary


def check_consistent(report: dict[str, Any], settings: overhead.Settings) -> None:
    committee = min(3, settings.validators)
    for res in report["results"]:
        assert [r["round"] for r in res["rounds"]] == list(range(1, settings.rounds + 1))
        for r in res["rounds"]:
            assert 0 < r["ratio"] < 1
            assert r["ratio"] == pytest.approx((r["chain_s"] + r["storage_s"]) / r["wall_s"], rel=1e-3)
            assert r["train_s"] > 0 and r["storage_s"] > 0
            assert r["chain_s"] + r["storage_s"] + r["train_s"] <= r["wall_s"] * (1 + TOLERANCE) + SLACK_S
            assert 0 < r["engine_chain_s"] < r["chain_s"]  # the engine's own calls are counted, and are not all of it
            assert r["gas_used"] > 0 and r["gas_per_trainer"] == round(r["gas_used"] / settings.trainers)
            # An honest round: every commit and reveal, the committee's scores and votes, one publish.
            # commit + reveal per trainer; score commit, score reveal, vote commit, vote reveal per member; publish
            assert r["transactions"] == 2 * settings.trainers + 4 * committee + 1
            assert r["accepted"] == settings.trainers
        s = res["summary"]
        ratios = sorted(r["ratio"] for r in res["rounds"])
        assert ratios[0] <= s["median"]["ratio"] <= ratios[-1] and ratios[0] <= s["mean"]["ratio"] <= ratios[-1]
        assert s["round_1"]["ratio"] == res["rounds"][0]["ratio"]
        assert s["median"]["gas_per_trainer"] > 0
        census = res["census"]["rounds"]
        assert census["transaction"]["calls"] == sum(r["transactions"] for r in res["rounds"])
        assert census["view"]["calls"] > 0
        assert res["conserved"] and res["set_up_and_settlement"]["gas_used"] > 0
    assert report["devices_measured"] == sorted({res["device"] for res in report["results"]})


@pytest.mark.slow
def test_overhead_on_the_embedded_chain(tmp_path: Path) -> None:
    import torch

    threads = torch.get_num_threads()
    report = overhead.run(TINY, ["embedded"], ["cpu"])
    assert torch.get_num_threads() == threads  # the benchmark's thread count does not leak
    check_consistent(report, TINY)
    (res,) = report["results"]
    assert res["chain"] == "embedded" and res["device"] == "cpu"
    assert res["summary"]["target"] == 0.10 and res["summary"]["target_applies"]
    assert res["summary"]["meets_target"] == (res["summary"]["median"]["ratio"] <= 0.10)
    json_path, md_path = write_results("overhead", report, overhead.to_markdown(report), tmp_path)
    assert json.loads(json_path.read_text())["settings"]["trainers"] == 3
    text = md_path.read_text()
    assert "## Per round: embedded, cpu (cpu)" in text and "3 trainers" in text and "Devices measured: cpu." in text


@pytest.mark.anvil
@pytest.mark.slow
def test_overhead_command_on_anvil(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = {**os.environ, "FEDMARKET_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    command = [FEDMARKET, "bench", "overhead", "--trainers", "3", "--validators", "2", "--rounds", "1", "--dataset", "digits",
               "--model", "mlp", "--partition", "iid", "--chains", "anvil", "--devices", "cpu", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "overhead.json").read_text())
    settings = overhead.Settings(**report["settings"])
    assert settings.rounds == 1 and settings.trainers == 3
    check_consistent(report, settings)
    (res,) = report["results"]
    assert res["chain"] == "anvil" and res["chain_id"] == 31337
    assert res["summary"]["target"] == 0.03 and not res["summary"]["target_applies"]  # the anvil target is for GPU training
    assert "## Per round: anvil, cpu (cpu)" in (out / "overhead.md").read_text()


def test_the_engine_logs_its_own_chain_time() -> None:
    from fedmarket.chain.embedded import new_embedded_web3
    from fedmarket.market.engine import MarketConfig, run_local_market
    from fedmarket.market.setup import MarketTerms
    from fedmarket.storage.store import open_store

    config = MarketConfig(spec=TINY.spec(), terms=MarketTerms(rounds=1))
    with tempfile.TemporaryDirectory() as scratch:
        run = run_local_market(new_embedded_web3(num_accounts=10), open_store(None, Path(scratch) / "store"), config, Path(scratch) / "state")
    engine = [r for r in run.logs if r["agent"] == "engine"]
    assert sorted(r["round"] for r in engine) == [0, 1]  # set-up and settlement, then the one round
    assert {r["round"]: r["chain_s"] for r in engine} == pytest.approx(run.engine_chain_s, abs=1e-6)
    assert all(r["chain_s"] > 0 and r["train_s"] == 0 for r in engine)
    # Round 1's wall time starts before the trainers train: it holds all their training.
    trained = sum(r["train_s"] for r in run.logs if r["round"] == 1 and r["role"] == "trainer")
    assert 0 < trained < run.round_wall_s[1]


def test_targets_apply_where_the_issue_says() -> None:
    def rows(*ratios: float) -> list[dict[str, Any]]:
        return [{"round": i + 1, "ratio": x, "wall_s": 10.0, "train_s": 9.0, "chain_s": 10 * x, "storage_s": 0.0,
                 "gas_used": 1000, "gas_per_trainer": 50} for i, x in enumerate(ratios)]  # fmt: skip

    embedded = overhead._summary("embedded", "cpu", rows(0.5, 0.08, 0.09))
    assert embedded["target_applies"] and embedded["meets_target"] and not embedded["meets_target_mean"]
    assert embedded["median"]["ratio"] == 0.09 and embedded["round_1_differs"]
    assert embedded["rounds_2_on_median"]["ratio"] == pytest.approx(0.085)
    anvil_cpu = overhead._summary("anvil", "cpu", rows(0.02))
    assert not anvil_cpu["target_applies"] and anvil_cpu["meets_target"] is None and anvil_cpu["rounds_2_on_median"] is None
    anvil_gpu = overhead._summary("anvil", "cuda", rows(0.04, 0.04))
    assert anvil_gpu["target_applies"] and anvil_gpu["meets_target"] is False and not anvil_gpu["round_1_differs"]


@pytest.mark.parametrize("args, message", [
    (["--chains", "ganache"], "--chains takes"),
    (["--dataset", "nope", "--chains", "embedded"], "unknown dataset"),
])  # fmt: skip
def test_bad_options_fail_in_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    env = {**os.environ, "FEDMARKET_HOME": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run([FEDMARKET, "bench", "overhead", *args, "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0 and message in result.stderr + result.stdout
    assert not (tmp_path / "out").exists()


def test_no_gpu_means_no_cuda_device(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert overhead.default_devices() == ["cpu"]
    env = {**os.environ, "FEDMARKET_HOME": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run(
        [FEDMARKET, "bench", "overhead", "--devices", "cuda", "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode != 0 and "no GPU" in result.stderr + result.stdout
