"""The deterministic virtual clock: asynchrony and stragglers simulated exactly, without sleeping.

Each client's compute time for one local round is its configured cost times its slowdown:
cost = (local SGD steps of one round) x step_cost, where the steps are epochs x ceil(samples /
batch size), so a client with more data takes longer, as it would on a real device; the
stragglers (a seeded random choice of round(fraction x N) clients, fl.seeds.straggler_seed) take
`slowdown` times as long. Communication, scoring and aggregation take no virtual time.

Events are processed in (virtual time, client id) order from a heap, so two clients finishing
at the same instant are always handled lowest id first and a run is reproducible bit for bit.

The device compute-time ratio (the seed paper's metric) is the time the devices spend computing
over the time they exist, summed over devices: a device exists from time 0 until its last round
ends, which for a synchronous method is when the last global model arrives, i.e. after it waited
for the slowest client of every round. 100 % means nobody ever waits.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fedmarket.errors import FedmarketError
from fedmarket.fl.seeds import straggler_seed


def choose_stragglers(clients: int, fraction: float, seed: int) -> frozenset[int]:
    """The round(fraction x clients) slowed-down clients, drawn with fl.seeds.straggler_seed."""
    if not 0 <= fraction <= 1:
        raise FedmarketError(f"the straggler fraction must lie in [0, 1], got {fraction}")
    count = int(round(fraction * clients))
    rng = np.random.default_rng(straggler_seed(seed))
    return frozenset(int(i) for i in rng.choice(clients, size=count, replace=False))


def round_costs(train_sizes: list[int], batch_size: int, epochs: int, step_cost: float, stragglers: frozenset[int], slowdown: float) -> list[float]:
    """Virtual compute time of one local round of each client (module docstring)."""
    if not step_cost > 0 or not slowdown >= 1:
        raise FedmarketError(f"step cost must be > 0 and slowdown >= 1, got {step_cost} and {slowdown}")
    return [epochs * math.ceil(n / batch_size) * step_cost * (slowdown if i in stragglers else 1.0) for i, n in enumerate(train_sizes)]


@dataclass
class EventQueue:
    """Pending (virtual time, client) events, popped in that order."""

    _heap: list[tuple[float, int]] = field(default_factory=list)

    def push(self, time: float, client: int) -> None:
        heapq.heappush(self._heap, (time, client))

    def pop(self) -> tuple[float, int]:
        return heapq.heappop(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)


@dataclass
class ComputeLedger:
    """Each device's busy time and the end of its existence, for the compute-time ratio."""

    clients: int
    busy: list[float] = field(init=False)
    exists_until: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self.busy = [0.0] * self.clients
        self.exists_until = [0.0] * self.clients

    def computed(self, client: int, duration: float, end: float) -> None:
        """`client` computed for `duration` up to virtual time `end`."""
        self.busy[client] += duration
        self.exists_until[client] = max(self.exists_until[client], end)

    def exists(self, client: int, until: float) -> None:
        self.exists_until[client] = max(self.exists_until[client], until)

    def ratio(self) -> float:
        existence = sum(self.exists_until)
        return sum(self.busy) / existence if existence > 0 else 1.0

    def summary(self, costs: list[float], stragglers: frozenset[int]) -> dict:
        return {
            "compute_time_ratio": self.ratio(),
            "makespan": max(self.exists_until, default=0.0),
            "stragglers": sorted(stragglers),
            "round_costs": costs,
            "busy": self.busy,
            "exists_until": self.exists_until,
        }


def sync_schedule(costs: list[float], rounds: int, trained: Sequence[Sequence[int]] | None = None) -> tuple[list[float], ComputeLedger]:
    """Synchronous rounds on the clock: every round starts when the slowest client of the previous
    one finished (the server waits for all it sampled); returns each round's end time and the
    ledger. `trained[r]`: the clients that compute in round r + 1 (default: every client); the
    others exist idle through the round, as an unsampled device does."""
    if trained is not None and len(trained) != rounds:
        raise FedmarketError(f"the clock needs the trained clients of each of the {rounds} rounds, got {len(trained)}")
    ledger = ComputeLedger(len(costs))
    ends, now = [], 0.0
    for r in range(rounds):
        working = range(len(costs)) if trained is None else trained[r]
        for client in working:
            ledger.computed(client, costs[client], now + costs[client])
        now += max((costs[c] for c in working), default=0.0)
        ends.append(now)
        for client in range(len(costs)):
            ledger.exists(client, now)
    return ends, ledger


def sync_clock(
    train_sizes: list[int],
    batch_size: int,
    epochs: int,
    rounds: int,
    step_cost: float,
    stragglers: float,
    slowdown: float,
    seed: int,
    trained: Sequence[Sequence[int]] | None = None,
) -> dict:
    """The clock summary of a synchronous run (fl.sim's FedAvg / FedProx) over these clients:
    the same stragglers and costs an asynchronous run with the same settings gets. `trained`:
    each round's training clients when not all of them train (client sampling, an elected
    committee's members)."""
    slow = choose_stragglers(len(train_sizes), stragglers, seed)
    costs = round_costs(train_sizes, batch_size, epochs, step_cost, slow, slowdown)
    ends, ledger = sync_schedule(costs, rounds, trained)
    return {**ledger.summary(costs, slow), "round_end_times": ends}
