"""Parallel worker processes give the sequential loop's global models bit for bit; client sampling."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch

from fedmarket.errors import FedmarketError
from fedmarket.fl.datasets import load_dataset
from fedmarket.fl.learning import TrainConfig
from fedmarket.fl.models import ModelSpec
from fedmarket.fl.params import states_equal
from fedmarket.fl.sim import SimConfig, clients_per_round, round_clients, run_simulation
from fedmarket.fl.training import train_local
from fedmarket.fl.workers import ClientWorkers, Job


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The sequential reference with one torch thread, as each worker (and each market trainer) runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_two_workers_give_the_sequential_global_models_bit_for_bit(one_thread: None) -> None:
    config = SimConfig(clients=5, rounds=2, partition="dir:0.5", seed=3)
    sequential = run_simulation(config)
    parallel = run_simulation(replace(config, workers=2))
    assert [r.digest for r in parallel.rounds] == [r.digest for r in sequential.rounds]
    assert [r.global_cid for r in parallel.rounds] == [r.global_cid for r in sequential.rounds]
    assert len({r.digest for r in parallel.rounds}) == 3 and states_equal(parallel.final_state, sequential.final_state)
    assert [r.train_loss for r in parallel.rounds] == [r.train_loss for r in sequential.rounds]


@pytest.mark.slow
def test_results_come_back_in_job_order_and_errors_as_one_line(one_thread: None) -> None:
    data = load_dataset("digits")
    spec = ModelSpec("mlp", data.input_shape, data.num_outputs)
    start = spec.init_state(0)
    # Sizes that make the largest job go first and finish last: answers arrive out of job order.
    jobs = [Job(np.arange(n, dtype=np.int64), TrainConfig(seed=n)) for n in (10, 200, 30)]
    with ClientWorkers(2, spec, data.x, data.y, slots=3) as workers:
        results = workers.train(start, jobs)
        assert [r[1] for r in results] == [10, 200, 30]
        for job, (state, _, loss) in zip(jobs, results):  # each one what train_local gives in this process
            here = train_local(spec, start, data.x[job.indices], data.y[job.indices], job.config)
            assert states_equal(state, here[0]) and loss == here[2]
        with pytest.raises(FedmarketError, match="hold results for 3"):
            workers.train(start, jobs + jobs)
        with pytest.raises(FedmarketError, match="IndexError"):
            workers.train(start, [Job(np.array([len(data.y) + 5]), TrainConfig())])


def test_sampled_clients_are_deterministic_and_of_the_right_size() -> None:
    config = SimConfig(clients=100, clients_per_round=5, seed=7)
    first = round_clients(config, 1)
    assert first == round_clients(config, 1) and len(first) == 5 == len(set(first)) and first == sorted(first)
    assert all(0 <= c < 100 for c in first)
    assert round_clients(config, 2) != first and round_clients(replace(config, seed=8), 1) != first
    assert round_clients(replace(config, clients_per_round=0), 1) == list(range(100))
    assert clients_per_round(1000, 0.05) == 50 and clients_per_round(20, 0.01) == 1 and clients_per_round(20, 1.0) == 20
    with pytest.raises(FedmarketError, match="fraction"):
        clients_per_round(20, 0.0)


def test_a_thousand_clients_train_only_the_sampled_ones() -> None:
    # 1,000 clients need 8,000 samples (8 each at least): digits five times over.
    digits = load_dataset("digits")
    many = replace(digits, x=np.tile(digits.x, (5, 1, 1, 1)), y=np.tile(digits.y, 5))
    config = SimConfig(clients=1000, clients_per_round=4, rounds=1, partition="iid", model="mlp", seed=0)
    result = run_simulation(config, dataset=many)
    assert result.rounds[1].clients == tuple(round_clients(config, 1)) and len(result.rounds[1].clients) == 4
    assert result.rounds[1].digest != result.rounds[0].digest
    assert result.final.metrics.num_samples == sum(c["test"] for c in result.partition.to_dict()["clients"])


def test_bad_worker_and_sampling_settings_are_refused() -> None:
    with pytest.raises(FedmarketError, match="clients per round"):
        run_simulation(SimConfig(clients=4, clients_per_round=5, rounds=0))
    with pytest.raises(FedmarketError, match="on the CPU"):
        run_simulation(SimConfig(clients=4, workers=2, batched=True, rounds=0))
