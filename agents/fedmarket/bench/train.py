"""`fedmarket bench train`: FedAvg rounds per minute, all clients batched on one device vs one at a time.

Scenario: the seed protocol (20 clients, batch 10, lr 0.005, 1 local epoch, the 2-conv CNN) on
each dataset / partition listed, on the CPU and, when torch sees one, the GPU. For each, the same
rounds run twice from the same initial model: batched (fl.batched: vmap over the stacked client
models) and sequential (fl.training.train_local per client). A round is every client's local
training plus the FedAvg aggregation; one untimed warm-up round goes first (it pays for lazy
imports and kernel selection). The two modes must end at the same global model up to float
rounding; the largest difference is reported next to the timings.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from fedmarket.bench import machine_facts, markdown_table
from fedmarket.errors import FedmarketError
from fedmarket.fl.learning import SEED_PROTOCOL

NAME = "train"
DEFAULT_SCENARIOS = "digits:dir:0.1,mnist:dir:0.1,mnist:iid"


def parse_scenarios(text: str) -> list[tuple[str, str]]:
    """ "digits:dir:0.1,mnist:iid" -> [("digits", "dir:0.1"), ("mnist", "iid")]."""
    scenarios = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        dataset, _, scheme = item.partition(":")
        if not scheme:
            raise FedmarketError(f"bad scenario {item!r}; write DATASET:PARTITION, e.g. mnist:dir:0.1")
        scenarios.append((dataset, scheme))
    return scenarios


def time_rounds(dataset, partition_scheme: str, clients: int, rounds: int, batched: bool, device: str, seed: int) -> dict[str, Any]:
    """Run 1 warm-up + `rounds` timed FedAvg rounds; return timings and the final global state."""
    import torch

    from fedmarket.fl.aggregation import get_rule
    from fedmarket.fl.models import model_spec_for
    from fedmarket.fl.params import canonical
    from fedmarket.fl.partition import partition
    from fedmarket.fl.seeds import initial_model_seed
    from fedmarket.fl.sim import SimConfig, train_round

    config = SimConfig(dataset=dataset.name, partition=partition_scheme, clients=clients, batched=batched, device=device, seed=seed)
    dev = torch.device(device)
    spec = model_spec_for(dataset, config.model)
    model = spec.build().to(dev)
    parts = partition(dataset.y, clients, partition_scheme, seed)
    aggregate = get_rule(config.aggregation)
    state = spec.init_state(initial_model_seed(seed))
    train_s = 0.0
    started = 0.0
    for r in range(rounds + 1):
        if r == 1:
            started = time.perf_counter()
            train_s = 0.0
        t0 = time.perf_counter()
        updates = train_round(config, spec, model, state, dataset, parts, r, dev)
        train_s += time.perf_counter() - t0
        state = canonical(aggregate([u[0] for u in updates], [int(u[1]) for u in updates]))
    wall = time.perf_counter() - started
    return {
        "rounds_timed": rounds,
        "seconds_per_round": wall / rounds,
        "train_seconds_per_round": train_s / rounds,
        "rounds_per_minute": 60.0 * rounds / wall,
        "state": state,
        "client_steps_per_round": sum(-(-len(c.train) // config.batch_size) for c in parts.clients),
    }


def run(
    scenarios: list[tuple[str, str]],
    clients: int,
    rounds: int,
    devices: list[str],
    seed: int,
    on_result: Callable[[dict[str, Any]], None] = lambda _entry: None,
) -> dict[str, Any]:
    import torch

    from fedmarket.fl.datasets import load_dataset
    from fedmarket.fl.params import max_abs_diff

    load_before = os.getloadavg()
    results = []
    for dataset_name, scheme in scenarios:
        dataset = load_dataset(dataset_name)
        for device in devices:
            modes = {}
            for batched in (True, False):
                modes["batched" if batched else "sequential"] = time_rounds(dataset, scheme, clients, rounds, batched, device, seed)
            diff = max_abs_diff(modes["batched"].pop("state"), modes["sequential"].pop("state"))
            device_name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
            entry = {
                "dataset": dataset_name,
                "partition": scheme,
                "device": device,
                "device_name": device_name,
                "batched": modes["batched"],
                "sequential": modes["sequential"],
                "speedup": modes["batched"]["rounds_per_minute"] / modes["sequential"]["rounds_per_minute"],
                "max_abs_diff_final_global": diff,
            }
            results.append(entry)
            on_result(entry)
    return {
        "benchmark": NAME,
        "settings": {
            "clients": clients,
            "rounds_timed": rounds,
            "warmup_rounds": 1,
            "batch_size": SEED_PROTOCOL.batch_size,
            "lr": SEED_PROTOCOL.lr,
            "epochs": SEED_PROTOCOL.epochs,
            "model": "cnn (seed paper)",
            "aggregation": SEED_PROTOCOL.aggregation,
            "seed": seed,
            "devices": devices,
        },
        "machine": {**machine_facts(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "results": results,
    }


def _load(values) -> str:
    return "/".join(f"{v:.1f}" for v in values)


def to_markdown(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    rows = [
        [
            r["dataset"],
            r["partition"],
            f"{r['device']} ({r['device_name']})",
            f"{r['batched']['rounds_per_minute']:.1f}",
            f"{r['sequential']['rounds_per_minute']:.1f}",
            f"{r['speedup']:.2f}x",
            f"{r['max_abs_diff_final_global']:.1e}",
        ]
        for r in report["results"]
    ]
    table = markdown_table(
        ["dataset", "partition", "device", "batched rounds/min", "sequential rounds/min", "batched / sequential", "max abs diff of final global"], rows
    )
    return (
        f"# bench train: {s['clients']} clients, batched vs one at a time\n\n"
        f"Seed protocol (batch {s['batch_size']}, lr {s['lr']}, {s['epochs']} local epoch, CNN, FedAvg), "
        f"{s['rounds_timed']} timed rounds after {s['warmup_rounds']} warm-up round, seed {s['seed']}.\n"
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads)"
        + (f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU")
        + f"; measured {m['measured_at']}; "
        f"load average (1/5/15 min) {_load(m['load_average_before'])} before, {_load(m['load_average_after'])} after.\n\n" + table + "\n"
    )
