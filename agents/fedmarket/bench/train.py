"""`fedmarket bench train`: seconds per FedAvg round, one client at a time vs in parallel workers,
and the time to a target accuracy, next to the seed paper's authors' library (PFLlib).

Part 1, like for like: the seed protocol (20 clients, batch 10, lr 0.005, 1 local epoch, FedAvg,
mnist Dir(0.1)) with PFLlib's own CNN (fl.models' fedavgcnn) on pixels in [-1, 1], as PFLlib runs
it. Each mode runs 1 untimed warm-up round and `rounds` timed rounds of `fedmarket sim`'s loop; a
round is every client's local training, the aggregation, the evaluation of the new global model
on every client's test split and its CID, so it is what PFLlib's 6.3 s per round (3.6 s training,
2.8 s evaluation, both cores of this machine kind, quiet) counts. Modes: `sequential` (one client
at a time in this process, torch's threads) and `workers` (fl.workers: one process per core, one
torch thread each). Worker start-up (once per run) is reported apart.

Part 2, time to accuracy: our default CNN (McMahan's padded one, standard scaling) in the workers
mode until the sample-weighted test accuracy reaches the target (85 %) or `target_rounds` pass;
PFLlib's figure is 100 rounds x 6.3 s = 630 s (0.859 after 100 rounds). The time counts every
round and the start-up; a run that stops short of the target says so instead of extrapolating.

The machine is shared: the load average before and after goes into the report, and the modes run
back to back so that their ratio is measured under the same load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fedmarket.bench import machine_facts, markdown_table
from fedmarket.errors import FedmarketError
from fedmarket.fl.learning import SEED_PROTOCOL

NAME = "train"
DEFAULT_SCENARIOS = "mnist:dir:0.1"
MODES = ("sequential", "workers")
PFLLIB_SECONDS_PER_ROUND = 6.3  # FedAvgCNN, mnist Dir(0.1), 20 clients, 2 cores (issue 13)
PFLLIB_ROUNDS_TO_85 = 100  # 0.859 after 100 rounds
SPEED_TARGET = 3.0  # >= 3x PFLlib's rounds per second like for like
TIME_TO_ACCURACY_TARGET = 5.0  # >= 5x shorter time to 85 %


@dataclass(frozen=True)
class Settings:
    clients: int = 20
    rounds: int = 3  # timed rounds per mode, after one warm-up round
    model: str = "fedavgcnn"
    input_scaling: str = "pm1"
    workers: int = 0  # 0: one per core
    seed: int = 0
    target_accuracy: float = 0.85
    target_model: str = "cnn"
    target_rounds: int = 0  # 0: skip part 2


def parse_scenarios(text: str) -> list[tuple[str, str]]:
    """ "digits:dir:0.1,mnist:iid" -> [("digits", "dir:0.1"), ("mnist", "iid")]."""
    scenarios = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        dataset, _, scheme = item.partition(":")
        if not scheme:
            raise FedmarketError(f"bad scenario {item!r}; write DATASET:PARTITION, e.g. mnist:dir:0.1")
        scenarios.append((dataset, scheme))
    return scenarios


def _workers(settings: Settings) -> int:
    return settings.workers or os.cpu_count() or 1


def timed_simulation(config: Any, dataset: Any) -> tuple[Any, float, float, float]:
    """Run `config` on `dataset`: (result, total seconds, seconds and training seconds per
    round after the first, the warm-up); bench scale times its modes the same way."""
    from fedmarket.fl.sim import run_simulation

    started = time.perf_counter()
    result = run_simulation(config, dataset=dataset)
    total = time.perf_counter() - started
    timed = result.rounds[2:]
    return result, total, sum(r.wall_s for r in timed) / len(timed), sum(r.train_s for r in timed) / len(timed)


def time_mode(dataset, scheme: str, settings: Settings, mode: str) -> dict[str, Any]:
    """One warm-up and `settings.rounds` timed rounds of the sim's loop in `mode`."""
    from fedmarket.fl.sim import SimConfig

    workers = _workers(settings) if mode == "workers" else 0
    config = SimConfig(dataset=dataset.name, partition=scheme, clients=settings.clients, rounds=settings.rounds + 1, model=settings.model,
                       input_scaling=settings.input_scaling, workers=workers, seed=settings.seed)  # fmt: skip
    result, total, wall, train = timed_simulation(config, dataset)
    return {
        "workers": workers,
        "seconds_per_round": wall,
        "train_seconds_per_round": train,
        "eval_seconds_per_round": wall - train,  # aggregation, evaluation and CID
        "startup_seconds": total - sum(r.wall_s for r in result.rounds),  # data, partition, workers
        "accuracy_per_round": [r.metrics.accuracy for r in result.rounds],
        "final_digest": result.final.digest,
    }


