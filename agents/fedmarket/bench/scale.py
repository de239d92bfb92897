"""`fedmarket bench scale`: 1,000 simulated clients, FedAvg's C = 0.05, seconds per round by backend.

Each round samples C x clients clients (fl.sim.round_clients: 50 of 1,000), trains them from the
global model, aggregates, and evaluates the new model on every client's test split, as `fedmarket
sim` does. Modes, back to back on the same seed so their global models must agree:
- `sequential`: the local backend, one client at a time in this process (torch's threads);
- `workers`: the local backend's worker processes (fl.workers, one torch thread each);
- `ray`: the Ray backend (fl.ray_backend) on a local instance of as many CPUs, one task per client.
Each mode runs 1 untimed warm-up round, then `rounds` timed rounds; start-up (data in shared
memory, processes, Ray's instance) is reported apart. Whether the modes' final digests agree is
part of the report: on one machine they must (each client at one torch thread; sequential uses
torch's threads, so its digest may differ where the CPU kernels round differently with more).

The data: the partition gives every client at least MIN_CLIENT_SAMPLES (8) samples, so 1,000
clients need 8,000; digits has 1,797 and the bundled mnist 5,000. The benchmark therefore tiles
the pooled data set `copies` times (digits 5, mnist 2: the fewest that suffice) before
partitioning, as tests/fl/test_workers.py does: every sample is in the pool `copies` times, so a
client may hold copies of another client's samples, and the accuracy reported is no measure of
generalisation. This is a benchmark of time per round and memory, not of learning.

The machine is shared: the load average before and after every mode goes into the report.
"""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from fedmarket.bench import machine_facts, markdown_table
from fedmarket.bench.train import timed_simulation
from fedmarket.errors import FedmarketError

NAME = "scale"
DEFAULT_DATASETS = "digits,mnist"
MODES = ("sequential", "workers", "ray")


@dataclass(frozen=True)
class Settings:
    clients: int = 1000
    fraction: float = 0.05  # FedAvg's C
    rounds: int = 3  # timed rounds per mode, after one warm-up round
    partition: str = "dir:0.1"
    model: str = "cnn"
    cpus: int = 2  # worker processes / Ray CPUs
    seed: int = 0
    address: str | None = None  # ray: a running cluster instead of a local instance


def copies_needed(samples: int, clients: int) -> int:
    """How many times the pool must be tiled so that every client can get its minimum."""
    from fedmarket.fl.partition import MIN_CLIENT_SAMPLES

    return max(1, math.ceil(MIN_CLIENT_SAMPLES * clients / samples))


def tiled(dataset: Any, copies: int) -> Any:
    """The data set with its pool repeated `copies` times (same name and scaling, so the sim accepts it)."""
    import numpy as np

    if copies == 1:
        return dataset
    reps = (copies,) + (1,) * (dataset.x.ndim - 1)
    return replace(dataset, x=np.tile(dataset.x, reps), y=np.tile(dataset.y, copies))


def _load(values: tuple[float, ...] | list[float]) -> list[float]:
    return [round(float(v), 2) for v in values]


def time_mode(dataset: Any, settings: Settings, mode: str) -> dict[str, Any]:
    """One warm-up and `settings.rounds` timed rounds of the sim's loop in `mode`."""
    from fedmarket.fl.sim import SimConfig, clients_per_round

    per_round = clients_per_round(settings.clients, settings.fraction)
    backend = "ray" if mode == "ray" else "local"
    workers = settings.cpus if mode == "workers" or (mode == "ray" and settings.address is None) else 0
    config = SimConfig(dataset=dataset.name, partition=settings.partition, clients=settings.clients, rounds=settings.rounds + 1,
                       model=settings.model, seed=settings.seed, clients_per_round=per_round, workers=workers, backend=backend,
                       address=settings.address if mode == "ray" else None)  # fmt: skip
    load_before = os.getloadavg()
    result, total, wall, train = timed_simulation(config, dataset)
    timed = result.rounds[2:]
    trained = [len(r.clients) for r in result.rounds[1:]]
    samples = [sum(result.partition.clients[c].train for c in r.clients) for r in timed]
    return {
        "backend": backend,
        "cpus": workers or None,
        "clients_per_round": per_round,
        "clients_trained_per_round": trained,
        "train_samples_per_timed_round": samples,
        "seconds_per_round": wall,
        "train_seconds_per_round": train,
        "eval_seconds_per_round": wall - train,  # aggregation, evaluation on every client, CID
        "startup_seconds": total - sum(r.wall_s for r in result.rounds),
        "final_accuracy": result.final.metrics.accuracy,
        "final_digest": result.final.digest,
        # Peak resident memory of this process so far (kB; monotone over the modes of one run).
        "driver_max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "load_average_before": _load(load_before),
        "load_average_after": _load(os.getloadavg()),
    }


