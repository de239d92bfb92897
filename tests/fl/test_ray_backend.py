"""`fedmarket sim --backend ray`: Ray tasks give the sequential loop's global models bit for bit.

The tests that run Ray start a local 2-CPU instance each (about 5 s on the 2-core CI machine);
they skip, saying why, where Ray is not installed (it is an optional extra, part of dev).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import torch

from fedmarket.errors import FedmarketError
from fedmarket.fl.datasets import load_dataset
from fedmarket.fl.elected_sim import ElectedConfig, check_elected
from fedmarket.fl.learning import TrainConfig
from fedmarket.fl.models import ModelSpec
from fedmarket.fl.params import states_equal
from fedmarket.fl.ray_backend import RayClients, ray_available
from fedmarket.fl.sim import SimConfig, check_config, round_clients, run_simulation
from fedmarket.fl.training import train_local
from fedmarket.fl.workers import Job

FEDMARKET = str(Path(sys.executable).with_name("fedmarket"))
T = TypeVar("T")
needs_ray = pytest.mark.skipif(not ray_available(), reason="Ray is not installed: it is the optional extra fedmarket[ray] (pip install -e '.[dev]' has it)")


def at_one_thread(compute: Callable[..., T], *args: Any) -> T:
    """The reference computed in this process with one torch thread, as each Ray task (and each
    market trainer) runs: only then are the results the same bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return compute(*args)
    finally:
        torch.set_num_threads(threads)


@needs_ray
@pytest.mark.slow
def test_sim_backend_ray_gives_the_sequential_global_models_with_sampling(tmp_path: Path) -> None:
    # 4 clients, 3 drawn per round, 2 rounds of the CNN on digits, on a local 2-CPU Ray instance
    # started by the command; the reference is the one-thread loop in this process.
    args = ["--clients", "4", "--clients-per-round", "3", "--rounds", "2", "--partition", "dir:0.5", "--seed", "3"]
    env = {**os.environ, "FEDMARKET_HOME": str(tmp_path), "COLUMNS": "200"}
    done = subprocess.run([FEDMARKET, "sim", *args, "--backend", "ray", "--workers", "2", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    on_ray = json.loads(done.stdout)
    config = SimConfig(clients=4, clients_per_round=3, rounds=2, partition="dir:0.5", seed=3)
    here = at_one_thread(run_simulation, config)
    assert on_ray["config"]["backend"] == "ray" and on_ray["config"]["workers"] == 2
    assert [r["global_cid"] for r in on_ray["rounds"]] == [r.global_cid for r in here.rounds]
    assert len({r.global_cid for r in here.rounds}) == 3
    assert [r["train_loss"] for r in on_ray["rounds"]] == [r.train_loss for r in here.rounds]
    assert [r["clients"] for r in on_ray["rounds"][1:]] == [round_clients(config, r) for r in (1, 2)]
    assert all(len(r["clients"]) == 3 for r in on_ray["rounds"][1:])


@needs_ray
@pytest.mark.slow
def test_ray_results_come_back_in_job_order_and_errors_as_one_line() -> None:
    data = load_dataset("digits")
    spec = ModelSpec("mlp", data.input_shape, data.num_outputs)
    start = spec.init_state(0)
    # The largest job goes first and finishes last: answers complete out of job order.
    jobs = [Job(np.arange(n, dtype=np.int64), TrainConfig(seed=n)) for n in (10, 200, 30)]
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with RayClients(spec, data.x, data.y, cpus=2) as clients:
        assert clients.cluster_cpus() == 2
        results = clients.train(start, jobs)
        assert [r[1] for r in results] == [10, 200, 30]
        for job, (state, _, loss) in zip(jobs, results):
            reference = at_one_thread(train_local, spec, start, data.x[job.indices], data.y[job.indices], job.config)
            assert states_equal(state, reference[0]) and loss == reference[2]
        with pytest.raises(FedmarketError, match="IndexError"):
            clients.train(start, [Job(np.array([len(data.y) + 5]), TrainConfig())])
        again = clients.train(start, jobs[:1])  # the instance still serves after a failed task
        assert states_equal(again[0][0], results[0][0])
    import ray

    assert not ray.is_initialized()  # the instance this backend started is stopped again
    # and the process has its own signal handlers back (ray.init installs its own, shutdown leaves them)
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def test_backend_options_are_checked_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    base = SimConfig(clients=4, rounds=1)
    for bad, message in [
        (dict(backend="spark"), "unknown backend 'spark'"),
        (dict(address="auto"), "needs --backend ray"),
        (dict(backend="ray", address="auto", workers=2), "give one of the two"),
        (dict(backend="ray", batched=True), "drop --batched"),
    ]:
        with pytest.raises(FedmarketError, match=message):
            check_config(replace(base, **bad))
    with pytest.raises(FedmarketError, match="backend"):
        check_elected(ElectedConfig(clients=6, rounds=1, backend="ray"))
    # As on a host without the extra: `import ray` fails, and the message says what to install.
    monkeypatch.setitem(sys.modules, "ray", None)
    assert not ray_available()
    with pytest.raises(FedmarketError, match=r"pip install 'fedmarket\[ray\]'"):
        check_config(replace(base, backend="ray"))
