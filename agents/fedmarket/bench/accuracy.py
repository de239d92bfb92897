"""`fedmarket bench accuracy`: FedAvg under the seed protocol next to centralised training.

For every dataset available (digits and mnist always; fmnist and cifar10 when their files are on
disk) and every partition (PAT with 2 labels per client and Dir(0.1) by default), FedAvg runs the
seed paper's protocol (20 clients, batch 10, lr 0.005, 1 local epoch, the 2-conv CNN) for R rounds
with no chain (fl.sim), and the same CNN is trained centrally on the pooled training data of all
clients (same batch and rate, R epochs: the same number of sample gradients as R FedAvg rounds).
Both are scored on the pooled local test sets (accuracy, micro AUC and loss over all test samples
together), so the gap is what federation over that split costs. The JSON also keeps FedAvg's
per-round accuracy curve and its sample-weighted per-client metrics (what `fedmarket sim` shows).

The market's own accuracy (the same protocol through the chain) is measured by the demo report;
this benchmark is its no-chain reference.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fedmarket.bench import machine_facts, markdown_table
from fedmarket.errors import FedmarketError
from fedmarket.fl.learning import SEED_PROTOCOL

NAME = "accuracy"
DEFAULT_PARTITIONS = "pat:2,dir:0.1"
OPTIONAL_DATASETS = ("fmnist", "cifar10")


def pooled_test_metrics(dataset, parts, state, config, device: str) -> dict[str, Any]:
    """Metrics of `state` on all clients' test splits pooled (AUC over the pooled pairs)."""
    import numpy as np

    from fedmarket.fl.evaluation import evaluate
    from fedmarket.fl.models import model_spec_for

    test_idx = np.concatenate([c.test for c in parts.clients])
    spec = model_spec_for(dataset, config.model)
    return evaluate(spec, state, dataset.x[test_idx], dataset.y[test_idx], dataset.task, device).to_dict()


def centralised(dataset, parts, rounds: int, config, device: str) -> dict[str, Any]:
    """Train the CNN on all clients' train splits pooled for `rounds` epochs; score on pooled test splits."""
    import numpy as np

    from fedmarket.fl.models import model_spec_for
    from fedmarket.fl.seeds import centralised_seed, initial_model_seed
    from fedmarket.fl.training import train_local

    spec = model_spec_for(dataset, config.model)
    train_idx = np.concatenate([c.train for c in parts.clients])
    started = time.perf_counter()
    state, _, train_loss = train_local(
        spec,
        spec.init_state(initial_model_seed(config.seed)),
        dataset.x[train_idx],
        dataset.y[train_idx],
        replace(config.train_config(centralised_seed(config.seed)), epochs=rounds),
        device,
    )
    return {
        "epochs": rounds,
        "metrics": pooled_test_metrics(dataset, parts, state, config, device),
        "train_loss": train_loss,
        "wall_s": time.perf_counter() - started,
    }


def run(
    datasets: list[str],
    partitions: list[str],
    rounds: dict[str, int],
    clients: int,
    seed: int,
    device: str,
    batched: bool,
    on_result: Callable[[dict[str, Any]], None] = lambda _entry: None,
) -> dict[str, Any]:
    from fedmarket.fl.datasets import load_dataset
    from fedmarket.fl.partition import partition
    from fedmarket.fl.sim import SimConfig, run_simulation

    load_before = os.getloadavg()
    run_started = time.perf_counter()
    results = []
    for name in datasets:
        dataset = load_dataset(name, download=False)
        for scheme in partitions:
            config = SimConfig(dataset=name, partition=scheme, clients=clients, rounds=rounds[name], seed=seed, device=device, batched=batched)
            started = time.perf_counter()
            sim = run_simulation(config, dataset=dataset)
            fed_wall = time.perf_counter() - started
            parts = partition(dataset.y, clients, scheme, seed)  # the split the simulation used
            central = centralised(dataset, parts, rounds[name], config, device)
            curve = [r.metrics.accuracy for r in sim.rounds]
            entry = {
                "dataset": name,
                "partition": scheme,
                "rounds": rounds[name],
                "model_id": sim.model_id,
                "fedavg": {
                    "final": pooled_test_metrics(dataset, parts, sim.final_state, config, device),
                    "final_weighted_over_clients": sim.final.metrics.to_dict(),
                    "best_accuracy": max(curve[1:] or curve),
                    "accuracy_per_round": curve,
                    "final_global_cid": sim.final.global_cid,
                    "wall_s": fed_wall,
                },
                "centralised": central,
            }
            results.append(entry)
            on_result(entry)
    return {
        "benchmark": NAME,
        "settings": {
            "clients": clients,
            "batch_size": SEED_PROTOCOL.batch_size,
            "lr": SEED_PROTOCOL.lr,
            "local_epochs": SEED_PROTOCOL.epochs,
            "model": "cnn (seed paper)",
            "aggregation": SEED_PROTOCOL.aggregation,
            "rounds": rounds,
            "partitions": partitions,
            "seed": seed,
            "device": device,
            "batched": batched,
            "centralised": "same CNN, batch and lr, one epoch per FedAvg round, on all clients' train splits pooled",
            "scored_on": "all clients' local test splits pooled (25% of each client's samples)",
        },
        "machine": {**machine_facts(), "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "results": results,
        "wall_s": time.perf_counter() - run_started,
    }


def to_markdown(report: dict[str, Any]) -> str:
    s, m = report["settings"], report["machine"]
    rows = []
    for r in report["results"]:
        f, c = r["fedavg"]["final"], r["centralised"]["metrics"]
        rows.append(
            [
                r["dataset"],
                r["partition"],
                r["rounds"],
                f"{f['accuracy']:.3f}",
                f"{r['fedavg']['best_accuracy']:.3f}",
                f"{f['auc']:.3f}",
                f"{f['loss']:.3f}",
                f"{c['accuracy']:.3f}",
                f"{c['auc']:.3f}",
                f"{c['loss']:.3f}",
            ]
        )
    table = markdown_table(
        ["dataset", "partition", "rounds", "FedAvg acc", "FedAvg best acc", "FedAvg AUC", "FedAvg loss", "central acc", "central AUC", "central loss"], rows
    )
    return (
        "# bench accuracy: FedAvg (seed protocol, no chain) vs centralised training\n\n"
        f"{s['clients']} clients, batch {s['batch_size']}, lr {s['lr']}, {s['local_epochs']} local epoch, CNN, FedAvg; "
        f"centralised: {s['centralised']}. Scored on {s['scored_on']}. Seed {s['seed']}.\n"
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads), device {s['device']}; measured {m['measured_at']}; "
        f"whole run {report['wall_s']:.0f} s.\n\n" + table + "\n"
    )


def parse_rounds(text: str, datasets: list[str]) -> dict[str, int]:
    """ "30" -> same for all; "digits=40,mnist=20" -> per dataset (others: the first value)."""
    try:
        if "=" not in text:
            return {d: int(text) for d in datasets}
        pairs = dict(item.split("=") for item in text.split(","))
        default = int(next(iter(pairs.values())))
        return {d: int(pairs.get(d, default)) for d in datasets}
    except ValueError:
        raise FedmarketError(f"bad --rounds {text!r}; write N or DATASET=N,DATASET=N") from None