def run(
    datasets: list[str], settings: Settings = Settings(), modes: tuple[str, ...] = MODES, on_result: Callable[[dict[str, Any]], None] = lambda _e: None
) -> dict[str, Any]:
    from fedmarket.fl.datasets import load_dataset

    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise FedmarketError(f"unknown mode {', '.join(unknown) or '(none)'}; choose from {', '.join(MODES)}")
    if settings.cpus < 1:
        raise FedmarketError(f"need at least one CPU for the workers and Ray modes, got {settings.cpus}")
    load_before = os.getloadavg()
    results = []
    for name in datasets:
        base = load_dataset(name)
        copies = copies_needed(len(base), settings.clients)
        dataset = tiled(base, copies)
        entry: dict[str, Any] = {"dataset": name, "samples": len(base), "copies": copies, "pool": len(dataset)}
        for mode in modes:
            entry[mode] = time_mode(dataset, settings, mode)
        one_thread = [m for m in modes if m != "sequential"]
        entry["one_thread_digests_agree"] = len({entry[m]["final_digest"] for m in one_thread}) <= 1 if one_thread else None
        if "sequential" in modes:
            for m in one_thread:
                entry[f"{m}_speedup"] = entry["sequential"]["seconds_per_round"] / entry[m]["seconds_per_round"]
        results.append(entry)
        on_result(entry)
    return {
        "benchmark": NAME,
        "settings": {**asdict(settings), "modes": list(modes), "warmup_rounds": 1},
        "machine": {**machine_facts(), "load_average_before": _load(load_before), "load_average_after": _load(os.getloadavg())},
        "results": results,
    }


def _slash(values: list[float]) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def to_markdown(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    rows = []
    for r in report["results"]:
        for mode in s["modes"]:
            e = r[mode]
            speedup = r.get(f"{mode}_speedup")
            rows.append([r["dataset"], f"{r['samples']} x {r['copies']}", mode, str(e["cpus"] or "-"), f"{e['seconds_per_round']:.2f}",
                         f"{e['train_seconds_per_round']:.2f}", f"{e['eval_seconds_per_round']:.2f}", f"{e['startup_seconds']:.1f}",
                         f"{speedup:.2f}x" if speedup else "-", f"{e['driver_max_rss_kb'] / 1024:.0f}",
                         f"{_slash(e['load_average_before'])} -> {_slash(e['load_average_after'])}"])  # fmt: skip
    agree = ", ".join(
        f"{r['dataset']}: {'yes' if r['one_thread_digests_agree'] else 'NO'}" for r in report["results"] if r["one_thread_digests_agree"] is not None
    )
    table = markdown_table(
        [
            "dataset",
            "pool",
            "mode",
            "CPUs",
            "s / round",
            "training",
            "aggregation + evaluation",
            "start-up s",
            "vs sequential",
            "driver peak MB",
            "load 1/5/15",
        ],
        rows,
    )
    return (
        f"# bench scale: {s['clients']} clients, C = {s['fraction']} ({s['partition']}, {s['model']}), seconds per round by backend\n\n"
        f"{s['rounds']} timed round{'s' if s['rounds'] != 1 else ''} after {s['warmup_rounds']} warm-up round per mode, seed {s['seed']}; a round trains the sampled "
        "clients and evaluates the global model on every client's test split. The pool is the data set tiled `copies` times "
        "(every client needs 8 samples): a benchmark of time and memory, not of accuracy.\n"
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads in this process); "
        f"measured {m['measured_at']}; load average (1/5/15 min) {_slash(m['load_average_before'])} before, {_slash(m['load_average_after'])} after.\n\n"
        + table
        + (f"\n\nSame final global model in the one-thread modes (workers, ray): {agree}.\n" if agree else "\n")
    )
