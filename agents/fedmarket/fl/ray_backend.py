"""The clients of a round trained as Ray tasks: on a local Ray instance or across a Ray cluster.

`RayClients` has the interface of fl.workers.ClientWorkers (`train(global_state, jobs)`, a
context manager), so fl.sim runs either backend the same way. Each client's local training is
one Ray task running fl.training.train_local with one torch thread (a task asks Ray for one
CPU), so its result is bit for bit the sequential loop's at one thread, on any node whose CPU
kind, torch and fedmarket match the driver's.

What goes through Ray's object store is numpy arrays only: the pooled data set (features and
labels) is put once per run, the global model's flat float32 vector (fl.params.flatten, sorted
key order) once per round, a client's sample indices and its TrainConfig as a plain dict with
each task, and a task returns its flat vector, sample count and loss. Torch modules never travel:
a task builds the model from the architecture's name (cached per Ray worker process), and the
task function is pickled by reference to this module, which every node imports.

The aggregate never depends on completion order: the caller gets the results in job order.

Ray is an optional dependency (`pip install 'fedmarket[ray]'`, part of the dev extra): this
module imports it only when a backend is opened, and says how to install it when it is absent.
"""

from __future__ import annotations

import importlib.util
import os
import signal
from collections.abc import Sequence
from typing import Any

import numpy as np

from fedmarket.errors import FedmarketError
from fedmarket.fl.workers import Job

DEFAULT_LOCAL_CPUS = 2  # a local instance's CPUs when the run names no --workers
INSTALL_HINT = "pip install 'fedmarket[ray]' (Ray 2.60)"

# Per Ray worker process: the model of each (architecture, input shape, outputs), built once.
_models: dict[tuple[str, tuple[int, ...], int], Any] = {}


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def check_ray() -> None:
    if not ray_available():
        raise FedmarketError(f"--backend ray needs Ray, which is not installed here: {INSTALL_HINT}")


def train_client(
    arch: str,
    input_shape: tuple[int, ...],
    num_outputs: int,
    x: np.ndarray,
    y: np.ndarray,
    global_flat: np.ndarray,
    indices: np.ndarray,
    config: dict[str, Any],
) -> tuple[np.ndarray, int, float]:
    """One client's local training inside a Ray task: (flat trained state, samples, train loss).

    x, y and global_flat arrive from the object store as read-only arrays (Ray resolves the
    references passed at the top level); only the client's rows are copied.
    """
    import torch

    from fedmarket.fl.learning import TrainConfig
    from fedmarket.fl.models import ModelSpec
    from fedmarket.fl.params import flatten, unflatten
    from fedmarket.fl.training import train_local

    torch.set_num_threads(1)  # what the sequential reference and the market's trainers run
    key = (arch, tuple(input_shape), int(num_outputs))
    if key not in _models:
        _models[key] = ModelSpec(*key).build()
    model = _models[key]
    like = {k: v.detach() for k, v in model.state_dict().items()}
    global_state = unflatten(torch.from_numpy(np.array(global_flat, dtype=np.float32)), like)
    state, samples, loss = train_local(model, global_state, x[indices], y[indices], TrainConfig(**config))
    return flatten(state).numpy(), int(samples), float(loss)


class RayClients:
    """A round's clients as Ray tasks; use as a context manager.

    address: a running cluster's address (`auto`, `HOST:6379`, or `ray://HOST:10001` for Ray
    Client); None starts a local instance with `cpus` CPUs, stopped again on close. When Ray is
    already initialised in this process (a test's or a notebook's), that instance is used as it is.
    """

    def __init__(self, spec: Any, x: np.ndarray, y: np.ndarray, address: str | None = None, cpus: int = DEFAULT_LOCAL_CPUS) -> None:
        check_ray()
        import ray

        if cpus < 1:
            raise FedmarketError(f"a local Ray instance needs at least one CPU, got {cpus}")
        self._ray = ray
        self._started_here = False
        if not ray.is_initialized():
            # No usage report from an offline machine; tasks' prints stay in Ray's logs so that
            # --json keeps stdout one JSON document (a task's error still comes back whole).
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="WARNING")
            # ray.init installs its own SIGTERM / SIGINT handlers in the driver and shutdown leaves
            # them: the process gets its own back when this instance stops (close).
            self._handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
            try:
                if address is None:  # "local": a new instance, never a cluster found on this host
                    ray.init(address="local", num_cpus=cpus, **options)
                else:
                    ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                for sig, handler in self._handlers.items():
                    signal.signal(sig, handler)
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise FedmarketError(f"could not start or reach {where}: {exc}") from None
            self._started_here = True
        self.spec_fields = (spec.arch, tuple(spec.input_shape), int(spec.num_outputs))
        self._task = ray.remote(num_cpus=1)(train_client)
        try:
            self._x = ray.put(np.ascontiguousarray(x, dtype=np.float32))
            self._y = ray.put(np.ascontiguousarray(y))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> RayClients:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def cluster_cpus(self) -> int:
        return int(self._ray.cluster_resources().get("CPU", 0))

    def train(self, global_state: Any, jobs: Sequence[Job]) -> list[tuple[dict[str, Any], int, float]]:
        """Every job trained from `global_state`: (state, samples, train loss) per job, in job order."""
        import torch

        from fedmarket.fl.params import canonical, flatten, unflatten

        like = canonical(global_state)
        global_ref = self._ray.put(flatten(like).numpy())
        # Largest jobs first: Ray starts tasks roughly in submission order, and the round ends
        # with its last task. Results are collected by job index, never by finishing order.
        order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].indices))
        refs: dict[int, Any] = {}
        for i in order:
            indices = np.ascontiguousarray(jobs[i].indices, dtype=np.int64)
            refs[i] = self._task.remote(*self.spec_fields, self._x, self._y, global_ref, indices, jobs[i].config.to_dict())
        try:
            answers = self._ray.get([refs[i] for i in range(len(jobs))])
        except self._ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            raise FedmarketError(f"a Ray task failed to train a client: {type(cause).__name__}: {cause}") from None
        except self._ray.exceptions.RayError as exc:
            raise FedmarketError(f"Ray could not run a client's training: {type(exc).__name__}: {exc}") from None
        finally:
            del global_ref
        return [(unflatten(torch.from_numpy(np.array(flat, dtype=np.float32)), like), samples, loss) for flat, samples, loss in answers]

    def close(self) -> None:
        self._x = self._y = None
        if self._started_here and self._ray.is_initialized():
            self._ray.shutdown()
        if self._started_here:
            for sig, handler in self._handlers.items():
                signal.signal(sig, handler)
        self._started_here = False
