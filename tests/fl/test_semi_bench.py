"""`fedmarket bench semi` end to end on tiny digits: every method's row, the clocks, the files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))


@pytest.mark.slow
def test_bench_semi_runs_every_method_side_by_side(tmp_path: Path) -> None:
    args = ["bench", "semi", "--datasets", "digits", "--partitions", "dir:0.5", "--seeds", "0", "--clients", "4", "--rounds", "2"]
    args += ["--model", "mlp", "--lr", "0.05", "--temperatures", "0.3", "--threads", "1", "--out", str(tmp_path), "--json"]
    env = {**os.environ, "FEDMARKET_HOME": str(tmp_path / "home")}
    result = subprocess.run([FEDMARKET, *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    runs = {r["method"]: r for r in report["runs"]}
    assert list(runs) == ["semi", "semi_no_loss_weights", "semi_no_staleness", "semi_T0.3", "fedasync", "fedavg", "fedavg_stragglers", "local"]
    for method in ("semi", "semi_no_loss_weights", "semi_no_staleness", "semi_T0.3", "fedasync", "local"):
        assert runs[method]["compute_time_ratio"] == 1.0
    # FedAvg: one training run, two clocks; the stragglers' clock is the one the async methods ran on
    fedavg, slowed = runs["fedavg"], runs["fedavg_stragglers"]
    assert fedavg["client_models"] == slowed["client_models"] and fedavg["compute_time_ratio"] < 1
    assert [a for _, a in fedavg["curve"]] == [a for _, a in slowed["curve"]]
    assert slowed["virtual_time"] == max(r["virtual_time"] for r in report["runs"])  # waiting for the slowest each round
    assert [len(r["curve"]) for r in report["runs"]] == [3] * 8
    assert len(report["summary"]) == 8 and report["summary"][0]["accuracy"][1] == 0.0  # one seed: std 0
    assert "load_average_before" in report["machine"]
    markdown = (tmp_path / "semi.md").read_text()
    assert "| digits | dir:0.5 | fedavg_stragglers |" in markdown and "load average" in markdown
    assert json.loads((tmp_path / "semi.json").read_text())["runs"] == report["runs"]
    assert (tmp_path / "semi.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_bench_semi_reports_each_method_as_it_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    from fedmarket.bench import semi as semi_bench

    events: list[str] = []
    real = semi_bench._run_async

    def traced(config, data, partition, seed, method):
        events.append(f"ran {method}")
        return real(config, data, partition, seed, method)

    monkeypatch.setattr(semi_bench, "_run_async", traced)
    config = semi_bench.SemiBenchConfig(datasets=("digits",), partitions=("dir:0.5",), seeds=(0,), clients=2, rounds=1, model="mlp", lr=0.05)
    report = semi_bench.run(config, on_result=lambda entry: events.append(f"reported {entry['method']}"))
    # a long run shows progress: every method is reported before the next one starts
    assert events == [
        "ran semi", "reported semi", "ran semi_no_loss_weights", "reported semi_no_loss_weights",
        "ran semi_no_staleness", "reported semi_no_staleness", "ran fedasync", "reported fedasync",
        "reported fedavg", "reported fedavg_stragglers", "ran local", "reported local",
    ]  # fmt: skip
    assert [r["method"] for r in report["runs"]] == semi_bench.method_names(config)


def _without_timings(runs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in runs]


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")  # what each child process runs with
def test_bench_semi_in_parallel_processes_gives_the_sequential_runs(tmp_path: Path) -> None:
    from fedmarket.bench import semi as semi_bench

    config = semi_bench.SemiBenchConfig(datasets=("digits",), partitions=("dir:0.5",), seeds=(0, 1), clients=3, rounds=2, model="mlp", lr=0.05,
                                        methods=("semi", "fedavg_stragglers", "local"))  # fmt: skip
    sequential = semi_bench.run(config)
    reported: list[tuple[int, str]] = []
    parallel = semi_bench.run(replace(config, jobs=2), on_result=lambda entry: reported.append((entry["seed"], entry["method"])))
    # the fedavg run is made for its stragglers' row, and only the rows asked for are kept
    assert [(r["seed"], r["method"]) for r in sequential["runs"]] == [(s, m) for s in (0, 1) for m in ("semi", "fedavg_stragglers", "local")]
    assert _without_timings(parallel["runs"]) == _without_timings(sequential["runs"])  # whichever process finished first
    assert sorted(reported) == sorted((r["seed"], r["method"]) for r in parallel["runs"])
    assert parallel["summary"] == sequential["summary"] and parallel["settings"]["jobs"] == 2
    assert parallel["cpu_s"] > 0 and "2 processes of 1 thread" in semi_bench.to_markdown(parallel)


def test_bench_semi_refuses_an_unknown_method_before_training(tmp_path: Path) -> None:
    result = subprocess.run([FEDMARKET, "bench", "semi", "--methods", "semi,fedprox", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: unknown method 'fedprox': choose from semi, semi_no_loss_weights, semi_no_staleness, fedasync, fedavg, fedavg_stragglers, local"
    )
    assert not list(tmp_path.iterdir())


def test_a_failing_cell_stops_the_parallel_run_with_its_error(tmp_path: Path) -> None:
    from fedmarket.bench import semi as semi_bench
    from fedmarket.errors import FedmarketError

    config = semi_bench.SemiBenchConfig(datasets=("digits",), partitions=("dir:0.5",), seeds=(0,), clients=3, rounds=1, model="no-such-model", jobs=2,
                                        methods=("semi", "local"))  # fmt: skip
    # both cells fail, whichever first stops the run (the other is killed)
    with pytest.raises(FedmarketError, match=r"^bench semi cell digits dir:0.5 0 (semi|local) failed: error: unknown model 'no-such-model'"):
        semi_bench.run(config)


@pytest.mark.slow
def test_bench_semi_merges_runs_of_one_protocol_into_one_table(tmp_path: Path) -> None:
    from fedmarket.bench import semi as semi_bench

    base = semi_bench.SemiBenchConfig(datasets=("digits",), partitions=("dir:0.5",), seeds=(0,), clients=3, rounds=1, model="mlp", lr=0.05)
    parts = {
        "a.json": semi_bench.run(replace(base, methods=("semi", "fedavg", "fedavg_stragglers", "local"))),
        "b.json": semi_bench.run(replace(base, seeds=(1,), methods=("local", "semi"))),
        "other.json": semi_bench.run(replace(base, seeds=(2,), methods=("semi",), rounds=2)),
    }
    for name, report in parts.items():
        (tmp_path / name).write_text(json.dumps(report))
    out = tmp_path / "out"
    merge = [FEDMARKET, "bench", "semi", "--out", str(out), "--json", "--merge"]
    result = subprocess.run([*merge, f"{tmp_path / 'a.json'},{tmp_path / 'b.json'}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    merged = json.loads(result.stdout)
    assert [(r["seed"], r["method"]) for r in merged["runs"]] == [(0, "semi"), (0, "fedavg"), (0, "fedavg_stragglers"), (0, "local"), (1, "semi"), (1, "local")]
    seeds = {r["method"]: r["seeds"] for r in merged["summary"]}
    assert seeds == {"semi": 2, "fedavg": 1, "fedavg_stragglers": 1, "local": 2}
    semi_row = next(r for r in merged["summary"] if r["method"] == "semi")
    assert semi_row["accuracy"][0] == pytest.approx(
        (parts["a.json"]["runs"][0]["client_models"]["accuracy"] + parts["b.json"]["runs"][1]["client_models"]["accuracy"]) / 2
    )
    assert merged["settings"]["seeds"] == [0, 1] and [m["source"] for m in merged["merged_from"]] == [str(tmp_path / n) for n in ("a.json", "b.json")]
    markdown = (out / "semi.md").read_text()
    assert "| digits | dir:0.5 | semi | 2 |" in markdown and "2 runs merged" in markdown and (out / "semi.png").is_file()

    twice = subprocess.run([*merge, f"{tmp_path / 'a.json'},{tmp_path / 'a.json'}"], capture_output=True, text=True, timeout=120)
    assert (
        twice.returncode == 1
        and twice.stderr.strip() == f"error: digits dir:0.5 0 semi is in both {tmp_path / 'a.json'} and {tmp_path / 'a.json'}: merge each run once"
    )
    other = subprocess.run([*merge, f"{tmp_path / 'a.json'},{tmp_path / 'other.json'}"], capture_output=True, text=True, timeout=120)
    assert other.returncode == 1 and other.stderr.strip() == f"error: {tmp_path / 'other.json'} ran another protocol: rounds 2, {tmp_path / 'a.json'} 1"
    (tmp_path / "gas.json").write_text(json.dumps({"benchmark": "gas"}))
    foreign = subprocess.run([*merge, str(tmp_path / "gas.json")], capture_output=True, text=True, timeout=120)
    assert foreign.returncode == 1 and foreign.stderr.strip() == f"error: {tmp_path / 'gas.json'} is not a bench semi report"
