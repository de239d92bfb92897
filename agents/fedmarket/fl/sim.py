"""Federated averaging without a chain: the reference run the market is measured against.

FedAvg as in McMahan et al. 2017 ("Communication-Efficient Learning of Deep Networks from
Decentralized Data"), with the seed paper's protocol as defaults: 20 clients, all taking part in
every round, 1 local epoch of SGD with batch 10 and lr 0.005, a Dir(0.1) split of digits, the
2-conv CNN. Each round every client trains from the global model on its local train split, the
aggregation rule (fl.aggregation, FedAvg by sample counts by default) combines the updates, and
the new global model is scored on every client's local test split (sample-weighted).

Deterministic: the partition, the initial model and every client's batch order derive from
`seed`, so the same config gives the same global model bytes in every round (the per-round
SHA-256 `digest` of the weights, and the CID the market would publish, record that). The CID is
that of fedmarket.storage's canonical weights file with metadata (architecture id, round, CID of
the previous round's global model; none for round 0), so a market run of the same task can be
checked against it: trainer i of round r trains with train_local and seed fl.seeds.client_seed(seed, r, i)
on its partition's train split, and the rule aggregates in client order with sample-count weights.
The clients of a round train in this process, in worker processes (fl.workers, `workers`) or
as Ray tasks (fl.ray_backend, `backend="ray"`): at one torch thread all three give the same
global models, and the aggregate never depends on which client finished first.
Batched mode (fl.batched) is faster on a GPU but equals this only up to float rounding, so its
CIDs differ; bit-identity also assumes the same CPU kind (kernels may round differently).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fedmarket.errors import FedmarketError
from fedmarket.fl.aggregation import get_rule
from fedmarket.fl.datasets import Dataset, dataset_named
from fedmarket.fl.evaluation import Metrics, evaluate_clients, weighted_overall
from fedmarket.fl.learning import Learning
from fedmarket.fl.models import ModelSpec, model_spec_for
from fedmarket.fl.params import State, canonical, flatten
from fedmarket.fl.partition import Partition, PartitionSummary, market_partition
from fedmarket.fl.ray_backend import DEFAULT_LOCAL_CPUS, RayClients, check_ray
from fedmarket.fl.seeds import client_sample_seed, client_seed, initial_model_seed
from fedmarket.fl.taskspec import check_learning
from fedmarket.fl.training import resolve_device, train_local
from fedmarket.fl.workers import ClientWorkers, Job
from fedmarket.storage.cid import cid_of
from fedmarket.storage.weights import WeightsMeta, encode_weights

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class SimConfig(Learning):
    """One simulation: the learning settings (the seed paper's protocol by default) and the run's."""

    clients: int = 20
    rounds: int = 10
    device: str = "cpu"
    # One client at a time by default: that is what the market's trainers run, so its global-model
    # CIDs are reproduced bit for bit; batched training matches only up to float rounding.
    batched: bool = False
    data_dir: Path | None = None
    # Samples kept apart before partitioning (a market's validators hold them): with the same
    # holdout, seed and split, the clients here hold what the market's trainers hold.
    holdout: int = 0
    # Worker processes that train a round's clients in parallel (fl.workers); 0: in this process.
    workers: int = 0
    # Clients trained per round, drawn from the seed (FedAvg's C * clients); 0: every client.
    clients_per_round: int = 0
    # Where a round's clients train: "local" (this process, or `workers` processes) or "ray"
    # (Ray tasks: a local instance of `workers` CPUs, 2 when 0, or the cluster at `address`).
    backend: str = "local"
    address: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["data_dir"] = str(self.data_dir) if self.data_dir else None
        return out


@dataclass(frozen=True)
class RoundRecord:
    """The global model after `round` (round 0: the initial model, before any training)."""

    round: int
    metrics: Metrics
    train_loss: float | None  # sample-weighted mean of the clients' local training losses
    digest: str  # SHA-256 of the weights, canonical key order, float32 little-endian
    global_cid: str  # CID of the weights file the market would publish for this round
    train_s: float
    wall_s: float
    clients: tuple[int, ...] = ()  # the clients trained in this round (0-based; none in round 0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["metrics"] = self.metrics.to_dict()
        out["clients"] = list(self.clients)
        return out


@dataclass(frozen=True, eq=False)
class SimResult:
    config: SimConfig
    model_id: str
    partition: PartitionSummary
    rounds: tuple[RoundRecord, ...]  # rounds[0] is the initial model
    final_state: State
    device: str

    @property
    def final(self) -> RoundRecord:
        return self.rounds[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "model_id": self.model_id,
            "device": self.device,
            "partition": self.partition.to_dict(),
            "rounds": [r.to_dict() for r in self.rounds],
            "final": self.final.to_dict(),
        }


def state_digest(state: State) -> str:
    return hashlib.sha256(flatten(canonical(state)).numpy().astype("<f4").tobytes()).hexdigest()


def global_model_cid(state: State, model_id: str, round_number: int, parent_cid: str | None) -> str:
    """CID of the round's global-model file as the market stores it (fedmarket.storage's canonical
    safetensors encoding; metadata: architecture id, round, and the previous global model's CID)."""
    return cid_of(encode_weights(canonical(state), WeightsMeta(arch=model_id, round=round_number, parent_cid=parent_cid)))


def round_clients(config: SimConfig, round_number: int) -> list[int]:
    """The clients that train in `round_number`, ascending: all of them, or `clients_per_round`
    drawn without replacement from the seed (fl.seeds.client_sample_seed), as FedAvg's C."""
    k = config.clients_per_round
    if k in (0, config.clients):
        return list(range(config.clients))
    rng = np.random.default_rng(client_sample_seed(config.seed, round_number))
    return sorted(int(c) for c in rng.choice(config.clients, size=k, replace=False))


def train_round(
    config: SimConfig,
    spec: ModelSpec,
    model: nn.Module,
    global_state: State,
    data: Dataset,
    parts: Partition,
    round_number: int,
    device: Any,
    workers: ClientWorkers | RayClients | None = None,
) -> list[tuple[State, int, float]]:
    """The local training of one round's clients (round_clients, in that order): (state,
    samples, train loss) per client; in `workers` (processes or Ray tasks) when given, else in
    this process."""
    chosen = round_clients(config, round_number)
    train_sets = [parts.clients[i].train for i in chosen]
    seeds = [client_seed(config.seed, round_number, i) for i in chosen]
    if workers is not None:
        return workers.train(global_state, [Job(idx, config.train_config(s)) for idx, s in zip(train_sets, seeds)])
    if config.batched:
        # fl.batched needs torch.func, loaded only when a run asks for batched training.
        from fedmarket.fl.batched import train_clients_batched

        return train_clients_batched(model, global_state, data.x, data.y, train_sets, config.train_config(0), seeds, device)
    return [train_local(model, global_state, data.x[idx], data.y[idx], config.train_config(s), device) for idx, s in zip(train_sets, seeds)]


def check_config(config: SimConfig) -> None:
    """Refuse a bad config before any work: unknown names, bad numbers, missing device."""
    check_learning(config)
    if config.rounds < 0 or config.clients < 1 or config.holdout < 0:
        raise FedmarketError("rounds and holdout must be >= 0 and clients >= 1")
    if not 0 <= config.clients_per_round <= config.clients:
        raise FedmarketError(f"clients per round must lie in 1..{config.clients} (0: all), got {config.clients_per_round}")
    if config.workers < 0:
        raise FedmarketError(f"workers must be >= 0 (0: train in this process), got {config.workers}")
    if config.backend not in BACKENDS:
        raise FedmarketError(f"unknown backend {config.backend!r}; choose one of: {', '.join(BACKENDS)}")
    if config.backend == "ray":
        if config.batched or resolve_device(config.device).type != "cpu":
            raise FedmarketError("Ray tasks train one client each on a CPU: drop --batched / --device cuda, or --backend ray")
        if config.address and config.workers:
            raise FedmarketError("--workers sizes a local Ray instance; a cluster (--address) has the CPUs it has: give one of the two")
        check_ray()
    elif config.address:
        raise FedmarketError("--address names a Ray cluster: it needs --backend ray")
    if config.workers and (config.batched or resolve_device(config.device).type != "cpu"):
        raise FedmarketError("worker processes train one client each on the CPU: drop --batched / --device cuda, or --workers")
    resolve_device(config.device)


def open_backend(config: SimConfig, spec: ModelSpec, data: Dataset) -> Any:
    """A context manager yielding what trains a round's clients (None: this process)."""
    if config.backend == "ray":
        return RayClients(spec, data.x, data.y, config.address, config.workers or DEFAULT_LOCAL_CPUS)
    if config.workers:
        return ClientWorkers(config.workers, spec, data.x, data.y, config.clients_per_round or config.clients)
    return contextlib.nullcontext()


def clients_per_round(clients: int, fraction: float) -> int:
    """FedAvg's m = max(C * K, 1) clients of K per round, rounded to the nearest integer."""
    if not 0 < fraction <= 1:
        raise FedmarketError(f"the fraction of clients per round must lie in (0, 1], got {fraction}")
    return max(1, min(clients, round(fraction * clients)))


def run_simulation(
    config: SimConfig,
    on_round: Callable[[RoundRecord], None] | None = None,
    dataset: Dataset | None = None,
    until: Callable[[RoundRecord], bool] | None = None,
) -> SimResult:
    """Run FedAvg (or the configured rule) for `config.rounds` rounds; call on_round after each.

    `dataset` may be passed pre-loaded (it must be the one config.dataset names). `until` ends
    the run early, after the first round for which it returns True (e.g. a target accuracy).
    """
    check_config(config)
    device = resolve_device(config.device)
    data = dataset_named(config.dataset, config.data_dir, config.input_scaling, dataset)
    spec = model_spec_for(data, config.model)
    model = spec.build().to(device)
    # Evaluation's own copy in channels-last layout: 1.7x faster forward passes of the CNNs on a
    # CPU (bench train); training keeps the plain layout, whose results the market's trainers share.
    eval_model = spec.build().to(device, memory_format=torch.channels_last) if len(spec.input_shape) == 3 else model
    aggregate = get_rule(config.aggregation)
    parts, _held = market_partition(data.y, config.clients, config.partition, config.seed, config.holdout)
    test_sets = [c.test for c in parts.clients]

    def record(round_number: int, state: State, train_loss: float | None, train_s: float, started: float, trained: tuple[int, ...] = ()) -> RoundRecord:
        per_client = evaluate_clients(eval_model, state, data.x, data.y, test_sets, data.task, device)
        parent = records[-1].global_cid if records else None
        cid = global_model_cid(state, spec.id, round_number, parent)
        metrics = weighted_overall(per_client)
        entry = RoundRecord(round_number, metrics, train_loss, state_digest(state), cid, train_s, time.perf_counter() - started, trained)
        if on_round is not None:
            on_round(entry)
        return entry

    started = time.perf_counter()
    global_state = spec.init_state(initial_model_seed(config.seed))
    records: list[RoundRecord] = []
    records.append(record(0, global_state, None, 0.0, started))
    with open_backend(config, spec, data) as workers:
        for r in range(1, config.rounds + 1):
            started = time.perf_counter()
            updates = train_round(config, spec, model, global_state, data, parts, r, device, workers)
            train_s = time.perf_counter() - started
            states = [u[0] for u in updates]
            counts = [int(u[1]) for u in updates]
            global_state = canonical(aggregate(states, counts))
            train_loss = float(sum(u[2] * u[1] for u in updates) / sum(counts))
            del states, updates  # the round's client models: at most clients_per_round of them live at once
            records.append(record(r, global_state, train_loss, train_s, started, tuple(round_clients(config, r))))
            if until is not None and until(records[-1]):
                break
    return SimResult(config, spec.id, parts.summary(), tuple(records), global_state, str(device))
