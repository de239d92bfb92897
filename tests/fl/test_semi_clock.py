"""fl.semi's virtual clock: event order, straggler costs and the device compute-time ratio."""

from __future__ import annotations

import pytest

from fedmarket.errors import FedmarketError
from fedmarket.fl.semi.clock import EventQueue, choose_stragglers, round_costs, sync_clock, sync_schedule
from fedmarket.fl.semi.config import AsyncConfig
from fedmarket.fl.semi.run import run_async

TINY = dict(clients=4, rounds=2, model="mlp", lr=0.05, partition="dir:0.5", seed=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_events_pop_in_time_then_client_order() -> None:
    queue = EventQueue()
    for event in [(1.0, 2), (1.0, 0), (0.5, 3), (2.0, 1), (1.0, 1)]:
        queue.push(*event)
    popped = []
    while queue:
        popped.append(queue.pop())
    assert popped == [(0.5, 3), (1.0, 0), (1.0, 1), (1.0, 2), (2.0, 1)]


def test_costs_are_steps_times_step_cost_times_slowdown() -> None:
    # ceil(20 / 10) = 2 steps, ceil(41 / 10) = 5 steps, 2 epochs; client 1 is slowed down x3
    assert round_costs([20, 41], batch_size=10, epochs=2, step_cost=0.25, stragglers=frozenset({1}), slowdown=3.0) == [1.0, 7.5]
    slow = choose_stragglers(20, 0.5, seed=0)
    assert len(slow) == 10 and slow == choose_stragglers(20, 0.5, seed=0) and slow <= set(range(20))
    assert choose_stragglers(20, 0.0, seed=0) == frozenset()


def test_sync_ratio_by_hand() -> None:
    # costs 0.5, 1, 2: each round lasts 2; busy 3 x 3.5 = 10.5 of 3 clients x 3 rounds x 2 = 18
    ends, ledger = sync_schedule([0.5, 1.0, 2.0], rounds=3)
    assert ends == [2.0, 4.0, 6.0]
    assert ledger.ratio() == pytest.approx(10.5 / 18) and ledger.busy == [1.5, 3.0, 6.0] and ledger.exists_until == [6.0] * 3
    # four equal clients, two of them slowed down x2: busy 3 x (1 + 1 + 2 + 2) = 18 of 4 x 3 x 2 = 24
    clock = sync_clock([20] * 4, batch_size=10, epochs=1, rounds=3, step_cost=0.5, stragglers=0.5, slowdown=2.0, seed=0)
    assert clock["compute_time_ratio"] == 0.75 and sorted(clock["round_costs"]) == [1.0, 1.0, 2.0, 2.0]
    assert sync_clock([20] * 4, 10, 1, 3, 0.5, 0.0, 2.0, 0)["compute_time_ratio"] == 1.0


def test_sync_ratio_with_client_sampling_by_hand() -> None:
    """Round 1 trains clients 0 and 2, round 2 client 1: each round lasts as long as its slowest
    trained client, and the idle ones still exist through it."""
    ends, ledger = sync_schedule([0.5, 1.0, 2.0], rounds=2, trained=[[0, 2], [1]])
    assert ends == [2.0, 3.0]
    assert ledger.busy == [0.5, 1.0, 2.0]
    assert ledger.ratio() == pytest.approx(3.5 / 9.0)
    with pytest.raises(FedmarketError, match="each of the 2 rounds"):
        sync_schedule([0.5, 1.0], rounds=2, trained=[[0]])


@pytest.mark.parametrize("mode", ["semi", "fedasync", "local"])
def test_asynchronous_methods_never_wait(mode: str) -> None:
    result = run_async(AsyncConfig(mode=mode, stragglers=0.5, slowdown=2.0, **TINY))
    clock = result.clock
    assert clock["compute_time_ratio"] == 1.0
    assert len(clock["stragglers"]) == 2
    # every client ran its 2 rounds back to back: it exists exactly as long as it computed
    assert clock["busy"] == clock["exists_until"] == [2 * c for c in clock["round_costs"]]
    assert max(clock["exists_until"]) == clock["makespan"]


def test_uploads_follow_the_clock() -> None:
    result = run_async(AsyncConfig(mode="semi", stragglers=0.5, slowdown=2.0, **TINY))
    costs, slow = result.clock["round_costs"], result.clock["stragglers"]
    uploads = [r for r in result.records.records if r.type == "upload"]
    assert [(u.timestamp, u.client) for u in uploads] == sorted((u.timestamp, u.client) for u in uploads)
    assert sorted((u.timestamp, u.client, u.content["round"]) for u in uploads) == sorted((k * costs[c], c, k) for c in range(4) for k in (1, 2))
    sizes = [c.train for c in result.partition.clients]
    assert costs == round_costs(sizes, 10, 1, 0.01, frozenset(slow), 2.0)  # a straggler's round takes twice its steps
