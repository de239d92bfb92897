"""`bench train` and `bench accuracy` on tiny settings: the reports hold what their tables claim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedmarket.bench import accuracy, train, write_results


@pytest.mark.slow
def test_bench_train_report(tmp_path: Path) -> None:
    settings = train.Settings(clients=3, rounds=1, model="mlp", input_scaling="standard", workers=1, target_model="mlp", target_rounds=2, target_accuracy=0.999)
    report = train.run([("digits", "iid")], settings)
    (entry,) = report["results"]
    for mode in ("sequential", "workers"):
        assert entry[mode]["seconds_per_round"] > 0 and len(entry[mode]["accuracy_per_round"]) == 3
    assert entry["workers"]["workers"] == 1 and entry["sequential"]["workers"] == 0
    assert entry["workers_speedup"] == pytest.approx(entry["sequential"]["seconds_per_round"] / entry["workers"]["seconds_per_round"])
    reached = entry["time_to_accuracy"]
    assert not reached["reached"] and reached["rounds"] == 2 and reached["shorter_than_pfllib"] is None  # 99.9 % is out of reach
    assert report["machine"]["cpu_count"] >= 1 and len(report["machine"]["load_average_before"]) == 3
    json_path, md_path = write_results("train", report, train.to_markdown(report), tmp_path)
    assert json.loads(json_path.read_text())["settings"]["clients"] == 3
    text = md_path.read_text()
    assert "| digits | iid | workers | 1 |" in text and "not reached in 2 rounds" in text


@pytest.mark.slow
def test_bench_accuracy_report() -> None:
    report = accuracy.run(["digits"], ["pat:2"], {"digits": 2}, clients=4, seed=0, device="cpu", batched=True)
    (entry,) = report["results"]
    assert len(entry["fedavg"]["accuracy_per_round"]) == 3 and entry["centralised"]["epochs"] == 2
    for side in (entry["fedavg"]["final"], entry["centralised"]["metrics"]):
        assert 0 <= side["accuracy"] <= 1 and 0 <= side["auc"] <= 1
    # Pooled accuracy equals the sample-weighted mean over clients.
    assert entry["fedavg"]["final"]["accuracy"] == pytest.approx(entry["fedavg"]["final_weighted_over_clients"]["accuracy"])
    assert "| digits | pat:2 | 2 |" in accuracy.to_markdown(report)


def test_scenario_and_rounds_parsing() -> None:
    assert train.parse_scenarios("digits:dir:0.1, mnist:iid") == [("digits", "dir:0.1"), ("mnist", "iid")]
    assert accuracy.parse_rounds("5", ["digits", "mnist"]) == {"digits": 5, "mnist": 5}
    assert accuracy.parse_rounds("digits=40,mnist=10", ["digits", "mnist", "fmnist"]) == {"digits": 40, "mnist": 10, "fmnist": 40}