def time_to_accuracy(dataset, scheme: str, settings: Settings) -> dict[str, Any]:
    """Rounds and seconds until the target accuracy, our default CNN in the workers mode."""
    from fedmarket.fl.sim import SimConfig, run_simulation

    config = SimConfig(dataset=dataset.name, partition=scheme, clients=settings.clients, rounds=settings.target_rounds,
                       model=settings.target_model, workers=_workers(settings), seed=settings.seed)  # fmt: skip
    started = time.perf_counter()
    result = run_simulation(config, dataset=dataset, until=lambda r: (r.metrics.accuracy or 0.0) >= settings.target_accuracy)
    seconds = time.perf_counter() - started
    reached = (result.final.metrics.accuracy or 0.0) >= settings.target_accuracy
    pfllib = PFLLIB_ROUNDS_TO_85 * PFLLIB_SECONDS_PER_ROUND
    return {
        "model": settings.target_model,
        "workers": config.workers,
        "target_accuracy": settings.target_accuracy,
        "reached": reached,
        "rounds": result.final.round,
        "seconds": seconds,
        "seconds_per_round": sum(r.wall_s for r in result.rounds[1:]) / max(1, result.final.round),
        "accuracy_per_round": [r.metrics.accuracy for r in result.rounds],
        "pfllib_seconds": pfllib,
        "shorter_than_pfllib": pfllib / seconds if reached else None,
        "target_met": bool(reached and pfllib / seconds >= TIME_TO_ACCURACY_TARGET),
    }


def run(
    scenarios: list[tuple[str, str]],
    settings: Settings = Settings(),
    modes: tuple[str, ...] = MODES,
    on_result: Callable[[dict[str, Any]], None] = lambda _entry: None,
) -> dict[str, Any]:
    from fedmarket.fl.datasets import load_dataset

    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise FedmarketError(f"unknown mode {', '.join(unknown)}; choose from {', '.join(MODES)}")
    load_before = os.getloadavg()
    results = []
    for dataset_name, scheme in scenarios:
        dataset = load_dataset(dataset_name, scaling=settings.input_scaling)
        entry: dict[str, Any] = {"dataset": dataset_name, "partition": scheme, "model": settings.model, "input_scaling": settings.input_scaling}
        for mode in modes:
            entry[mode] = time_mode(dataset, scheme, settings, mode)
        fastest = min(entry[m]["seconds_per_round"] for m in modes)
        entry["faster_than_pfllib"] = PFLLIB_SECONDS_PER_ROUND / fastest
        if len(modes) == 2:
            entry["workers_speedup"] = entry["sequential"]["seconds_per_round"] / entry["workers"]["seconds_per_round"]
        if settings.target_rounds:
            entry["time_to_accuracy"] = time_to_accuracy(load_dataset(dataset_name), scheme, settings)
        results.append(entry)
        on_result(entry)
    return {
        "benchmark": NAME,
        "settings": {
            **settings.__dict__,
            "workers": _workers(settings),
            "modes": list(modes),
            "warmup_rounds": 1,
            "batch_size": SEED_PROTOCOL.batch_size,
            "lr": SEED_PROTOCOL.lr,
            "epochs": SEED_PROTOCOL.epochs,
            "aggregation": SEED_PROTOCOL.aggregation,
            "pfllib_seconds_per_round": PFLLIB_SECONDS_PER_ROUND,
            "pfllib_rounds_to_85": PFLLIB_ROUNDS_TO_85,
        },
        "machine": {**machine_facts(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "results": results,
    }


def _load(values) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def _rounds_table(report: dict[str, Any]) -> str:
    modes = report["settings"]["modes"]
    rows = []
    for r in report["results"]:
        for mode in modes:
            m = r[mode]
            rows.append([r["dataset"], r["partition"], mode, str(m["workers"] or "-"), f"{m['seconds_per_round']:.2f}",
                         f"{m['train_seconds_per_round']:.2f}", f"{m['eval_seconds_per_round']:.2f}", f"{m['startup_seconds']:.1f}",
                         f"{PFLLIB_SECONDS_PER_ROUND / m['seconds_per_round']:.2f}x"])  # fmt: skip
    return markdown_table(
        ["dataset", "partition", "mode", "workers", "s / round", "training", "aggregation + evaluation", "start-up s", "vs PFLlib 6.3 s"], rows
    )


def _accuracy_table(report: dict[str, Any]) -> str:
    rows = []
    for r in report["results"]:
        t = r.get("time_to_accuracy")
        if t is None:
            continue
        got = f"{t['rounds']} rounds, {t['seconds']:.0f} s" if t["reached"] else f"not reached in {t['rounds']} rounds ({t['seconds']:.0f} s)"
        ratio = f"{t['shorter_than_pfllib']:.1f}x" if t["reached"] else "-"
        rows.append([r["dataset"], r["partition"], t["model"], str(t["workers"]), f"{t['target_accuracy']:.2f}", got, f"{t['pfllib_seconds']:.0f} s", ratio])
    if not rows:
        return ""
    return "\n" + markdown_table(["dataset", "partition", "model", "workers", "target", "ours", "PFLlib", "shorter by"], rows) + "\n"


def to_markdown(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    return (
        f"# bench train: seconds per round like for like with PFLlib, and time to {s['target_accuracy']:.0%} accuracy\n\n"
        f"Seed protocol ({s['clients']} clients, batch {s['batch_size']}, lr {s['lr']}, {s['epochs']} local epoch, {s['aggregation']}), "
        f"model {s['model']} on {s['input_scaling']} pixels, {s['rounds']} timed rounds after {s['warmup_rounds']} warm-up round per mode, "
        f"seed {s['seed']}; a round includes the evaluation of the global model on every client's test split. "
        f"PFLlib: {s['pfllib_seconds_per_round']} s per round on 2 cores; target <= {s['pfllib_seconds_per_round'] / SPEED_TARGET:.1f} s.\n"
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads in this process)"
        + (f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU")
        + f"; measured {m['measured_at']}; "
        f"load average (1/5/15 min) {_load(m['load_average_before'])} before, {_load(m['load_average_after'])} after.\n\n"
        + _rounds_table(report)
        + "\n"
        + _accuracy_table(report)
    )
