"""The plumbing every method of fl.semi shares: data, split, model, the clock's event loop, results.

A method (semi_centralised, fedasync, local) is an object with `step(time, client, round)`, run
when `client` finishes its local round `round` at virtual `time`, and `client_states()`, every
client's current model. `fl.semi.run.run_async` loads the data, splits it as fl.sim does (the same clients
for the same seed and partition), builds the clock, pops events in (virtual time, client) order
and, after every N client rounds (one round's worth of updates), scores the client models; the
result holds that curve against virtual time, the final metrics and the compute-time ratio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from fedmarket.fl.datasets import Dataset, dataset_named
from fedmarket.fl.evaluation import Metrics
from fedmarket.fl.models import ModelSpec, model_spec_for
from fedmarket.fl.params import State
from fedmarket.fl.partition import Partition, PartitionSummary, market_partition
from fedmarket.fl.seeds import initial_model_seed
from fedmarket.fl.semi.clock import ComputeLedger, EventQueue, choose_stragglers, round_costs
from fedmarket.fl.semi.config import AsyncConfig
from fedmarket.fl.semi.metrics import average_model_metrics, client_models_metrics
from fedmarket.fl.semi.records import RecordLog
from fedmarket.fl.sim import state_digest
from fedmarket.fl.taskspec import check_learning
from fedmarket.fl.training import resolve_device


@dataclass(frozen=True, eq=False)
class Setup:
    """What a method needs: the config, data, split, model, device and clock costs."""

    config: AsyncConfig
    data: Dataset
    parts: Partition
    spec: ModelSpec
    model: nn.Module  # one module reused for every forward and backward pass
    device: torch.device
    initial_state: State
    stragglers: frozenset[int]
    costs: list[float]

    @property
    def test_sets(self) -> list[np.ndarray]:
        return [c.test for c in self.parts.clients]


class Method(Protocol):
    def step(self, time: float, client: int, round_number: int) -> None: ...

    def client_states(self) -> list[State]: ...


@dataclass(frozen=True)
class CurvePoint:
    """The client models after `updates` client rounds, at virtual `time`."""

    time: float
    updates: int
    metrics: Metrics

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "updates": self.updates, **self.metrics.to_dict()}


@dataclass(frozen=True, eq=False)
class AsyncResult:
    config: AsyncConfig
    model_id: str
    device: str
    partition: PartitionSummary
    curve: tuple[CurvePoint, ...]
    client_models: Metrics  # final: each client's model on its own test split, pooled
    average_model: Metrics  # final: the mean of the client models on the pooled test splits
    clock: dict[str, Any]
    client_states: list[State]
    records: RecordLog | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # the method's own facts (trust graph, ...)

    def digests(self) -> list[str]:
        return [state_digest(s) for s in self.client_states]

    def to_dict(self) -> dict[str, Any]:
        n = self.config.clients
        curve = [{**p.to_dict(), "rounds": p.updates / n} for p in self.curve]
        out: dict[str, Any] = {
            "mode": self.config.mode,
            "config": self.config.to_dict(),
            "model_id": self.model_id,
            "device": self.device,
            "partition": self.partition.to_dict(),
            "final": {"client_models": self.client_models.to_dict(), "average_model": self.average_model.to_dict()},
            "clock": self.clock,
            "curve": curve,
            "client_digests": self.digests(),
            **self.extra,
        }
        if self.records is not None:
            out["records"] = {"counts": self.records.counts(), "head_hash": self.records.head(), "verified": self.records.verify()}
        return out


def make_setup(config: AsyncConfig, dataset: Dataset | None = None) -> Setup:
    check_learning(config)
    device = resolve_device(config.device)
    data = dataset_named(config.dataset, config.data_dir, config.input_scaling, dataset)
    spec = model_spec_for(data, config.model)
    parts, _held = market_partition(data.y, config.clients, config.partition, config.seed, 0)
    stragglers = choose_stragglers(config.clients, config.stragglers, config.seed)
    costs = round_costs(parts.train_sizes(), config.batch_size, config.epochs, config.step_cost, stragglers, config.slowdown)
    model = spec.build().to(device)
    return Setup(config, data, parts, spec, model, device, spec.init_state(initial_model_seed(config.seed)), stragglers, costs)


def score_clients(setup: Setup, states: list[State]) -> tuple[Metrics, Metrics]:
    """(client models, average model) metrics of `states`."""
    d = setup.data
    return (
        client_models_metrics(setup.model, states, d.x, d.y, setup.test_sets, d.task, setup.device),
        average_model_metrics(setup.model, states, d.x, d.y, setup.test_sets, d.task, setup.device),
    )


def run_events(setup: Setup, method: Method, on_point: Callable[[CurvePoint], None] | None = None) -> tuple[list[CurvePoint], ComputeLedger]:
    """Every client runs `rounds` local rounds back to back on the virtual clock (nobody waits)."""
    n, rounds, costs = setup.config.clients, setup.config.rounds, setup.costs
    d = setup.data
    ledger = ComputeLedger(n)
    queue = EventQueue()
    done = [0] * n

    def point(time: float, updates: int) -> CurvePoint:
        states = method.client_states()
        entry = CurvePoint(time, updates, client_models_metrics(setup.model, states, d.x, d.y, setup.test_sets, d.task, setup.device))
        if on_point is not None:
            on_point(entry)
        return entry

    curve = [point(0.0, 0)]
    if rounds > 0:
        for client in range(n):
            queue.push(costs[client], client)
    updates = 0
    while queue:
        time, client = queue.pop()
        done[client] += 1
        method.step(time, client, done[client])
        ledger.computed(client, costs[client], time)
        updates += 1
        if done[client] < rounds:
            # (k + 1) x cost rather than a running sum: no rounding drift between clients
            queue.push((done[client] + 1) * costs[client], client)
        if updates % n == 0 or not queue:
            curve.append(point(time, updates))
    return curve, ledger
